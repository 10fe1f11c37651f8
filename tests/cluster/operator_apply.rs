//! Reconcile: every rendered object is applied with kfop's labels, an ownerReference where
//! Kubernetes allows one, CRDs before their custom objects, an inventory and status conditions;
//! repos work as a directory and as a tarball over HTTP.

use crate::operator_support::{self as op, App};
use crate::support::{self, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kfop::kfdef::KfDef;
use kfop::operator::objects::{KFDEF_UID_LABEL, MANAGED_BY_LABEL};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, ResourceExt};

/// How the test serves the fixture repo.
enum RepoForm {
    Directory,
    TarballOverHttp,
}

async fn applies_everything(form: RepoForm, test: &str) {
    let Some(ns) = support::namespace(test).await else {
        return;
    };
    let _operator = op::start(&ns.client, &ns.name).await;
    let repo = op::fixture_repo(&ns.name);
    let mut _server = None;
    let uri = match form {
        RepoForm::Directory => format!("file://{}", repo.path().display()),
        RepoForm::TarballOverHttp => {
            let (url, task) = op::serve_bytes(op::tarball(repo.path())).await;
            _server = Some(task);
            format!("{url}/archive/v1.0.tar.gz")
        }
    };
    let apps = [
        App {
            name: "web",
            path: "web",
            overlays: &["extra"],
            parameters: &[("greeting", "hi")],
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
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    eventually(op::TIMEOUT, "the web Deployment", || async {
        deployments.get_opt("web").await.ok().flatten()
    })
    .await;
    let kfdef = eventually(op::TIMEOUT, "the KfDef to become Available", || async {
        op::make_pods_ready(&ns.client, &ns.name).await;
        let kfdef = kfdefs.get("kf").await.ok()?;
        op::condition_true(&kfdef, "Available").then_some(kfdef)
    })
    .await;
    let uid = kfdef.uid().expect("uid");

    let config: ConfigMap = Api::namespaced(ns.client.clone(), &ns.name)
        .get("web-config")
        .await
        .expect("configmap");
    assert_eq!(
        config
            .data
            .as_ref()
            .and_then(|d| d.get("greeting"))
            .map(String::as_str),
        Some("hi")
    );
    let web = deployments.get("web").await.expect("deployment");
    assert_eq!(web.labels().get(KFDEF_UID_LABEL), Some(&uid));
    assert_eq!(
        web.labels().get(MANAGED_BY_LABEL).map(String::as_str),
        Some("kfop")
    );
    let owner = &web.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("KfDef", uid.as_str(), Some(true))
    );

    let role: ClusterRole = Api::all(ns.client.clone())
        .get(&format!("{}-reader", ns.name))
        .await
        .expect("cluster role");
    assert_eq!(role.labels().get(KFDEF_UID_LABEL), Some(&uid));
    assert!(
        role.owner_references().is_empty(),
        "cluster-scoped objects cannot have a namespaced owner"
    );

    let gadget = ApiResource::from_gvk(&GroupVersionKind::gvk(
        &format!("{}.fixtures.kfop.dev", ns.name),
        "v1",
        "Gadget",
    ));
    let gadgets: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &gadget);
    assert_eq!(
        gadgets
            .get("first-gadget")
            .await
            .expect("custom object")
            .data["spec"]["size"],
        3
    );

    let status = kfdef.status.expect("status");
    assert_eq!(status.applications_ready.as_deref(), Some("3/3"));
    let mut kinds: Vec<String> = status
        .inventory
        .iter()
        .map(|e| format!("{}/{}", e.id.kind, e.id.name))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            format!("ClusterRole/{}-reader", ns.name),
            "ConfigMap/web-config".into(),
            "ConfigMap/web-extra".into(),
            format!(
                "CustomResourceDefinition/gadgets.{}.fixtures.kfop.dev",
                ns.name
            ),
            "Deployment/web".into(),
            "Gadget/first-gadget".into(),
            "Service/web".into(),
        ]
    );
    assert!(!op::condition_true(&kfdef_now(&kfdefs).await, "Degraded"));
}

async fn kfdef_now(api: &Api<KfDef>) -> KfDef {
    api.get("kf").await.expect("kfdef")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_a_repo_directory() {
    applies_everything(RepoForm::Directory, "op-apply-dir").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_a_tarball_served_over_http() {
    applies_everything(RepoForm::TarballOverHttp, "op-apply-tar").await;
}
