//! Change and removal: editing a KfDef converges; objects no longer rendered are pruned, unless
//! annotated `kfop.dev/prune: disabled`.

use crate::operator_support::{self as op, App};
use crate::support::eventually;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_applications_and_overlays_are_pruned() {
    let Some(op::Setup {
        ns,
        uri,
        // Held to the end: dropping it deletes the repo.
        repo: _repo,
        operator: _operator,
    }) = op::setup("prune").await
    else {
        return;
    };
    let full = [
        App {
            name: "web",
            path: "web",
            overlays: &["extra"],
            parameters: &[("color", "red")],
        },
        App::plain("rbac"),
    ];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &full),
    )
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let roles: Api<ClusterRole> = Api::all(ns.client.clone());
    let role = format!("{}-reader", ns.name);
    eventually(op::TIMEOUT, "everything to be applied", || async {
        config_maps.get_opt("web-extra").await.ok()??;
        roles.get_opt(&role).await.ok()?
    })
    .await;
    // The Service opts out of pruning.
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(ns.client.clone(), &ns.name);
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"kfop.dev/prune": "disabled"}}})),
        )
        .await
        .expect("annotate service");

    // Drop the overlay and the rbac application, change a parameter.
    let smaller = [App {
        name: "web",
        path: "web",
        overlays: &[],
        parameters: &[("color", "green")],
    }];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &smaller),
    )
    .await;
    eventually(
        op::TIMEOUT,
        "the overlay's ConfigMap and the ClusterRole to be pruned",
        || async {
            let extra_gone = config_maps.get_opt("web-extra").await.ok()?.is_none();
            let role_gone = roles.get_opt(&role).await.ok()?.is_none();
            (extra_gone && role_gone).then_some(())
        },
    )
    .await;
    eventually(op::TIMEOUT, "the parameter change to converge", || async {
        let cm = config_maps.get("web-config").await.ok()?;
        (cm.data?.get("color")? == "green").then_some(())
    })
    .await;

    // Now drop web altogether: the Service stays (opted out), the rest goes.
    let none: [App; 0] = [];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &none),
    )
    .await;
    eventually(op::TIMEOUT, "web's ConfigMap to be pruned", || async {
        config_maps
            .get_opt("web-config")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        services
            .get_opt("web")
            .await
            .expect("get service")
            .is_some(),
        "the opted-out Service was pruned"
    );
    let kfdef = op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "the empty KfDef to converge",
        |k| k.status.as_ref().is_some_and(|s| s.inventory.is_empty()),
    )
    .await;
    assert_eq!(
        kfdef.status.and_then(|s| s.applications_ready).as_deref(),
        Some("0/0")
    );
}
