//! The CustomResourceDefinitions kfop defines, generated from its Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD kfop defines, sorted by name.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = crate::jobs::crd::all();
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
    use super::*;

    #[test]
    fn committed_crds_are_up_to_date() {
        let generated = to_yaml(&all()).expect("CRDs render");
        let committed = include_str!("../crds/kfop.yaml");
        assert!(
            generated == committed,
            "crds/kfop.yaml is stale: run `make crds` and commit the result"
        );
    }
}
