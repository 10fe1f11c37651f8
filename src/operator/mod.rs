//! The KfDef operator (`kfop run`): watches KfDefs, renders and applies them, heals what others
//! delete or change, prunes, cleans up on deletion and reports status.

pub mod backoff;
pub mod cluster;
mod execute;
pub mod impersonation;
pub mod inventory;
pub mod objects;
pub mod plan;
mod reconcile;
pub mod status;
mod upgrades;
pub mod watch;

use crate::applications::RenderedApplication;
use crate::endpoints::{Readiness, mark_synced};
use crate::kfdef::KfDef;
use crate::repos::RepoCache;
use backoff::Backoff;
use cluster::Cluster;
use futures::StreamExt;
use impersonation::Impersonation;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;
use watch::{Triggers, Watches};

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
    /// Set once the KfDef cache has synced.
    pub ready: Readiness,
    /// kfop's own kube configuration: KfDefs that name a service account are applied through
    /// clients derived from it (none: such KfDefs fail).
    pub config: Option<kube::Config>,
    /// The service account KfDefs without `kfop.dev/service-account` are applied as (none: kfop's
    /// own).
    pub default_service_account: Option<String>,
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub cluster: Arc<Cluster>,
    pub watches: Arc<Watches>,
    pub repos: RepoCache,
    pub recorder: Recorder,
    /// The last render of each KfDef (by UID), with the generation it rendered: what heals
    /// put back.
    pub renders: Mutex<HashMap<String, Render>>,
    /// How often a converged KfDef is compared with the cluster again.
    pub resync: Duration,
    /// The status kfop last wrote for each KfDef (by UID). The KfDef a reconcile is handed may
    /// predate that write; the inventory must never be taken from a stale copy.
    pub statuses: Mutex<HashMap<String, crate::kfdef::KfDefStatus>>,
    /// Consecutive failures per KfDef, for exponential backoff.
    pub backoff: Backoff,
    /// The service accounts KfDefs are applied as.
    pub impersonation: Impersonation,
}

/// A KfDef's render, the generation it was made from, and the hashes of its desired objects.
#[derive(Clone)]
pub struct Render {
    pub generation: i64,
    pub apps: Arc<Vec<RenderedApplication>>,
    pub hashes: Arc<plan::DesiredHashes>,
}

/// Why a reconcile failed, wrapped by the finalizer helper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<ReconcileError>>),
}

async fn reconcile(kfdef: Arc<KfDef>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = kfdef.namespace().unwrap_or_default();
    let api: Api<KfDef> = Api::namespaced(ctx.client.clone(), &namespace);
    let label = format!("{namespace}/{}", kfdef.name_any());
    let span = tracing::info_span!("reconcile", kfdef = %label);
    let started = std::time::Instant::now();
    let deleting = kfdef.metadata.deletion_timestamp.is_some();
    let result = finalizer(&api, objects::FINALIZER, kfdef, |event| async {
        match event {
            Finalizer::Apply(kfdef) => reconcile::apply(kfdef, ctx.clone()).await,
            Finalizer::Cleanup(kfdef) => reconcile::cleanup(kfdef, ctx.clone()).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let metrics = crate::metrics::global();
    if deleting && result.is_ok() {
        metrics.forget_kfdef(&label);
    } else {
        metrics.reconciled(&label, result.is_ok(), started.elapsed());
    }
    result
}

fn error_policy(kfdef: Arc<KfDef>, error: &Error, ctx: Arc<Context>) -> Action {
    let waiting = matches!(error, Error::Finalizer(e) if matches!(**e, kube::runtime::finalizer::Error::CleanupFailed(ReconcileError::Deleting { .. })));
    if waiting {
        tracing::info!(kfdef = %kfdef.name_any(), %error, "deleting");
        return Action::requeue(Duration::from_secs(1));
    }
    let delay = ctx.backoff.next(&kfdef.uid().unwrap_or_default());
    tracing::warn!(kfdef = %kfdef.name_any(), %error, retry_in_ms = delay.as_millis() as u64, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// Runs the operator until interrupted.
pub async fn run(client: Client, repos: RepoCache, options: Options) {
    let cluster = Arc::new(Cluster::new(client.clone()));
    let (triggers, heals) = Triggers::new();
    let watches = Arc::new(Watches::new(cluster.clone(), triggers));
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kfop".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        cluster,
        watches,
        repos,
        recorder,
        renders: Mutex::new(HashMap::new()),
        resync: options.resync.unwrap_or(Duration::from_secs(600)),
        statuses: Mutex::new(HashMap::new()),
        backoff: Backoff::default(),
        impersonation: Impersonation::new(options.config, options.default_service_account),
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
    let (store, writer) = reflector::store();
    let kfdefs = reflector(
        writer,
        mark_synced(
            watcher(api, watcher::Config::default()),
            options.ready.clone(),
        ),
    )
    .applied_objects();
    Controller::for_stream(kfdefs, store)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_on(heals)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(kfdef = %object, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "controller"),
            }
        })
        .await;
}
