//! The `kustomization.yaml` file: its fields as kustomize v5 reads them.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// File names a kustomization directory may use, in the order kustomize tries them.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields kustomize has that kfop does not support: they fail the render rather than being ignored.
const UNSUPPORTED_FIELDS: &[&str] = &[
    "openapi",
    "helmCharts",
    "helmGlobals",
    "helmChartInflationGenerator",
    "generators",
    "transformers",
    "validators",
    "buildMetadata",
    "imageTags",
];

/// A parsed kustomization (or component).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Kustomization {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<Value>,
    pub resources: Vec<String>,
    pub bases: Vec<String>,
    pub components: Vec<String>,
    pub crds: Vec<String>,
    pub configurations: Vec<String>,
    pub namespace: String,
    pub name_prefix: String,
    pub name_suffix: String,
    pub common_labels: BTreeMap<String, String>,
    pub labels: Vec<LabelArgs>,
    pub common_annotations: BTreeMap<String, String>,
    pub patches_strategic_merge: Vec<String>,
    #[serde(rename = "patchesJson6902")]
    pub patches_json6902: Vec<PatchArgs>,
    pub patches: Vec<PatchArgs>,
    pub images: Vec<ImageArgs>,
    pub replicas: Vec<ReplicaArgs>,
    pub config_map_generator: Vec<GeneratorArgs>,
    pub secret_generator: Vec<GeneratorArgs>,
    pub generator_options: Option<GeneratorOptions>,
    pub vars: Vec<Var>,
    pub replacements: Vec<ReplacementEntry>,
    pub sort_options: Option<SortOptions>,
}

/// One `labels:` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LabelArgs {
    pub pairs: BTreeMap<String, String>,
    pub include_selectors: bool,
    pub include_templates: bool,
    pub fields: Vec<FieldSpecArgs>,
}

/// A field spec as written in `labels[].fields` and `configurations` files.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct FieldSpecArgs {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub path: String,
    pub create: bool,
}

/// A patch entry of `patches` or `patchesJson6902`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PatchArgs {
    pub path: Option<String>,
    pub patch: Option<String>,
    pub target: Option<Selector>,
    pub options: BTreeMap<String, bool>,
}

/// Selects objects by kind, name (a regular expression), namespace, labels and annotations.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Selector {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub label_selector: String,
    pub annotation_selector: String,
}

/// An `images:` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ImageArgs {
    pub name: String,
    pub new_name: String,
    pub new_tag: String,
    pub digest: String,
    pub tag_suffix: String,
}

/// A `replicas:` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ReplicaArgs {
    pub name: String,
    pub count: i64,
}

/// A `configMapGenerator` or `secretGenerator` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GeneratorArgs {
    pub name: String,
    pub namespace: String,
    pub behavior: String,
    pub literals: Vec<String>,
    pub files: Vec<String>,
    pub envs: Vec<String>,
    pub env: String,
    pub options: Option<GeneratorOptions>,
    /// Secrets only.
    #[serde(rename = "type")]
    pub type_: String,
}

/// `generatorOptions`, global or per generator.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GeneratorOptions {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub disable_name_suffix_hash: bool,
    pub immutable: bool,
}

/// A `vars:` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Var {
    pub name: String,
    pub objref: VarTarget,
    pub fieldref: FieldRef,
}

/// The object a var reads.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct VarTarget {
    pub api_version: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// The field a var reads (default `metadata.name`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct FieldRef {
    pub field_path: String,
}

/// A `replacements:` entry: inline, or a file holding a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ReplacementEntry {
    Path { path: String },
    Inline(Replacement),
}

/// One replacement: copy a source field into target fields.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Replacement {
    pub source: Option<ReplacementSource>,
    pub targets: Vec<ReplacementTarget>,
}

/// Where a replacement's value comes from.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ReplacementSource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub field_path: String,
    pub options: Option<ReplacementOptions>,
}

/// Where a replacement's value goes.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ReplacementTarget {
    pub select: Option<Selector>,
    pub reject: Vec<Selector>,
    pub field_paths: Vec<String>,
    pub options: Option<ReplacementOptions>,
}

/// Delimiter/index/create options of a replacement source or target.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ReplacementOptions {
    pub delimiter: String,
    pub index: i64,
    pub create: bool,
}

/// `sortOptions`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SortOptions {
    pub order: String,
    pub legacy_sort_options: Option<LegacySortOptions>,
}

/// `sortOptions.legacySortOptions`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LegacySortOptions {
    pub order_first: Vec<String>,
    pub order_last: Vec<String>,
}

/// Why a kustomization file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KustomizationError {
    #[error("unsupported field {0:?}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

impl Kustomization {
    /// Reads a kustomization from its parsed YAML document. Top-level field names match
    /// case-insensitively, as in kustomize (Go's JSON decoding).
    pub fn from_value(document: Value) -> Result<Self, KustomizationError> {
        let map = match document {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(KustomizationError::Invalid(format!(
                    "expected a mapping, found {other}"
                )));
            }
        };
        if let Some(field) = map.keys().find_map(|key| {
            UNSUPPORTED_FIELDS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(key))
        }) {
            return Err(KustomizationError::Unsupported((*field).to_string()));
        }
        let normalized = normalize_keys(Value::Object(map));
        let mut kustomization: Kustomization = serde_json::from_value(normalized)
            .map_err(|e| KustomizationError::Invalid(e.to_string()))?;
        // Legacy fields fold into their successors, as kustomize does after reading.
        let bases = std::mem::take(&mut kustomization.bases);
        kustomization.resources.extend(bases);
        for generator in kustomization
            .config_map_generator
            .iter_mut()
            .chain(kustomization.secret_generator.iter_mut())
        {
            if !generator.env.is_empty() {
                let env = std::mem::take(&mut generator.env);
                generator.envs.push(env);
            }
        }
        Ok(kustomization)
    }
}

/// Reads a kustomization-schema document as kustomize (Go's JSON decoding) does: keys that match a
/// field name case-insensitively are renamed to that name, a field whose value is null is absent
/// (so `resources:` with nothing under it is an empty list), and a null value in a map of user
/// keys (labels, annotations) is the empty string.
pub fn normalize_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| {
                    let canonical = KNOWN_FIELDS
                        .iter()
                        .find(|f| f.eq_ignore_ascii_case(&key))
                        .map(|f| (*f).to_string())
                        .unwrap_or(key);
                    let value = match value {
                        Value::Object(map) if FREE_FORM_FIELDS.contains(&canonical.as_str()) => {
                            nulls_as_empty_strings(map)
                        }
                        other => normalize_keys(other),
                    };
                    (canonical, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_keys).collect()),
        other => other,
    }
}

/// `{a: null}` → `{a: ""}`: what Go's decoding makes of a null in a `map[string]string`.
fn nulls_as_empty_strings(map: Map<String, Value>) -> Value {
    Value::Object(
        map.into_iter()
            .map(|(key, value)| match value {
                Value::Null => (key, Value::String(String::new())),
                other => (key, other),
            })
            .collect(),
    )
}

/// Fields whose values are maps of user keys (labels, annotations, object metadata).
const FREE_FORM_FIELDS: &[&str] = &[
    "commonLabels",
    "commonAnnotations",
    "pairs",
    "labels",
    "annotations",
    "metadata",
];

/// Every field name of the kustomization schema, top level and nested.
const KNOWN_FIELDS: &[&str] = &[
    "pairs",
    "includeSelectors",
    "includeTemplates",
    "fields",
    "group",
    "version",
    "path",
    "create",
    "patch",
    "target",
    "options",
    "labelSelector",
    "annotationSelector",
    "newName",
    "newTag",
    "digest",
    "tagSuffix",
    "count",
    "behavior",
    "literals",
    "files",
    "envs",
    "env",
    "type",
    "annotations",
    "disableNameSuffixHash",
    "immutable",
    "objref",
    "fieldref",
    "fieldPath",
    "source",
    "targets",
    "select",
    "reject",
    "fieldPaths",
    "delimiter",
    "index",
    "order",
    "legacySortOptions",
    "orderFirst",
    "orderLast",
    "name",
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "bases",
    "components",
    "crds",
    "configurations",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patchesStrategicMerge",
    "patchesJson6902",
    "patches",
    "images",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "vars",
    "replacements",
    "sortOptions",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_names_match_case_insensitively_and_legacy_fields_fold() {
        let k = Kustomization::from_value(json!({
            "resources": ["a.yaml"], "bases": ["../base"], "nameprefix": "p-",
            "configMapGenerator": [{"name": "c", "env": "params.env"}],
        }))
        .expect("valid");
        assert_eq!(k.resources, vec!["a.yaml", "../base"]);
        assert_eq!(k.name_prefix, "p-");
        assert_eq!(k.config_map_generator[0].envs, vec!["params.env"]);
    }

    #[test]
    fn unsupported_and_unknown_fields_are_errors() {
        let err = Kustomization::from_value(json!({"helmCharts": []})).expect_err("unsupported");
        assert_eq!(err.to_string(), "unsupported field \"helmCharts\"");
        let err = Kustomization::from_value(json!({"resourcez": []})).expect_err("unknown");
        assert!(
            err.to_string().contains("unknown field `resourcez`"),
            "{err}"
        );
    }
}
