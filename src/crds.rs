//! The CustomResourceDefinitions kfop defines, generated from its Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD kfop defines, sorted by name.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![crate::kfdef::KfDef::crd()];
    crds.extend(crate::jobs::crd::all());
    crds.push(crate::framework::crd::crd());
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// Renders CRDs as one multi-document YAML stream, the format of the files under `crds/`.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_crds_are_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kfop.yaml");
        let committed = std::fs::read_to_string(path).expect("crds/kfop.yaml");
        let generated = super::to_yaml(&super::all()).expect("render CRDs");
        assert!(
            committed == generated,
            "crds/kfop.yaml is stale: run `make crds` and commit the result"
        );
    }

    #[test]
    fn manifest_repo_crds_are_up_to_date() {
        for (app, name) in [
            ("tf-job-controller", "tfjobs.kubeflow.org"),
            ("pytorch-job-controller", "pytorchjobs.kubeflow.org"),
            (
                "framework-controller",
                "frameworks.frameworkcontroller.microsoft.com",
            ),
        ] {
            let path = format!(
                "{}/manifests/{app}/base/crd.yaml",
                env!("CARGO_MANIFEST_DIR")
            );
            let committed = std::fs::read_to_string(&path).expect("manifest CRD");
            let crd: Vec<_> = super::all()
                .into_iter()
                .filter(|c| c.metadata.name.as_deref() == Some(name))
                .collect();
            assert_eq!(crd.len(), 1, "{name}");
            let generated = super::to_yaml(&crd).expect("render CRD");
            assert!(
                committed == generated,
                "{path} is stale: run `make crds` and commit the result"
            );
        }
    }
}
