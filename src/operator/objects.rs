//! What kfop writes on every object it manages (labels, annotations, ownerReferences, the hash
//! of it all): pure, tested without a cluster.

use super::inventory::ObjectId;
use crate::kfdef::InventoryEntry;
use crate::render::resource::Gvk;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The field manager of every server-side apply kfop makes.
pub const FIELD_MANAGER: &str = "kfop";
/// Set on objects kfop manages when their manifest does not set it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kfop";
/// The UID of the KfDef an object belongs to (the watches select on it).
pub const KFDEF_UID_LABEL: &str = "kfop.dev/kfdef-uid";
/// The application (of that KfDef) that rendered the object.
pub const APPLICATION_LABEL: &str = "kfop.dev/application";
/// `namespace/name` of the owning KfDef, for people and conflict messages.
pub const KFDEF_ANNOTATION: &str = "kfop.dev/kfdef";
/// Hash of what kfop last applied: equal hashes mean nothing to write.
pub const HASH_ANNOTATION: &str = "kfop.dev/applied-hash";
/// "true" on an object kfop found in place and adopted: it is never deleted by kfop.
pub const ADOPTED_ANNOTATION: &str = "kfop.dev/adopted";
/// Set to "disabled" on an object to keep it when its KfDef stops rendering it.
pub const PRUNE_ANNOTATION: &str = "kfop.dev/prune";
/// The finalizer kfop puts on every KfDef.
pub const FINALIZER: &str = "kfop.dev/cleanup";

/// The KfDef an object belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// An object as kfop will apply it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub id: ObjectId,
    /// The API version to apply with.
    pub version: String,
    /// The application that rendered it.
    pub application: String,
    /// The full object, labels, annotations and ownerReferences included.
    pub object: Value,
    /// The hash recorded in [`HASH_ANNOTATION`].
    pub hash: String,
}

impl DesiredObject {
    /// The inventory entry for this object.
    pub fn inventory_entry(&self, adopted: bool) -> InventoryEntry {
        InventoryEntry {
            id: self.id.clone(),
            version: self.version.clone(),
            application: Some(self.application.clone()),
            adopted: adopted.then_some(true),
        }
    }
}

/// A valid label value for `text`: itself when valid, else a readable prefix and a hash.
pub fn label_value(text: &str) -> String {
    let valid = text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric());
    if valid {
        return text.to_string();
    }
    let digest = hex(&Sha256::digest(text.as_bytes()))[..10].to_string();
    let prefix: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(50)
        .collect();
    format!("{}-{digest}", prefix.trim_matches('-'))
        .trim_start_matches('-')
        .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prepares a rendered object for applying: namespace defaulted (for namespaced kinds), kfop's
/// labels and annotations added, an ownerReference to the KfDef when the object lives in the
/// KfDef's namespace (Kubernetes allows no other) and is not adopted (the garbage collector
/// would delete an adopted object with its KfDef), and the hash of it all recorded.
pub fn desired(
    owner: &Owner,
    application: &str,
    mut object: Value,
    namespaced: bool,
    adopted: bool,
) -> Result<DesiredObject, String> {
    let map = object
        .as_object_mut()
        .ok_or("a rendered document is not an object")?;
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if api_version.is_empty() || kind.is_empty() {
        return Err("an object has no apiVersion or kind".into());
    }
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("metadata is not a map")?;
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err(format!("a {kind} has no metadata.name"));
    }
    let namespace = if namespaced {
        let ns = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .unwrap_or(&owner.namespace)
            .to_string();
        metadata.insert("namespace".into(), json!(ns));
        Some(ns)
    } else {
        metadata.remove("namespace");
        None
    };
    for key in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        metadata.remove(key);
    }
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    if let Value::Object(labels) = labels {
        // Manifests may say who manages them (Kubeflow's say `kfctl`, and select on it): theirs stays.
        labels
            .entry(MANAGED_BY_LABEL)
            .or_insert_with(|| json!(MANAGED_BY));
        labels.insert(KFDEF_UID_LABEL.into(), json!(owner.uid));
        labels.insert(APPLICATION_LABEL.into(), json!(label_value(application)));
    }
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Value::Object(annotations) = annotations {
        annotations.insert(
            KFDEF_ANNOTATION.into(),
            json!(format!("{}/{}", owner.namespace, owner.name)),
        );
        annotations.remove(HASH_ANNOTATION);
        if adopted {
            annotations.insert(ADOPTED_ANNOTATION.into(), json!("true"));
        } else {
            annotations.remove(ADOPTED_ANNOTATION);
        }
    }
    if namespace.as_deref() == Some(owner.namespace.as_str()) && !adopted {
        let reference = json!({
            "apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef", "name": owner.name,
            "uid": owner.uid, "controller": true, "blockOwnerDeletion": true,
        });
        let references = metadata
            .entry("ownerReferences")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(references) = references {
            references.retain(|r| r.get("uid") != Some(&json!(owner.uid)));
            // Only one controller reference is allowed; an existing one keeps its place.
            let mut reference = reference;
            if references
                .iter()
                .any(|r| r.get("controller") == Some(&json!(true)))
            {
                reference["controller"] = json!(false);
            }
            references.push(reference);
        }
    }
    let hash = hex(&Sha256::digest(
        serde_json::to_vec(&object).map_err(|e| e.to_string())?,
    ));
    if let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") {
        annotations.insert(HASH_ANNOTATION.into(), json!(hash));
    }
    let Gvk { group, version, .. } = Gvk::from_api_version(&api_version, "");
    Ok(DesiredObject {
        id: ObjectId {
            group,
            kind,
            namespace,
            name,
        },
        version,
        application: application.to_string(),
        object,
        hash,
    })
}

/// An object as a user gives it (no kfop labels), for `kfop apply`: namespaced kinds without a
/// namespace go to `default_namespace` (cluster-scoped kinds simply ignore it).
pub fn plain(object: Value, default_namespace: &str) -> Result<DesiredObject, String> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if api_version.is_empty() || kind.is_empty() || name.is_empty() {
        return Err("every document needs apiVersion, kind and metadata.name".into());
    }
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            (kind != "Namespace" && kind != "CustomResourceDefinition")
                .then(|| default_namespace.to_string())
        });
    let Gvk { group, version, .. } = Gvk::from_api_version(&api_version, "");
    Ok(DesiredObject {
        id: ObjectId {
            group,
            kind,
            namespace,
            name,
        },
        version,
        application: String::new(),
        object,
        hash: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            name: "kf".into(),
            namespace: "kubeflow".into(),
            uid: "1234".into(),
        }
    }

    #[test]
    fn namespaced_objects_in_the_kfdef_namespace_get_an_owner_reference() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let d = desired(&owner(), "app", cm, true, false).expect("desired");
        assert_eq!(d.id.namespace.as_deref(), Some("kubeflow"));
        assert_eq!(d.object["metadata"]["ownerReferences"][0]["uid"], "1234");
        assert_eq!(d.object["metadata"]["labels"][KFDEF_UID_LABEL], "1234");
        assert_eq!(
            d.object["metadata"]["annotations"][HASH_ANNOTATION],
            json!(d.hash)
        );
    }

    #[test]
    fn cluster_scoped_and_foreign_namespace_objects_get_labels_only() {
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r", "namespace": "x"}});
        let d = desired(&owner(), "app", role, false, false).expect("desired");
        assert_eq!(d.id.namespace, None);
        assert!(d.object["metadata"].get("ownerReferences").is_none());
        assert!(d.object["metadata"].get("namespace").is_none());
        let other = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "istio-system"}});
        let d = desired(&owner(), "app", other, true, false).expect("desired");
        assert!(d.object["metadata"].get("ownerReferences").is_none());
        assert_eq!(d.object["metadata"]["labels"][MANAGED_BY_LABEL], "kfop");
    }

    #[test]
    fn the_hash_changes_with_the_content_only() {
        let cm = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": v}});
        let a = desired(&owner(), "app", cm("1"), true, false).expect("a");
        let again = desired(&owner(), "app", a.object.clone(), true, false).expect("again");
        let b = desired(&owner(), "app", cm("2"), true, false).expect("b");
        assert_eq!(a.hash, again.hash);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn adopted_objects_are_marked_and_get_no_owner_reference() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let d = desired(&owner(), "app", cm.clone(), true, true).expect("desired");
        assert!(d.object["metadata"].get("ownerReferences").is_none());
        assert_eq!(
            d.object["metadata"]["annotations"][ADOPTED_ANNOTATION],
            "true"
        );
        let ours = desired(&owner(), "app", cm, true, false).expect("desired");
        assert_ne!(d.hash, ours.hash);
    }

    #[test]
    fn label_values_stay_valid() {
        assert_eq!(label_value("jupyter-web-app"), "jupyter-web-app");
        let long = label_value(&"x".repeat(100));
        assert!(long.len() <= 63, "{long}");
        assert!(
            label_value("a b/c")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
    }

    #[test]
    fn objects_without_a_name_are_refused() {
        let err = desired(
            &owner(),
            "app",
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            true,
            false,
        )
        .expect_err("no name");
        assert!(err.contains("metadata.name"), "{err}");
    }
}
