//! The CustomResourceDefinitions kfop defines, generated from its Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD kfop defines, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    Vec::new()
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
