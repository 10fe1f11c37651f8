//! Self-heal: a deleted managed object comes back (a new object: its UID differs), a changed one
//! is set back — namespaced, cluster-scoped and custom objects alike, each within
//! [`op::HEAL`] — a deleted CRD comes back with its custom objects, and kfop's own writes trigger
//! nothing more.

use crate::operator_support::{self as op, App};
use crate::support::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kfop::kfdef::KfDef;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_changed_objects_are_put_back() {
    let Some(op::Setup {
        ns,
        uri,
        // Held to the end: dropping it deletes the repo.
        repo: _repo,
        operator: _operator,
    }) = op::setup("self-heal").await
    else {
        return;
    };
    let apps = [App::plain("web"), App::plain("rbac"), App::plain("crd")];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &apps),
    )
    .await;
    let kfdefs: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    eventually(op::TIMEOUT, "the KfDef to be applied", || async {
        let kfdef = kfdefs.get("kf").await.ok()?;
        (kfdef.status?.inventory.len() == 6).then_some(())
    })
    .await;

    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let before = deployments.get("web").await.expect("deployment").uid();
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete deployment");
    eventually(op::HEAL, "the Deployment to be re-created", || async {
        let now = deployments.get_opt("web").await.ok()??;
        (now.uid() != before).then_some(())
    })
    .await;

    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    config_maps
        .patch(
            "web-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"greeting": "tampered"}})),
        )
        .await
        .expect("edit configmap");
    eventually(op::HEAL, "the ConfigMap to be set back", || async {
        let cm = config_maps.get("web-config").await.ok()?;
        (cm.data?.get("greeting")? == "hello").then_some(())
    })
    .await;

    let roles: Api<ClusterRole> = Api::all(ns.client.clone());
    let role = format!("{}-reader", ns.name);
    let before = roles.get(&role).await.expect("cluster role").uid();
    roles
        .delete(&role, &DeleteParams::default())
        .await
        .expect("delete cluster role");
    eventually(op::HEAL, "the ClusterRole to be re-created", || async {
        let now = roles.get_opt(&role).await.ok()??;
        (now.uid() != before).then_some(())
    })
    .await;

    let gadget = ApiResource::from_gvk(&GroupVersionKind::gvk(
        &format!("{}.fixtures.kfop.dev", ns.name),
        "v1",
        "Gadget",
    ));
    let gadgets: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &gadget);
    let before = gadgets.get("first-gadget").await.expect("gadget").uid();
    gadgets
        .delete("first-gadget", &DeleteParams::default())
        .await
        .expect("delete gadget");
    eventually(op::HEAL, "the custom object to be re-created", || async {
        let g = gadgets.get_opt("first-gadget").await.ok()??;
        (g.metadata.deletion_timestamp.is_none() && g.uid() != before).then_some(())
    })
    .await;

    // The object someone removed kfop's label from is also put back (it left the watch).
    config_maps
        .patch(
            "web-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"kfop.dev/kfdef-uid": null}}})),
        )
        .await
        .expect("unlabel");
    eventually(op::HEAL, "the label to be put back", || async {
        let cm = config_maps.get("web-config").await.ok()?;
        cm.labels().get("kfop.dev/kfdef-uid").map(|_| ())
    })
    .await;

    // Settled: kfop's own writes cause no further writes (the resource version stays put while
    // the KfDef is reconciled again).
    let settled = config_maps
        .get("web-config")
        .await
        .expect("cm")
        .resource_version();
    let generation_before = kfdefs.get("kf").await.expect("kfdef").metadata.generation;
    kfdefs
        .patch(
            "kf",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "v2"}})),
        )
        .await
        .expect("touch kfdef");
    op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "the KfDef to observe its new generation",
        |k| k.metadata.generation != generation_before,
    )
    .await;
    assert_eq!(
        config_maps
            .get("web-config")
            .await
            .expect("cm")
            .resource_version(),
        settled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_crd_comes_back_with_its_custom_objects() {
    let Some(op::Setup {
        ns,
        repo: _repo,
        operator: _operator,
        ..
    }) = op::setup_with_app("crd-heal", "crd").await
    else {
        return;
    };
    op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "the KfDef to be Available",
        |k| op::condition_true(k, "Available"),
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    let crd_name = format!("gadgets.{}.fixtures.kfop.dev", ns.name);
    let gadget = ApiResource::from_gvk(&GroupVersionKind::gvk(
        &format!("{}.fixtures.kfop.dev", ns.name),
        "v1",
        "Gadget",
    ));
    let gadgets: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &gadget);
    let crd_before = crds.get(&crd_name).await.expect("crd").uid();
    let gadget_before = gadgets.get("first-gadget").await.expect("gadget").uid();

    // The API server deletes the custom objects with their CRD; kfop's applies of them are
    // refused while the CRD terminates, and retried (not left to the next resync).
    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .expect("delete CRD");
    eventually(
        op::TIMEOUT,
        "the CRD to be re-created and its custom object with it",
        || async {
            let crd = crds.get_opt(&crd_name).await.ok()??;
            if crd.uid() == crd_before || crd.metadata.deletion_timestamp.is_some() {
                return None;
            }
            let g = gadgets.get_opt("first-gadget").await.ok()??;
            (g.uid() != gadget_before).then_some(())
        },
    )
    .await;
    op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "the KfDef to be Available again",
        |k| op::condition_true(k, "Available"),
    )
    .await;
}
