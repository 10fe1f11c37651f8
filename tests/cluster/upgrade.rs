//! Objects of removed API versions: upgraded and applied at the served version (annotated with
//! where they came from, counted in the status), a kind with no equivalent skipped — named in
//! the status and a Warning event — without holding up the rest.

use crate::operator_support as op;
use crate::support::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kfop::kfdef::KfDef;
use kfop::upgrade::UPGRADED_FROM_ANNOTATION;
use kube::{Api, ResourceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_versions_are_upgraded_and_kinds_without_equivalent_skipped() {
    let Some(op::Setup {
        ns,
        repo: _repo,
        operator: _operator,
        ..
    }) = op::setup_with_app("upgrade", "legacy").await
    else {
        return;
    };
    let kfdefs: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    let kfdef = eventually(op::TIMEOUT, "Available", || async {
        op::make_pods_ready(&ns.client, &ns.name).await;
        let kfdef = kfdefs.get("kf").await.ok()?;
        op::condition_true(&kfdef, "Available").then_some(kfdef)
    })
    .await;
    let status = kfdef.status.clone().unwrap_or_default();
    let upgrades = status.upgrades.expect("status.upgrades");
    assert_eq!(upgrades.upgraded, 2);
    assert_eq!(upgrades.skipped.len(), 1, "{:?}", upgrades.skipped);
    let psp = format!("PodSecurityPolicy.policy/v1beta1 {}-legacy-psp", ns.name);
    assert_eq!(upgrades.skipped[0].object, psp);
    assert_eq!(upgrades.skipped[0].application, "legacy");
    assert_eq!(status.inventory.len(), 2, "{:?}", status.inventory);
    assert!(status.inventory.iter().all(|e| e.version == "v1"));

    // The Deployment without selector runs as apps/v1 with the old defaulting written out.
    let deployment = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name)
        .get("legacy-web")
        .await
        .expect("apps/v1 Deployment");
    assert_eq!(
        deployment
            .annotations()
            .get(UPGRADED_FROM_ANNOTATION)
            .map(String::as_str),
        Some("extensions/v1beta1")
    );
    let spec = deployment.spec;
    assert_eq!(
        spec.selector.match_labels,
        Some([("app".to_string(), "legacy-web".to_string())].into())
    );
    assert_eq!(spec.progress_deadline_seconds, Some(i32::MAX));
    let role = Api::<ClusterRole>::all(ns.client.clone())
        .get(&format!("{}-legacy-reader", ns.name))
        .await
        .expect("rbac v1 ClusterRole");
    assert_eq!(
        role.annotations()
            .get(UPGRADED_FROM_ANNOTATION)
            .map(String::as_str),
        Some("rbac.authorization.k8s.io/v1beta1")
    );

    // One Warning event names the skipped object.
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    let note = eventually(op::TIMEOUT, "a Skipped warning event", || async {
        events
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Skipped"))
            .and_then(|e| (e.type_.as_deref() == Some("Warning")).then_some(e.note?))
    })
    .await;
    assert!(note.contains(&psp), "{note}");
    assert!(note.contains("Pod Security Admission"), "{note}");
}
