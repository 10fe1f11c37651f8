//! The generated KfDef CRD on a real apiserver: its structural schema accepts every real KfDef of the
//! corpus unchanged, rejects invalid ones, and serves the status subresource.

use crate::support::{self, eventually};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kfop::kfdef::{
    ApplicationStatus, Condition, ConditionStatus, InventoryEntry, KfDef, KfDefStatus,
};
use kfop::operator::inventory::ObjectId;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{conditions, wait::await_condition};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Applies kfop's CRDs (server-side, so that concurrent tests agree) and waits until each is Established.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kfop::crds::all() {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("kfop-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        tokio::time::timeout(
            TIMEOUT,
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established in time"))
        .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }
}

/// The corpus's KfDef files, or `None` (after saying so) when the corpus is absent.
fn corpus_kfdefs() -> Option<Vec<PathBuf>> {
    let corpus = std::env::var_os("KFOP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/corpus"));
    let dir = corpus.join("kubeflow-manifests-v1.0/tree/kfdef");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "skipping the KfDef corpus cluster test: {} is absent (set KFOP_CORPUS)",
            dir.display()
        );
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("kfctl_") && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    Some(files)
}

fn kfdefs(ns: &support::TestNamespace) -> Api<DynamicObject> {
    Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &ApiResource::erase::<KfDef>(&()),
    )
}

/// Creates `object`, retrying briefly: Established can precede the first successful create by a moment.
async fn create(api: &Api<DynamicObject>, object: &Value) -> DynamicObject {
    let object: DynamicObject = serde_json::from_value(object.clone()).expect("object JSON");
    eventually(TIMEOUT, "the KfDef to be created", || async {
        match api.create(&PostParams::default(), &object).await {
            Ok(created) => Some(created),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(e) => panic!("creating {}: {e}", object.name_any()),
        }
    })
    .await
}

/// The JSON path of the first place where `a` and `b` differ, with both values there.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            let (l, r) = (
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
            );
            if x.contains_key(k) != y.contains_key(k) {
                return Some(format!("{path}.{k}: {l} vs {r} (missing on one side)"));
            }
            first_difference(l, r, &format!("{path}.{k}"))
        }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| first_difference(l, r, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

#[tokio::test]
async fn every_corpus_kfdef_is_accepted_unchanged() {
    let Some(ns) = support::namespace("kfdef-corpus").await else {
        return;
    };
    let Some(files) = corpus_kfdefs() else {
        return;
    };
    install_crds(&ns.client).await;
    let dynamic = kfdefs(&ns);
    let typed: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    for path in &files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file name");
        let name = stem.replace(['_', '.'], "-");
        let text = std::fs::read_to_string(path).expect("read");
        let mut original: Value = serde_saphyr::from_str(&text).expect("YAML");
        original["metadata"]["name"] = json!(name);
        original["metadata"]["namespace"] = json!(ns.name);

        let created = create(&dynamic, &original).await;
        if let Some(difference) = first_difference(&created.data["spec"], &original["spec"], "spec")
        {
            panic!("{stem}: the apiserver changed {difference}");
        }
        let read: KfDef = typed.get(&name).await.expect("get the KfDef");
        let parsed = kfop::kfdef::parse(&text, stem).expect("parse").kfdef;
        assert_eq!(read.spec, parsed.spec, "{stem}: read back differs");
        let typed_spec = serde_json::to_value(&read.spec).expect("spec");
        if let Some(difference) = first_difference(&typed_spec, &original["spec"], "spec") {
            panic!("{stem}: the typed read back differs at {difference}");
        }
    }
}

#[tokio::test]
async fn plugins_stay_open_and_other_fields_are_pruned() {
    let Some(ns) = support::namespace("kfdef-open").await else {
        return;
    };
    install_crds(&ns.client).await;
    let plugin = json!({"kind": "KfExamplePlugin", "apiVersion": "kfdef.apps.kubeflow.org/v1",
                        "metadata": {"name": "example", "labels": {"a": "b"}, "creationTimestamp": null},
                        "spec": {"nested": {"list": [1, "two", {"three": null}]}},
                        "extra": {"kept": true}});
    let created = create(
        &kfdefs(&ns),
        &json!({"apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef",
                "metadata": {"name": "open"},
                "spec": {"plugins": [plugin], "notAField": 1,
                         "repos": [{"name": "m", "uri": "/m", "typo": "x"}]}}),
    )
    .await;
    assert_eq!(created.data["spec"]["plugins"][0], plugin);
    assert_eq!(created.data["spec"].get("notAField"), None);
    assert_eq!(
        created.data["spec"]["repos"][0],
        json!({"name": "m", "uri": "/m"})
    );
}

#[tokio::test]
async fn invalid_kfdefs_are_rejected() {
    let Some(ns) = support::namespace("kfdef-invalid").await else {
        return;
    };
    install_crds(&ns.client).await;
    let api = kfdefs(&ns);
    let valid = |name: &str, spec: Value| {
        json!({"apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef",
               "metadata": {"name": name}, "spec": spec})
    };
    // A valid one first, so that the invalid ones below fail for their own reason.
    create(
        &api,
        &valid(
            "ok",
            json!({"repos": [{"name": "m", "uri": "/m", "sha256": "ab".repeat(32)}],
                   "applications": [{"name": "a", "kustomizeConfig": {"repoRef": {"name": "m", "path": "a"}}}]}),
        ),
    )
    .await;
    let cases = [
        ("no-uri", json!({"repos": [{"name": "m"}]}), "uri"),
        (
            "bad-sha",
            json!({"repos": [{"name": "m", "uri": "/m", "sha256": "XYZ"}]}),
            "sha256",
        ),
        (
            "dup-apps",
            json!({"applications": [{"name": "a"}, {"name": "a"}]}),
            "Duplicate",
        ),
        (
            "empty-name",
            json!({"applications": [{"name": ""}]}),
            "name",
        ),
        (
            "wrong-type",
            json!({"applications": [{"name": "a", "kustomizeConfig": {"overlays": "x"}}]}),
            "overlays",
        ),
    ];
    for (name, spec, field) in cases {
        let object: DynamicObject = serde_json::from_value(valid(name, spec)).expect("JSON");
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{name}: {status:?}");
                assert!(status.message.contains(field), "{name}: {}", status.message);
            }
            other => panic!("{name}: expected a 422, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn status_subresource_keeps_conditions_applications_and_inventory() {
    let Some(ns) = support::namespace("kfdef-status").await else {
        return;
    };
    install_crds(&ns.client).await;
    create(
        &kfdefs(&ns),
        &json!({"apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef",
                "metadata": {"name": "kf"}, "spec": {"version": "v1.0.2"}}),
    )
    .await;
    let api: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    let status = KfDefStatus {
        observed_generation: Some(1),
        conditions: vec![Condition {
            type_: "Available".into(),
            status: ConditionStatus::True,
            reason: Some("Applied".into()),
            message: Some("2 applications applied".into()),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("time"),
            )),
            observed_generation: Some(1),
            last_update_time: None,
        }],
        applications_ready: Some("1/1".into()),
        applications: vec![ApplicationStatus {
            name: "a".into(),
            ready: ConditionStatus::True,
            objects: Some(1),
            ..Default::default()
        }],
        inventory: vec![InventoryEntry {
            id: ObjectId {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some(ns.name.clone()),
                name: "c".into(),
            },
            version: "v1".into(),
            application: Some("a".into()),
            adopted: None,
        }],
        ..Default::default()
    };
    api.patch_status(
        "kf",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("patch status");
    let read = api.get("kf").await.expect("get");
    assert_eq!(read.status, Some(status));
    assert_eq!(read.spec.version.as_deref(), Some("v1.0.2"));
}
