//! Fields Kubernetes removed from every kind. Server-side apply refuses an object that still
//! sets one ("field not declared in schema"), whatever its apiVersion.
//!
//! - `metadata.initializers` (alpha, removed in Kubernetes 1.14), on the object and on pod
//!   templates (`spec.template`, `spec.jobTemplate.spec.template`). Manifests of that era carry
//!   an empty `initializers: {pending: []}`, which never did anything.

use serde_json::Value;

const POD_TEMPLATES: &[&str] = &[
    "/spec/template/metadata",
    "/spec/jobTemplate/spec/template/metadata",
];

/// Removes the removed fields; whether there were any.
pub fn strip(object: &mut Value) -> bool {
    let mut stripped = false;
    for path in std::iter::once("/metadata").chain(POD_TEMPLATES.iter().copied()) {
        if let Some(Value::Object(metadata)) = object.pointer_mut(path) {
            stripped |= metadata.remove("initializers").is_some();
        }
    }
    stripped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn initializers_go_from_objects_and_pod_templates() {
        let mut deployment = json!({"metadata": {"name": "d", "initializers": {"pending": []}},
            "spec": {"template": {"metadata": {"labels": {"a": "b"}, "initializers": {"pending": []}},
                "spec": {"containers": []}}}});
        assert!(strip(&mut deployment));
        assert_eq!(
            deployment,
            json!({"metadata": {"name": "d"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": []}}}})
        );
        let mut cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"initializers": {}}}}}}});
        assert!(strip(&mut cron));
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"],
            json!({})
        );
        let mut plain = json!({"metadata": {"name": "c"}, "data": {"initializers": "x"}});
        assert!(!strip(&mut plain));
    }
}
