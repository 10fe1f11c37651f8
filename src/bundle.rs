//! The OperatorHub/OLM bundle (registry+v1 format): a ClusterServiceVersion built from
//! `deploy/kfop.yaml`, the CRDs, and the bundle annotations. `make bundle` writes it to `bundle/`;
//! a test fails when the committed copy is stale.

use serde_json::{Value, json};

/// The operator's version, as the bundle names it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One file of the bundle: its path under `bundle/` and its content.
pub struct BundleFile {
    pub path: String,
    pub content: String,
}

/// Why the bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("deploy/kfop.yaml: {0}")]
    Deploy(String),
    #[error("serializing the bundle: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// Every file of the bundle.
pub fn files() -> Result<Vec<BundleFile>, BundleError> {
    let deploy = crate::render::yaml::parse_documents(include_str!("../deploy/kfop.yaml"))
        .map_err(|e| BundleError::Deploy(e.to_string()))?;
    let find = |kind: &str| {
        deploy
            .iter()
            .find(|d| d["kind"] == kind)
            .cloned()
            .ok_or_else(|| BundleError::Deploy(format!("no {kind}")))
    };
    let deployment = find("Deployment")?;
    let service_account = find("ServiceAccount")?;
    let image = deployment
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let crds = crate::crds::all();
    let owned: Vec<Value> = crds
        .iter()
        .map(|crd| {
            let kind = crd.spec.names.kind.clone();
            let version = crd.spec.versions.first().map(|v| v.name.clone()).unwrap_or_default();
            json!({
                "name": crd.metadata.name, "version": version, "kind": kind, "displayName": kind,
                "description": match kind.as_str() {
                    "KfDef" => "A Kubeflow deployment: manifest repos and the applications installed from them.",
                    "TFJob" => "A distributed TensorFlow training job.",
                    "Framework" => "A general-purpose distributed workload: task roles of pods with retry and completion policies (FrameworkController's API).",
                    _ => "A distributed PyTorch training job.",
                },
            })
        })
        .collect();
    let example = json!([{
        "apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef",
        "metadata": {"name": "kubeflow", "namespace": "kubeflow"},
        "spec": {"repos": [{"name": "manifests", "uri": "https://github.com/kubeflow/manifests/archive/v1.0.2.tar.gz"}],
                 "applications": [{"name": "kubeflow-roles", "kustomizeConfig": {"repoRef": {"name": "manifests", "path": "kubeflow-roles"}}}]},
    }]);
    let csv = json!({
        "apiVersion": "operators.coreos.com/v1alpha1",
        "kind": "ClusterServiceVersion",
        "metadata": {
            "name": format!("kfop.v{VERSION}"),
            "namespace": "placeholder",
            "annotations": {
                "alm-examples": serde_json::to_string_pretty(&example).unwrap_or_default(),
                "capabilities": "Deep Insights",
                "categories": "AI/Machine Learning",
                "containerImage": image,
                "description": "Installs Kubeflow from KfDef files, keeps it healed, and runs TFJob and PyTorchJob.",
                "operators.operatorframework.io/builder": "kfop",
                "repository": "https://github.com/kfop/kfop",
            },
        },
        "spec": {
            "displayName": "kfop",
            "description": "kfop installs machine-learning platforms from KfDef files (kfdef.apps.kubeflow.org/v1): it renders each application with kustomize semantics, applies it with server-side apply, puts back deleted or edited components in milliseconds, prunes, and removes everything — cluster-scoped objects included — when a KfDef is deleted. It ships TFJob and PyTorchJob controllers.",
            "version": VERSION,
            "maturity": "alpha",
            "minKubeVersion": "1.33.0",
            "keywords": ["kubeflow", "kfdef", "machine learning", "tfjob", "pytorchjob"],
            "maintainers": [{"name": "kfop maintainers", "email": "maintainers@kfop.dev"}],
            "provider": {"name": "kfop"},
            "links": [{"name": "Source", "url": "https://github.com/kfop/kfop"}],
            "installModes": [
                {"type": "OwnNamespace", "supported": false},
                {"type": "SingleNamespace", "supported": false},
                {"type": "MultiNamespace", "supported": false},
                {"type": "AllNamespaces", "supported": true},
            ],
            "customresourcedefinitions": {"owned": owned},
            "install": {
                "strategy": "deployment",
                "spec": {
                    // kfop applies whatever its KfDefs render, so it needs every permission.
                    "clusterPermissions": [{
                        "serviceAccountName": service_account["metadata"]["name"],
                        "rules": [
                            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                            {"nonResourceURLs": ["*"], "verbs": ["*"]},
                        ],
                    }],
                    "deployments": [{"name": deployment["metadata"]["name"], "spec": deployment["spec"]}],
                },
            },
        },
    });
    let annotations = json!({"annotations": {
        "operators.operatorframework.io.bundle.mediatype.v1": "registry+v1",
        "operators.operatorframework.io.bundle.manifests.v1": "manifests/",
        "operators.operatorframework.io.bundle.metadata.v1": "metadata/",
        "operators.operatorframework.io.bundle.package.v1": "kfop",
        "operators.operatorframework.io.bundle.channels.v1": "alpha",
        "operators.operatorframework.io.bundle.channel.default.v1": "alpha",
    }});
    let mut out = vec![
        BundleFile {
            path: "manifests/kfop.clusterserviceversion.yaml".into(),
            content: serde_saphyr::to_string(&csv)?,
        },
        BundleFile {
            path: "metadata/annotations.yaml".into(),
            content: serde_saphyr::to_string(&annotations)?,
        },
    ];
    for crd in &crds {
        out.push(BundleFile {
            path: format!(
                "manifests/{}.crd.yaml",
                crd.metadata.name.clone().unwrap_or_default()
            ),
            content: serde_saphyr::to_string(crd)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_bundle_is_up_to_date() {
        for file in files().expect("bundle") {
            let path = format!("{}/bundle/{}", env!("CARGO_MANIFEST_DIR"), file.path);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == file.content,
                "{path} is stale: run `make bundle` and commit the result"
            );
        }
    }

    #[test]
    fn the_csv_owns_every_crd_and_runs_the_deployment() {
        let files = files().expect("bundle");
        let csv = crate::render::yaml::parse_document(&files[0].content).expect("csv");
        let owned = csv["spec"]["customresourcedefinitions"]["owned"]
            .as_array()
            .expect("owned");
        assert_eq!(owned.len(), crate::crds::all().len());
        let deployment = &csv["spec"]["install"]["spec"]["deployments"][0];
        assert_eq!(deployment["name"], "kfop");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["args"][0],
            "run"
        );
    }
}
