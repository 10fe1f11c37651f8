//! The `kfdef.apps.kubeflow.org/v1` `KfDef` API, with kfctl's field names.
//!
//! Every field kfctl defines is kept and round-trips, whether or not kfop acts on it; `docs/kfdef.md`
//! describes the API and where kfop differs from kfctl. kfop adds one optional field, `spec.repos[].sha256`.

use crate::operator::inventory::ObjectId;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The API group and version of `KfDef`, as `apiVersion` spells it.
pub const API_VERSION: &str = "kfdef.apps.kubeflow.org/v1";

/// What a KfDef installs: its manifest repos, applications, plugins and secrets. The custom resource
/// itself, [`KfDef`], is generated from this type.
// Clippy reads the printer columns' repeated `type_ = "string"` as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kfdef.apps.kubeflow.org",
    version = "v1",
    kind = "KfDef",
    namespaced,
    status = "KfDefStatus",
    shortname = "kfd",
    derive = "PartialEq",
    derive = "Default",
    doc = "A Kubeflow deployment: the manifest repos it reads and the applications it installs from them.",
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Available")].status"#
    ),
    printcolumn(
        name = "Applications",
        type_ = "string",
        description = "Ready applications out of all applications",
        json_path = ".status.applicationsReady"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = r#".status.conditions[?(@.type=="Available")].reason"#
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KfDefSpec {
    /// The Kubeflow version this KfDef installs, e.g. `v1.0.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The applications to install, in order.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub applications: Vec<Application>,
    /// Platform plugins (e.g. `KfGcpPlugin`, `KfAwsPlugin`); kfop keeps them but does not run them.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub plugins: Vec<Plugin>,
    /// Secrets the plugins read.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub secrets: Vec<Secret>,
    /// The manifest repos the applications refer to by name.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub repos: Vec<Repo>,
}

/// One application: a kustomize package inside a repo, with overlays and parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// The application's name, unique within the KfDef.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Where the application's kustomize package is and how to customise it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize_config: Option<KustomizeConfig>,
}

/// How an application is built with kustomize.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeConfig {
    /// The repo and the path inside it of the application's package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_ref: Option<RepoRef>,
    /// Folders under `<path>/overlays/` merged over `<path>/base`, in order.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub overlays: Vec<String>,
    /// Values written into the package's `params.env` files.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parameters: Vec<Parameter>,
}

/// A path inside a named repo.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoRef {
    /// The name of an entry of `spec.repos`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// A path relative to the repo's root; empty or absent means the root itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A kustomize parameter (kfctl's `NameValue`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// The parameter's name, as written in `params.env`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Its value; empty or absent leaves the package's own value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A platform plugin: an open object that kfop keeps unchanged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct Plugin {
    /// The plugin's API version, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The plugin's kind, e.g. `KfGcpPlugin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The plugin's metadata (usually just `name`), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The plugin's settings, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub spec: Option<serde_json::Value>,
    /// Any other fields, kept as written.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Plugin {
    /// The plugin's `metadata.name`, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.get("name")?.as_str()
    }
}

/// A secret that plugins read, given literally or by environment variable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// The secret's name, unique within the KfDef.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Where the secret's value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_source: Option<SecretSource>,
}

/// The source of a secret's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource {
    /// The value itself (stored in the KfDef in plain text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal_source: Option<LiteralSource>,
    /// An environment variable of the process that reads the KfDef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_source: Option<EnvSource>,
}

/// A secret value written in the KfDef.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiteralSource {
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A secret value read from an environment variable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvSource {
    /// The variable's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A manifest repo: a local directory, a `file://` path or an `http(s)://` `.tar.gz` archive.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Repo {
    /// The name applications use in `repoRef.name`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Where the repo is, e.g. `https://github.com/kubeflow/manifests/archive/v1.0.2.tar.gz`.
    #[schemars(length(min = 1))]
    pub uri: String,
    /// kfop extension: the lowercase hex SHA-256 of the archive; a download that differs is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
}

/// What kfop observed of a KfDef.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KfDefStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The KfDef's conditions, one per type (e.g. `Available`, `Degraded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Ready applications out of all applications, e.g. `42/44`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_ready: Option<String>,
    /// One entry per application of the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub applications: Vec<ApplicationStatus>,
    /// Every object kfop applied for this KfDef.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
    /// kfctl's record of where it cached each repo; kfop keeps it but does not write it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos_cache: Vec<RepoCacheEntry>,
    /// Rendered objects kfop rewrote into an API version the cluster serves, and those it left
    /// out because the cluster serves no equivalent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrades: Option<UpgradeStatus>,
}

/// What kfop changed so that the cluster serves every rendered object (`docs/upgrade.md`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStatus {
    /// How many objects were upgraded from an API version the cluster no longer serves (each
    /// carries the annotation `kfop.dev/upgraded-from`).
    pub upgraded: i64,
    /// How many objects of each old apiVersion and kind were upgraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgraded_from: Vec<UpgradedKind>,
    /// Objects not applied because the cluster serves no equivalent kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedObject>,
}

/// How many objects of one old apiVersion and kind were upgraded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradedKind {
    /// The apiVersion the manifests use.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// How many objects.
    pub count: i64,
}

/// An object kfop did not apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedObject {
    /// The application that rendered it.
    pub application: String,
    /// `Kind.apiVersion namespace/name`.
    pub object: String,
    /// Why it has no served equivalent.
    pub reason: String,
}

impl KfDefStatus {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A condition, following the Kubernetes API conventions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `Available`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub type_: String,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// A CamelCase word saying why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kfctl's last update time; kfop keeps it but does not write it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
}

/// The status of a condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    #[default]
    Unknown,
}

/// What kfop observed of one application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// The application's name.
    pub name: String,
    /// Whether the application is applied and ready.
    pub ready: ConditionStatus,
    /// A CamelCase word saying why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many objects the application rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<i64>,
}

/// One object kfop applied.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// Which object.
    #[serde(flatten)]
    pub id: ObjectId,
    /// The API version it was applied with.
    pub version: String,
    /// The application that rendered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The object existed before kfop applied it: kfop manages its fields but never deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<bool>,
}

/// kfctl's record of a repo's local copy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoCacheEntry {
    /// The repo's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where kfctl unpacked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
}

/// A list written as null (`overlays:` with nothing under it) is empty, as kfctl read it.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// The schema of an object whose fields kfop keeps as written.
fn open_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A KfDef read from YAML, with the paths of the fields kfop does not know (kfctl ignored them too).
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The KfDef.
    pub kfdef: KfDef,
    /// Paths of unknown fields, e.g. `spec.applications.3.kustomizeConfig.overlay`.
    pub unknown_fields: Vec<String>,
}

/// Why a KfDef could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The file could not be read.
    #[error("reading {source_name}: {error}")]
    Read {
        /// The file.
        source_name: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The YAML is malformed or does not fit the KfDef API.
    #[error("{source_name}: {error}")]
    Yaml {
        /// The file or other source.
        source_name: String,
        /// The parser's message, with line and column.
        error: Box<serde_saphyr::Error>,
    },
    /// The document is not a `kfdef.apps.kubeflow.org/v1` `KfDef`.
    #[error(
        "{source_name}: expected apiVersion {API_VERSION} and kind KfDef, found apiVersion {api_version:?} and kind {kind:?}"
    )]
    WrongType {
        /// The file or other source.
        source_name: String,
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
}

/// Parses one KfDef YAML document; `source_name` names it (e.g. the file) in errors.
pub fn parse(yaml: &str, source_name: &str) -> Result<Parsed, ParseError> {
    let yaml_error = |error| ParseError::Yaml {
        source_name: source_name.to_string(),
        error: Box::new(error),
    };
    // The type is checked first, so that another API's document gets this error and not a field's.
    let type_meta: TypeMeta = serde_saphyr::from_str(yaml).map_err(yaml_error)?;
    if type_meta.api_version.as_deref() != Some(API_VERSION)
        || type_meta.kind.as_deref() != Some("KfDef")
    {
        return Err(ParseError::WrongType {
            source_name: source_name.to_string(),
            api_version: type_meta.api_version.unwrap_or_default(),
            kind: type_meta.kind.unwrap_or_default(),
        });
    }
    let mut unknown_fields = Vec::new();
    let kfdef = serde_saphyr::with_deserializer_from_str(yaml, |de| {
        serde_ignored::deserialize(de, |path| {
            // serde_ignored writes `?` for an `Option`; people want the field names only.
            let path = path.to_string().replace(".?", "");
            if path != "apiVersion" && path != "kind" {
                unknown_fields.push(path);
            }
        })
    })
    .map_err(yaml_error)?;
    Ok(Parsed {
        kfdef,
        unknown_fields,
    })
}

/// The `apiVersion` and `kind` of a document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    api_version: Option<String>,
    kind: Option<String>,
}

/// Reads and parses a KfDef file.
pub fn read_file(path: &Path) -> Result<Parsed, ParseError> {
    let source_name = path.display().to_string();
    let yaml = std::fs::read_to_string(path).map_err(|error| ParseError::Read {
        source_name: source_name.clone(),
        error,
    })?;
    parse(&yaml, &source_name)
}

/// Names a KfDef document that has no `metadata.name` (kfctl took the name from the app folder,
/// so its KfDef files have none): `name` if given, else one made from the file name
/// (`kfctl_k8s_istio.v1.0.2.yaml` → `kfctl-k8s-istio-v1-0-2`). Returns the name it set, `None`
/// for any other document or a KfDef that has a name.
pub fn name_unnamed(
    document: &mut serde_json::Value,
    name: Option<&str>,
    file: &Path,
) -> Result<Option<String>, String> {
    let is_kfdef = document.get("apiVersion").and_then(|v| v.as_str()) == Some(API_VERSION)
        && document.get("kind").and_then(|v| v.as_str()) == Some("KfDef");
    let named = document
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .is_some_and(|n| !n.is_empty());
    if !is_kfdef || named {
        return Ok(None);
    }
    let chosen = match name {
        Some(given) => {
            if name_from(given) != given {
                return Err(format!(
                    "--name {given:?} is not a valid name (lowercase letters, digits and '-', at most 63)"
                ));
            }
            given.to_string()
        }
        None => {
            let stem = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .trim_end_matches(".yaml")
                .trim_end_matches(".yml")
                .trim_end_matches(".json");
            let derived = name_from(stem);
            if derived.is_empty() {
                return Err(format!(
                    "{}: the KfDef has no metadata.name and none can be made from the file name; give --name",
                    file.display()
                ));
            }
            derived
        }
    };
    let Some(object) = document.as_object_mut() else {
        return Ok(None);
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| serde_json::json!({}));
    if !metadata.is_object() {
        *metadata = serde_json::json!({});
    }
    metadata["name"] = serde_json::Value::String(chosen.clone());
    Ok(Some(chosen))
}

/// A DNS-1123 label made from `text`: lowercased, other characters turned into `-`, trimmed
/// to 63 characters that start and end with a letter or digit.
fn name_from(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = String::new();
    for c in mapped.trim_matches('-').chars() {
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    #[test]
    fn an_unnamed_kfdef_is_named_from_the_flag_or_the_file() {
        let file = Path::new("kfdef/kfctl_k8s_istio.v1.0.2.yaml");
        let kfdef = || json!({"apiVersion": API_VERSION, "kind": "KfDef", "spec": {}});
        let mut document = kfdef();
        assert_eq!(
            name_unnamed(&mut document, None, file),
            Ok(Some("kfctl-k8s-istio-v1-0-2".into()))
        );
        assert_eq!(document["metadata"]["name"], "kfctl-k8s-istio-v1-0-2");
        let mut document = kfdef();
        assert_eq!(
            name_unnamed(&mut document, Some("kubeflow"), file),
            Ok(Some("kubeflow".into()))
        );
        assert!(name_unnamed(&mut kfdef(), Some("Not Valid"), file).is_err());
        assert!(name_unnamed(&mut kfdef(), None, Path::new("___.yaml")).is_err());
        // A named KfDef and other documents are left alone.
        let mut named =
            json!({"apiVersion": API_VERSION, "kind": "KfDef", "metadata": {"name": "kf"}});
        assert_eq!(name_unnamed(&mut named, Some("other"), file), Ok(None));
        assert_eq!(named["metadata"]["name"], "kf");
        let mut namespace = json!({"apiVersion": "v1", "kind": "Namespace"});
        assert_eq!(name_unnamed(&mut namespace, None, file), Ok(None));
        assert_eq!(namespace.get("metadata"), None);
    }

    #[test]
    fn parses_a_minimal_kfdef_and_reports_unknown_fields() {
        let yaml = "apiVersion: kfdef.apps.kubeflow.org/v1\nkind: KfDef\nmetadata:\n  name: kf\nspec:\n  applications:\n  - name: a\n    kustomizeConfig:\n      overlay: [x]\n      repoRef: {name: manifests, path: a}\n  repos:\n  - name: manifests\n    uri: /tmp/m\n";
        let parsed = parse(yaml, "kf.yaml").expect("parses");
        let app = &parsed.kfdef.spec.applications[0];
        assert_eq!(app.name, "a");
        let repo_ref = app
            .kustomize_config
            .as_ref()
            .and_then(|k| k.repo_ref.as_ref());
        assert_eq!(repo_ref.map(|r| r.name.as_str()), Some("manifests"));
        assert_eq!(
            parsed.unknown_fields,
            ["spec.applications.0.kustomizeConfig.overlay"]
        );
    }

    #[test]
    fn null_lists_read_as_empty() {
        let yaml = "apiVersion: kfdef.apps.kubeflow.org/v1\nkind: KfDef\nmetadata: {}\nspec:\n  applications:\n  - name: a\n    kustomizeConfig:\n      overlays:\n      parameters: ~\n      repoRef: {name: m, path: a}\n  plugins:\n  secrets: null\n  repos:\n  - name: m\n    uri: /m\n";
        let parsed = parse(yaml, "kf.yaml").expect("nulls are empty lists");
        let config = parsed.kfdef.spec.applications[0]
            .kustomize_config
            .as_ref()
            .expect("kustomizeConfig");
        assert!(config.overlays.is_empty() && config.parameters.is_empty());
        assert!(parsed.kfdef.spec.plugins.is_empty() && parsed.kfdef.spec.secrets.is_empty());
        assert!(
            parsed.unknown_fields.is_empty(),
            "{:?}",
            parsed.unknown_fields
        );
    }

    #[test]
    fn rejects_another_api_version() {
        let yaml =
            "apiVersion: kfdef.apps.kubeflow.org/v1beta1\nkind: KfDef\nmetadata: {}\nspec: {}\n";
        let error = parse(yaml, "old.yaml").expect_err("v1beta1 is refused");
        assert!(matches!(error, ParseError::WrongType { .. }), "{error}");
        assert!(error.to_string().contains("v1beta1"), "{error}");
    }

    #[test]
    fn malformed_yaml_names_the_source_and_line() {
        let yaml = "apiVersion: kfdef.apps.kubeflow.org/v1\nkind: KfDef\nmetadata: {}\nspec:\n  applications: 3\n";
        let message = parse(yaml, "bad.yaml").expect_err("bad").to_string();
        assert!(message.starts_with("bad.yaml: "), "{message}");
        assert!(message.contains("line 5"), "no line number in: {message}");
    }

    #[test]
    fn plugins_keep_every_field() {
        let plugin = json!({"kind": "KfGcpPlugin", "metadata": {"name": "gcp", "creationTimestamp": null},
                            "status": {"phase": "x"},
                            "spec": {"deploymentManagerConfig": {"repoRef": {"name": "manifests"}}, "x": [1, true]}});
        let parsed: Plugin = serde_json::from_value(plugin.clone()).expect("plugin");
        assert_eq!(parsed.name(), Some("gcp"));
        assert_eq!(serde_json::to_value(&parsed).expect("serialize"), plugin);
    }

    #[test]
    fn schema_is_open_only_where_kfctl_is() {
        let crd = serde_json::to_value(KfDef::crd()).expect("crd");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let text = serde_json::to_string(schema).expect("schema");
        assert_eq!(
            text.matches("x-kubernetes-preserve-unknown-fields").count(),
            3,
            "only plugins, their metadata and their spec are open: {schema:#}"
        );
        let plugin = &schema["properties"]["spec"]["properties"]["plugins"]["items"];
        assert_eq!(
            plugin["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        let repo = &schema["properties"]["spec"]["properties"]["repos"]["items"];
        assert_eq!(repo["required"], json!(["name", "uri"]));
        assert_eq!(
            repo["properties"]["sha256"]["pattern"],
            json!("^[0-9a-f]{64}$")
        );
    }
}
