//! The OperatorHub/OLM bundle (registry+v1 format): a ClusterServiceVersion built from
//! `deploy/kfop.yaml`, the CRDs, and the bundle annotations. `make bundle` writes it to `bundle/`;
//! a test fails when the committed copy is stale.

use base64::Engine;
use serde_json::{Value, json};

/// The operator's version, as the bundle names it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// When this version's bundle was made (the CSV's `createdAt`; fixed, so the bundle is
/// reproducible).
pub const CREATED_AT: &str = "2026-12-02T00:00:00Z";

/// The bundle's channel (OLM's naming: `candidate`, `fast` or `stable`, then the major version).
pub const CHANNEL: &str = "candidate-v0";

/// The CRD the CSV owns: KfDef. The job controllers' CRDs come with the applications that deploy
/// them (`manifests/`), as kfop deploys everything else a KfDef names.
const OWNED_CRD: &str = "kfdefs.kfdef.apps.kubeflow.org";

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
    let crds: Vec<_> = crate::crds::all()
        .into_iter()
        .filter(|crd| crd.metadata.name.as_deref() == Some(OWNED_CRD))
        .collect();
    let owned: Vec<Value> = crds
        .iter()
        .map(|crd| {
            let kind = crd.spec.names.kind.clone();
            let version = crd.spec.versions.first().map(|v| v.name.clone()).unwrap_or_default();
            json!({
                "name": crd.metadata.name, "version": version, "kind": kind, "displayName": kind,
                "description": "A Kubeflow deployment: manifest repos and the applications installed from them.",
            })
        })
        .collect();
    let icon = base64::engine::general_purpose::STANDARD.encode(include_str!("../deploy/icon.svg"));
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
                // Installs and upgrades its operands (a changed KfDef is rendered again, applied
                // and pruned) and hands over between replicas on upgrade; no backup or alerting
                // (docs/operator.md, Capability level).
                "capabilities": "Seamless Upgrades",
                "categories": "AI/Machine Learning",
                "containerImage": image,
                "createdAt": CREATED_AT,
                "description": "Installs Kubeflow from KfDef files and keeps it healed; deploys its own TFJob, PyTorchJob and Framework controllers.",
                "support": "kfop maintainers",
                "operators.operatorframework.io/builder": "kfop",
                "repository": "https://github.com/kfop/kfop",
            },
        },
        "spec": {
            "displayName": "kfop",
            "description": "kfop installs machine-learning platforms from KfDef files (kfdef.apps.kubeflow.org/v1): it renders each application with kustomize semantics, applies it with server-side apply, puts back deleted or edited components in milliseconds, prunes, and removes everything — cluster-scoped objects included — when a KfDef is deleted. Its TFJob, PyTorchJob and Framework controllers are deployed by a KfDef like any other application (kfop's manifests/).\n\n**Permissions.** kfop applies whatever its KfDefs render — CRDs, ClusterRoles, webhooks, namespaces — so its service account is bound to every verb on every resource. Only cluster administrators should be able to create KfDefs; a KfDef can instead name a service account (annotation `kfop.dev/service-account`) whose rights it is then limited to.\n\n**Operations.** Two replicas with leader election on a Lease; Prometheus metrics on port 8080 (`/metrics`), probes on 8081 (`/healthz`, `/readyz`).",
            "icon": [{"base64data": icon, "mediatype": "image/svg+xml"}],
            "version": VERSION,
            "maturity": "alpha",
            "minKubeVersion": "1.33.0",
            "keywords": ["kubeflow", "kfdef", "machine learning", "tfjob", "pytorchjob"],
            "maintainers": [{"name": "kfop maintainers", "email": "maintainers@kfop.dev"}],
            "provider": {"name": "kfop"},
            "links": [{"name": "Source", "url": "https://github.com/kfop/kfop"}],
            "relatedImages": [{"name": "kfop", "image": image}],
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
        "operators.operatorframework.io.bundle.channels.v1": CHANNEL,
        "operators.operatorframework.io.bundle.channel.default.v1": CHANNEL,
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
    fn the_csv_owns_the_kfdef_crd_and_runs_the_deployment() {
        let files = files().expect("bundle");
        let csv = crate::render::yaml::parse_document(&files[0].content).expect("csv");
        let owned = csv["spec"]["customresourcedefinitions"]["owned"]
            .as_array()
            .expect("owned");
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0]["kind"], "KfDef");
        let deployment = &csv["spec"]["install"]["spec"]["deployments"][0];
        assert_eq!(deployment["name"], "kfop");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["args"][0],
            "run"
        );
    }
}
