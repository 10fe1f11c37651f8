//! The executor of one KfDef's reconcile: render (cached per generation), gather what the
//! planner needs (served kinds, the live view), execute its plan (writes wave by wave, bounded
//! and concurrent; prunes; releases), report status and events. On deletion, remove everything
//! the KfDef created. Every decision is `plan`'s or `inventory`'s.

use super::execute::{Executor, IN_FLIGHT, Written};
use super::inventory::{self, Live, LiveView, ObjectId, Observed};
use super::objects::{FIELD_MANAGER, Owner};
use super::plan::{self, DesiredHashes, Heal, Identified, Kinds, Plan, Served, TypeRef};
use super::status;
use super::{Context, Render};
use crate::applications::RenderedApplication;
use crate::kfdef::{InventoryEntry, KfDef, KfDefStatus};
use crate::metrics::ObjectCounts;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashSet};
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
    /// The KfDef's service account cannot be impersonated.
    #[error(transparent)]
    Impersonation(#[from] super::impersonation::ImpersonationError),
    /// Deletion is waiting for objects to go away.
    #[error("KfDef {kfdef}: waiting for {count} objects to be deleted, e.g. {example}")]
    Deleting {
        kfdef: String,
        count: usize,
        example: String,
    },
}

/// How soon a KfDef with unready workloads is looked at again.
const RECHECK: Duration = Duration::from_secs(3);
/// A reconcile plans again for deletions it sees for at most this long and this many times
/// (a storm's deletions arrive over many events); later ones wait for the next reconcile, which
/// they queue.
const TAKE_UP_DELETIONS: Duration = Duration::from_secs(10);
const MAX_PASSES: usize = 1000;

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
async fn rendered(kfdef: &KfDef, ctx: &Context) -> Render {
    let uid = kfdef.uid().unwrap_or_default();
    let generation = kfdef.metadata.generation.unwrap_or(0);
    if let Ok(renders) = ctx.renders.lock()
        && let Some(render) = renders.get(&uid)
        && render.generation == generation
        && render.apps.iter().all(|a| a.result.is_ok())
    {
        return render.clone();
    }
    let mut apps = crate::applications::render(kfdef, &ctx.repos).await;
    // Objects of API versions the cluster no longer serves are rewritten before anything else
    // sees them: inventory, self-heal, prune and cleanup all work on the upgraded identity.
    let upgraded = super::upgrades::upgrade(&ctx.cluster, &kfdef.name_any(), &mut apps).await;
    let render = Render {
        generation,
        apps: Arc::new(apps),
        hashes: Arc::default(),
    };
    match upgraded {
        Ok(()) => {
            if let Ok(mut renders) = ctx.renders.lock() {
                renders.insert(uid, render.clone());
            }
        }
        Err(e) => {
            tracing::warn!(kfdef = %kfdef.name_any(), error = %e, "discovery failed; objects of removed API versions wait for the next reconcile")
        }
    }
    render
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

/// What discovery says of every kind the render uses; starts a watch on each served one.
async fn kinds(ctx: &Context, types: &BTreeSet<TypeRef>) -> Kinds {
    let mut kinds = Kinds::new();
    for type_ref in types.iter().cloned() {
        let served = match ctx
            .cluster
            .kind(&type_ref.group, &type_ref.version, &type_ref.kind)
            .await
        {
            Ok(Some(kind)) => {
                ctx.watches.ensure(&type_ref.group, &type_ref.kind, &kind);
                Served::Yes {
                    namespaced: kind.namespaced,
                }
            }
            Ok(None) => Served::No,
            Err(e) => Served::Failed(e.to_string()),
        };
        kinds.insert(type_ref, served);
    }
    kinds
}

/// Adds to `live` what is known of each object not in it yet: from the watch when it is synced
/// and its answer is final, else read from the API server (bounded, concurrent).
async fn observe(
    ctx: &Context,
    live: &mut LiveView,
    wanted: Vec<(ObjectId, String, Option<&InventoryEntry>)>,
) {
    let mut lookups = Vec::new();
    for (id, version, previous) in wanted {
        if live.contains_key(&id) {
            continue;
        }
        match ctx.watches.live(&id) {
            Some(Some(found)) => {
                live.insert(id, Observed::Present(found));
            }
            Some(None) if inventory::watch_absence_is_final(previous) => {
                live.insert(id, Observed::Absent);
            }
            _ => lookups.push((id, version)),
        }
    }
    if !lookups.is_empty() {
        tracing::debug!(
            count = lookups.len(),
            "looking up objects the watches cannot answer for"
        );
    }
    let found: Vec<(ObjectId, Observed)> = futures::stream::iter(lookups)
        .map(|(id, version)| async move {
            let observed = match ctx.cluster.metadata(&id, &version).await {
                Ok(Some(meta)) => Observed::Present(Live::from_meta(&meta)),
                Ok(None) => Observed::Absent,
                Err(e) => Observed::Unknown(e.to_string()),
            };
            (id, observed)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    live.extend(found);
}

/// What one reconcile knows of its KfDef's deletions: what it wrote (taken as live by later
/// plans), what it had seen missing, and what it had put back.
#[derive(Default)]
struct Deletions {
    written_live: LiveView,
    known_missing: HashSet<ObjectId>,
    put_back: HashSet<ObjectId>,
}

impl Deletions {
    /// The objects of KfDef `uid` seen missing now. One this reconcile had put back was deleted
    /// again: it is no longer taken as written, so that it is planned again.
    fn missing(&mut self, ctx: &Context, uid: &str) -> Vec<ObjectId> {
        let missing = ctx.watches.missing(uid);
        for id in &missing {
            if self.put_back.remove(id) {
                self.written_live.remove(id);
                self.known_missing.remove(id);
            }
        }
        missing
    }

    /// When objects went missing that no plan of this reconcile has seen yet: everything missing
    /// and not written yet, to plan (what a deletion blocked, such as a custom object of a CRD
    /// being deleted, is planned again once the blocker is re-created).
    fn unplanned(&mut self, ctx: &Context, uid: &str) -> Option<HashSet<ObjectId>> {
        let missing = self.missing(ctx, uid);
        missing
            .iter()
            .any(|id| !self.known_missing.contains(id) && !self.written_live.contains_key(id))
            .then(|| {
                missing
                    .into_iter()
                    .filter(|id| !self.written_live.contains_key(id))
                    .collect()
            })
    }
}

/// What one reconcile plans from: the render and the previous inventory, identified once for
/// the kinds the cluster serves (again only when those change).
struct Planner<'a> {
    ctx: &'a Context,
    owner: &'a Owner,
    apps: &'a [RenderedApplication],
    hashes: &'a DesiredHashes,
    types: BTreeSet<TypeRef>,
    previous: &'a [InventoryEntry],
    identified: Option<(Kinds, Identified<'a>)>,
}

impl<'a> Planner<'a> {
    fn new(
        ctx: &'a Context,
        owner: &'a Owner,
        render: &'a Render,
        previous: &'a [InventoryEntry],
    ) -> Self {
        let apps = render.apps.as_slice();
        Self {
            ctx,
            owner,
            apps,
            hashes: &render.hashes,
            types: plan::types(apps),
            previous,
            identified: None,
        }
    }

    /// Plans the whole render, or `only` some objects (with the render's Namespaces and CRDs,
    /// which decide whether those can be written yet: such a plan is good for its writes alone).
    /// What this reconcile wrote already is taken as live (its watch events may still be on
    /// their way).
    async fn plan(&mut self, written_live: &LiveView, only: Option<&HashSet<ObjectId>>) -> Plan {
        // Discovery again only while some kind is not served: a served kind's answer is kept
        // (see `Cluster::kind`), so asking again would change nothing.
        let all_served = |kinds: &Kinds| kinds.values().all(|s| matches!(s, Served::Yes { .. }));
        let identified = match self.identified.take() {
            Some((known, identified)) if all_served(&known) => (known, identified),
            previous => {
                let kinds = kinds(self.ctx, &self.types).await;
                match previous {
                    Some((known, identified)) if known == kinds => (known, identified),
                    _ => {
                        let identified = plan::identify(self.owner, self.apps, &kinds);
                        (kinds, identified)
                    }
                }
            }
        };
        let identified = &self.identified.insert(identified).1;
        let in_scope = |id: &ObjectId| {
            only.is_none_or(|only| only.contains(id) || id.is_crd() || id.is_namespace())
        };
        let (partial, filtered);
        let (identified, previous): (&Identified, &[InventoryEntry]) = match only {
            None => (identified, self.previous),
            Some(_) => {
                partial = Identified {
                    candidates: identified
                        .candidates
                        .iter()
                        .filter(|c| in_scope(&c.id))
                        .cloned()
                        .collect(),
                    outcomes: identified.outcomes.clone(),
                };
                filtered = self
                    .previous
                    .iter()
                    .filter(|e| in_scope(&e.id))
                    .cloned()
                    .collect::<Vec<_>>();
                (&partial, &filtered)
            }
        };
        let previous_by_id: BTreeMap<&ObjectId, &InventoryEntry> =
            previous.iter().map(|e| (&e.id, e)).collect();
        let wanted = identified
            .candidates
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    c.version.clone(),
                    previous_by_id.get(&c.id).copied(),
                )
            })
            .chain(
                previous
                    .iter()
                    .map(|e| (e.id.clone(), e.version.clone(), Some(e))),
            )
            .collect::<Vec<_>>();
        let mut live: LiveView = wanted
            .iter()
            .filter_map(|(id, _, _)| Some((id.clone(), written_live.get(id)?.clone())))
            .collect();
        observe(self.ctx, &mut live, wanted).await;
        plan::plan(self.owner, identified, self.hashes, previous, &live)
    }
}

/// Whether a pending message says a kind is not served (it may be once a CRD is established).
fn waits_for_a_kind(plan: &Plan) -> bool {
    plan.outcomes
        .iter()
        .any(|o| o.pending.iter().any(|p| p.contains("no matches for kind")))
}

/// Brings the cluster to what the KfDef renders.
pub async fn apply(kfdef: Arc<KfDef>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let owner = owner_of(&kfdef)?;
    let writer = match ctx.impersonation.writer(&ctx.cluster, &kfdef) {
        Ok(writer) => writer,
        Err(e) => {
            publish(
                &ctx,
                &kfdef,
                EventType::Warning,
                "ImpersonationFailed",
                e.to_string(),
            )
            .await;
            return Err(e.into());
        }
    };
    ctx.watches.register(&owner);
    let label = format!("{}/{}", owner.namespace, owner.name);
    let generation = kfdef.metadata.generation.unwrap_or(0);
    let render = rendered(&kfdef, &ctx).await;
    let no_status = KfDefStatus::default();
    let stored = kfdef.status.as_ref().unwrap_or(&no_status);
    let written_last = ctx
        .statuses
        .lock()
        .ok()
        .and_then(|s| s.get(&owner.uid).cloned());
    let previous_status = written_last.as_ref().unwrap_or(stored);
    // Everything either copy lists is considered: the planner checks the live object anyway.
    let previous = inventory::merge(
        &stored.inventory,
        written_last
            .as_ref()
            .map(|s| s.inventory.as_slice())
            .unwrap_or_default(),
    );

    // Plan and execute. Objects that go missing meanwhile are planned on their own as their
    // deletions are seen, and their writes join those in flight (a storm of deletions is healed
    // in this reconcile, each object as soon as it is seen gone); once the writes are done, a
    // full plan again, for the status and for CRDs that made more kinds resolvable.
    let mut reconciling = ctx.watches.reconciling(&owner);
    let mut planner = Planner::new(&ctx, &owner, &render, &previous);
    let mut seen = Deletions::default();
    let mut written: Vec<Written> = Vec::new();
    let mut executor = Executor::new(&ctx, &writer);
    let mut deletions = ctx.watches.deletions();
    let mut passes = 0;
    let mut wrote_crds = false;
    // What to plan next: everything (`Some(None)`), some objects, or nothing. Objects already
    // seen missing come first, on their own.
    let mut next = Some(seen.unplanned(&ctx, &owner.uid));
    let mut partial_since_full = false;
    // The last plan of everything: its status stands once nothing is left in flight.
    let mut full: Option<Plan> = None;
    let mut deletions_open = true;
    let took_up = std::time::Instant::now();
    let plan = loop {
        if let Some(only) = next.take() {
            passes += 1;
            deletions.borrow_and_update();
            if only.is_none() {
                reconciling.look();
            }
            let missing = seen.missing(&ctx, &owner.uid);
            seen.known_missing.extend(missing);
            let mut pass = planner.plan(&seen.written_live, only.as_ref()).await;
            tracing::debug!(kfdef = %label, passes, partial = only.is_some(), writes = pass.all_writes().count(), "planned");
            let adopted: HashSet<&ObjectId> = pass
                .inventory
                .iter()
                .filter(|e| e.adopted == Some(true))
                .map(|e| &e.id)
                .collect();
            for write in pass.all_writes() {
                let id = &write.object.id;
                seen.written_live.insert(
                    id.clone(),
                    Observed::Present(Live {
                        kfdef_uid: Some(owner.uid.clone()),
                        hash: Some(write.object.hash.clone()),
                        adopted: adopted.contains(id),
                        ..Default::default()
                    }),
                );
            }
            let writes = match only {
                Some(_) => {
                    // A plan that writes nothing leaves the last full plan true.
                    partial_since_full |= pass.all_writes().next().is_some();
                    pass.writes
                }
                None => {
                    wrote_crds = false;
                    partial_since_full = false;
                    let writes = std::mem::take(&mut pass.writes);
                    full = Some(pass);
                    writes
                }
            };
            executor.add(writes);
        }
        let may_replan = passes < MAX_PASSES && took_up.elapsed() < TAKE_UP_DELETIONS;
        let finished = tokio::select! {
            finished = executor.next() => finished,
            changed = deletions.changed(), if may_replan && deletions_open => {
                deletions_open = changed.is_ok();
                if deletions_open && let Some(only) = seen.unplanned(&ctx, &owner.uid) {
                    next = Some(Some(only));
                }
                continue;
            }
        };
        match finished {
            Some(done) => {
                match &done.result {
                    // A later pass may try it again.
                    Err(_) => {
                        seen.written_live.remove(&done.id);
                    }
                    Ok(()) => {
                        wrote_crds |= done.id.is_crd();
                        seen.put_back.insert(done.id.clone());
                    }
                }
                written.push(done);
            }
            None => {
                let kinds_to_resolve = wrote_crds && full.as_ref().is_some_and(waits_for_a_kind);
                let unplanned = seen.unplanned(&ctx, &owner.uid).is_some();
                // The status needs a plan of everything: there is always one.
                let again = partial_since_full || kinds_to_resolve || unplanned;
                if let Some(plan) = full.take_if(|_| !(may_replan && again)) {
                    break plan;
                }
                next = Some(None);
            }
        }
    };
    let mut outcomes = plan.outcomes.clone();
    let mut inventory = plan.inventory.clone();

    // Writes: failures go to the status; heals to events.
    let metrics = crate::metrics::global();
    let mut healed = Vec::new();
    let mut heal_failures = Vec::new();
    let mut failures = Vec::new();
    let mut count = 0usize;
    let last_by_id: BTreeMap<&ObjectId, &Written> = written.iter().map(|w| (&w.id, w)).collect();
    for done in last_by_id.values() {
        let id = &done.id;
        match &done.result {
            Ok(()) => {
                count += 1;
                if let Some(heal) = done.heal {
                    let latency = done.gone_for;
                    let what = match heal {
                        Heal::Missing => "re-created",
                        Heal::Changed => "set back",
                    };
                    tracing::info!(kfdef = %label, object = %id, ?heal, latency_ms = latency.map(|l| l.as_millis() as u64), "healed");
                    metrics.healed(
                        match heal {
                            Heal::Missing => "missing",
                            Heal::Changed => "changed",
                        },
                        latency,
                    );
                    healed.push(match latency {
                        Some(latency) => format!("{what} {id} in {} ms", latency.as_millis()),
                        None => format!("{what} {id}"),
                    });
                }
            }
            Err(e) => {
                let message = format!("{id}: {e}");
                tracing::warn!(kfdef = %label, object = %id, error = %e, "apply failed");
                metrics.api_error("apply");
                if done.heal.is_some() {
                    heal_failures.push(message.clone());
                }
                let outcome = &mut outcomes[done.app];
                if e.is_transient() {
                    outcome.pending.push(message.clone());
                } else {
                    outcome.failed.push(message.clone());
                }
                failures.push(message);
            }
        }
    }

    // Prune and release.
    let mut pruned = Vec::new();
    for entry in &plan.prune {
        match writer.delete(&entry.id, &entry.version).await {
            Ok(_) => pruned.push(entry.id.to_string()),
            Err(e) => {
                tracing::warn!(kfdef = %label, object = %entry.id, error = %e, "prune failed; will retry");
                metrics.api_error("prune");
                inventory.push(entry.clone());
            }
        }
    }
    for entry in &plan.release {
        if let Err(e) = writer.release(&entry.id, &entry.version).await {
            tracing::warn!(kfdef = %label, object = %entry.id, error = %e, "could not let go of an adopted object; will retry");
            metrics.api_error("release");
            inventory.push(entry.clone());
        }
    }
    inventory.sort_by(|a, b| a.id.cmp(&b.id));
    ctx.watches.settle(
        &owner.uid,
        &inventory.iter().map(|e| &e.id).collect::<HashSet<_>>(),
    );

    // Readiness of workloads and CRDs.
    let readiness: Vec<(usize, String)> = futures::stream::iter(plan.readiness.clone())
        .map(|(app, id, version)| {
            let ctx = &ctx;
            async move {
                let problem = match ctx.cluster.get(&id, &version).await {
                    Ok(Some(object)) => {
                        let value = serde_json::to_value(&object).unwrap_or_default();
                        (status::readiness(&value) == Some(false)).then(|| id.to_string())
                    }
                    Ok(None) => Some(format!("{id} (not found)")),
                    Err(e) => {
                        crate::metrics::global().api_error("read");
                        Some(format!("{id}: {e}"))
                    }
                };
                problem.map(|p| (app, p))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    for (app, problem) in readiness {
        outcomes[app].not_ready.push(problem);
    }

    // Events.
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
    if !healed.is_empty() {
        publish(&ctx, &kfdef, EventType::Normal, "Healed", healed.join("; ")).await;
    }
    if !heal_failures.is_empty() {
        publish(
            &ctx,
            &kfdef,
            EventType::Warning,
            "HealFailed",
            format!(
                "could not put back {} objects (retrying): {}",
                heal_failures.len(),
                heal_failures.join("; ")
            ),
        )
        .await;
    }
    let fresh = count - healed.len();
    if fresh > 0 {
        publish(
            &ctx,
            &kfdef,
            EventType::Normal,
            "Applied",
            format!(
                "applied {fresh} changed objects of {}",
                plan.inventory.len()
            ),
        )
        .await;
    }
    let other_failures = failures.len() - heal_failures.len();
    if other_failures > 0 {
        publish(
            &ctx,
            &kfdef,
            EventType::Warning,
            "ApplyFailed",
            failures.join("; "),
        )
        .await;
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

    // Status.
    let mut status = status::build(
        Some(previous_status),
        generation,
        &outcomes,
        inventory,
        Time(Timestamp::now()),
    );
    status.upgrades = crate::upgrade::status(&render.apps);
    if let Some(note) =
        super::upgrades::skipped_note(previous_status.upgrades.as_ref(), status.upgrades.as_ref())
    {
        publish(&ctx, &kfdef, EventType::Warning, "Skipped", note).await;
    }
    if *stored != status && written_last.as_ref() != Some(&status) {
        write_status(&ctx, &kfdef, status.clone())
            .await
            .inspect_err(|_| metrics.api_error("status"))?;
    }
    if let Ok(mut statuses) = ctx.statuses.lock() {
        statuses.insert(owner.uid.clone(), status);
    }

    metrics.wrote(&label, count, pruned.len());
    let total =
        |of: fn(&status::ApplicationOutcome) -> usize| outcomes.iter().map(of).sum::<usize>();
    metrics.set_objects(
        &label,
        ObjectCounts {
            managed: plan.inventory.len(),
            pending: total(|o| o.pending.len()),
            conflicting: total(|o| o.conflicts.len()),
            failed: total(|o| o.failed.len()),
        },
    );
    let retry = outcomes
        .iter()
        .any(|o| !o.pending.is_empty() || !o.failed.is_empty());
    let not_ready = outcomes.iter().any(|o| !o.not_ready.is_empty());
    tracing::info!(
        kfdef = %label,
        objects = plan.inventory.len(),
        written = count,
        healed = healed.len(),
        failed = failures.len(),
        pruned = pruned.len(),
        converged = !retry && !not_ready,
        "reconciled"
    );
    let next = if retry {
        ctx.backoff.next(&owner.uid)
    } else {
        ctx.backoff.reset(&owner.uid);
        if not_ready { RECHECK } else { ctx.resync }
    };
    Ok(Action::requeue(next))
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
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| ReconcileError::Api {
        kfdef: kfdef.name_any(),
        source,
    })?;
    Ok(())
}

/// Deletes everything the KfDef created, webhooks first and namespaces last, lets go of what it
/// adopted, and reports whether it is all gone (the finalizer stays until then).
pub async fn cleanup(kfdef: Arc<KfDef>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let owner = owner_of(&kfdef)?;
    let writer = ctx.impersonation.writer(&ctx.cluster, &kfdef)?;
    let written_last = ctx
        .statuses
        .lock()
        .ok()
        .and_then(|s| s.get(&owner.uid).cloned())
        .map(|s| s.inventory)
        .unwrap_or_default();
    let inventory = inventory::merge(
        &kfdef.status.clone().unwrap_or_default().inventory,
        &written_last,
    );
    // Objects labelled for this KfDef but missing from the inventory (a crash before the status
    // was written) go too.
    let labelled = ctx.watches.objects_of(&owner.uid);
    let waves = inventory::deletion_order(&inventory, &labelled);
    let total: usize = waves.iter().map(Vec::len).sum();
    // Wave by wave, each finished before the next starts: custom objects are gone before their
    // CRDs are deleted, everything else before its namespace.
    for wave in &waves {
        let remaining: Vec<String> = futures::stream::iter(wave.clone())
            .map(|(id, version)| {
                let (ctx, owner, writer) = (&ctx, &owner, &writer);
                async move {
                    if let Err(e) = writer.delete(&id, &version).await {
                        tracing::warn!(object = %id, error = %e, "delete failed; will retry");
                    }
                    // The KfDef's own namespace cannot go before the KfDef does: it is
                    // deleted, and finishes once the finalizer is removed.
                    if id.is_namespace() && id.name == owner.namespace {
                        return None;
                    }
                    match ctx.cluster.metadata(&id, &version).await {
                        Ok(None) => None,
                        Ok(Some(_)) => Some(id.to_string()),
                        Err(e) => Some(format!("{id} ({e})")),
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        if let Some(example) = remaining.first() {
            return Err(ReconcileError::Deleting {
                kfdef: kfdef.name_any(),
                count: remaining.len(),
                example: example.clone(),
            });
        }
    }
    let mut adopted: BTreeMap<&ObjectId, &str> = inventory
        .iter()
        .filter(|e| e.adopted == Some(true))
        .map(|e| (&e.id, e.version.as_str()))
        .collect();
    adopted.extend(
        labelled
            .iter()
            .filter(|(_, _, live)| live.adopted)
            .map(|(id, version, _)| (id, version.as_str())),
    );
    for (id, version) in &adopted {
        if let Err(e) = writer.release(id, version).await {
            tracing::warn!(object = %id, error = %e, "could not let go of an adopted object");
        }
    }
    ctx.watches.unregister(&owner.uid);
    ctx.backoff.reset(&owner.uid);
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
        format!(
            "deleted {total} objects; left {} adopted objects in place",
            adopted.len()
        ),
    )
    .await;
    Ok(Action::await_change())
}
