//! `replicas`: sets the replica count of named workloads.

use crate::render::RenderError;
use crate::render::fieldspec::{FieldSpec, PathError};
use crate::render::kustomization::ReplicaArgs;
use crate::render::resource::Resource;
use serde_json::Value;

/// Applies each `replicas` entry to the objects whose current or earlier name matches.
pub fn apply(
    resources: &mut [Resource],
    entries: &[ReplicaArgs],
    specs: &[FieldSpec],
) -> Result<(), RenderError> {
    for entry in entries {
        for resource in resources.iter_mut() {
            if !resource.all_ids().iter().any(|id| id.name == entry.name) {
                continue;
            }
            let gvk = resource.gvk();
            let origin = resource.origin.clone();
            for spec in specs.iter().filter(|s| s.applies_to(&gvk)) {
                spec.visit(&mut resource.object, &mut |v: &mut Value| {
                    *v = Value::from(entry.count);
                    Ok::<(), PathError>(())
                })
                .map_err(|e| RenderError::Transform {
                    transformer: "replicas",
                    resource: origin.clone(),
                    message: e.to_string(),
                })?;
            }
        }
    }
    Ok(())
}
