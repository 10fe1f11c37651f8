//! Two KfDefs that render the same object: the first keeps it, the second reports a conflict
//! naming the object and its owner (by namespace/name), and nothing flaps.

use crate::operator_support::{self as op, App};
use crate::support::eventually;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kfop::kfdef::KfDef;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_kfdef_reports_a_conflict_and_takes_nothing_over() {
    let Some(op::Setup {
        ns,
        uri,
        // Held to the end: dropping it deletes the repo.
        repo: _repo,
        operator: _operator,
    }) = op::setup("conflict").await
    else {
        return;
    };
    let apps = [App::plain("rbac")];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("first", &ns.name, &uri, &apps),
    )
    .await;
    let roles: Api<ClusterRole> = Api::all(ns.client.clone());
    let role = format!("{}-reader", ns.name);
    let kfdefs: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    let first = op::wait_for(
        &ns.client,
        &ns.name,
        "first",
        "the first KfDef to be Available",
        |k| op::condition_true(k, "Available"),
    )
    .await;
    let owned = roles.get(&role).await.expect("role");

    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("second", &ns.name, &uri, &apps),
    )
    .await;
    let second = op::wait_for(
        &ns.client,
        &ns.name,
        "second",
        "the second KfDef to report a conflict",
        |k| op::condition_true(k, "Degraded"),
    )
    .await;
    let message = op::condition_message(&second, "Degraded");
    assert!(
        message.contains(&role)
            && message.contains("another KfDef")
            && message.contains(&format!("{}/first", ns.name)),
        "{message}"
    );
    let reason = second
        .status
        .as_ref()
        .and_then(|s| s.condition("Degraded"))
        .and_then(|c| c.reason.clone());
    assert_eq!(reason.as_deref(), Some("Conflict"));

    // Reconcile the second again: the object is not touched.
    kfdefs
        .patch(
            "second",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "again"}})),
        )
        .await
        .expect("touch second");
    let generation = kfdefs
        .get("second")
        .await
        .expect("second")
        .metadata
        .generation;
    op::wait_for(
        &ns.client,
        &ns.name,
        "second",
        "the second KfDef to reconcile again",
        |k| k.metadata.generation == generation,
    )
    .await;
    let now = roles.get(&role).await.expect("role");
    assert_eq!(
        now.resource_version(),
        owned.resource_version(),
        "the object flapped"
    );
    assert_eq!(
        now.labels().get("kfop.dev/kfdef-uid"),
        Some(&first.uid().expect("uid"))
    );
    eventually(op::TIMEOUT, "the first KfDef to stay Available", || async {
        op::condition_true(&kfdefs.get("first").await.ok()?, "Available").then_some(())
    })
    .await;
}
