//! `apiextensions.k8s.io/v1beta1` CustomResourceDefinition → `v1`.
//!
//! - `spec.version` becomes `spec.versions` (served and stored) when the list is absent.
//! - Top-level `validation`, `subresources` and `additionalPrinterColumns` move into every
//!   version that does not set its own; printer columns' `JSONPath` becomes `jsonPath`.
//! - v1 requires a structural schema for each version and prunes unknown fields. v1beta1 kept
//!   unknown fields unless `preserveUnknownFields: false`, so such a CRD's schema marks every
//!   object node `x-kubernetes-preserve-unknown-fields: true` (custom objects keep every field);
//!   a version without schema gets an open one. Whatever makes a schema non-structural is
//!   repaired: a node without a type gets one from its `properties`/`items`, or becomes an open
//!   node; an `{integer, string}` alternative becomes `x-kubernetes-int-or-string`; logical
//!   junctors that do more than validate values, `additionalProperties: true`, tuple `items`,
//!   `uniqueItems: true` and keywords v1 forbids are removed (validation is only ever loosened);
//!   the root `metadata` schema is reduced to `type: object`.
//! - A conversion webhook's `webhookClientConfig` and `conversionReviewVersions` (v1beta1's
//!   default `[v1beta1]` written out) move under `conversion.webhook`.
//! - v1 refuses a CRD in a group under `k8s.io` or `kubernetes.io` (`app.k8s.io`,
//!   `metacontroller.k8s.io`, …) without the `api-approved.kubernetes.io` annotation, which
//!   v1beta1 did not ask for: such a CRD is annotated `unapproved, …` (accepted, and marked as
//!   not approved by the Kubernetes API review).

use serde_json::{Map, Value, json};

const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
const JUNCTORS: [&str; 4] = ["allOf", "anyOf", "oneOf", "not"];
/// Keywords allowed in a structural schema's logical junctors (they validate values only).
const VALUE_VALIDATIONS: &[&str] = &[
    "required",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "enum",
    "format",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];
/// Keywords a v1 schema may not use.
const FORBIDDEN: &[&str] = &[
    "$schema",
    "$ref",
    "id",
    "definitions",
    "dependencies",
    "additionalItems",
    "patternProperties",
];

/// The annotation v1 requires on CRDs of the groups Kubernetes reserves.
const API_APPROVED: &str = "api-approved.kubernetes.io";

/// Converts the CRD in place.
pub fn to_v1(crd: &mut Map<String, Value>) -> Result<(), String> {
    let group = crd
        .get("spec")
        .and_then(|s| s.get("group"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if is_protected(group) {
        let annotations = super::object_at(crd, "metadata")
            .and_then(|m| super::object_at(m, "annotations"))
            .ok_or("metadata.annotations is not an object")?;
        annotations.entry(API_APPROVED).or_insert_with(|| {
            json!("unapproved, an apiextensions.k8s.io/v1beta1 CRD upgraded by kfop")
        });
    }
    let spec = crd
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or("it has no spec")?;
    let version = spec.remove("version");
    let validation = spec.remove("validation");
    let subresources = spec.remove("subresources");
    let columns = spec.remove("additionalPrinterColumns");
    let preserve = spec
        .remove("preserveUnknownFields")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let mut versions = match spec.remove("versions") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => match version {
            Some(Value::String(name)) => {
                vec![json!({"name": name, "served": true, "storage": true})]
            }
            _ => return Err("it names no version".into()),
        },
    };
    for entry in &mut versions {
        let Value::Object(entry) = entry else {
            return Err("a version is not an object".into());
        };
        if !entry.contains_key("schema")
            && let Some(validation) = &validation
        {
            entry.insert("schema".into(), validation.clone());
        }
        if !entry.contains_key("subresources")
            && let Some(subresources) = &subresources
        {
            entry.insert("subresources".into(), subresources.clone());
        }
        if !entry.contains_key("additionalPrinterColumns")
            && let Some(columns) = &columns
        {
            entry.insert("additionalPrinterColumns".into(), columns.clone());
        }
        if let Some(Value::Array(columns)) = entry.get_mut("additionalPrinterColumns") {
            for column in columns.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(path) = column.remove("JSONPath") {
                    column.insert("jsonPath".into(), path);
                }
            }
        }
        let schema = entry
            .remove("schema")
            .and_then(|s| s.get("openAPIV3Schema").cloned());
        entry.insert(
            "schema".into(),
            json!({"openAPIV3Schema": structural(schema, preserve)}),
        );
    }
    spec.insert("versions".into(), Value::Array(versions));
    if let Some(Value::Object(conversion)) = spec.get_mut("conversion") {
        let client = conversion.remove("webhookClientConfig");
        let review = conversion.remove("conversionReviewVersions");
        if conversion.get("strategy").and_then(Value::as_str) == Some("Webhook") {
            let mut webhook = Map::new();
            if let Some(client) = client {
                webhook.insert("clientConfig".into(), client);
            }
            webhook.insert(
                "conversionReviewVersions".into(),
                review.unwrap_or_else(|| json!(["v1beta1"])),
            );
            conversion.insert("webhook".into(), Value::Object(webhook));
        }
    }
    Ok(())
}

/// Whether Kubernetes reserves `group` (`k8s.io`, `kubernetes.io` and their subdomains).
fn is_protected(group: &str) -> bool {
    ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|d| group == *d || group.ends_with(&format!(".{d}")))
}

/// A structural v1 schema with the meaning of `schema` under v1beta1 (`preserve`: v1beta1's
/// `preserveUnknownFields`).
fn structural(schema: Option<Value>, preserve: bool) -> Value {
    let mut root = match schema {
        Some(Value::Object(map)) => Value::Object(map),
        _ => json!({}),
    };
    repair(&mut root, preserve);
    if let Value::Object(map) = &mut root {
        map.remove(INT_OR_STRING);
        map.insert("type".into(), json!("object"));
        if map.contains_key("additionalProperties") {
            map.remove(PRESERVE);
        } else if preserve || !map.contains_key("properties") {
            map.insert(PRESERVE.into(), json!(true));
        }
        if let Some(Value::Object(properties)) = map.get_mut("properties")
            && properties.contains_key("metadata")
        {
            properties.insert("metadata".into(), json!({"type": "object"}));
        }
    }
    root
}

/// Makes one schema node (and everything below it) structural.
fn repair(node: &mut Value, preserve: bool) {
    let Value::Object(map) = node else {
        *node = json!({ PRESERVE: true });
        return;
    };
    for key in FORBIDDEN {
        map.remove(*key);
    }
    if map.get("uniqueItems") == Some(&Value::Bool(true)) {
        map.remove("uniqueItems");
    }
    if map.get("type").is_some_and(|t| !t.is_string()) {
        map.remove("type");
    }
    let mut open = map.get(PRESERVE) == Some(&Value::Bool(true));
    for junctor in JUNCTORS {
        let Some(value) = map.get(junctor) else {
            continue;
        };
        if is_int_or_string(value) {
            map.insert(INT_OR_STRING.into(), json!(true));
            map.remove("type");
            map.remove(junctor);
        } else if !value_validations_only(value) {
            map.remove(junctor);
        }
    }
    match map.remove("additionalProperties") {
        Some(Value::Bool(true)) => open = true,
        Some(Value::Object(mut schema)) if !map.contains_key("properties") => {
            let mut inner = Value::Object(std::mem::take(&mut schema));
            repair(&mut inner, preserve);
            map.insert("additionalProperties".into(), inner);
        }
        // `false`, or a schema beside `properties`: v1 allows neither; pruning drops unknown
        // fields anyway.
        _ => {}
    }
    match map.get_mut("items") {
        Some(items @ Value::Object(_)) => repair(items, preserve),
        Some(_) => {
            map.remove("items");
            if map.get("type").and_then(Value::as_str) == Some("array") {
                map.insert("items".into(), json!({ PRESERVE: true }));
            }
        }
        None => {}
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        for property in properties.values_mut() {
            repair(property, preserve);
        }
    }
    if map.get(INT_OR_STRING) == Some(&Value::Bool(true)) {
        return;
    }
    if !map.contains_key("type") {
        if map.contains_key("properties") || map.contains_key("additionalProperties") {
            map.insert("type".into(), json!("object"));
        } else if map.contains_key("items") {
            map.insert("type".into(), json!("array"));
        } else {
            open = true;
        }
    }
    // A map (`additionalProperties` schema) keeps every key already.
    let is_object = map.get("type").and_then(Value::as_str) == Some("object")
        && !map.contains_key("additionalProperties");
    if is_object && (preserve || !map.contains_key("properties")) {
        open = true;
    }
    if map.get("type").and_then(Value::as_str) == Some("array") && !map.contains_key("items") {
        map.insert("items".into(), json!({ PRESERVE: true }));
    }
    if open {
        map.insert(PRESERVE.into(), json!(true));
    }
}

/// `anyOf`/`oneOf` of exactly `{type: integer}` and `{type: string}`.
fn is_int_or_string(junctor: &Value) -> bool {
    let Some(branches) = junctor.as_array() else {
        return false;
    };
    let mut types: Vec<&str> = branches
        .iter()
        .filter_map(|b| b.get("type").and_then(Value::as_str))
        .collect();
    types.sort_unstable();
    branches.len() == 2 && types == ["integer", "string"]
}

/// Whether a junctor only validates values (what a structural schema allows in one).
fn value_validations_only(junctor: &Value) -> bool {
    let branches: Vec<&Value> = match junctor {
        Value::Array(list) => list.iter().collect(),
        other => vec![other],
    };
    branches.into_iter().all(|branch| {
        branch.as_object().is_some_and(|map| {
            map.iter().all(|(key, value)| {
                VALUE_VALIDATIONS.contains(&key.as_str())
                    && (!JUNCTORS.contains(&key.as_str()) || value_validations_only(value))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(crd: Value) -> Value {
        let mut map = crd.as_object().cloned().unwrap_or_default();
        to_v1(&mut map).expect("converts");
        Value::Object(map)
    }

    fn names() -> Value {
        json!({"kind": "Notebook", "plural": "notebooks", "singular": "notebook"})
    }

    #[test]
    fn a_crd_without_schema_gets_an_open_one_per_version() {
        let out = convert(json!({"spec": {"group": "kubeflow.org", "names": names(),
            "scope": "Namespaced", "version": "v1alpha1"}}));
        assert_eq!(
            out["spec"],
            json!({"group": "kubeflow.org", "names": names(), "scope": "Namespaced",
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", PRESERVE: true}}}]})
        );
    }

    #[test]
    fn top_level_fields_move_into_each_version() {
        let out = convert(
            json!({"spec": {"group": "kubeflow.org", "names": names(), "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true},
                         {"name": "v1beta1", "served": true, "storage": false}],
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
            "additionalPrinterColumns": [{"name": "State", "type": "string", "JSONPath": ".status.state"}],
            "validation": {"openAPIV3Schema": {"properties": {"spec": {"properties": {"replicas": {"type": "integer"}}}}}}}}),
        );
        let versions = out["spec"]["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 2);
        for version in versions {
            assert_eq!(version["subresources"]["status"], json!({}));
            assert_eq!(
                version["additionalPrinterColumns"],
                json!([{"name": "State", "type": "string", "jsonPath": ".status.state"}])
            );
            assert_eq!(
                version["schema"]["openAPIV3Schema"],
                json!({"type": "object", PRESERVE: true, "properties": {"spec": {"type": "object",
                    PRESERVE: true, "properties": {"replicas": {"type": "integer"}}}}})
            );
        }
        for gone in [
            "validation",
            "subresources",
            "additionalPrinterColumns",
            "version",
        ] {
            assert_eq!(out["spec"].get(gone), None, "{gone}");
        }
    }

    #[test]
    fn several_versions_keep_their_own_schemas_and_columns() {
        let out = convert(
            json!({"spec": {"group": "serving.kubeflow.org", "names": names(),
            "scope": "Namespaced", "preserveUnknownFields": false,
            "versions": [
                {"name": "v1alpha2", "served": true, "storage": true,
                 "additionalPrinterColumns": [{"name": "URL", "type": "string", "JSONPath": ".status.url"}],
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                    "properties": {"a": {"type": "string"}}}}}}},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                    "properties": {"b": {"type": "integer"}}}}}}}]}}),
        );
        let versions = &out["spec"]["versions"];
        assert_eq!(
            versions[0]["additionalPrinterColumns"][0]["jsonPath"],
            ".status.url"
        );
        assert_eq!(versions[1].get("additionalPrinterColumns"), None);
        // Pruning was already on: an already-structural schema is kept exactly.
        assert_eq!(
            versions[0]["schema"]["openAPIV3Schema"],
            json!({"type": "object", "properties": {"spec": {"type": "object",
                "properties": {"a": {"type": "string"}}}}})
        );
        assert_eq!(
            versions[1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["b"],
            json!({"type": "integer"})
        );
        assert_eq!(out["spec"].get("preserveUnknownFields"), None);
    }

    #[test]
    fn a_non_structural_schema_becomes_structural() {
        let schema = json!({"properties": {
            "metadata": {"properties": {"name": {"type": "string", "maxLength": 63}, "labels": {}}},
            "spec": {
                "required": ["template"],
                "properties": {
                    "port": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "template": {"description": "a pod template, no type"},
                    "ids": {"type": "array", "items": [{"type": "string"}], "uniqueItems": true},
                    "mode": {"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "^b"}]},
                    "choice": {"type": "object", "oneOf": [{"properties": {"x": {"type": "string"}}}]},
                    "env": {"type": "object", "additionalProperties": true},
                    "loose": {"$ref": "#/definitions/x", "type": ["string", "null"]}
                }
            }
        }});
        let out = convert(json!({"spec": {"group": "kubeflow.org", "names": names(),
            "scope": "Namespaced", "version": "v1", "validation": {"openAPIV3Schema": schema}}}));
        let root = &out["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let spec = &root["properties"]["spec"];
        assert_eq!(root["type"], "object");
        assert_eq!(root[PRESERVE], true);
        assert_eq!(root["properties"]["metadata"], json!({"type": "object"}));
        assert_eq!(spec["type"], "object");
        assert_eq!(spec[PRESERVE], true);
        assert_eq!(spec["required"], json!(["template"]));
        let properties = &spec["properties"];
        assert_eq!(properties["port"], json!({INT_OR_STRING: true}));
        assert_eq!(
            properties["template"],
            json!({"description": "a pod template, no type", PRESERVE: true})
        );
        assert_eq!(
            properties["ids"],
            json!({"type": "array", "items": {PRESERVE: true}})
        );
        assert_eq!(
            properties["mode"],
            json!({"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "^b"}]})
        );
        assert_eq!(
            properties["choice"],
            json!({"type": "object", PRESERVE: true})
        );
        assert_eq!(properties["env"], json!({"type": "object", PRESERVE: true}));
        assert_eq!(properties["loose"], json!({PRESERVE: true}));
        assert!(is_structural(root), "{root:#}");
    }

    #[test]
    fn with_pruning_on_only_untyped_nodes_are_opened() {
        let out = convert(json!({"spec": {"group": "kubeflow.org", "names": names(),
            "scope": "Namespaced", "version": "v1", "preserveUnknownFields": false,
            "validation": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"a": {"type": "string"}, "b": {}},
                    "additionalProperties": false}}}}}}));
        let root = &out["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_eq!(
            root,
            &json!({"type": "object", "properties": {"spec": {"type": "object",
                "properties": {"a": {"type": "string"}, "b": {PRESERVE: true}}}}})
        );
    }

    #[test]
    fn conversion_webhooks_move_under_webhook() {
        let out = convert(
            json!({"spec": {"group": "kubeflow.org", "names": names(), "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true}],
            "conversion": {"strategy": "Webhook", "webhookClientConfig": {"service": {"name": "conv", "namespace": "kf", "path": "/convert"}}}}}),
        );
        assert_eq!(
            out["spec"]["conversion"],
            json!({"strategy": "Webhook", "webhook": {
                "clientConfig": {"service": {"name": "conv", "namespace": "kf", "path": "/convert"}},
                "conversionReviewVersions": ["v1beta1"]}})
        );
        let none = convert(
            json!({"spec": {"group": "g", "names": names(), "scope": "Namespaced",
            "version": "v1", "conversion": {"strategy": "None"}}}),
        );
        assert_eq!(none["spec"]["conversion"], json!({"strategy": "None"}));
    }

    #[test]
    fn crds_of_reserved_groups_are_marked_unapproved() {
        let crd = |group: &str, annotations: Value| {
            convert(
                json!({"metadata": {"name": "x", "annotations": annotations},
                "spec": {"group": group, "names": names(), "scope": "Namespaced", "version": "v1"}}),
            )
        };
        for group in [
            "app.k8s.io",
            "metacontroller.k8s.io",
            "x.kubernetes.io",
            "k8s.io",
        ] {
            let out = crd(group, json!({}));
            let value = out["metadata"]["annotations"][API_APPROVED]
                .as_str()
                .unwrap_or("");
            assert!(value.starts_with("unapproved"), "{group}: {value}");
        }
        let approved = crd(
            "app.k8s.io",
            json!({API_APPROVED: "https://github.com/kubernetes/enhancements/pull/1111"}),
        );
        assert_eq!(
            approved["metadata"]["annotations"][API_APPROVED],
            "https://github.com/kubernetes/enhancements/pull/1111"
        );
        for group in ["kubeflow.org", "notk8s.io", "k8s.io.example.com"] {
            assert_eq!(
                crd(group, json!({}))["metadata"]["annotations"].get(API_APPROVED),
                None
            );
        }
    }

    #[test]
    fn a_crd_without_a_version_is_refused() {
        let mut map = json!({"spec": {"group": "g", "names": names()}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(to_v1(&mut map).is_err());
    }

    /// The structural rules v1 enforces, as far as these tests need them: every node has a type
    /// or is open or int-or-string, no forbidden keywords, junctors validate values only.
    fn is_structural(node: &Value) -> bool {
        let Some(map) = node.as_object() else {
            return false;
        };
        let typed = map.get("type").is_some_and(Value::is_string)
            || map.get(PRESERVE) == Some(&json!(true))
            || map.get(INT_OR_STRING) == Some(&json!(true));
        let junctors_ok = JUNCTORS.iter().all(|j| {
            map.get(*j)
                .is_none_or(|v| value_validations_only(v) || is_int_or_string(v))
        });
        typed
            && junctors_ok
            && FORBIDDEN.iter().all(|k| !map.contains_key(*k))
            && map.get("uniqueItems") != Some(&json!(true))
            && map
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(|p| p.values().all(is_structural))
            && map.get("items").is_none_or(is_structural)
    }
}
