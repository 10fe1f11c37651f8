//! A KfDef annotated `kfop.dev/service-account` is applied as that service account: it creates
//! only what the account may (the rest fails, in the status), and once the account may more, the
//! retries with backoff create the rest.

use crate::operator_support::{self as op, App};
use crate::support::{self, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// A Role of `namespace` allowing every verb on `resources` of `group`.
fn role(namespace: &str, rules: &[(&str, &str)]) -> Role {
    let rules: Vec<_> = rules
        .iter()
        .map(|(group, resource)| json!({"apiGroups": [group], "resources": [resource], "verbs": ["*"]}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "deployer", "namespace": namespace},
        "rules": rules,
    }))
    .expect("role")
}

#[tokio::test]
async fn a_kfdef_with_a_service_account_creates_only_what_the_account_may() {
    let Some(ns) = support::namespace("impersonation").await else {
        return;
    };
    let kubeconfig = support::kubeconfig().expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    let _operator = op::start_with(
        &ns.client,
        kfop::operator::Options {
            namespace: Some(ns.name.clone()),
            concurrency: 2,
            config: Some(config),
            ..Default::default()
        },
    )
    .await;

    // The account may manage Services and ConfigMaps, not Deployments.
    let post = PostParams::default();
    let accounts: Api<ServiceAccount> = Api::namespaced(ns.client.clone(), &ns.name);
    accounts
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": "deployer"}})).expect("sa"),
        )
        .await
        .expect("create the service account");
    let roles: Api<Role> = Api::namespaced(ns.client.clone(), &ns.name);
    roles
        .create(
            &post,
            &role(&ns.name, &[("", "services"), ("", "configmaps")]),
        )
        .await
        .expect("create the role");
    let bindings: Api<RoleBinding> = Api::namespaced(ns.client.clone(), &ns.name);
    bindings
        .create(
            &post,
            &serde_json::from_value(json!({
                "metadata": {"name": "deployer", "namespace": ns.name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns.name}],
            }))
            .expect("binding"),
        )
        .await
        .expect("create the binding");

    let repo = op::fixture_repo(&ns.name);
    let uri = format!("file://{}", repo.path().display());
    let apps = [App::plain("web")];
    let mut document = op::kfdef("kf", &ns.name, &uri, &apps);
    document["metadata"]["annotations"] =
        json!({kfop::operator::impersonation::SERVICE_ACCOUNT_ANNOTATION: "deployer"});
    op::apply_kfdef(&ns.client, &ns.name, &document).await;

    let kfdef = op::wait_for(
        &ns.client,
        &ns.name,
        "kf",
        "Degraded: the Deployment is forbidden to the account",
        |k| op::condition_true(k, "Degraded"),
    )
    .await;
    let message = op::condition_message(&kfdef, "Degraded");
    assert!(
        message.contains("forbidden") && message.contains("system:serviceaccount:"),
        "{message}"
    );
    let services: Api<Service> = Api::namespaced(ns.client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    eventually(
        op::TIMEOUT,
        "the Service, which the account may create",
        || async { services.get_opt("web").await.ok()? },
    )
    .await;
    assert!(
        deployments.get_opt("web").await.expect("get").is_none(),
        "kfop created a Deployment its service account may not"
    );

    // Once the account may create Deployments, a retry does.
    roles
        .replace(
            "deployer",
            &post,
            &role(
                &ns.name,
                &[
                    ("", "services"),
                    ("", "configmaps"),
                    ("apps", "deployments"),
                ],
            ),
        )
        .await
        .expect("widen the role");
    eventually(
        op::TIMEOUT,
        "the Deployment after the role grew",
        || async { deployments.get_opt("web").await.ok()? },
    )
    .await;
}
