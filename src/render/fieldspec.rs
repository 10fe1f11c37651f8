//! Field specs: "in objects of this kind, the field at this path", kustomize's way of saying where
//! a transformer writes. Paths are `/`-separated (`\/` escapes a slash inside a key); an element
//! ending in `[]` names a list; lists met on the way are walked element by element, unless the
//! path gives an index.

use super::resource::Gvk;
use serde_json::{Map, Value};

/// Where a transformer acts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    /// Objects it applies to (empty parts match anything).
    pub gvk: Gvk,
    /// The path's keys.
    pub path: Vec<String>,
    /// Whether a missing field is created.
    pub create: bool,
}

/// A field spec met a scalar where its path needs a map or a list.
#[derive(Debug, thiserror::Error)]
#[error("field path {path}: expected a mapping or a list at {at:?}")]
pub struct PathError {
    pub path: String,
    pub at: String,
}

impl FieldSpec {
    /// Builds a spec from its parts; `path` uses kustomize's slash syntax.
    pub fn new(group: &str, version: &str, kind: &str, path: &str, create: bool) -> Self {
        Self {
            gvk: Gvk {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
            },
            path: split_path(path),
            create,
        }
    }

    /// Whether this spec applies to objects of `gvk`.
    pub fn applies_to(&self, gvk: &Gvk) -> bool {
        gvk.is_selected_by(&self.gvk)
    }

    /// The path in slash syntax, for messages.
    pub fn path_string(&self) -> String {
        self.path
            .iter()
            .map(|p| p.replace('/', "\\/"))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Calls `action` on every value at this spec's path in `object` (creating the field as `null`
    /// first when the spec says so and it is missing). The action's error stops the walk.
    pub fn visit<E: From<PathError>>(
        &self,
        object: &mut Value,
        action: &mut dyn FnMut(&mut Value) -> Result<(), E>,
    ) -> Result<(), E> {
        self.visit_creating(self.create, object, action)
    }

    /// [`FieldSpec::visit`], creating missing fields only when `create` says so.
    pub fn visit_creating<E: From<PathError>>(
        &self,
        create: bool,
        object: &mut Value,
        action: &mut dyn FnMut(&mut Value) -> Result<(), E>,
    ) -> Result<(), E> {
        visit(object, &self.path, create, self, action)
    }
}

fn visit<E: From<PathError>>(
    node: &mut Value,
    path: &[String],
    create: bool,
    full: &FieldSpec,
    action: &mut dyn FnMut(&mut Value) -> Result<(), E>,
) -> Result<(), E> {
    let Some((head, rest)) = path.split_first() else {
        return action(node);
    };
    match node {
        Value::Null => Ok(()),
        // kustomize v5 refuses an index in a field-spec path; the kustomize kfctl used took it,
        // and real Kubeflow manifests use it, so kfop reads it as the index it says.
        Value::Array(items) => match head.parse::<usize>() {
            Ok(index) => match items.get_mut(index) {
                Some(item) => visit(item, rest, create, full, action),
                None => Ok(()),
            },
            Err(_) => {
                for item in items {
                    visit(item, path, create, full, action)?;
                }
                Ok(())
            }
        },
        Value::Object(map) => {
            let (name, is_list) = match head.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (head.as_str(), false),
            };
            let creating = create && !is_list;
            let missing = map.get(name).is_none_or(Value::is_null);
            if missing {
                if !creating {
                    return Ok(());
                }
                let fresh = if rest.is_empty() {
                    Value::Null
                } else {
                    Value::Object(Map::new())
                };
                map.insert(name.to_string(), fresh);
            }
            match map.get_mut(name) {
                Some(child) => visit(child, rest, create, full, action),
                None => Ok(()),
            }
        }
        _ => Err(PathError {
            path: full.path_string(),
            at: head.clone(),
        }
        .into()),
    }
}

/// Splits a slash path, honouring `\/` escapes.
pub fn split_path(path: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                current.push('/');
                chars.next();
            }
            '/' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set_all(spec: &FieldSpec, object: &mut Value, to: Value) -> Result<(), PathError> {
        spec.visit(object, &mut |v: &mut Value| {
            *v = to.clone();
            Ok::<(), PathError>(())
        })
    }

    #[test]
    fn walks_lists_and_creates_maps() {
        let spec = FieldSpec::new("", "", "", "spec/containers/image", false);
        let mut object =
            json!({"spec": {"containers": [{"image": "a"}, {"name": "x"}, {"image": "b"}]}});
        set_all(&spec, &mut object, json!("z")).expect("walk");
        assert_eq!(
            object,
            json!({"spec": {"containers": [{"image": "z"}, {"name": "x"}, {"image": "z"}]}})
        );

        let spec = FieldSpec::new("", "", "", "spec/template/metadata/labels", true);
        let mut object = json!({"spec": {}});
        set_all(&spec, &mut object, json!({"a": "b"})).expect("walk");
        assert_eq!(
            object,
            json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}})
        );
    }

    #[test]
    fn an_index_picks_one_element() {
        let spec = FieldSpec::new("", "", "", "spec/containers/1/args/0", false);
        let mut object = json!({"spec": {"containers": [{"args": ["a"]}, {"args": ["b", "c"]}]}});
        set_all(&spec, &mut object, json!("z")).expect("walk");
        assert_eq!(
            object,
            json!({"spec": {"containers": [{"args": ["a"]}, {"args": ["z", "c"]}]}})
        );
    }

    #[test]
    fn list_elements_are_never_created() {
        let spec = FieldSpec::new(
            "",
            "",
            "",
            "spec/volumeClaimTemplates[]/metadata/labels",
            true,
        );
        let mut object = json!({"spec": {}});
        set_all(&spec, &mut object, json!({})).expect("walk");
        assert_eq!(object, json!({"spec": {}}));
    }

    #[test]
    fn escaped_slashes_stay_in_keys() {
        assert_eq!(
            split_path("metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret"),
            vec![
                "metadata",
                "annotations",
                "nginx.ingress.kubernetes.io/auth-secret"
            ]
        );
    }

    #[test]
    fn scalars_in_the_way_are_errors() {
        let spec = FieldSpec::new("", "", "", "spec/selector/matchLabels", true);
        let mut object = json!({"spec": {"selector": "app=x"}});
        let err = set_all(&spec, &mut object, json!({})).expect_err("scalar");
        assert!(err.to_string().contains("matchLabels"), "{err}");
    }
}
