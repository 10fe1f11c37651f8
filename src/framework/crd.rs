//! The `frameworks.frameworkcontroller.microsoft.com` CRD: the schema generated from the Rust
//! types (pod templates fully validated), plus upstream's naming rule on the framework's name so
//! that `{framework}-{role}-{index}` pod names are unambiguous.

use super::api::Framework;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use kube::CustomResourceExt;

/// The name rule of frameworks and task roles (upstream's `NamingConvention`).
pub const NAME_PATTERN: &str = "^[a-z0-9]{1,63}$";

/// The Framework CRD.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = Framework::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.x_kubernetes_validations = Some(vec![ValidationRule {
                rule: format!("self.metadata.name.matches('{NAME_PATTERN}')"),
                message: Some(
                    "metadata.name must be 1 to 63 lowercase letters and digits: it is part of every task's pod name"
                        .into(),
                ),
                ..ValidationRule::default()
            }]);
        }
    }
    crd
}

#[cfg(test)]
mod tests {
    use super::super::api::{ExecutionType, Framework};
    use super::*;

    fn fixtures() -> Vec<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/framework");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("fixtures")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .filter(|p| !p.to_string_lossy().contains("config_"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("fixture");
                (p.display().to_string(), text)
            })
            .collect()
    }

    #[test]
    fn every_upstream_example_deserializes_as_a_framework() {
        let examples = fixtures();
        assert!(examples.len() >= 12, "{}", examples.len());
        let pattern = regex::Regex::new(NAME_PATTERN).expect("re");
        for (path, text) in examples {
            let docs: Vec<serde_json::Value> =
                serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            let framework = docs
                .into_iter()
                .find(|d| d["kind"] == "Framework")
                .unwrap_or_else(|| panic!("{path}: no Framework"));
            let framework: Framework =
                serde_json::from_value(framework).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                framework.spec.execution_type,
                ExecutionType::Start,
                "{path}"
            );
            assert!(!framework.spec.task_roles.is_empty(), "{path}");
            let name = framework.metadata.name.unwrap_or_default();
            assert!(pattern.is_match(&name), "{path}: {name}");
        }
    }

    #[test]
    fn the_crd_has_a_status_subresource_and_the_name_rule() {
        let crd = crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("frameworks.frameworkcontroller.microsoft.com")
        );
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let yaml = serde_json::to_string(&crd).expect("json");
        assert!(
            yaml.contains("x-kubernetes-list-map-keys"),
            "task roles keyed by name"
        );
        assert!(
            yaml.contains("oldSelf == 'Create'"),
            "executionType moves forward only"
        );
    }
}
