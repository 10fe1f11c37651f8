//! Self-healing: one metadata-only watch per managed kind (selected by kfop's label), a store of
//! what exists, and a healer that puts back a deleted object, or sets back one someone else
//! changed, from the last rendered state — touching that object only.

use super::cluster::{Cluster, Kind};
use super::objects::{
    DesiredObject, FIELD_MANAGER, HASH_ANNOTATION, KFDEF_UID_LABEL, ObjectKey, Owner,
    PRUNE_ANNOTATION,
};
use futures::StreamExt;
use kube::Api;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// What kfop knows of a live managed object from its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The KfDef UID in its label.
    pub kfdef_uid: Option<String>,
    /// The hash kfop recorded when it last applied it.
    pub hash: Option<String>,
    /// Whether the object opts out of pruning.
    pub prune_disabled: bool,
    /// Whether another manager changed it after kfop last did.
    pub changed_by_others: bool,
    /// A digest of the other managers' entries in `managedFields` (status excluded): when it
    /// moves between two events, someone else changed the object.
    pub others_signature: u64,
    /// Whether it is being deleted.
    pub deleting: bool,
}

impl Live {
    /// Reads what kfop needs from an object's metadata.
    pub fn from_meta(meta: &PartialObjectMeta<DynamicObject>) -> Self {
        let m = &meta.metadata;
        let labels = m.labels.clone().unwrap_or_default();
        let annotations = m.annotations.clone().unwrap_or_default();
        let entries = m.managed_fields.clone().unwrap_or_default();
        let ours = entries
            .iter()
            .filter(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
            .filter_map(|e| e.time.as_ref().map(|t| t.0))
            .max();
        let others: Vec<_> = entries
            .iter()
            .filter(|e| e.manager.as_deref() != Some(FIELD_MANAGER))
            .filter(|e| e.subresource.as_deref().is_none_or(str::is_empty))
            .collect();
        let changed_by_others = others
            .iter()
            .any(|e| matches!((e.time.as_ref(), ours), (Some(t), Some(o)) if t.0 > o));
        let others_signature = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            for e in &others {
                e.manager.hash(&mut hasher);
                e.operation.hash(&mut hasher);
                e.time.as_ref().map(|t| t.0.to_string()).hash(&mut hasher);
                e.fields_v1
                    .as_ref()
                    .map(|f| f.0.to_string())
                    .hash(&mut hasher);
            }
            hasher.finish()
        };
        Self {
            kfdef_uid: labels.get(KFDEF_UID_LABEL).cloned(),
            hash: annotations.get(HASH_ANNOTATION).cloned(),
            prune_disabled: annotations
                .get(PRUNE_ANNOTATION)
                .is_some_and(|v| v == "disabled"),
            changed_by_others,
            others_signature,
            deleting: m.deletion_timestamp.is_some(),
        }
    }
}

/// One KfDef's wanted objects.
type Wanted = (Owner, HashMap<ObjectKey, DesiredObject>);

/// The objects each KfDef wants, by KfDef UID: what the healer puts back.
#[derive(Default)]
pub struct DesiredState {
    by_kfdef: RwLock<HashMap<String, Wanted>>,
}

impl DesiredState {
    /// Replaces what a KfDef wants.
    pub fn set(&self, owner: &Owner, objects: HashMap<ObjectKey, DesiredObject>) {
        if let Ok(mut map) = self.by_kfdef.write() {
            map.insert(owner.uid.clone(), (owner.clone(), objects));
        }
    }

    /// Stops healing one object (it is about to be pruned).
    pub fn remove_object(&self, uid: &str, key: &ObjectKey) {
        if let Ok(mut map) = self.by_kfdef.write()
            && let Some((_, objects)) = map.get_mut(uid)
        {
            objects.remove(key);
        }
    }

    /// Stops healing a KfDef's objects (it is being deleted).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut map) = self.by_kfdef.write() {
            map.remove(uid);
        }
    }

    fn get(&self, uid: &str, key: &ObjectKey) -> Option<(Owner, DesiredObject)> {
        let map = self.by_kfdef.read().ok()?;
        let (owner, objects) = map.get(uid)?;
        Some((owner.clone(), objects.get(key)?.clone()))
    }
}

/// Why the healer is asked to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealReason {
    Deleted,
    Changed,
}

/// A request to put one object back.
#[derive(Debug, Clone)]
pub struct HealRequest {
    pub kfdef_uid: String,
    pub key: ObjectKey,
    pub reason: HealReason,
    pub seen: Instant,
}

/// A completed heal, for events and metrics.
#[derive(Debug, Clone)]
pub struct Healed {
    pub owner: Owner,
    pub key: ObjectKey,
    pub reason: HealReason,
    pub result: Result<std::time::Duration, String>,
}

struct WatchedKind {
    store: Arc<RwLock<HashMap<ObjectKey, Live>>>,
    ready: watch::Receiver<bool>,
    version: String,
}

/// The watches on every managed kind.
pub struct Watches {
    cluster: Arc<Cluster>,
    kinds: Mutex<HashMap<(String, String), WatchedKind>>,
    heal: mpsc::UnboundedSender<HealRequest>,
}

impl Watches {
    /// Watches that send heal requests to `heal`.
    pub fn new(cluster: Arc<Cluster>, heal: mpsc::UnboundedSender<HealRequest>) -> Self {
        Self {
            cluster,
            kinds: Mutex::new(HashMap::new()),
            heal,
        }
    }

    /// Starts watching `kind` (group and kind as in object keys) if not yet watched.
    pub fn ensure(&self, group: &str, kind_name: &str, kind: &Kind) {
        let Ok(mut kinds) = self.kinds.lock() else {
            return;
        };
        let map_key = (group.to_string(), kind_name.to_string());
        if kinds.contains_key(&map_key) {
            return;
        }
        let store: Arc<RwLock<HashMap<ObjectKey, Live>>> = Arc::default();
        let (ready_tx, ready) = watch::channel(false);
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.cluster.client().clone(), &kind.resource);
        let config = watcher::Config::default().labels(KFDEF_UID_LABEL);
        let task_store = store.clone();
        let heal = self.heal.clone();
        let (group, kind_name, namespaced) =
            (group.to_string(), kind_name.to_string(), kind.namespaced);
        tokio::spawn(async move {
            let key_of = |meta: &PartialObjectMeta<DynamicObject>| ObjectKey {
                group: group.clone(),
                kind: kind_name.clone(),
                namespace: if namespaced {
                    meta.metadata.namespace.clone()
                } else {
                    None
                },
                name: meta.metadata.name.clone().unwrap_or_default(),
            };
            let mut events = watcher(api, config).default_backoff().boxed();
            let mut initial: HashMap<ObjectKey, Live> = HashMap::new();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::debug!(kind = %kind_name, error = %e, "watch error, retrying");
                        continue;
                    }
                };
                match event {
                    watcher::Event::Init => initial.clear(),
                    watcher::Event::InitApply(meta) => {
                        initial.insert(key_of(&meta), Live::from_meta(&meta));
                    }
                    watcher::Event::InitDone => {
                        // Objects that vanished while the watch was down are put back too.
                        let vanished: Vec<(ObjectKey, Live)> = match task_store.read() {
                            Ok(store) => store
                                .iter()
                                .filter(|(k, _)| !initial.contains_key(*k))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                            Err(_) => Vec::new(),
                        };
                        if let Ok(mut store) = task_store.write() {
                            *store = std::mem::take(&mut initial);
                        }
                        for (key, live) in vanished {
                            if let Some(uid) = live.kfdef_uid {
                                let _ = heal.send(HealRequest {
                                    kfdef_uid: uid,
                                    key,
                                    reason: HealReason::Deleted,
                                    seen: Instant::now(),
                                });
                            }
                        }
                        let _ = ready_tx.send(true);
                    }
                    watcher::Event::Apply(meta) => {
                        let key = key_of(&meta);
                        let mut live = Live::from_meta(&meta);
                        // Timestamps have one-second resolution; a change to other managers'
                        // entries since the last event is the precise signal.
                        let previous = task_store
                            .read()
                            .ok()
                            .and_then(|s| s.get(&key).map(|l| l.others_signature));
                        if let Some(previous) = previous {
                            live.changed_by_others = previous != live.others_signature;
                        }
                        if live.changed_by_others
                            && !live.deleting
                            && let Some(uid) = live.kfdef_uid.clone()
                        {
                            let _ = heal.send(HealRequest {
                                kfdef_uid: uid,
                                key: key.clone(),
                                reason: HealReason::Changed,
                                seen: Instant::now(),
                            });
                        }
                        if let Ok(mut store) = task_store.write() {
                            store.insert(key, live);
                        }
                    }
                    watcher::Event::Delete(meta) => {
                        let key = key_of(&meta);
                        let removed = task_store.write().ok().and_then(|mut s| s.remove(&key));
                        let uid = removed.and_then(|l| l.kfdef_uid).or_else(|| {
                            meta.metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(KFDEF_UID_LABEL).cloned())
                        });
                        if let Some(uid) = uid {
                            let _ = heal.send(HealRequest {
                                kfdef_uid: uid,
                                key,
                                reason: HealReason::Deleted,
                                seen: Instant::now(),
                            });
                        }
                    }
                }
            }
        });
        let version = kind.resource.version.clone();
        kinds.insert(
            map_key,
            WatchedKind {
                store,
                ready,
                version,
            },
        );
    }

    /// What the watch knows of `key`: `None` while the kind's watch is not synced yet.
    pub fn live(&self, key: &ObjectKey) -> Option<Option<Live>> {
        let kinds = self.kinds.lock().ok()?;
        let watched = kinds.get(&(key.group.clone(), key.kind.clone()))?;
        if !*watched.ready.borrow() {
            return None;
        }
        let store = watched.store.read().ok()?;
        Some(store.get(key).cloned())
    }

    /// Keys (with the API version watched) of every watched object labelled with a KfDef UID.
    pub fn objects_of(&self, uid: &str) -> Vec<(ObjectKey, String)> {
        let Ok(kinds) = self.kinds.lock() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for watched in kinds.values() {
            if let Ok(store) = watched.store.read() {
                found.extend(
                    store
                        .iter()
                        .filter(|(_, live)| live.kfdef_uid.as_deref() == Some(uid))
                        .map(|(k, _)| (k.clone(), watched.version.clone())),
                );
            }
        }
        found
    }

    /// Waits (up to `timeout`) until the watch of `group`/`kind` has listed its objects.
    pub async fn wait_ready(&self, group: &str, kind: &str, timeout: std::time::Duration) -> bool {
        let receiver = {
            let Ok(kinds) = self.kinds.lock() else {
                return false;
            };
            match kinds.get(&(group.to_string(), kind.to_string())) {
                Some(w) => w.ready.clone(),
                None => return false,
            }
        };
        let mut receiver = receiver;
        tokio::time::timeout(timeout, receiver.wait_for(|ready| *ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Runs the healer: puts back each requested object from `desired`, reporting to `done`.
pub async fn heal(
    cluster: Arc<Cluster>,
    desired: Arc<DesiredState>,
    mut requests: mpsc::UnboundedReceiver<HealRequest>,
    done: mpsc::UnboundedSender<Healed>,
) {
    while let Some(request) = requests.recv().await {
        let Some((owner, object)) = desired.get(&request.kfdef_uid, &request.key) else {
            continue;
        };
        let cluster = cluster.clone();
        let done = done.clone();
        // Each heal runs on its own so that one slow object never delays another.
        tokio::spawn(async move {
            let result = cluster
                .apply(&object)
                .await
                .map(|()| request.seen.elapsed())
                .map_err(|e| e.to_string());
            match &result {
                Ok(latency) => {
                    tracing::info!(object = %request.key, reason = ?request.reason, latency_ms = latency.as_millis() as u64, "healed")
                }
                Err(e) => tracing::warn!(object = %request.key, error = %e, "could not heal"),
            }
            let _ = done.send(Healed {
                owner,
                key: request.key,
                reason: request.reason,
                result,
            });
        });
    }
}
