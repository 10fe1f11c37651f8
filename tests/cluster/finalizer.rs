//! Deletion: a deleted KfDef takes everything it created with it — objects in its own namespace,
//! in other namespaces, cluster-scoped ones and CRDs — before its finalizer is removed.

use crate::operator_support::{self as op, App};
use crate::support::{self, eventually};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kfop::kfdef::KfDef;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_kfdef_removes_everything_it_created() {
    let Some(ns) = support::namespace("finalizer").await else {
        return;
    };
    let _operator = op::start(&ns.client, &ns.name).await;
    let other = format!("{}-apps", ns.name);
    let namespaces: Api<Namespace> = Api::all(ns.client.clone());
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": other}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create other namespace");
    let repo = op::fixture_repo(&ns.name);
    let uri = format!("file://{}", repo.path().display());
    let apps = [
        App {
            name: "web",
            path: "web",
            overlays: &[],
            parameters: &[("namespace", other.as_str())],
        },
        App::plain("rbac"),
        App::plain("crd"),
    ];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &apps),
    )
    .await;
    let kfdefs: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    let kfdef = eventually(op::TIMEOUT, "the KfDef to be applied", || async {
        let kfdef = kfdefs.get("kf").await.ok()?;
        (kfdef.status.as_ref()?.inventory.len() == 6).then_some(kfdef)
    })
    .await;
    assert!(
        kfdef.finalizers().iter().any(|f| f == "kfop.dev/cleanup"),
        "{:?}",
        kfdef.finalizers()
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &other);
    assert!(
        config_maps
            .get_opt("web-config")
            .await
            .expect("get")
            .is_some(),
        "objects go where the namespace parameter says"
    );

    kfdefs
        .delete("kf", &DeleteParams::default())
        .await
        .expect("delete kfdef");
    eventually(
        op::TIMEOUT,
        "the KfDef and its finalizer to be gone",
        || async { kfdefs.get_opt("kf").await.ok()?.is_none().then_some(()) },
    )
    .await;
    let roles: Api<ClusterRole> = Api::all(ns.client.clone());
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    assert!(
        config_maps
            .get_opt("web-config")
            .await
            .expect("get")
            .is_none(),
        "another namespace's object was left behind"
    );
    assert!(
        roles
            .get_opt(&format!("{}-reader", ns.name))
            .await
            .expect("get")
            .is_none(),
        "a cluster-scoped object was left behind"
    );
    assert!(
        crds.get_opt(&format!("gadgets.{}.fixtures.kfop.dev", ns.name))
            .await
            .expect("get")
            .is_none(),
        "a CRD was left behind"
    );
}
