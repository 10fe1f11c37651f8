//! Self-healing input: one metadata-only watch per managed kind (selected by kfop's label), a
//! store of what exists, and triggers: an object deleted, or changed by someone else, queues its
//! KfDef for a reconcile, which puts it back from the last render. Triggers are de-duplicated
//! (at most one queued per KfDef), so a storm of deletions costs one reconcile per KfDef at a
//! time, and retries go through the controller's own backoff.

use super::cluster::{Cluster, Kind};
use super::inventory::{self, Live, ObjectId};
use super::objects::{KFDEF_UID_LABEL, Owner};
use crate::kfdef::KfDef;
use futures::{Stream, StreamExt};
use kube::Api;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// What the triggers know of one KfDef.
#[derive(Debug, Default)]
struct TriggerState {
    /// A trigger is queued and the controller has not taken it yet.
    queued: bool,
    /// Its reconcile is running: triggers are held until it ends.
    running: bool,
    /// Triggers fired so far (a reconcile compares it with what it had seen).
    fired: u64,
}

/// Queues KfDefs for a reconcile, at most once each until the controller takes them. While a
/// KfDef's reconcile runs, its triggers are held: the reconcile takes up deletions itself, and
/// when it ends, a trigger it had not seen before its last look at the cluster is queued then.
pub struct Triggers {
    states: Mutex<HashMap<ObjectRef<KfDef>, TriggerState>>,
    sender: mpsc::UnboundedSender<ObjectRef<KfDef>>,
}

impl Triggers {
    /// The triggers and the stream the controller reconciles on.
    pub fn new() -> (
        Arc<Self>,
        impl Stream<Item = ObjectRef<KfDef>> + Send + 'static,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let triggers = Arc::new(Self {
            states: Mutex::new(HashMap::new()),
            sender,
        });
        let taken = triggers.clone();
        let stream = futures::stream::unfold(receiver, move |mut receiver| {
            let taken = taken.clone();
            async move {
                let next = receiver.recv().await?;
                taken.update(&next, |state| {
                    state.queued = false;
                    false
                });
                Some((next, receiver))
            }
        });
        (triggers, stream)
    }

    /// Applies `change` to the state of `kfdef`, then queues it if the state asks for it
    /// (forgetting states with nothing in them).
    fn update(&self, kfdef: &ObjectRef<KfDef>, change: impl FnOnce(&mut TriggerState) -> bool) {
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        let state = states.entry(kfdef.clone()).or_default();
        if change(state) && !state.queued {
            state.queued = true;
            let _ = self.sender.send(kfdef.clone());
        }
        if !state.queued && !state.running {
            states.remove(kfdef);
        }
    }

    /// Queues `kfdef` unless it is queued already (or holds the trigger while it reconciles).
    pub fn fire(&self, kfdef: &ObjectRef<KfDef>) {
        self.update(kfdef, |state| {
            state.fired += 1;
            !state.running
        });
    }

    /// Marks `kfdef` as reconciling until the returned guard is dropped.
    pub fn reconciling(self: &Arc<Self>, kfdef: ObjectRef<KfDef>) -> Reconciling {
        let mut fired = 0;
        self.update(&kfdef, |state| {
            state.running = true;
            fired = state.fired;
            false
        });
        Reconciling {
            triggers: self.clone(),
            kfdef,
            seen: fired,
        }
    }
}

/// A KfDef's reconcile in progress: its triggers are held until this is dropped; then one is
/// queued if any fired after [`Reconciling::look`].
pub struct Reconciling {
    triggers: Arc<Triggers>,
    kfdef: ObjectRef<KfDef>,
    /// Triggers fired before its last look.
    seen: u64,
}

impl Reconciling {
    /// Records that the reconcile looks at the cluster now: triggers fired so far are taken up.
    pub fn look(&mut self) {
        let fired = self
            .triggers
            .states
            .lock()
            .ok()
            .and_then(|states| states.get(&self.kfdef).map(|s| s.fired));
        if let Some(fired) = fired {
            self.seen = fired;
        }
    }
}

impl Drop for Reconciling {
    fn drop(&mut self) {
        // Any trigger fired after the reconcile started was held.
        let seen = self.seen;
        self.triggers.update(&self.kfdef, |state| {
            state.running = false;
            state.fired != seen
        });
    }
}

struct WatchedKind {
    store: Arc<RwLock<HashMap<ObjectId, Live>>>,
    ready: watch::Receiver<bool>,
    version: String,
}

/// What the watches share with their tasks.
struct Shared {
    triggers: Arc<Triggers>,
    /// The KfDef of each UID kfop reconciles.
    owners: RwLock<HashMap<String, ObjectRef<KfDef>>>,
    /// When each managed object was seen deleted, until kfop puts it back (heal latency).
    missing_since: Mutex<HashMap<ObjectId, (String, Instant)>>,
    /// The resource version of kfop's last write of each object, until its event arrives.
    own_writes: Mutex<HashMap<ObjectId, String>>,
    /// Counts the deletions seen: a reconcile in progress takes up new ones at once.
    deletions: watch::Sender<u64>,
}

impl Shared {
    fn fire(&self, uid: &str) {
        let owner = self.owners.read().ok().and_then(|o| o.get(uid).cloned());
        match owner {
            Some(owner) => self.triggers.fire(&owner),
            None => tracing::debug!(uid, "an object of an unknown KfDef changed"),
        }
    }

    fn fire_all(&self) {
        let owners: Vec<ObjectRef<KfDef>> = self
            .owners
            .read()
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default();
        for owner in owners {
            self.triggers.fire(&owner);
        }
    }

    fn deleted(&self, uid: &str, id: ObjectId) {
        if let Ok(mut missing) = self.missing_since.lock() {
            missing
                .entry(id)
                .or_insert_with(|| (uid.to_string(), Instant::now()));
        }
        self.deletions
            .send_modify(|count| *count = count.wrapping_add(1));
        self.fire(uid);
    }
}

/// The watches on every managed kind.
pub struct Watches {
    cluster: Arc<Cluster>,
    kinds: Mutex<HashMap<(String, String), WatchedKind>>,
    shared: Arc<Shared>,
}

impl Watches {
    /// Watches that queue the owning KfDef on `triggers` when one of its objects goes or changes.
    pub fn new(cluster: Arc<Cluster>, triggers: Arc<Triggers>) -> Self {
        Self {
            cluster,
            kinds: Mutex::new(HashMap::new()),
            shared: Arc::new(Shared {
                triggers,
                owners: RwLock::new(HashMap::new()),
                missing_since: Mutex::new(HashMap::new()),
                own_writes: Mutex::new(HashMap::new()),
                deletions: watch::channel(0).0,
            }),
        }
    }

    /// Remembers which KfDef a UID names, so that its objects' events reach it.
    pub fn register(&self, owner: &Owner) {
        if let Ok(mut owners) = self.shared.owners.write() {
            owners
                .entry(owner.uid.clone())
                .or_insert_with(|| ObjectRef::new(&owner.name).within(&owner.namespace));
        }
    }

    /// Forgets a KfDef (it is gone).
    pub fn unregister(&self, uid: &str) {
        for (id, _, _) in self.objects_of(uid) {
            if let Ok(mut own) = self.shared.own_writes.lock() {
                own.remove(&id);
            }
        }
        if let Ok(mut owners) = self.shared.owners.write() {
            owners.remove(uid);
        }
        if let Ok(mut missing) = self.shared.missing_since.lock() {
            missing.retain(|_, (owner, _)| owner != uid);
        }
    }

    /// The objects of KfDef `uid` seen deleted and not put back yet.
    pub fn missing(&self, uid: &str) -> Vec<ObjectId> {
        self.shared
            .missing_since
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, (owner, _))| owner == uid)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Holds the triggers of the KfDef `owner` while it reconciles (see [`Triggers`]).
    pub fn reconciling(&self, owner: &Owner) -> Reconciling {
        self.shared
            .triggers
            .reconciling(ObjectRef::new(&owner.name).within(&owner.namespace))
    }

    /// Changes whenever a managed object is seen deleted.
    pub fn deletions(&self) -> watch::Receiver<u64> {
        self.shared.deletions.subscribe()
    }

    /// How long ago `id` was seen deleted, if it was (and forgets it: it is back).
    pub fn back(&self, id: &ObjectId) -> Option<std::time::Duration> {
        let mut missing = self.shared.missing_since.lock().ok()?;
        missing.remove(id).map(|(_, since)| since.elapsed())
    }

    /// Records that kfop wrote `id`, giving it `resource_version`: the watch event of that
    /// version is kfop's own and no change by others.
    pub fn wrote(&self, id: &ObjectId, resource_version: String) {
        if let Ok(mut own) = self.shared.own_writes.lock() {
            own.insert(id.clone(), resource_version);
        }
    }

    /// Forgets the deletions of a KfDef's objects that it no longer wants.
    pub fn settle(&self, uid: &str, wanted: &HashSet<&ObjectId>) {
        if let Ok(mut missing) = self.shared.missing_since.lock() {
            missing.retain(|id, (owner, _)| owner != uid || wanted.contains(id));
        }
    }

    /// Starts watching `kind` (group and kind as in object ids) if not yet watched.
    pub fn ensure(&self, group: &str, kind_name: &str, kind: &Kind) {
        let Ok(mut kinds) = self.kinds.lock() else {
            return;
        };
        let map_key = (group.to_string(), kind_name.to_string());
        if kinds.contains_key(&map_key) {
            return;
        }
        let store: Arc<RwLock<HashMap<ObjectId, Live>>> = Arc::default();
        let (ready_tx, ready) = watch::channel(false);
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.cluster.client().clone(), &kind.resource);
        let config = watcher::Config::default().labels(KFDEF_UID_LABEL);
        let task_store = store.clone();
        let shared = self.shared.clone();
        let (group, kind_name, namespaced) =
            (group.to_string(), kind_name.to_string(), kind.namespaced);
        tokio::spawn(async move {
            let id_of = |meta: &PartialObjectMeta<DynamicObject>| ObjectId {
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
            let mut initial: HashMap<ObjectId, Live> = HashMap::new();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::debug!(kind = %kind_name, error = %e, "watch error, retrying");
                        crate::metrics::global().watch_restarted(format!("{kind_name}.{group}"));
                        continue;
                    }
                };
                match event {
                    watcher::Event::Init => initial.clear(),
                    watcher::Event::InitApply(meta) => {
                        initial.insert(id_of(&meta), Live::from_meta(&meta));
                    }
                    watcher::Event::InitDone => {
                        // Objects that vanished while the watch was down are put back too.
                        let vanished: Vec<(ObjectId, String)> = match task_store.read() {
                            Ok(store) => store
                                .iter()
                                .filter(|(id, _)| !initial.contains_key(*id))
                                .filter_map(|(id, l)| Some((id.clone(), l.kfdef_uid.clone()?)))
                                .collect(),
                            Err(_) => Vec::new(),
                        };
                        if let Ok(mut store) = task_store.write() {
                            *store = std::mem::take(&mut initial);
                        }
                        for (id, uid) in vanished {
                            shared.deleted(&uid, id);
                        }
                        tracing::debug!(kind = %kind_name, "watch synced");
                        // Objects deleted before the first sync left no event: every KfDef
                        // looks again, now that the watch can answer.
                        if !*ready_tx.borrow() {
                            shared.fire_all();
                        }
                        let _ = ready_tx.send(true);
                    }
                    watcher::Event::Apply(meta) => {
                        let id = id_of(&meta);
                        let mut live = Live::from_meta(&meta);
                        // Timestamps have one-second resolution; a change to other managers'
                        // entries since the last event is the precise signal.
                        let previous = task_store.read().ok().and_then(|s| s.get(&id).cloned());
                        let ours = shared.own_writes.lock().is_ok_and(|mut own| {
                            own.get(&id) == meta.metadata.resource_version.as_ref()
                                && own.remove(&id).is_some()
                        });
                        if let Some(previous) = previous {
                            live.changed_by_others =
                                inventory::changed_by_others(&previous, &live, ours);
                        }
                        let changed = (live.changed_by_others && !live.deleting)
                            .then(|| live.kfdef_uid.clone())
                            .flatten();
                        if let Ok(mut store) = task_store.write() {
                            store.insert(id, live);
                        }
                        if let Some(uid) = changed {
                            shared.fire(&uid);
                        }
                    }
                    watcher::Event::Delete(meta) => {
                        let id = id_of(&meta);
                        let removed = task_store.write().ok().and_then(|mut s| s.remove(&id));
                        let uid = removed.and_then(|l| l.kfdef_uid).or_else(|| {
                            meta.metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(KFDEF_UID_LABEL).cloned())
                        });
                        tracing::debug!(object = %id, "deleted");
                        if let Some(uid) = uid {
                            shared.deleted(&uid, id);
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

    /// What the watch knows of `id`: `None` while the kind's watch is not synced yet.
    pub fn live(&self, id: &ObjectId) -> Option<Option<Live>> {
        let kinds = self.kinds.lock().ok()?;
        let watched = kinds.get(&(id.group.clone(), id.kind.clone()))?;
        if !*watched.ready.borrow() {
            return None;
        }
        let store = watched.store.read().ok()?;
        Some(store.get(id).cloned())
    }

    /// Every watched object labelled with a KfDef UID, with the API version watched.
    pub fn objects_of(&self, uid: &str) -> Vec<(ObjectId, String, Live)> {
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
                        .map(|(id, live)| (id.clone(), watched.version.clone(), live.clone())),
                );
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn kfdef(name: &str) -> ObjectRef<KfDef> {
        ObjectRef::new(name).within("ns")
    }

    /// What the stream holds now, without waiting.
    fn queued(stream: &mut (impl Stream<Item = ObjectRef<KfDef>> + Unpin)) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(Some(next)) = stream.next().now_or_never() {
            names.push(next.name);
        }
        names
    }

    #[test]
    fn a_kfdef_is_queued_once_until_taken() {
        let (triggers, stream) = Triggers::new();
        let mut stream = Box::pin(stream);
        triggers.fire(&kfdef("a"));
        triggers.fire(&kfdef("a"));
        triggers.fire(&kfdef("b"));
        assert_eq!(queued(&mut stream), ["a", "b"]);
        triggers.fire(&kfdef("a"));
        assert_eq!(queued(&mut stream), ["a"]);
    }

    #[test]
    fn triggers_are_held_while_reconciling_and_queued_after_if_not_seen() {
        let (triggers, stream) = Triggers::new();
        let mut stream = Box::pin(stream);
        let reconciling = triggers.reconciling(kfdef("a"));
        triggers.fire(&kfdef("a"));
        triggers.fire(&kfdef("b"));
        assert_eq!(queued(&mut stream), ["b"], "a is held");
        drop(reconciling);
        assert_eq!(
            queued(&mut stream),
            ["a"],
            "fired after the reconcile last looked"
        );
    }

    #[test]
    fn triggers_the_reconcile_took_up_are_dropped() {
        let (triggers, stream) = Triggers::new();
        let mut stream = Box::pin(stream);
        let mut reconciling = triggers.reconciling(kfdef("a"));
        triggers.fire(&kfdef("a"));
        reconciling.look();
        drop(reconciling);
        assert!(queued(&mut stream).is_empty());
        // Once it is over, triggers are queued again at once.
        triggers.fire(&kfdef("a"));
        assert_eq!(queued(&mut stream), ["a"]);
        assert!(
            triggers.states.lock().is_ok_and(|s| s.is_empty()),
            "nothing is kept of a KfDef neither queued nor reconciling"
        );
    }
}
