//! Bad input: a bad repo, path or overlay degrades the KfDef with a precise message, and nothing
//! already applied is deleted because of a render error.

use crate::operator_support::{self as op, App};
use crate::support::eventually;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_errors_degrade_and_delete_nothing() {
    let Some(op::Setup {
        ns,
        uri,
        repo,
        operator: _operator,
    }) = op::setup("bad-input").await
    else {
        return;
    };
    let good = [App {
        name: "web",
        path: "web",
        overlays: &["extra"],
        parameters: &[],
    }];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &good),
    )
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    eventually(op::TIMEOUT, "the good render to be applied", || async {
        config_maps.get_opt("web-extra").await.ok()?
    })
    .await;

    // An overlay that does not exist: Degraded, and the applied objects stay.
    let bad_overlay = [App {
        name: "web",
        path: "web",
        overlays: &["missing"],
        parameters: &[],
    }];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &bad_overlay),
    )
    .await;
    let kfdef = op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "Degraded for the missing overlay",
        |k| op::condition_true(k, "Degraded"),
    )
    .await;
    let message = op::condition_message(&kfdef, "Degraded");
    assert!(
        message.contains("web") && message.contains("missing"),
        "{message}"
    );
    assert!(
        config_maps
            .get_opt("web-extra")
            .await
            .expect("get")
            .is_some(),
        "a render error deleted an object"
    );
    assert!(
        kfdef
            .status
            .expect("status")
            .inventory
            .iter()
            .any(|e| e.id.name == "web-extra"),
        "the inventory lost an object"
    );

    // A path that is not in the repo, and a repo that does not exist.
    let bad_path = [App {
        name: "ghost",
        path: "no/such/app",
        overlays: &[],
        parameters: &[],
    }];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("paths", &ns.name, &uri, &bad_path),
    )
    .await;
    let kfdef = op::wait_for(
        &ns.client,
        &ns.name,
        "paths",
        "Degraded for the bad path",
        |k| op::condition_true(k, "Degraded"),
    )
    .await;
    assert!(op::condition_message(&kfdef, "Degraded").contains("no/such/app"));
    let missing_repo = format!("file://{}/does-not-exist", repo.path().display());
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("repo", &ns.name, &missing_repo, &good),
    )
    .await;
    let kfdef = op::wait_for(
        &ns.client,
        &ns.name,
        "repo",
        "Degraded for the missing repo",
        |k| op::condition_true(k, "Degraded"),
    )
    .await;
    assert!(op::condition_message(&kfdef, "Degraded").contains("does-not-exist"));

    // Fixing the overlay converges again.
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &good),
    )
    .await;
    op::wait_for(&ns.client, &ns.name, "kf", "recovery", |k| {
        !op::condition_true(k, "Degraded")
    })
    .await;
}
