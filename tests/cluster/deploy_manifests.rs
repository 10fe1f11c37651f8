//! The install manifests (`crds/kfop.yaml`, `deploy/kfop.yaml`) are accepted by a real API server
//! (server-side dry run: nothing is created).

use crate::support;
use kfop::operator::cluster::Cluster;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;
use std::path::Path;

#[tokio::test]
async fn install_manifests_are_valid() {
    let Some(ns) = support::namespace("deploy").await else {
        return;
    };
    let cluster = Cluster::new(ns.client.clone());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for file in ["crds/kfop.yaml", "deploy/kfop.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).expect("manifest");
        for document in kfop::render::yaml::parse_documents(&text).expect("yaml") {
            let api_version = document["apiVersion"].as_str().expect("apiVersion");
            let kind = document["kind"].as_str().expect("kind");
            let name = document["metadata"]["name"].as_str().expect("name");
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let found = cluster
                .kind(group, version, kind)
                .await
                .expect("discovery")
                .expect("a served kind");
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            let api: Api<DynamicObject> = match document["metadata"]["namespace"].as_str() {
                Some(namespace) if found.namespaced => {
                    Api::namespaced_with(ns.client.clone(), namespace, &resource)
                }
                _ => Api::all_with(ns.client.clone(), &resource),
            };
            // The namespace kfop-system may not exist: namespaced objects are checked in the
            // test's namespace instead.
            let api = if found.namespaced {
                Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
            } else {
                api
            };
            let mut document = document.clone();
            if found.namespaced {
                document["metadata"]["namespace"] = ns.name.clone().into();
            }
            api.patch(
                name,
                &PatchParams::apply("kfop-test").dry_run(),
                &Patch::Apply(&document),
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: {kind} {name}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} documents");
}

/// The install command as the README gives it.
const INSTALL: &str = "kubectl apply --server-side -f crds/kfop.yaml -f deploy/kfop.yaml";

#[tokio::test]
async fn the_readme_install_command_installs_kfop() {
    let Some(ns) = support::namespace("install").await else {
        return;
    };
    let Some(_kubectl) = crate::inputs::Kubectl::find() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(
        readme.contains(INSTALL),
        "README.md no longer gives `{INSTALL}`"
    );
    let kubeconfig = support::kubeconfig().expect("kubeconfig");
    let words: Vec<&str> = INSTALL.split_whitespace().collect();
    let output = std::process::Command::new(words[0])
        .args(&words[1..])
        .current_dir(root)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("run kubectl");
    assert!(
        output.status.success(),
        "`{INSTALL}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(ns.client.clone(), "kfop-system");
    let kfop = deployments.get("kfop").await.expect("the kfop Deployment");
    assert_eq!(kfop.spec.replicas, Some(2));
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(ns.client.clone());
    for crd in kfop::crds::all() {
        let name = crd.metadata.name.expect("CRD name");
        crds.get(&name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name} not installed: {e}"));
    }
}

/// Every Deployment kfop ships: deploy/kfop.yaml's, and those of manifests/ as a KfDef renders
/// them (base and overlays).
fn shipped_deployments() -> Vec<(String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let text = std::fs::read_to_string(root.join("deploy/kfop.yaml")).expect("deploy/kfop.yaml");
    for document in kfop::render::yaml::parse_documents(&text).expect("yaml") {
        if document["kind"] == "Deployment" {
            found.push(("deploy/kfop.yaml".to_string(), document));
        }
    }
    let renderer = kfop::render::Renderer::new(None).expect("renderer");
    for app in [
        "tf-job-controller",
        "pytorch-job-controller",
        "framework-controller",
    ] {
        let mut dirs = vec![root.join("manifests").join(app).join("base")];
        if let Ok(overlays) = std::fs::read_dir(root.join("manifests").join(app).join("overlays")) {
            dirs.extend(overlays.filter_map(Result::ok).map(|e| e.path()));
        }
        for dir in dirs {
            let objects = renderer
                .render(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for object in objects {
                if object["kind"] == "Deployment" {
                    let place = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
                    found.push((place, object));
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn every_shipped_pod_is_admitted_by_a_restricted_namespace() {
    use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
    use kube::api::PostParams;
    let Some(ns) = support::namespace("restricted").await else {
        return;
    };
    let namespaces: Api<Namespace> = Api::all(ns.client.clone());
    namespaces
        .patch(
            &ns.name,
            &PatchParams::apply("kfop-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns.name, "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                }},
            })),
        )
        .await
        .expect("label the namespace restricted");
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let accounts: Api<ServiceAccount> = Api::namespaced(ns.client.clone(), &ns.name);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let pod_of = |name: &str, template: &Value| -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns.name},
            "spec": template["spec"],
        }))
        .expect("a pod from the template")
    };

    // The namespace does enforce: a pod without a seccomp profile is refused.
    let bare = serde_json::json!({"spec": {"containers": [{"name": "c", "image": "kfop"}]}});
    let refused = pods.create(&dry_run, &pod_of("bare", &bare)).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.message.contains("restricted")),
        "a bare pod was not refused: {refused:?}"
    );

    let deployments = shipped_deployments();
    assert!(deployments.len() >= 5, "{} Deployments", deployments.len());
    for (place, deployment) in deployments {
        let template = &deployment["spec"]["template"];
        if let Some(account) = template["spec"]["serviceAccountName"].as_str() {
            let exists = accounts
                .get_opt(account)
                .await
                .expect("get account")
                .is_some();
            if !exists {
                let account: ServiceAccount = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": account},
                }))
                .expect("account");
                accounts
                    .create(&PostParams::default(), &account)
                    .await
                    .expect("create the service account");
            }
        }
        let name = deployment["metadata"]["name"].as_str().unwrap_or("pod");
        pods.create(&dry_run, &pod_of(name, template))
            .await
            .unwrap_or_else(|e| panic!("{place}: Deployment {name}'s pod is refused: {e}"));
    }
}
