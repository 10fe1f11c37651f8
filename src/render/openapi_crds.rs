//! The `crds` field: OpenAPI definitions of custom kinds whose `x-kubernetes-*` extensions tell
//! kustomize which fields hold annotations, label selectors, the object's identity and references
//! to other objects by name.

use super::config::TransformerConfig;
use super::fieldspec::FieldSpec;
use super::resource::Gvk;
use serde_json::{Map, Value};

/// Adds to `config` the field specs the definitions in `document` (a map from type name to
/// `{"Schema": {...}}`) describe.
pub fn load(document: &Value, config: &mut TransformerConfig) -> Result<(), String> {
    let definitions = document
        .as_object()
        .ok_or("expected a map of OpenAPI definitions")?;
    for name in definitions.keys() {
        let properties = properties(definitions, name);
        if !["kind", "apiVersion", "metadata"]
            .iter()
            .all(|p| properties.is_some_and(|m| m.contains_key(*p)))
        {
            continue;
        }
        let gvk = Gvk {
            kind: name.rsplit('.').next().unwrap_or(name).to_string(),
            ..Default::default()
        };
        walk(definitions, name, &gvk, &mut Vec::new(), config, 0);
    }
    Ok(())
}

fn properties<'a>(
    definitions: &'a Map<String, Value>,
    type_name: &str,
) -> Option<&'a Map<String, Value>> {
    definitions
        .get(type_name)?
        .get("Schema")?
        .get("properties")?
        .as_object()
}

fn walk(
    definitions: &Map<String, Value>,
    type_name: &str,
    gvk: &Gvk,
    path: &mut Vec<String>,
    config: &mut TransformerConfig,
    depth: usize,
) {
    // Definitions may refer to each other in cycles; kustomize would recurse forever.
    if depth > 32 {
        return;
    }
    let Some(properties) = properties(definitions, type_name) else {
        return;
    };
    for (name, property) in properties {
        path.push(name.clone());
        let spec = |suffix: Option<&str>| {
            let mut parts = path.clone();
            parts.extend(suffix.map(str::to_string));
            FieldSpec::new(&gvk.group, &gvk.version, &gvk.kind, &parts.join("/"), false)
        };
        let has = |key: &str| property.get(key).and_then(Value::as_str);
        if has("x-kubernetes-annotation").is_some() {
            std::sync::Arc::make_mut(&mut config.common_annotations).push(spec(None));
        }
        if has("x-kubernetes-label-selector").is_some() {
            std::sync::Arc::make_mut(&mut config.common_labels).push(spec(None));
        }
        if has("x-kubernetes-identity").is_some() {
            std::sync::Arc::make_mut(&mut config.name_prefix).push(spec(None));
        }
        if let (Some(version), Some(kind)) = (
            has("x-kubernetes-object-ref-api-version"),
            has("x-kubernetes-object-ref-kind"),
        ) {
            let key = has("x-kubernetes-object-ref-name-key").unwrap_or("name");
            let target = Gvk {
                group: String::new(),
                version: version.to_string(),
                kind: kind.to_string(),
            };
            config.add_name_references(target, [spec(Some(key))]);
        }
        if let Some(reference) = has("$ref") {
            walk(definitions, reference, gvk, path, config, depth + 1);
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_object_references_and_identity() {
        let document = json!({
            "example.com/v1.Bee": {"Schema": {"properties": {
                "kind": {}, "apiVersion": {}, "metadata": {},
                "spec": {"$ref": "example.com/v1.BeeSpec"},
            }}},
            "example.com/v1.BeeSpec": {"Schema": {"properties": {
                "secretRef": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "Secret"},
                "selector": {"x-kubernetes-label-selector": "true"},
            }}},
        });
        let mut config = TransformerConfig::default();
        load(&document, &mut config).expect("load");
        assert_eq!(config.name_reference.len(), 1);
        assert_eq!(config.name_reference[0].target.kind, "Secret");
        assert_eq!(
            config.name_reference[0].referrers[0].path,
            vec!["spec", "secretRef", "name"]
        );
        assert_eq!(config.common_labels[0].path, vec!["spec", "selector"]);
        assert_eq!(config.common_labels[0].gvk.kind, "Bee");
    }
}
