//! The KfDef planner: given the rendered applications, the kinds the API server serves, the
//! previous inventory and what is live, decide what to write (by wave), what to prune, what to
//! let go of, what conflicts, the new inventory and each application's outcome. Pure: no I/O;
//! every rule is unit-tested in `plan/tests.rs`. `reconcile` gathers the inputs and executes.

use super::inventory::{self, LiveView, ObjectId, Observed, Ownership, WAVES};
use super::objects::{self, DesiredObject, Owner};
use super::status::ApplicationOutcome;
use crate::applications::RenderedApplication;
use crate::kfdef::InventoryEntry;
use crate::render::resource::Gvk;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// A kind by group, version and kind, as a rendered object names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeRef {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl TypeRef {
    /// The kind an object names (empty parts when it names none).
    pub fn of(object: &Value) -> Self {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let Gvk { group, version, .. } = Gvk::from_api_version(api_version, kind);
        Self {
            group,
            version,
            kind: kind.to_string(),
        }
    }
}

/// What discovery says of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Served, namespaced or not.
    Yes { namespaced: bool },
    /// Not served (its CRD may still be on its way).
    No,
    /// Discovery failed (why).
    Failed(String),
}

/// What discovery says of each kind the render uses (a kind missing here counts as not served).
pub type Kinds = BTreeMap<TypeRef, Served>;

/// Every kind the render uses.
pub fn types(apps: &[RenderedApplication]) -> BTreeSet<TypeRef> {
    apps.iter()
        .filter_map(|a| a.result.as_ref().ok())
        .flatten()
        .map(TypeRef::of)
        .collect()
}

/// A rendered object whose kind is served, with its identity.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Index of its application.
    pub app: usize,
    /// Its place among its application's objects.
    pub index: usize,
    pub id: ObjectId,
    /// The API version to apply with.
    pub version: String,
    pub namespaced: bool,
    pub object: &'a Value,
}

/// The hashes of the desired objects one render gives, each computed once: a plan that finds an
/// object as rendered compares hashes and builds nothing (building means copying, serializing
/// and hashing the object; CRDs are planned on every heal). Valid for one render of one KfDef
/// only: keep it with the render.
#[derive(Debug, Default)]
pub struct DesiredHashes(Mutex<HashMap<DesiredKey, String>>);

/// Application, place in it, namespaced, adopted: what decides a desired object's hash.
type DesiredKey = (usize, usize, bool, bool);

impl DesiredHashes {
    fn get(&self, key: DesiredKey) -> Option<String> {
        self.0.lock().ok()?.get(&key).cloned()
    }

    fn insert(&self, key: DesiredKey, hash: &str) {
        if let Ok(mut hashes) = self.0.lock() {
            hashes.insert(key, hash.to_string());
        }
    }
}

/// The render, identified: the objects kfop can apply now, and per-application outcomes that
/// hold render errors and objects whose kind is not served.
#[derive(Debug, Clone)]
pub struct Identified<'a> {
    pub candidates: Vec<Candidate<'a>>,
    pub outcomes: Vec<ApplicationOutcome>,
}

/// Identifies every rendered object (namespaced kinds default to the KfDef's namespace).
pub fn identify<'a>(
    owner: &Owner,
    apps: &'a [RenderedApplication],
    kinds: &Kinds,
) -> Identified<'a> {
    let mut candidates = Vec::new();
    let mut outcomes = Vec::new();
    for (index, app) in apps.iter().enumerate() {
        let mut outcome = ApplicationOutcome {
            name: app.name.clone(),
            ..Default::default()
        };
        match &app.result {
            Err(e) => outcome.render_error = Some(e.to_string()),
            Ok(objects) => {
                outcome.objects = objects.len();
                for (position, object) in objects.iter().enumerate() {
                    let type_ref = TypeRef::of(object);
                    let api_version = Gvk {
                        group: type_ref.group.clone(),
                        version: type_ref.version.clone(),
                        kind: String::new(),
                    }
                    .api_version();
                    let namespaced = match kinds.get(&type_ref) {
                        Some(Served::Yes { namespaced }) => *namespaced,
                        Some(Served::Failed(why)) => {
                            outcome.pending.push(format!(
                                "{}.{api_version}: discovery failed: {why}",
                                type_ref.kind
                            ));
                            continue;
                        }
                        Some(Served::No) | None => {
                            outcome.pending.push(format!(
                                "{}.{api_version}: no matches for kind in version {api_version}",
                                type_ref.kind
                            ));
                            continue;
                        }
                    };
                    match identity(object, &type_ref, namespaced, &owner.namespace) {
                        Ok(id) => candidates.push(Candidate {
                            app: index,
                            index: position,
                            id,
                            version: type_ref.version,
                            namespaced,
                            object,
                        }),
                        Err(e) => outcome.failed.push(e),
                    }
                }
            }
        }
        outcomes.push(outcome);
    }
    Identified {
        candidates,
        outcomes,
    }
}

fn identity(
    object: &Value,
    type_ref: &TypeRef,
    namespaced: bool,
    default_namespace: &str,
) -> Result<ObjectId, String> {
    if type_ref.kind.is_empty() || type_ref.version.is_empty() {
        return Err("an object has no apiVersion or kind".into());
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("a {} has no metadata.name", type_ref.kind))?;
    let namespace = namespaced.then(|| {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default_namespace)
            .to_string()
    });
    Ok(ObjectId {
        group: type_ref.group.clone(),
        kind: type_ref.kind.clone(),
        namespace,
        name: name.to_string(),
    })
}

/// Why kfop writes an object that it applied before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heal {
    /// It is in the inventory but gone.
    Missing,
    /// Someone else changed it.
    Changed,
}

/// One object to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// Index of its application.
    pub app: usize,
    pub object: DesiredObject,
    /// Set when the write puts back what someone deleted or changed.
    pub heal: Option<Heal>,
}

/// What to do for one KfDef.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Objects to write, by wave (index = wave); each wave finishes before the next.
    pub writes: Vec<Vec<Write>>,
    /// Objects already as rendered.
    pub unchanged: usize,
    /// Objects no longer rendered, to delete (webhooks first, namespaces last).
    pub prune: Vec<InventoryEntry>,
    /// Adopted objects no longer rendered: kfop lets go of them (never deletes them).
    pub release: Vec<InventoryEntry>,
    /// Per application: render errors, conflicts, failures and pending objects.
    pub outcomes: Vec<ApplicationOutcome>,
    /// The inventory after this plan (what is pruned is left out; the executor puts back what it
    /// could not delete).
    pub inventory: Vec<InventoryEntry>,
    /// Workloads and CRDs whose readiness the status reports: (application, object, version).
    pub readiness: Vec<(usize, ObjectId, String)>,
}

impl Plan {
    /// Every write, wave by wave.
    pub fn all_writes(&self) -> impl Iterator<Item = &Write> {
        self.writes.iter().flatten()
    }
}

/// Kinds whose readiness the status reports.
fn has_readiness(id: &ObjectId) -> bool {
    matches!(
        (id.group.as_str(), id.kind.as_str()),
        ("apps", "Deployment" | "StatefulSet")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

/// The Namespaces and CRDs of the render that are being deleted: what lives in them cannot be
/// written until they are gone and re-created (the API server refuses it meanwhile).
#[derive(Debug, Default)]
struct DeletingPrerequisites {
    namespaces: BTreeSet<String>,
    /// (group, kind) served by each CRD being deleted, with the CRD's name.
    kinds: BTreeMap<(String, String), String>,
}

impl DeletingPrerequisites {
    fn of(candidates: &[Candidate<'_>], live: &LiveView) -> Self {
        let mut deleting = Self::default();
        for candidate in candidates {
            let id = &candidate.id;
            if !matches!(live.get(id), Some(Observed::Present(l)) if l.deleting) {
                continue;
            }
            if id.is_namespace() {
                deleting.namespaces.insert(id.name.clone());
            } else if id.is_crd() {
                let field = |pointer: &str| {
                    candidate
                        .object
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                deleting.kinds.insert(
                    (field("/spec/group"), field("/spec/names/kind")),
                    id.name.clone(),
                );
            }
        }
        deleting
    }

    /// Why `id` cannot be written yet, if it cannot.
    fn blocks(&self, id: &ObjectId) -> Option<String> {
        if let Some(crd) = self.kinds.get(&(id.group.clone(), id.kind.clone())) {
            return Some(format!(
                "its CustomResourceDefinition {crd} is being deleted; it is re-created first"
            ));
        }
        let namespace = id.namespace.as_ref()?;
        self.namespaces
            .contains(namespace)
            .then(|| format!("its Namespace {namespace} is being deleted; it is re-created first"))
    }
}

/// Plans one reconcile from the identified render, the previous inventory and the live view
/// (which must answer for every candidate and every previous entry). `hashes` are the render's.
pub fn plan(
    owner: &Owner,
    identified: &Identified<'_>,
    hashes: &DesiredHashes,
    previous: &[InventoryEntry],
    live: &LiveView,
) -> Plan {
    let candidates = &identified.candidates;
    let mut outcomes = identified.outcomes.clone();
    let previous_by_id: BTreeMap<&ObjectId, &InventoryEntry> =
        previous.iter().map(|e| (&e.id, e)).collect();
    let unknown = Observed::Unknown("not looked up".into());
    let mut plan = Plan {
        writes: vec![Vec::new(); WAVES as usize],
        ..Default::default()
    };
    let deleting = DeletingPrerequisites::of(candidates, live);
    let mut wanted: BTreeMap<ObjectId, InventoryEntry> = BTreeMap::new();
    let mut rendered_by: BTreeMap<ObjectId, String> = BTreeMap::new();
    for candidate in candidates {
        let app_name = outcomes[candidate.app].name.clone();
        let outcome = &mut outcomes[candidate.app];
        let id = candidate.id.clone();
        if let Some(first) = rendered_by.get(&id) {
            outcome.failed.push(format!(
                "{id} is rendered twice (also by application {first})"
            ));
            continue;
        }
        rendered_by.insert(id.clone(), app_name.clone());
        let previous_entry = previous_by_id.get(&id).copied();
        let observed = live.get(&id).unwrap_or(&unknown);
        let adopted = match inventory::ownership(&owner.uid, previous_entry, observed) {
            Ownership::Other(other) => {
                outcome
                    .conflicts
                    .push(format!("{id} belongs to another KfDef, {other}"));
                continue;
            }
            Ownership::Adopted => true,
            Ownership::Ours => false,
        };
        let key = (
            candidate.app,
            candidate.index,
            candidate.namespaced,
            adopted,
        );
        if let Observed::Present(l) = observed
            && !l.deleting
            && !l.changed_by_others
            && l.hash.is_some()
            && l.hash == hashes.get(key)
        {
            wanted.insert(
                id.clone(),
                InventoryEntry {
                    id: id.clone(),
                    version: candidate.version.clone(),
                    application: Some(app_name),
                    adopted: adopted.then_some(true),
                },
            );
            plan.unchanged += 1;
            if has_readiness(&id) {
                plan.readiness
                    .push((candidate.app, id, candidate.version.clone()));
            }
            continue;
        }
        let desired = match objects::desired(
            owner,
            &app_name,
            candidate.object.clone(),
            candidate.namespaced,
            adopted,
        ) {
            Ok(desired) => desired,
            Err(e) => {
                outcome.failed.push(e);
                continue;
            }
        };
        hashes.insert(key, &desired.hash);
        wanted.insert(id.clone(), desired.inventory_entry(adopted));
        let heal = match observed {
            Observed::Unknown(why) => {
                outcome.pending.push(format!("{id}: {why}"));
                continue;
            }
            Observed::Present(l) if l.deleting => {
                outcome.pending.push(format!(
                    "{id} is being deleted; it is re-created once it is gone"
                ));
                continue;
            }
            Observed::Present(l)
                if l.hash.as_deref() == Some(desired.hash.as_str()) && !l.changed_by_others =>
            {
                plan.unchanged += 1;
                if has_readiness(&id) {
                    plan.readiness.push((candidate.app, id, desired.version));
                }
                continue;
            }
            Observed::Present(l) if previous_entry.is_some() && l.changed_by_others => {
                Some(Heal::Changed)
            }
            Observed::Present(_) => None,
            Observed::Absent => previous_entry.map(|_| Heal::Missing),
        };
        if let Some(why) = deleting.blocks(&id) {
            outcome.pending.push(format!("{id} waits: {why}"));
            continue;
        }
        if has_readiness(&id) {
            plan.readiness
                .push((candidate.app, id.clone(), desired.version.clone()));
        }
        plan.writes[id.wave() as usize].push(Write {
            app: candidate.app,
            object: desired,
            heal,
        });
    }

    // Prune what an application that rendered completely no longer renders: never because of a
    // render error or an object whose kind is not served yet.
    let incomplete: BTreeSet<&str> = outcomes
        .iter()
        .filter(|o| o.render_error.is_some() || !o.pending.is_empty())
        .map(|o| o.name.as_str())
        .collect();
    let mut kept: Vec<InventoryEntry> = Vec::new();
    for entry in previous {
        if wanted.contains_key(&entry.id) {
            continue;
        }
        if incomplete.contains(entry.application.as_deref().unwrap_or("")) {
            kept.push(entry.clone());
            continue;
        }
        match live.get(&entry.id).unwrap_or(&unknown) {
            Observed::Absent => {}
            Observed::Unknown(_) => kept.push(entry.clone()),
            Observed::Present(l) if l.kfdef_uid.as_deref().is_some_and(|u| u != owner.uid) => {}
            Observed::Present(l) if entry.adopted == Some(true) || l.adopted => {
                plan.release.push(entry.clone())
            }
            Observed::Present(l) if l.prune_disabled => {}
            Observed::Present(_) => plan.prune.push(entry.clone()),
        }
    }
    plan.prune.sort_by_key(|e| std::cmp::Reverse(e.id.wave()));
    plan.inventory = wanted.into_values().chain(kept).collect();
    plan.inventory.sort_by(|a, b| a.id.cmp(&b.id));
    plan.inventory.dedup_by(|a, b| a.id == b.id);
    plan.outcomes = outcomes;
    plan
}

#[cfg(test)]
mod tests;
