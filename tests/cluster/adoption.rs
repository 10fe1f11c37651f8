//! Adoption: an object that exists before kfop applies it — created before the KfDef, or after
//! kfop's watches synced — is adopted: kfop manages its fields, records it as adopted (in the
//! inventory and on the object), keeps it across an operator restart, and never deletes it: when
//! the KfDef goes, the object stays (same UID) and kfop's labels leave it.

use crate::operator_support::{self as op, App};
use crate::support::{self, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kfop::kfdef::KfDef;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn adopted(kfdef: &KfDef, name: &str) -> bool {
    kfdef.status.as_ref().is_some_and(|s| {
        s.inventory
            .iter()
            .any(|e| e.id.name == name && e.adopted == Some(true))
    })
}

async fn create_config_map(api: &Api<ConfigMap>, name: &str) -> String {
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"owner": "the user"}}))
            .expect("configmap");
    api.create(&PostParams::default(), &cm)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
        .uid()
        .expect("uid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_found_in_place_are_adopted_and_never_deleted() {
    let Some(ns) = support::namespace("adoption").await else {
        return;
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    // Before the KfDef exists.
    let early = create_config_map(&config_maps, "web-config").await;

    let operator = op::start(&ns.client, &ns.name).await;
    let repo = op::fixture_repo(&ns.name);
    let uri = format!("file://{}", repo.path().display());
    let base = [App::plain("web")];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &base),
    )
    .await;
    op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "web-config to be adopted",
        |k| adopted(k, "web-config"),
    )
    .await;
    let cm = config_maps.get("web-config").await.expect("web-config");
    assert_eq!(cm.uid().as_deref(), Some(early.as_str()));
    assert_eq!(
        cm.data
            .as_ref()
            .and_then(|d| d.get("greeting"))
            .map(String::as_str),
        Some("hello"),
        "kfop manages the fields of what it adopts"
    );
    assert_eq!(
        cm.annotations().get("kfop.dev/adopted").map(String::as_str),
        Some("true")
    );
    assert!(
        cm.owner_references().is_empty(),
        "an adopted object must not be owned by the KfDef (the garbage collector would delete it)"
    );

    // After the ConfigMap watch has synced (it selects on kfop's label and cannot see this one).
    let late = create_config_map(&config_maps, "web-extra").await;
    let extra = [App {
        name: "web",
        path: "web",
        overlays: &["extra"],
        parameters: &[],
    }];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &extra),
    )
    .await;
    op::wait_for(&ns.client, &ns.name, "kf", "web-extra to be adopted", |k| {
        adopted(k, "web-extra") && adopted(k, "web-config")
    })
    .await;

    // After a restart of the operator: still adopted, nothing re-created.
    drop(operator);
    let _operator = op::start(&ns.client, &ns.name).await;
    let kfdefs: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    let kfdef = kfdefs.get("kf").await.expect("kf");
    let generation = kfdef.metadata.generation;
    op::apply_kfdef(&ns.client, &ns.name, &{
        let mut document = op::kfdef("kf", &ns.name, &uri, &extra);
        document["spec"]["version"] = json!("after-restart");
        document
    })
    .await;
    op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "a reconcile after the restart",
        |k| {
            k.metadata.generation != generation
                && adopted(k, "web-extra")
                && adopted(k, "web-config")
        },
    )
    .await;

    // The KfDef goes: what it created goes, what it adopted stays, without kfop's labels.
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    assert!(deployments.get_opt("web").await.expect("get").is_some());
    kfdefs
        .delete("kf", &DeleteParams::default())
        .await
        .expect("delete kfdef");
    eventually(op::TIMEOUT, "the KfDef to be gone", || async {
        kfdefs.get_opt("kf").await.ok()?.is_none().then_some(())
    })
    .await;
    eventually(
        op::TIMEOUT,
        "the Deployment kfop created to be gone",
        || async {
            deployments
                .get_opt("web")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    for (name, uid) in [("web-config", &early), ("web-extra", &late)] {
        let cm = config_maps
            .get_opt(name)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("the adopted {name} was deleted"));
        assert_eq!(cm.uid().as_ref(), Some(uid), "{name} was re-created");
        assert!(
            !cm.labels().contains_key("kfop.dev/kfdef-uid"),
            "{name} still carries kfop's label: {:?}",
            cm.labels()
        );
    }
}
