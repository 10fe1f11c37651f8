//! A heal the API server refuses is retried with backoff (not left to the next resync): a
//! ValidatingAdmissionPolicy refuses to re-create a deleted ConfigMap, kfop reports a Warning
//! event with its own reason and the KfDef stops being Available; once the policy is gone, the
//! ConfigMap comes back.

use crate::operator_support as op;
use crate::support::eventually;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kfop::kfdef::KfDef;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_heal_is_retried_until_it_succeeds() {
    let Some(op::Setup {
        ns,
        repo: _repo,
        operator: _operator,
        ..
    }) = op::setup_with_app("heal-retry", "web").await
    else {
        return;
    };
    available(&ns).await;

    // A policy that refuses to create the ConfigMap, bound to the test's namespace only.
    let policy_api = |kind: &str| {
        Api::<DynamicObject>::all_with(
            ns.client.clone(),
            &ApiResource::from_gvk(&GroupVersionKind::gvk(
                "admissionregistration.k8s.io",
                "v1",
                kind,
            )),
        )
    };
    let policies = policy_api("ValidatingAdmissionPolicy");
    let bindings = policy_api("ValidatingAdmissionPolicyBinding");
    let name = format!("{}-refuse", ns.name);
    let apply = PatchParams::apply("kfop-test").force();
    policies
        .patch(
            &name,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": name},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": [{
                        "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }]},
                    "validations": [{
                        "expression": "object.metadata.name != 'web-config'",
                        "message": "refused by the test",
                    }],
                },
            })),
        )
        .await
        .expect("policy");
    bindings
        .patch(
            &name,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": name},
                "spec": {
                    "policyName": name,
                    "validationActions": ["Deny"],
                    "matchResources": {"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": ns.name,
                    }}},
                },
            })),
        )
        .await
        .expect("binding");
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    // The policy is in force once a dry-run create is refused by it.
    eventually(op::TIMEOUT, "the policy to be in force", || async {
        let probe: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "web-config"}})).ok()?;
        let refused = config_maps
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &probe,
            )
            .await
            .err()?;
        refused
            .to_string()
            .contains("refused by the test")
            .then_some(())
    })
    .await;

    let before = config_maps.get("web-config").await.expect("cm").uid();
    config_maps
        .delete("web-config", &DeleteParams::default())
        .await
        .expect("delete");
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    eventually(op::TIMEOUT, "a HealFailed warning", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("HealFailed")
                    && e.type_.as_deref() == Some("Warning")
                    && e.note.as_deref().is_some_and(|n| n.contains("web-config"))
            })
            .map(|_| ())
    })
    .await;
    let kfdef = op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "the KfDef to stop being Available",
        |k| !op::condition_true(k, "Available"),
    )
    .await;
    let web = &kfdef.status.as_ref().expect("status").applications[0];
    assert!(
        web.message.as_deref().unwrap_or("").contains("web-config"),
        "{web:?}"
    );

    // The policy goes: the next retry puts the ConfigMap back (long before any resync).
    bindings
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete binding");
    policies
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete policy");
    eventually(
        op::TIMEOUT / 6,
        "the ConfigMap to be re-created",
        || async {
            let now = config_maps.get_opt("web-config").await.ok()??;
            (now.uid() != before).then_some(())
        },
    )
    .await;
    available(&ns).await;
}

/// Waits until the KfDef is Available, marking its pods ready meanwhile.
async fn available(ns: &crate::support::TestNamespace) {
    let kfdefs: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    eventually(op::TIMEOUT, "the KfDef to be Available", || async {
        op::make_pods_ready(&ns.client, &ns.name).await;
        let kfdef = kfdefs.get("kf").await.ok()?;
        let observed = kfdef.status.as_ref()?.observed_generation == kfdef.metadata.generation;
        (observed && op::condition_true(&kfdef, "Available")).then_some(())
    })
    .await;
}
