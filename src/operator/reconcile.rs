//! One KfDef's reconcile: render (cached per generation), apply what changed in waves, prune what
//! is no longer rendered, report status and events; and on deletion, remove everything it created.

use super::Context;
use super::cluster::ApplyError;
use super::objects::{self, DesiredObject, ObjectKey, Owner, wave};
use super::status::{self, ApplicationOutcome};
use super::watch::Live;
use crate::applications::RenderedApplication;
use crate::kfdef::{InventoryEntry, KfDef, KfDefStatus};
use crate::render::resource::Gvk;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Why a reconcile stopped early (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The KfDef has no UID or namespace (it was never stored).
    #[error("KfDef {0} has no uid or namespace")]
    Incomplete(String),
    /// The API server refused a request kfop cannot do without.
    #[error("KfDef {kfdef}: {source}")]
    Api { kfdef: String, source: kube::Error },
    /// Deletion is waiting for objects to go away.
    #[error("KfDef {kfdef}: waiting for {count} objects to be deleted, e.g. {example}")]
    Deleting {
        kfdef: String,
        count: usize,
        example: String,
    },
}

/// How soon a KfDef with pending objects or unready workloads is looked at again.
const RECHECK: Duration = Duration::from_secs(3);

fn owner_of(kfdef: &KfDef) -> Result<Owner, ReconcileError> {
    match (kfdef.uid(), kfdef.namespace()) {
        (Some(uid), Some(namespace)) => Ok(Owner {
            name: kfdef.name_any(),
            namespace,
            uid,
        }),
        _ => Err(ReconcileError::Incomplete(kfdef.name_any())),
    }
}

/// Renders the KfDef, reusing the last render for the same generation (a render error is
/// retried).
async fn rendered(kfdef: &KfDef, ctx: &Context) -> Arc<Vec<RenderedApplication>> {
    let uid = kfdef.uid().unwrap_or_default();
    let generation = kfdef.metadata.generation.unwrap_or(0);
    if let Ok(renders) = ctx.renders.lock()
        && let Some((cached_generation, apps)) = renders.get(&uid)
        && *cached_generation == generation
        && apps.iter().all(|a| a.result.is_ok())
    {
        return apps.clone();
    }
    let mut apps = crate::applications::render(kfdef, &ctx.repos, None).await;
    // Objects of API versions the cluster no longer serves are rewritten before anything else
    // sees them: inventory, self-heal, prune and cleanup all work on the upgraded identity.
    let upgraded = super::upgrades::upgrade(&ctx.cluster, &kfdef.name_any(), &mut apps).await;
    let apps = Arc::new(apps);
    match upgraded {
        Ok(()) => {
            if let Ok(mut renders) = ctx.renders.lock() {
                renders.insert(uid, (generation, apps.clone()));
            }
        }
        Err(e) => {
            tracing::warn!(kfdef = %kfdef.name_any(), error = %e, "discovery failed; objects of removed API versions wait for the next reconcile")
        }
    }
    apps
}

/// Live metadata of `key`: from the watch when it is synced, else read from the API server.
async fn live(ctx: &Context, key: &ObjectKey, version: &str) -> Result<Option<Live>, kube::Error> {
    if let Some(known) = ctx.watches.live(key) {
        return Ok(known);
    }
    Ok(ctx
        .cluster
        .metadata(key, version)
        .await?
        .map(|meta| Live::from_meta(&meta)))
}

async fn publish(ctx: &Context, kfdef: &KfDef, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &kfdef.object_ref(&())).await {
        tracing::debug!(error = %e, "could not publish an event");
    }
}

/// Brings the cluster to what the KfDef renders.
pub async fn apply(kfdef: Arc<KfDef>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let owner = owner_of(&kfdef)?;
    let label = format!("{}/{}", owner.namespace, owner.name);
    let generation = kfdef.metadata.generation.unwrap_or(0);
    let apps = rendered(&kfdef, &ctx).await;
    let stored = kfdef.status.clone().unwrap_or_default();
    let written_last = ctx
        .statuses
        .lock()
        .ok()
        .and_then(|s| s.get(&owner.uid).cloned());
    // Everything either copy lists is considered: pruning checks the live object anyway.
    let mut known_inventory = stored.inventory.clone();
    if let Some(last) = &written_last {
        known_inventory.extend(last.inventory.iter().cloned());
    }
    let previous = written_last.clone().unwrap_or_else(|| stored.clone());
    let previous_keys: BTreeMap<ObjectKey, &InventoryEntry> = known_inventory
        .iter()
        .map(|e| (ObjectKey::from(e), e))
        .collect();

    let mut outcomes: Vec<ApplicationOutcome> = Vec::new();
    let mut desired: BTreeMap<ObjectKey, DesiredObject> = BTreeMap::new();
    let mut unresolved: Vec<(usize, Value)> = Vec::new();
    let mut failed_apps: BTreeSet<String> = BTreeSet::new();
    for (index, app) in apps.iter().enumerate() {
        let mut outcome = ApplicationOutcome {
            name: app.name.clone(),
            ..Default::default()
        };
        match &app.result {
            Err(e) => {
                outcome.render_error = Some(e.to_string());
                failed_apps.insert(app.name.clone());
            }
            Ok(objects) => {
                outcome.objects = objects.len();
                for object in objects {
                    unresolved.push((index, object.clone()));
                }
            }
        }
        outcomes.push(outcome);
    }
    let render_errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.render_error.clone())
        .collect();
    if !render_errors.is_empty() {
        publish(
            &ctx,
            &kfdef,
            EventType::Warning,
            "RenderFailed",
            render_errors.join("; "),
        )
        .await;
    }

    // Resolve kinds wave by wave: custom kinds become resolvable once their CRDs are established.
    let mut written = 0usize;
    let mut applied_keys: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut adopted: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut deferred = unresolved;
    for current_wave in 0..=3u8 {
        let mut batch: Vec<(usize, DesiredObject)> = Vec::new();
        let mut later = Vec::new();
        for (index, object) in deferred {
            let api_version = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind_name = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let Gvk { group, version, .. } = Gvk::from_api_version(api_version, "");
            let probe = ObjectKey {
                group: group.clone(),
                kind: kind_name.clone(),
                namespace: None,
                name: String::new(),
            };
            if wave(&probe) != current_wave {
                later.push((index, object));
                continue;
            }
            let kind = match ctx.cluster.kind(&group, &version, &kind_name).await {
                Ok(Some(kind)) => kind,
                Ok(None) => {
                    outcomes[index].pending.push(format!(
                        "{kind_name}.{api_version}: no matches for kind in version {api_version}"
                    ));
                    continue;
                }
                Err(e) => {
                    outcomes[index]
                        .pending
                        .push(format!("{kind_name}.{api_version}: discovery failed: {e}"));
                    continue;
                }
            };
            ctx.watches.ensure(&group, &kind_name, &kind);
            match objects::desired(&owner, &apps[index].name, object, kind.namespaced) {
                Ok(d) => batch.push((index, d)),
                Err(e) => outcomes[index].failed.push(e),
            }
        }
        deferred = later;
        let mut crds = Vec::new();
        for (index, object) in batch {
            let key = object.key.clone();
            let live_state = match live(&ctx, &key, &object.version).await {
                Ok(l) => l,
                Err(e) => {
                    outcomes[index].pending.push(format!("{key}: {e}"));
                    continue;
                }
            };
            if let Some(l) = &live_state {
                if let Some(other) = &l.kfdef_uid
                    && *other != owner.uid
                {
                    outcomes[index]
                        .conflicts
                        .push(format!("{key} belongs to another KfDef (uid {other})"));
                    continue;
                }
                if l.kfdef_uid.is_none() && !previous_keys.contains_key(&key) {
                    adopted.insert(key.clone());
                }
            }
            if previous_keys
                .get(&key)
                .is_some_and(|e| e.adopted == Some(true))
            {
                adopted.insert(key.clone());
            }
            let unchanged = live_state.as_ref().is_some_and(|l| {
                l.hash.as_deref() == Some(object.hash.as_str())
                    && !l.changed_by_others
                    && !l.deleting
            });
            if !unchanged {
                match ctx.cluster.apply(&object).await {
                    Ok(()) => written += 1,
                    Err(e @ ApplyError::NoKind { .. }) => {
                        outcomes[index].pending.push(format!("{key}: {e}"));
                    }
                    Err(e) if e.is_transient() => {
                        outcomes[index].pending.push(format!("{key}: {e}"))
                    }
                    Err(e) => outcomes[index].failed.push(format!("{key}: {e}")),
                }
            }
            if key.group == "apiextensions.k8s.io" && key.kind == "CustomResourceDefinition" {
                crds.push(key.clone());
            }
            applied_keys.insert(key.clone());
            desired.insert(key, object);
        }
        if !crds.is_empty() {
            wait_established(&ctx, &crds).await;
        }
    }
    for (index, object) in deferred {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        outcomes[index].pending.push(format!("{kind}: not applied"));
    }

    // Self-heal from now on works from this render.
    ctx.desired.set(
        &owner,
        desired
            .iter()
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect::<HashMap<_, _>>(),
    );

    // Prune what an application that rendered fine no longer renders (never because of an error).
    let rendered_apps: BTreeSet<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    let mut pruned = Vec::new();
    let mut kept: Vec<InventoryEntry> = Vec::new();
    for (key, entry) in &previous_keys {
        if desired.contains_key(key) {
            continue;
        }
        let app = entry.application.clone().unwrap_or_default();
        if failed_apps.contains(&app)
            || (rendered_apps.contains(app.as_str())
                && outcomes
                    .iter()
                    .any(|o| o.name == app && !o.pending.is_empty()))
        {
            kept.push((*entry).clone());
            continue;
        }
        if entry.adopted == Some(true) {
            continue;
        }
        match live(&ctx, key, &entry.version).await {
            Ok(Some(l)) if l.prune_disabled => continue,
            Ok(Some(l)) if l.kfdef_uid.as_deref().is_some_and(|u| u != owner.uid) => continue,
            Ok(None) => continue,
            Ok(Some(_)) => {}
            Err(e) => {
                tracing::warn!(kfdef = %label, object = %key, error = %e, "cannot check an object before pruning; keeping it");
                kept.push((*entry).clone());
                continue;
            }
        }
        ctx.desired.remove_object(&owner.uid, key);
        match ctx.cluster.delete(key, &entry.version).await {
            Ok(_) => pruned.push(key.to_string()),
            Err(e) => {
                tracing::warn!(kfdef = %label, object = %key, error = %e, "prune failed; will retry");
                kept.push((*entry).clone());
            }
        }
    }
    if !pruned.is_empty() {
        publish(
            &ctx,
            &kfdef,
            EventType::Normal,
            "Pruned",
            format!(
                "deleted {} objects no longer rendered: {}",
                pruned.len(),
                pruned.join(", ")
            ),
        )
        .await;
    }

    // Readiness of workloads and CRDs.
    for (key, object) in &desired {
        if !matches!(
            key.kind.as_str(),
            "Deployment" | "StatefulSet" | "CustomResourceDefinition"
        ) || !applied_keys.contains(key)
        {
            continue;
        }
        let index = apps
            .iter()
            .position(|a| a.name == object.application)
            .unwrap_or(0);
        match ctx.cluster.get(key, &object.version).await {
            Ok(Some(live_object)) => {
                let value = serde_json::to_value(&live_object).unwrap_or_default();
                if status::readiness(&value) == Some(false) {
                    outcomes[index].not_ready.push(key.to_string());
                }
            }
            Ok(None) => outcomes[index].not_ready.push(format!("{key} (not found)")),
            Err(e) => outcomes[index].not_ready.push(format!("{key}: {e}")),
        }
    }

    let conflicts: Vec<String> = outcomes.iter().flat_map(|o| o.conflicts.clone()).collect();
    if !conflicts.is_empty() {
        publish(
            &ctx,
            &kfdef,
            EventType::Warning,
            "Conflict",
            conflicts.join("; "),
        )
        .await;
    }
    if written > 0 {
        publish(
            &ctx,
            &kfdef,
            EventType::Normal,
            "Applied",
            format!("applied {written} changed objects of {}", desired.len()),
        )
        .await;
    }
    let failures: Vec<String> = outcomes.iter().flat_map(|o| o.failed.clone()).collect();
    if !failures.is_empty() {
        publish(
            &ctx,
            &kfdef,
            EventType::Warning,
            "ApplyFailed",
            failures.join("; "),
        )
        .await;
    }

    let mut inventory: Vec<InventoryEntry> = desired
        .values()
        .map(|d| d.inventory_entry(adopted.contains(&d.key)))
        .collect();
    inventory.extend(kept);
    inventory.sort_by(|a, b| ObjectKey::from(a).cmp(&ObjectKey::from(b)));
    inventory.dedup_by(|a, b| ObjectKey::from(&*a) == ObjectKey::from(&*b));
    let mut status = status::build(
        Some(&previous),
        generation,
        &outcomes,
        inventory,
        Time(Timestamp::now()),
    );
    status.upgrades = crate::upgrade::status(&apps);
    if let Some(note) =
        super::upgrades::skipped_note(previous.upgrades.as_ref(), status.upgrades.as_ref())
    {
        publish(&ctx, &kfdef, EventType::Warning, "Skipped", note).await;
    }
    if stored != status && written_last.as_ref() != Some(&status) {
        write_status(&ctx, &kfdef, status.clone()).await?;
    }
    if let Ok(mut statuses) = ctx.statuses.lock() {
        statuses.insert(owner.uid.clone(), status);
    }

    let waiting = outcomes
        .iter()
        .any(|o| !o.pending.is_empty() || !o.not_ready.is_empty());
    tracing::info!(
        kfdef = %label,
        objects = desired.len(),
        written,
        pruned = pruned.len(),
        converged = !waiting,
        "reconciled"
    );
    Ok(Action::requeue(if waiting { RECHECK } else { ctx.resync }))
}

async fn wait_established(ctx: &Context, crds: &[ObjectKey]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for key in crds {
        loop {
            let established = ctx
                .cluster
                .get(key, "v1")
                .await
                .ok()
                .flatten()
                .and_then(|o| serde_json::to_value(o).ok())
                .and_then(|v| status::readiness(&v))
                .unwrap_or(false);
            if established || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Writes the status (the caller skips it when nothing changed: an idle install writes nothing).
async fn write_status(
    ctx: &Context,
    kfdef: &KfDef,
    status: KfDefStatus,
) -> Result<(), ReconcileError> {
    let api: Api<KfDef> =
        Api::namespaced(ctx.client.clone(), &kfdef.namespace().unwrap_or_default());
    let patch =
        json!({"apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef", "status": status});
    api.patch_status(
        &kfdef.name_any(),
        &PatchParams::apply(objects::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| ReconcileError::Api {
        kfdef: kfdef.name_any(),
        source,
    })?;
    Ok(())
}

/// Deletes everything the KfDef created, webhooks first and namespaces last, and reports whether
/// it is all gone (the finalizer stays until then).
pub async fn cleanup(kfdef: Arc<KfDef>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let owner = owner_of(&kfdef)?;
    ctx.desired.forget(&owner.uid);
    let mut inventory = kfdef.status.clone().unwrap_or_default().inventory;
    if let Some(last) = ctx
        .statuses
        .lock()
        .ok()
        .and_then(|s| s.get(&owner.uid).cloned())
    {
        inventory.extend(last.inventory);
    }
    let mut entries: BTreeMap<ObjectKey, (String, bool)> = inventory
        .iter()
        .map(|e| {
            (
                ObjectKey::from(e),
                (e.version.clone(), e.adopted == Some(true)),
            )
        })
        .collect();
    // Objects labelled for this KfDef but missing from the inventory (a crash before the status
    // was written) go too.
    for (key, version) in ctx.watches.objects_of(&owner.uid) {
        entries.entry(key).or_insert((version, false));
    }
    let mut ordered: Vec<(ObjectKey, String)> = entries
        .into_iter()
        .filter(|(_, (_, adopted))| !adopted)
        .map(|(k, (v, _))| (k, v))
        .collect();
    ordered.sort_by_key(|(k, _)| std::cmp::Reverse(wave(k)));
    // Wave by wave, each finished before the next starts: custom objects are gone before their
    // CRDs are deleted, everything else before its namespace.
    for current in (0..=3u8).rev() {
        let in_wave: Vec<&(ObjectKey, String)> =
            ordered.iter().filter(|(k, _)| wave(k) == current).collect();
        for (key, version) in &in_wave {
            if let Err(e) = ctx.cluster.delete(key, version).await {
                tracing::warn!(object = %key, error = %e, "delete failed; will retry");
            }
        }
        let mut remaining = Vec::new();
        for (key, version) in &in_wave {
            // The KfDef's own namespace cannot go before the KfDef does: it is deleted, and
            // finishes once the finalizer is removed.
            if key.group.is_empty() && key.kind == "Namespace" && key.name == owner.namespace {
                continue;
            }
            match ctx.cluster.metadata(key, version).await {
                Ok(None) => {}
                Ok(Some(_)) => remaining.push(key.to_string()),
                Err(e) => remaining.push(format!("{key} ({e})")),
            }
        }
        if let Some(example) = remaining.first() {
            return Err(ReconcileError::Deleting {
                kfdef: kfdef.name_any(),
                count: remaining.len(),
                example: example.clone(),
            });
        }
    }
    if let Ok(mut renders) = ctx.renders.lock() {
        renders.remove(&owner.uid);
    }
    if let Ok(mut statuses) = ctx.statuses.lock() {
        statuses.remove(&owner.uid);
    }
    publish(
        &ctx,
        &kfdef,
        EventType::Normal,
        "Deleted",
        format!("deleted {} objects", ordered.len()),
    )
    .await;
    Ok(Action::await_change())
}
