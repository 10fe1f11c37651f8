//! `namePrefix` and `nameSuffix`: add to every object's name except CRDs, APIServices and
//! Namespaces, remembering what was added for name-reference matching.

use crate::render::RenderError;
use crate::render::fieldspec::{FieldSpec, PathError};
use crate::render::resource::{Gvk, Resource};
use serde_json::Value;

/// Which end of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Prefix,
    Suffix,
}

fn skipped(gvk: &Gvk) -> bool {
    gvk.kind == "CustomResourceDefinition"
        || gvk.kind == "Namespace"
        || (gvk.kind == "APIService" && gvk.group == "apiregistration.k8s.io")
}

/// Adds `affix` at `end` of the names the specs point at.
pub fn apply(
    resources: &mut [Resource],
    affix: &str,
    end: End,
    specs: &[FieldSpec],
) -> Result<(), RenderError> {
    for resource in resources.iter_mut() {
        let original = resource.original_id();
        if skipped(&original.gvk) {
            continue;
        }
        for spec in specs.iter().filter(|s| s.applies_to(&original.gvk)) {
            if spec.path == ["metadata", "name"] {
                match end {
                    End::Prefix => resource.prefixes.push(affix.to_string()),
                    End::Suffix => resource.suffixes.push(affix.to_string()),
                }
                if !affix.is_empty() {
                    resource.store_previous_id();
                }
            }
            if affix.is_empty() {
                continue;
            }
            let origin = resource.origin.clone();
            spec.visit(&mut resource.object, &mut |v: &mut Value| {
                if let Value::String(name) = v {
                    *name = match end {
                        End::Prefix => format!("{affix}{name}"),
                        End::Suffix => format!("{name}{affix}"),
                    };
                }
                Ok::<(), PathError>(())
            })
            .map_err(|e| RenderError::Transform {
                transformer: "namePrefix/nameSuffix",
                resource: origin,
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}
