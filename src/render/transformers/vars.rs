//! `vars`: `$(NAME)` in the var-reference fields of objects is replaced by a field of another
//! object, read after every rename (so vars see hashed names).

use crate::render::RenderError;
use crate::render::field_path;
use crate::render::fieldspec::{FieldSpec, PathError};
use crate::render::kustomization::Var;
use crate::render::resource::{Gvk, ResId, Resource};
use serde_json::{Map, Value};

/// The object a var reads, as an id (an empty namespace matches any).
fn target_id(var: &Var) -> ResId {
    let target = &var.objref;
    let gvk = if target.api_version.is_empty() {
        Gvk {
            group: target.group.clone(),
            version: target.version.clone(),
            kind: target.kind.clone(),
        }
    } else {
        Gvk::from_api_version(&target.api_version, &target.kind)
    };
    ResId {
        gvk,
        name: target.name.clone(),
        namespace: target.namespace.clone(),
    }
}

/// Records, on the one object each var reads, the var's name (kustomize does this when a layer's
/// vars are merged, matching current or earlier ids).
pub fn bind(resources: &mut [Resource], vars: &[Var], file: &str) -> Result<(), RenderError> {
    for var in vars {
        let target = target_id(var);
        let exact_namespace = !target.namespace.is_empty() || target.gvk.is_cluster_scoped();
        let matches: Vec<usize> = resources
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.all_ids().iter().any(|id| {
                    id.gvk == target.gvk
                        && id.name == target.name
                        && (!exact_namespace
                            || id.effective_namespace() == target.effective_namespace())
                })
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [] => {}
            [one] => resources[*one].var_names.push(var.name.clone()),
            many => {
                return Err(RenderError::Var {
                    file: file.to_string(),
                    var: var.name.clone(),
                    message: format!("{} objects match its objref {target}", many.len()),
                });
            }
        }
    }
    Ok(())
}

/// Resolves every var and substitutes `$(NAME)` in the `specs` fields of every object.
pub fn resolve(
    resources: &mut [Resource],
    vars: &[Var],
    specs: &[FieldSpec],
) -> Result<(), RenderError> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut values = Map::new();
    for var in vars {
        let source = resources
            .iter()
            .find(|r| r.var_names.contains(&var.name))
            .ok_or_else(|| RenderError::Var {
                file: String::new(),
                var: var.name.clone(),
                message: format!("no object matches its objref {}", target_id(var)),
            })?;
        let path = if var.fieldref.field_path.is_empty() {
            "metadata.name"
        } else {
            &var.fieldref.field_path
        };
        let not_found = |why: String| RenderError::Var {
            file: String::new(),
            var: var.name.clone(),
            message: format!("field {path} not found in {}{why}", source.id()),
        };
        let value = field_path::var_value(&source.object, path)
            .map_err(|e| not_found(format!(": {e}")))?
            .ok_or_else(|| not_found(String::new()))?;
        values.insert(var.name.clone(), value.clone());
    }
    for resource in resources.iter_mut() {
        let gvk = resource.gvk();
        let origin = resource.origin.clone();
        for spec in specs.iter().filter(|s| s.applies_to(&gvk)) {
            spec.visit(&mut resource.object, &mut |node: &mut Value| {
                substitute_node(node, &values);
                Ok::<(), PathError>(())
            })
            .map_err(|e| RenderError::Transform {
                transformer: "vars",
                resource: origin.clone(),
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

fn substitute_node(node: &mut Value, values: &Map<String, Value>) {
    match node {
        Value::String(text) => *node = expand(text, values),
        Value::Object(map) => {
            for value in map.values_mut() {
                if let Value::String(text) = value {
                    *value = expand(text, values);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if let Value::String(text) = item {
                    *item = expand(text, values);
                }
            }
        }
        _ => {}
    }
}

/// Expands `$(NAME)` references (`$$` is a literal `$`; unknown names stay as written). A string
/// that is exactly one reference takes the value's own type.
pub fn expand(input: &str, values: &Map<String, Value>) -> Value {
    let lookup = |name: &str| {
        values
            .get(name)
            .cloned()
            .unwrap_or_else(|| Value::String(format!("$({name})")))
    };
    if let Some(name) = input
        .strip_prefix("$(")
        .and_then(|rest| rest.strip_suffix(')'))
        && !name.contains(')')
    {
        return lookup(name);
    }
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                }
                b'(' => match input[i + 2..].find(')') {
                    Some(end) => {
                        let name = &input[i + 2..i + 2 + end];
                        match lookup(name) {
                            Value::String(s) => out.push_str(&s),
                            other => out.push_str(&other.to_string()),
                        }
                        i += 3 + end;
                    }
                    None => {
                        out.push_str("$(");
                        i += 2;
                    }
                },
                _ => {
                    out.push('$');
                    i += 1;
                }
            }
        } else {
            let next = input[i..].find('$').map_or(bytes.len(), |n| i + n.max(1));
            out.push_str(&input[i..next]);
            i = next;
        }
    }
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("NS".into(), json!("kubeflow"));
        m.insert("PORT".into(), json!(8080));
        m
    }

    #[test]
    fn expands_like_kustomize() {
        assert_eq!(expand("$(NS)", &values()), json!("kubeflow"));
        assert_eq!(expand("$(PORT)", &values()), json!(8080));
        assert_eq!(
            expand("http://x.$(NS).svc:$(PORT)/", &values()),
            json!("http://x.kubeflow.svc:8080/")
        );
        assert_eq!(
            expand("$(UNKNOWN) $$(NS) $ $(", &values()),
            json!("$(UNKNOWN) $(NS) $ $(")
        );
    }
}
