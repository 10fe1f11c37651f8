//! `namespace`: sets `metadata.namespace` on namespaced objects, renames Namespace objects, and
//! fixes the namespace of `default` (cluster)role-binding subjects and service references.

use crate::render::RenderError;
use crate::render::fieldspec::{FieldSpec, PathError};
use crate::render::resource::Resource;
use serde_json::Value;

/// Moves every object into `namespace`.
pub fn apply(
    resources: &mut [Resource],
    namespace: &str,
    specs: &[FieldSpec],
) -> Result<(), RenderError> {
    if namespace.is_empty() {
        return Ok(());
    }
    for resource in resources.iter_mut() {
        resource.store_previous_id();
        let gvk = resource.gvk();
        if !gvk.is_cluster_scoped() {
            resource.set_namespace(namespace);
        }
        let api_version = gvk.api_version();
        let label = resource_label(resource);
        for spec in specs.iter().filter(|s| s.applies_to(&gvk)) {
            // kustomize renames only v1 Namespaces through metadata/name specs.
            if spec.path == ["metadata", "name"] && api_version != "v1" {
                continue;
            }
            if spec.path == ["metadata", "namespace"] {
                continue;
            }
            spec.visit(&mut resource.object, &mut |v: &mut Value| {
                *v = Value::String(namespace.to_string());
                Ok::<(), PathError>(())
            })
            .map_err(|e| RenderError::Transform {
                transformer: "namespace",
                resource: label.clone(),
                message: e.to_string(),
            })?;
        }
        if matches!(gvk.kind.as_str(), "RoleBinding" | "ClusterRoleBinding")
            && let Some(Value::Array(subjects)) = resource.object.get_mut("subjects")
        {
            for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
                if subject.get("name").and_then(Value::as_str) == Some("default") {
                    subject.insert("namespace".into(), Value::String(namespace.to_string()));
                }
            }
        }
    }
    // Every namespaced object ends up in the same namespace, so a clash kustomize would find
    // after moving one object is still there after moving all of them.
    let mut seen = std::collections::HashSet::new();
    for resource in resources.iter() {
        let id = resource.id();
        if !seen.insert(id.identity()) {
            return Err(RenderError::Transform {
                transformer: "namespace",
                resource: id.to_string(),
                message: "moving objects into the namespace makes two objects the same".into(),
            });
        }
    }
    Ok(())
}

/// A short description of a resource for error messages.
pub fn resource_label(resource: &Resource) -> String {
    format!("{} (from {})", resource.id(), resource.origin)
}
