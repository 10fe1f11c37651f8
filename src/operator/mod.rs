//! The KfDef operator (`kfop run`): watches KfDefs, renders and applies them, heals what others
//! delete or change, prunes, cleans up on deletion and reports status.

pub mod cluster;
pub mod objects;
mod reconcile;
pub mod status;
mod upgrades;
pub mod watch;

use crate::applications::RenderedApplication;
use crate::kfdef::KfDef;
use crate::repos::RepoCache;
use cluster::Cluster;
use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use watch::{DesiredState, HealReason, Watches};

pub use reconcile::ReconcileError;

/// Options of `kfop run`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Watch KfDefs in this namespace only.
    pub namespace: Option<String>,
    /// How many KfDefs reconcile at once.
    pub concurrency: u16,
    /// How often a converged KfDef is compared with the cluster again (default ten minutes).
    pub resync: Option<Duration>,
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub cluster: Arc<Cluster>,
    pub watches: Arc<Watches>,
    pub desired: Arc<DesiredState>,
    pub repos: RepoCache,
    pub recorder: Recorder,
    /// The last render of each KfDef (by UID), with the generation it rendered.
    pub renders: Mutex<HashMap<String, Render>>,
    /// How often a converged KfDef is compared with the cluster again.
    pub resync: Duration,
    /// The status kfop last wrote for each KfDef (by UID). The KfDef a reconcile is handed may
    /// predate that write; the inventory must never be taken from a stale copy.
    pub statuses: Mutex<HashMap<String, crate::kfdef::KfDefStatus>>,
}

/// A KfDef's render and the generation it was made from.
pub type Render = (i64, Arc<Vec<RenderedApplication>>);

/// Why a reconcile failed, wrapped by the finalizer helper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<ReconcileError>>),
}

async fn reconcile(kfdef: Arc<KfDef>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = kfdef.namespace().unwrap_or_default();
    let api: Api<KfDef> = Api::namespaced(ctx.client.clone(), &namespace);
    let span =
        tracing::info_span!("reconcile", kfdef = %format!("{namespace}/{}", kfdef.name_any()));
    let _entered = span.enter();
    finalizer(&api, objects::FINALIZER, kfdef, |event| async {
        match event {
            Finalizer::Apply(kfdef) => reconcile::apply(kfdef, ctx.clone()).await,
            Finalizer::Cleanup(kfdef) => reconcile::cleanup(kfdef, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(kfdef: Arc<KfDef>, error: &Error, _ctx: Arc<Context>) -> Action {
    let waiting = matches!(error, Error::Finalizer(e) if matches!(**e, kube::runtime::finalizer::Error::CleanupFailed(ReconcileError::Deleting { .. })));
    if waiting {
        tracing::info!(kfdef = %kfdef.name_any(), %error, "deleting");
        return Action::requeue(Duration::from_secs(1));
    }
    tracing::warn!(kfdef = %kfdef.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the operator until interrupted.
pub async fn run(client: Client, repos: RepoCache, options: Options) -> Result<(), kube::Error> {
    let cluster = Arc::new(Cluster::new(client.clone()));
    let (heal_tx, heal_rx) = tokio::sync::mpsc::unbounded_channel();
    let (healed_tx, mut healed_rx) = tokio::sync::mpsc::unbounded_channel();
    let watches = Arc::new(Watches::new(cluster.clone(), heal_tx));
    let desired = Arc::new(DesiredState::default());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kfop".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    tokio::spawn(watch::heal(
        cluster.clone(),
        desired.clone(),
        heal_rx,
        healed_tx,
    ));
    let events_recorder = recorder.clone();
    tokio::spawn(async move {
        while let Some(healed) = healed_rx.recv().await {
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(KfDef::api_version(&()).into_owned()),
                kind: Some("KfDef".into()),
                name: Some(healed.owner.name.clone()),
                namespace: Some(healed.owner.namespace.clone()),
                uid: Some(healed.owner.uid.clone()),
                ..Default::default()
            };
            let what = match healed.reason {
                HealReason::Deleted => "re-created deleted",
                HealReason::Changed => "set back changed",
            };
            let (type_, note) = match &healed.result {
                Ok(latency) => (
                    EventType::Normal,
                    format!("{what} {} in {} ms", healed.key, latency.as_millis()),
                ),
                Err(e) => (
                    EventType::Warning,
                    format!("could not heal {}: {e}", healed.key),
                ),
            };
            let event = Event {
                type_,
                reason: "Healed".into(),
                note: Some(note),
                action: "Heal".into(),
                secondary: None,
            };
            if let Err(e) = events_recorder.publish(&event, &reference).await {
                tracing::debug!(error = %e, "could not publish an event");
            }
        }
    });
    let ctx = Arc::new(Context {
        client: client.clone(),
        cluster,
        watches,
        desired,
        repos,
        recorder,
        renders: Mutex::new(HashMap::new()),
        resync: options.resync.unwrap_or(Duration::from_secs(600)),
        statuses: Mutex::new(HashMap::new()),
    });
    let api: Api<KfDef> = match &options.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let concurrency = if options.concurrency == 0 {
        4
    } else {
        options.concurrency
    };
    tracing::info!(
        namespace = options.namespace.as_deref().unwrap_or("(all)"),
        "kfop operator started"
    );
    Controller::new(api, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(kfdef = %object, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "controller"),
            }
        })
        .await;
    Ok(())
}
