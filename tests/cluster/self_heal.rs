//! Self-heal: a deleted managed object comes back, a changed one is set back — namespaced,
//! cluster-scoped and custom objects alike — and kfop's own writes trigger nothing more.

use crate::operator_support::{self as op, App};
use crate::support::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
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
    let apps = [
        App {
            name: "web",
            path: "web",
            overlays: &[],
            parameters: &[],
        },
        App {
            name: "rbac",
            path: "rbac",
            overlays: &[],
            parameters: &[],
        },
        App {
            name: "crd",
            path: "crd",
            overlays: &[],
            parameters: &[],
        },
    ];
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
    eventually(op::TIMEOUT, "the Deployment to be re-created", || async {
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
    eventually(op::TIMEOUT, "the ConfigMap to be set back", || async {
        let cm = config_maps.get("web-config").await.ok()?;
        (cm.data?.get("greeting")? == "hello").then_some(())
    })
    .await;

    let roles: Api<ClusterRole> = Api::all(ns.client.clone());
    let role = format!("{}-reader", ns.name);
    roles
        .delete(&role, &DeleteParams::default())
        .await
        .expect("delete cluster role");
    eventually(op::TIMEOUT, "the ClusterRole to be re-created", || async {
        roles.get_opt(&role).await.ok()?
    })
    .await;

    let gadget = ApiResource::from_gvk(&GroupVersionKind::gvk(
        &format!("{}.fixtures.kfop.dev", ns.name),
        "v1",
        "Gadget",
    ));
    let gadgets: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &gadget);
    gadgets
        .delete("first-gadget", &DeleteParams::default())
        .await
        .expect("delete gadget");
    eventually(
        op::TIMEOUT,
        "the custom object to be re-created",
        || async {
            let g = gadgets.get_opt("first-gadget").await.ok()??;
            g.metadata.deletion_timestamp.is_none().then_some(())
        },
    )
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
    eventually(op::TIMEOUT, "the label to be put back", || async {
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
