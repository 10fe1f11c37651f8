//! Scenario tests of the planner: a small simulated cluster executes each plan's writes and
//! prunes the way the API server would, and the tests change the render and the cluster between
//! passes.

use super::*;
use crate::applications::ApplicationError;
use crate::operator::inventory::Live;
use crate::operator::objects::ADOPTED_ANNOTATION;
use serde_json::json;

const UID: &str = "kfdef-uid";

fn owner() -> Owner {
    Owner {
        name: "kf".into(),
        namespace: "kubeflow".into(),
        uid: UID.into(),
    }
}

fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.example.com"},
           "spec": {"group": "example.com", "names": {"kind": "Gadget", "plural": "gadgets"}}})
}

fn gadget(name: &str) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": name}})
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "apps"}})
}

fn webhook() -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "hook"}})
}

fn app(name: &str, objects: Vec<Value>) -> RenderedApplication {
    RenderedApplication {
        name: name.into(),
        result: Ok(objects),
        skipped: Vec::new(),
    }
}

fn broken(name: &str) -> RenderedApplication {
    RenderedApplication {
        name: name.into(),
        result: Err(ApplicationError::NoRepoRef { app: name.into() }),
        skipped: Vec::new(),
    }
}

fn cm_id(name: &str) -> ObjectId {
    ObjectId {
        group: String::new(),
        kind: "ConfigMap".into(),
        namespace: Some("kubeflow".into()),
        name: name.into(),
    }
}

/// A simulated cluster: the kinds it serves and the live objects, with the KfDef's last
/// inventory.
struct Sim {
    kinds: Kinds,
    live: BTreeMap<ObjectId, Live>,
    inventory: Vec<InventoryEntry>,
}

impl Sim {
    fn new() -> Self {
        let served = |group: &str, version: &str, kind: &str, namespaced: bool| {
            (
                TypeRef {
                    group: group.into(),
                    version: version.into(),
                    kind: kind.into(),
                },
                Served::Yes { namespaced },
            )
        };
        Self {
            kinds: [
                served("", "v1", "ConfigMap", true),
                served("", "v1", "Namespace", false),
                served("apps", "v1", "Deployment", true),
                served(
                    "apiextensions.k8s.io",
                    "v1",
                    "CustomResourceDefinition",
                    false,
                ),
                served(
                    "admissionregistration.k8s.io",
                    "v1",
                    "ValidatingWebhookConfiguration",
                    false,
                ),
            ]
            .into(),
            live: BTreeMap::new(),
            inventory: Vec::new(),
        }
    }

    fn serve_gadgets(&mut self) {
        self.kinds.insert(
            TypeRef {
                group: "example.com".into(),
                version: "v1".into(),
                kind: "Gadget".into(),
            },
            Served::Yes { namespaced: true },
        );
    }

    /// Plans against the simulated cluster: every object the plan asks about is looked up.
    /// Planned twice, with no desired hashes known and with those the first plan computed: the
    /// plans must be the same.
    fn plan(&self, apps: &[RenderedApplication]) -> Plan {
        let identified = identify(&owner(), apps, &self.kinds);
        let view: LiveView = identified
            .candidates
            .iter()
            .map(|c| &c.id)
            .chain(self.inventory.iter().map(|e| &e.id))
            .map(|id| {
                let observed = match self.live.get(id) {
                    Some(live) => Observed::Present(live.clone()),
                    None => Observed::Absent,
                };
                (id.clone(), observed)
            })
            .collect();
        let hashes = DesiredHashes::default();
        let cold = plan(&owner(), &identified, &hashes, &self.inventory, &view);
        let warm = plan(&owner(), &identified, &hashes, &self.inventory, &view);
        assert_eq!(cold, warm, "a plan from known hashes differs");
        cold
    }

    /// Executes a plan as the API server would: writes set kfop's labels and hash, prunes
    /// delete, releases take kfop's label off.
    fn execute(&mut self, plan: &Plan) {
        for write in plan.all_writes() {
            let annotations = &write.object.object["metadata"]["annotations"];
            self.live.insert(
                write.object.id.clone(),
                Live {
                    kfdef_uid: Some(UID.into()),
                    kfdef: Some("kubeflow/kf".into()),
                    hash: Some(write.object.hash.clone()),
                    adopted: annotations.get(ADOPTED_ANNOTATION).is_some(),
                    ..Default::default()
                },
            );
        }
        for entry in &plan.prune {
            self.live.remove(&entry.id);
        }
        for entry in &plan.release {
            if let Some(live) = self.live.get_mut(&entry.id) {
                *live = Live::default();
            }
        }
        self.inventory = plan.inventory.clone();
    }

    /// Plans and executes.
    fn reconcile(&mut self, apps: &[RenderedApplication]) -> Plan {
        let plan = self.plan(apps);
        self.execute(&plan);
        plan
    }

    /// Someone else creates an object (no kfop label).
    fn create_foreign(&mut self, id: ObjectId) {
        self.live.insert(id, Live::default());
    }
}

fn names(writes: &[Write]) -> Vec<String> {
    writes.iter().map(|w| w.object.id.name.clone()).collect()
}

fn entry_names(entries: &[InventoryEntry]) -> Vec<String> {
    entries.iter().map(|e| e.id.name.clone()).collect()
}

fn problems(plan: &Plan) -> Vec<String> {
    plan.outcomes
        .iter()
        .flat_map(|o| {
            o.render_error
                .iter()
                .chain(&o.failed)
                .chain(&o.pending)
                .chain(&o.conflicts)
                .cloned()
        })
        .collect()
}

#[test]
fn a_new_install_writes_everything_wave_by_wave() {
    let mut sim = Sim::new();
    sim.serve_gadgets();
    let apps = [app(
        "all",
        vec![
            webhook(),
            gadget("g"),
            config_map("settings", "1"),
            crd(),
            namespace("apps"),
            deployment("web"),
        ],
    )];
    let plan = sim.plan(&apps);
    assert_eq!(problems(&plan), Vec::<String>::new());
    assert_eq!(names(&plan.writes[0]), ["apps"]);
    assert_eq!(names(&plan.writes[1]), ["gadgets.example.com"]);
    assert_eq!(names(&plan.writes[2]), ["g", "settings", "web"]);
    assert_eq!(names(&plan.writes[3]), ["hook"]);
    assert!(plan.all_writes().all(|w| w.heal.is_none()));
    assert_eq!(plan.inventory.len(), 6);
    assert!(plan.inventory.iter().all(|e| e.adopted.is_none()));
    assert!(plan.prune.is_empty() && plan.release.is_empty());
    // The Deployment and the CRD decide readiness; the namespaced ones default to the KfDef's.
    let ready: Vec<&str> = plan
        .readiness
        .iter()
        .map(|(_, id, _)| id.kind.as_str())
        .collect();
    assert_eq!(ready, ["CustomResourceDefinition", "Deployment"]);
    let settings = &plan.writes[2][1].object;
    assert_eq!(settings.id.namespace.as_deref(), Some("kubeflow"));
    assert_eq!(
        settings.object["metadata"]["ownerReferences"][0]["uid"],
        UID
    );
}

#[test]
fn an_unchanged_install_writes_nothing() {
    let mut sim = Sim::new();
    let apps = [app(
        "a",
        vec![config_map("one", "1"), config_map("two", "2")],
    )];
    sim.reconcile(&apps);
    let again = sim.plan(&apps);
    assert_eq!(again.all_writes().count(), 0);
    assert_eq!(again.unchanged, 2);
    assert_eq!(again.inventory, sim.inventory);
    assert!(again.prune.is_empty());
}

#[test]
fn a_changed_render_writes_only_what_changed() {
    let mut sim = Sim::new();
    sim.reconcile(&[app(
        "a",
        vec![config_map("one", "1"), config_map("two", "2")],
    )]);
    let plan = sim.plan(&[app(
        "a",
        vec![config_map("one", "1"), config_map("two", "changed")],
    )]);
    assert_eq!(names(&plan.writes[2]), ["two"]);
    assert_eq!(plan.writes[2][0].heal, None);
    assert_eq!(plan.unchanged, 1);
}

#[test]
fn deleted_and_edited_objects_are_healed() {
    let mut sim = Sim::new();
    let apps = [app(
        "a",
        vec![config_map("one", "1"), config_map("two", "2")],
    )];
    sim.reconcile(&apps);
    sim.live.remove(&cm_id("one"));
    if let Some(two) = sim.live.get_mut(&cm_id("two")) {
        two.changed_by_others = true;
    }
    let plan = sim.plan(&apps);
    let heals: Vec<(String, Option<Heal>)> = plan
        .all_writes()
        .map(|w| (w.object.id.name.clone(), w.heal))
        .collect();
    assert_eq!(
        heals,
        [
            ("one".to_string(), Some(Heal::Missing)),
            ("two".to_string(), Some(Heal::Changed))
        ]
    );
}

#[test]
fn an_object_being_deleted_waits_until_it_is_gone() {
    let mut sim = Sim::new();
    let apps = [app("a", vec![config_map("one", "1")])];
    sim.reconcile(&apps);
    if let Some(one) = sim.live.get_mut(&cm_id("one")) {
        one.deleting = true;
    }
    let plan = sim.plan(&apps);
    assert_eq!(plan.all_writes().count(), 0);
    assert!(
        problems(&plan)[0].contains("being deleted"),
        "{:?}",
        problems(&plan)
    );
    // Still in the inventory: once gone, it is put back.
    assert_eq!(entry_names(&plan.inventory), ["one"]);
    sim.live.remove(&cm_id("one"));
    assert_eq!(sim.plan(&apps).writes[2][0].heal, Some(Heal::Missing));
}

#[test]
fn a_removed_application_is_pruned_namespaces_last() {
    let mut sim = Sim::new();
    sim.reconcile(&[
        app("keep", vec![config_map("kept", "1")]),
        app(
            "gone",
            vec![namespace("apps"), deployment("web"), webhook()],
        ),
    ]);
    let plan = sim.plan(&[app("keep", vec![config_map("kept", "1")])]);
    assert_eq!(entry_names(&plan.prune), ["hook", "web", "apps"]);
    assert_eq!(entry_names(&plan.inventory), ["kept"]);
    assert_eq!(plan.all_writes().count(), 0);
}

#[test]
fn an_object_that_opts_out_of_pruning_is_left_alone() {
    let mut sim = Sim::new();
    sim.reconcile(&[app(
        "a",
        vec![config_map("one", "1"), config_map("two", "2")],
    )]);
    if let Some(two) = sim.live.get_mut(&cm_id("two")) {
        two.prune_disabled = true;
    }
    let plan = sim.plan(&[app("a", vec![config_map("one", "1")])]);
    assert!(plan.prune.is_empty());
    assert!(plan.release.is_empty());
    assert_eq!(entry_names(&plan.inventory), ["one"]);
}

#[test]
fn objects_already_gone_or_taken_over_are_not_pruned() {
    let mut sim = Sim::new();
    sim.reconcile(&[app(
        "a",
        vec![config_map("one", "1"), config_map("two", "2")],
    )]);
    sim.live.remove(&cm_id("one"));
    if let Some(two) = sim.live.get_mut(&cm_id("two")) {
        two.kfdef_uid = Some("another".into());
    }
    let plan = sim.plan(&[app("a", vec![])]);
    assert!(plan.prune.is_empty());
    assert!(plan.inventory.is_empty());
}

#[test]
fn an_object_found_in_place_is_adopted_and_never_deleted() {
    let mut sim = Sim::new();
    // Created by someone else before the KfDef (or after the watch synced: the watch selects on
    // kfop's label and cannot see it, so the executor looks up objects it has not applied).
    assert!(!inventory::watch_absence_is_final(None));
    sim.create_foreign(cm_id("existing"));
    let apps = [app(
        "a",
        vec![config_map("existing", "1"), config_map("new", "1")],
    )];
    let plan = sim.reconcile(&apps);
    let existing = &plan.writes[2][0].object;
    assert_eq!(existing.id.name, "existing");
    assert_eq!(
        existing.object["metadata"]["annotations"][ADOPTED_ANNOTATION],
        "true"
    );
    assert!(existing.object["metadata"].get("ownerReferences").is_none());
    let adopted: Vec<(String, Option<bool>)> = plan
        .inventory
        .iter()
        .map(|e| (e.id.name.clone(), e.adopted))
        .collect();
    assert_eq!(
        adopted,
        [
            ("existing".to_string(), Some(true)),
            ("new".to_string(), None)
        ]
    );
    // Still adopted on the next pass (it now carries kfop's label) and after a restart that
    // lost the inventory (the object's annotation says so).
    assert_eq!(sim.plan(&apps).all_writes().count(), 0);
    sim.inventory.clear();
    let after_restart = sim.plan(&apps);
    assert_eq!(after_restart.all_writes().count(), 0);
    assert_eq!(after_restart.inventory[0].adopted, Some(true));
    sim.execute(&after_restart);
    // No longer rendered: let go of, not deleted.
    let plan = sim.plan(&[app("a", vec![config_map("new", "1")])]);
    assert!(plan.prune.is_empty());
    assert_eq!(entry_names(&plan.release), ["existing"]);
    // Deleted by its owner and put back by kfop: still adopted.
    sim.live.remove(&cm_id("existing"));
    let healed = sim.plan(&apps);
    assert_eq!(healed.writes[2][0].heal, Some(Heal::Missing));
    assert!(
        healed.writes[2][0].object.object["metadata"]["annotations"]
            .get(ADOPTED_ANNOTATION)
            .is_some()
    );
}

#[test]
fn an_object_of_another_kfdef_is_a_conflict_naming_it() {
    let mut sim = Sim::new();
    sim.live.insert(
        cm_id("shared"),
        Live {
            kfdef_uid: Some("other-uid".into()),
            kfdef: Some("team/first".into()),
            ..Default::default()
        },
    );
    let plan = sim.plan(&[app(
        "a",
        vec![config_map("shared", "1"), config_map("mine", "1")],
    )]);
    assert_eq!(names(&plan.writes[2]), ["mine"]);
    assert_eq!(
        plan.outcomes[0].conflicts,
        ["ConfigMap kubeflow/shared belongs to another KfDef, team/first (uid other-uid)"]
    );
    assert_eq!(entry_names(&plan.inventory), ["mine"]);
}

#[test]
fn a_render_error_prunes_nothing() {
    let mut sim = Sim::new();
    sim.reconcile(&[
        app("a", vec![config_map("one", "1")]),
        app("b", vec![config_map("two", "2")]),
    ]);
    let plan = sim.plan(&[broken("a"), app("b", vec![config_map("two", "2")])]);
    assert!(plan.prune.is_empty());
    assert_eq!(entry_names(&plan.inventory), ["one", "two"]);
    assert!(plan.outcomes[0].render_error.is_some());
    assert_eq!(plan.all_writes().count(), 0);
}

#[test]
fn objects_of_kinds_not_served_yet_wait_and_prune_nothing_of_their_application() {
    let mut sim = Sim::new();
    sim.reconcile(&[app("a", vec![config_map("old", "1")])]);
    // The Gadget CRD is in the same render; its kind is served once it is established.
    let apps = [app("a", vec![crd(), gadget("g")])];
    let plan = sim.reconcile(&apps);
    assert_eq!(names(&plan.writes[1]), ["gadgets.example.com"]);
    assert!(
        problems(&plan)[0].contains("no matches for kind"),
        "{:?}",
        problems(&plan)
    );
    assert!(
        plan.prune.is_empty(),
        "old is kept until the render is applied completely"
    );
    sim.serve_gadgets();
    let plan = sim.reconcile(&apps);
    assert_eq!(names(&plan.writes[2]), ["g"]);
    assert_eq!(entry_names(&plan.prune), ["old"]);
}

#[test]
fn a_deleted_crd_and_its_custom_objects_come_back_crd_first() {
    let mut sim = Sim::new();
    sim.serve_gadgets();
    let apps = [app("a", vec![gadget("g1"), gadget("g2"), crd()])];
    sim.reconcile(&apps);
    // The API server deletes a CRD's custom objects with it.
    sim.live.clear();
    let plan = sim.plan(&apps);
    assert_eq!(names(&plan.writes[1]), ["gadgets.example.com"]);
    assert_eq!(names(&plan.writes[2]), ["g1", "g2"]);
    assert!(plan.all_writes().all(|w| w.heal == Some(Heal::Missing)));
}

#[test]
fn custom_objects_of_a_crd_being_deleted_wait_for_it_to_come_back() {
    let mut sim = Sim::new();
    sim.serve_gadgets();
    let apps = [app(
        "a",
        vec![crd(), gadget("g1"), gadget("g2"), config_map("c", "1")],
    )];
    sim.reconcile(&apps);
    // The API server deletes the custom objects first, then the CRD; meanwhile it refuses
    // to create any.
    let crd_id = sim
        .live
        .keys()
        .find(|id| id.is_crd())
        .cloned()
        .expect("crd");
    sim.live.retain(|id, _| id.kind != "Gadget");
    if let Some(crd) = sim.live.get_mut(&crd_id) {
        crd.deleting = true;
    }
    sim.live.remove(&cm_id("c"));
    let plan = sim.reconcile(&apps);
    assert_eq!(
        names(&plan.writes[2]),
        ["c"],
        "only what does not need the CRD"
    );
    let problems = problems(&plan);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems
            .iter()
            .filter(|p| p.contains("Gadget"))
            .all(|p| p.contains("CustomResourceDefinition gadgets.example.com is being deleted")),
        "{problems:?}"
    );
    assert!(plan.prune.is_empty());
    // Once it is gone, the CRD and then its custom objects are put back.
    sim.live.remove(&crd_id);
    let plan = sim.plan(&apps);
    assert_eq!(names(&plan.writes[1]), ["gadgets.example.com"]);
    assert_eq!(names(&plan.writes[2]), ["g1", "g2"]);
}

#[test]
fn objects_of_a_namespace_being_deleted_wait_for_it_to_come_back() {
    let mut sim = Sim::new();
    let apps = [app(
        "a",
        vec![namespace("apps"), deployment("web"), config_map("c", "1")],
    )];
    sim.reconcile(&apps);
    let ns_id = ObjectId {
        group: String::new(),
        kind: "Namespace".into(),
        namespace: None,
        name: "apps".into(),
    };
    sim.live.retain(|id, _| id.kind != "Deployment");
    if let Some(ns) = sim.live.get_mut(&ns_id) {
        ns.deleting = true;
    }
    let plan = sim.plan(&apps);
    assert_eq!(plan.all_writes().count(), 0);
    assert!(
        problems(&plan)
            .iter()
            .any(|p| p
                .contains("Deployment.apps apps/web waits: its Namespace apps is being deleted")),
        "{:?}",
        problems(&plan)
    );
    sim.live.remove(&ns_id);
    let plan = sim.plan(&apps);
    assert_eq!(names(&plan.writes[0]), ["apps"]);
    assert_eq!(names(&plan.writes[2]), ["web"]);
}

#[test]
fn an_object_rendered_twice_is_reported_once() {
    let sim = Sim::new();
    let plan = sim.plan(&[
        app("a", vec![config_map("same", "1")]),
        app("b", vec![config_map("same", "2")]),
    ]);
    assert_eq!(names(&plan.writes[2]), ["same"]);
    assert_eq!(
        plan.outcomes[1].failed,
        ["ConfigMap kubeflow/same is rendered twice (also by application a)"]
    );
}

#[test]
fn an_object_that_cannot_be_looked_up_is_neither_written_nor_pruned() {
    let mut sim = Sim::new();
    sim.reconcile(&[
        app("a", vec![config_map("one", "1")]),
        app("b", vec![config_map("two", "1")]),
    ]);
    let apps = [app("a", vec![config_map("one", "1")])];
    let identified = identify(&owner(), &apps, &sim.kinds);
    let view: LiveView = [(cm_id("one"), Observed::Unknown("connection refused".into()))].into();
    let plan = plan(
        &owner(),
        &identified,
        &DesiredHashes::default(),
        &sim.inventory,
        &view,
    );
    assert_eq!(plan.all_writes().count(), 0);
    assert!(plan.prune.is_empty());
    assert_eq!(entry_names(&plan.inventory), ["one", "two"]);
    assert_eq!(
        plan.outcomes[0].pending,
        ["ConfigMap kubeflow/one: connection refused"]
    );
}
