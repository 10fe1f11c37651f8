//! A rendered Kubernetes object and the identity kustomize tracks for it.

use serde_json::{Map, Value};
use std::fmt;

/// Group, version and kind of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    /// Splits `apiVersion` (`group/version` or `version`) and pairs it with `kind`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        }
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether kustomize knows this exact apiVersion and kind to be cluster-scoped (unknown kinds,
    /// custom resources included, count as namespaced).
    pub fn is_cluster_scoped(&self) -> bool {
        CLUSTER_SCOPED.iter().any(|(api_version, kind)| {
            *kind == self.kind
                && match api_version.split_once('/') {
                    Some((group, version)) => group == self.group && version == self.version,
                    None => self.group.is_empty() && *api_version == self.version,
                }
        })
    }

    /// Whether every non-empty part of `selector` matches.
    pub fn is_selected_by(&self, selector: &Gvk) -> bool {
        (selector.group.is_empty() || selector.group == self.group)
            && (selector.version.is_empty() || selector.version == self.version)
            && (selector.kind.is_empty() || selector.kind == self.kind)
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.api_version())
    }
}

/// The apiVersion/kind pairs kustomize's built-in schema marks cluster-scoped.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"),
    ("apiregistration.k8s.io/v1", "APIService"),
    ("apiregistration.k8s.io/v1beta1", "APIService"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("certificates.k8s.io/v1beta1", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
    ),
    ("networking.k8s.io/v1", "IngressClass"),
    ("networking.k8s.io/v1beta1", "IngressClass"),
    ("node.k8s.io/v1", "RuntimeClass"),
    ("node.k8s.io/v1beta1", "RuntimeClass"),
    ("policy/v1beta1", "PodSecurityPolicy"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1alpha1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1alpha1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("scheduling.k8s.io/v1alpha1", "PriorityClass"),
    ("scheduling.k8s.io/v1beta1", "PriorityClass"),
    ("storage.k8s.io/v1", "CSIDriver"),
    ("storage.k8s.io/v1", "CSINode"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("storage.k8s.io/v1", "VolumeAttachment"),
    ("storage.k8s.io/v1beta1", "CSIDriver"),
    ("storage.k8s.io/v1beta1", "CSINode"),
    ("storage.k8s.io/v1beta1", "StorageClass"),
    ("storage.k8s.io/v1beta1", "VolumeAttachment"),
    ("v1", "ComponentStatus"),
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "PersistentVolume"),
];

/// The namespace used for equality when an object has none (or is cluster-scoped).
const DEFAULT_NAMESPACE: &str = "default";
const NO_NAMESPACE: &str = "_non_namespaceable_";

/// Kind, name and namespace: what makes an object unique in a render.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ResId {
    pub gvk: Gvk,
    pub name: String,
    /// Empty when the object names no namespace.
    pub namespace: String,
}

impl ResId {
    /// The namespace used for comparisons: `default` for none, a marker for cluster-scoped kinds.
    pub fn effective_namespace(&self) -> &str {
        if self.gvk.is_cluster_scoped() {
            NO_NAMESPACE
        } else if self.namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            &self.namespace
        }
    }

    /// What makes two ids the same object: kind, name and effective namespace.
    pub fn identity(&self) -> (Gvk, String, String) {
        (
            self.gvk.clone(),
            self.name.clone(),
            self.effective_namespace().to_string(),
        )
    }

    /// Same kind, name and effective namespace.
    pub fn same_object(&self, other: &ResId) -> bool {
        self.gvk == other.gvk
            && self.name == other.name
            && self.effective_namespace() == other.effective_namespace()
    }
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.gvk, self.name)
        } else {
            write!(f, "{} {}/{}", self.gvk, self.namespace, self.name)
        }
    }
}

/// One object of a render, with the bookkeeping kustomize keeps beside it.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The object itself (a JSON map).
    pub object: Value,
    /// Where it came from (a file, or the generator that made it), for error messages.
    pub origin: String,
    /// Earlier ids, oldest first, recorded before prefixes, suffixes, namespaces and hashes
    /// changed them. Name references, vars and patch targets match any of them.
    pub previous_ids: Vec<ResId>,
    /// Prefixes and suffixes added so far, outermost last.
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    /// A generated ConfigMap/Secret whose name gets the content hash at the end.
    pub needs_hash_suffix: bool,
    /// Names of the vars that read a field of this object.
    pub var_names: Vec<String>,
    /// Paths of the fields written as nothing (`key:`), which a strategic merge drops.
    pub written_empty: Vec<crate::render::yaml::FieldPath>,
}

impl Resource {
    /// Wraps an object read from `origin`.
    pub fn new(object: Value, origin: impl Into<String>) -> Self {
        Self {
            object,
            origin: origin.into(),
            previous_ids: Vec::new(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            needs_hash_suffix: false,
            var_names: Vec::new(),
            written_empty: Vec::new(),
        }
    }

    /// The object's apiVersion and kind.
    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(self.str_at(&["apiVersion"]), self.str_at(&["kind"]))
    }

    /// `metadata.name`, empty when missing.
    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"])
    }

    /// `metadata.namespace`, empty when missing.
    pub fn namespace(&self) -> &str {
        self.str_at(&["metadata", "namespace"])
    }

    /// The object's current id.
    pub fn id(&self) -> ResId {
        ResId {
            gvk: self.gvk(),
            name: self.name().to_string(),
            namespace: self.namespace().to_string(),
        }
    }

    /// The id it had when it entered the render (namespaces of stored ids are effective ones).
    pub fn original_id(&self) -> ResId {
        self.previous_ids
            .first()
            .cloned()
            .unwrap_or_else(|| self.id())
    }

    /// Every earlier id followed by the current one.
    pub fn all_ids(&self) -> Vec<ResId> {
        let mut ids = self.previous_ids.clone();
        ids.push(self.id());
        ids
    }

    /// Records the current id as a previous one, before a transformer changes it (kustomize stores
    /// the effective namespace).
    pub fn store_previous_id(&mut self) {
        let mut id = self.id();
        id.namespace = id.effective_namespace().to_string();
        self.previous_ids.push(id);
    }

    /// Sets `metadata.name`.
    pub fn set_name(&mut self, name: &str) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name.into()));
    }

    /// Sets `metadata.namespace`.
    pub fn set_namespace(&mut self, namespace: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(namespace.into()));
    }

    /// `metadata.labels`.
    pub fn labels(&self) -> Map<String, Value> {
        self.object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// `metadata.annotations`.
    pub fn annotations(&self) -> Map<String, Value> {
        self.object
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// The `metadata` map, created if missing.
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        if !self.object.is_object() {
            self.object = Value::Object(Map::new());
        }
        let Value::Object(object) = &mut self.object else {
            unreachable!("made an object above")
        };
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        match metadata {
            Value::Object(map) => map,
            _ => unreachable!("made an object above"),
        }
    }

    fn str_at(&self, path: &[&str]) -> &str {
        let mut value = &self.object;
        for key in path {
            match value.get(key) {
                Some(next) => value = next,
                None => return "",
            }
        }
        value.as_str().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_compare_by_effective_namespace() {
        let cm = |ns: &str| ResId {
            gvk: Gvk::from_api_version("v1", "ConfigMap"),
            name: "a".into(),
            namespace: ns.into(),
        };
        assert!(cm("").same_object(&cm("default")));
        assert!(!cm("").same_object(&cm("other")));
        let role = |ns: &str| ResId {
            gvk: Gvk::from_api_version("rbac.authorization.k8s.io/v1", "ClusterRole"),
            name: "r".into(),
            namespace: ns.into(),
        };
        assert!(role("x").same_object(&role("y")));
    }

    #[test]
    fn renames_keep_history() {
        let mut r = Resource::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            "test",
        );
        r.store_previous_id();
        r.set_name("p-a");
        r.store_previous_id();
        r.set_namespace("ns");
        assert_eq!(r.original_id().name, "a");
        assert_eq!(r.original_id().namespace, "default");
        let names: Vec<String> = r.all_ids().into_iter().map(|id| id.name).collect();
        assert_eq!(names, vec!["a", "p-a", "p-a"]);
        assert_eq!(r.id().namespace, "ns");
    }
}
