//! `commonLabels`, `labels` and `commonAnnotations`: add key/value pairs to the maps field specs
//! point at (metadata, selectors, pod templates).

use crate::render::RenderError;
use crate::render::fieldspec::{FieldSpec, PathError};
use crate::render::resource::Resource;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Adds `pairs` to every map the applicable `specs` reach, creating maps where specs say so.
pub fn add_pairs(
    resources: &mut [Resource],
    pairs: &BTreeMap<String, String>,
    specs: &[FieldSpec],
    transformer: &'static str,
) -> Result<(), RenderError> {
    if pairs.is_empty() {
        return Ok(());
    }
    for resource in resources.iter_mut() {
        let gvk = resource.gvk();
        for spec in specs.iter().filter(|s| s.applies_to(&gvk)) {
            let origin = resource.origin.clone();
            spec.visit(&mut resource.object, &mut |v: &mut Value| {
                if v.is_null() {
                    *v = Value::Object(Map::new());
                }
                match v {
                    Value::Object(map) => {
                        for (key, value) in pairs {
                            map.insert(key.clone(), Value::String(value.clone()));
                        }
                        Ok(())
                    }
                    _ => Err(PathError {
                        path: spec.path_string(),
                        at: "(a mapping was expected)".into(),
                    }),
                }
            })
            .map_err(|e| RenderError::Transform {
                transformer,
                resource: origin,
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}
