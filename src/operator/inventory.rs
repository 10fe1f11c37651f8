//! Which objects a KfDef manages: the one identity type ([`ObjectId`]), what kfop can tell of a
//! live object from its metadata ([`Live`]), the order of waves, and the ownership rules (ours,
//! adopted, someone else's). Pure; the planner and the watches share it.

use super::objects::{
    ADOPTED_ANNOTATION, FIELD_MANAGER, HASH_ANNOTATION, KFDEF_ANNOTATION, KFDEF_UID_LABEL,
    PRUNE_ANNOTATION,
};
use crate::kfdef::InventoryEntry;
use kube::api::{DynamicObject, PartialObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Group, kind, namespace and name: an object's identity across API versions.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectId {
    /// The API group, empty for the core group.
    pub group: String,
    /// The kind.
    pub kind: String,
    /// The namespace, absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectId {
    /// The wave this object is applied in (see [`wave`]).
    pub fn wave(&self) -> u8 {
        wave(&self.group, &self.kind)
    }

    /// Whether this is a Namespace.
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.kind == "Namespace"
    }

    /// Whether this is a CustomResourceDefinition.
    pub fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.kind == "CustomResourceDefinition"
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)?;
        } else {
            write!(f, "{}.{}", self.kind, self.group)?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " {ns}/{}", self.name),
            None => write!(f, " {}", self.name),
        }
    }
}

/// How many waves there are.
pub const WAVES: u8 = 4;

/// The wave a kind is applied in: Namespaces, then CRDs, then everything else, then webhook
/// configurations (which could otherwise block the rest while their service is not up).
/// Deletion runs the waves backwards.
pub fn wave(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => 3,
        _ => 2,
    }
}

/// What kfop knows of a live object from its metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// The KfDef UID in its label.
    pub kfdef_uid: Option<String>,
    /// `namespace/name` of that KfDef, from its annotation.
    pub kfdef: Option<String>,
    /// The hash kfop recorded when it last applied it.
    pub hash: Option<String>,
    /// Whether the object opts out of pruning.
    pub prune_disabled: bool,
    /// Whether kfop adopted it (it existed before kfop applied it).
    pub adopted: bool,
    /// Whether another manager changed it after kfop last did.
    pub changed_by_others: bool,
    /// A digest of the other managers' entries in `managedFields` (status excluded): when it
    /// moves between two events that kfop's writes did not cause, someone else changed the
    /// object (a write of kfop's that takes a field back moves it too).
    pub others_signature: u64,
    /// Whether it is being deleted.
    pub deleting: bool,
}

impl Live {
    /// Reads what kfop needs from an object's metadata.
    pub fn from_meta(meta: &PartialObjectMeta<DynamicObject>) -> Self {
        let m = &meta.metadata;
        let label = |key: &str| m.labels.as_ref().and_then(|l| l.get(key)).cloned();
        let annotation = |key: &str| m.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        let entries = m.managed_fields.as_deref().unwrap_or_default();
        let ours = entries
            .iter()
            .filter(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
            .filter_map(|e| e.time.as_ref().map(|t| t.0))
            .max();
        let others: Vec<_> = entries
            .iter()
            .filter(|e| e.manager.as_deref() != Some(FIELD_MANAGER))
            .filter(|e| e.subresource.as_deref().is_none_or(str::is_empty))
            .collect();
        let changed_by_others = others
            .iter()
            .any(|e| matches!((e.time.as_ref(), ours), (Some(t), Some(o)) if t.0 > o));
        let others_signature = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            for e in &others {
                e.manager.hash(&mut hasher);
                e.operation.hash(&mut hasher);
                e.time.as_ref().map(|t| t.0.to_string()).hash(&mut hasher);
                e.fields_v1
                    .as_ref()
                    .map(|f| f.0.to_string())
                    .hash(&mut hasher);
            }
            hasher.finish()
        };
        Self {
            kfdef_uid: label(KFDEF_UID_LABEL),
            kfdef: annotation(KFDEF_ANNOTATION),
            hash: annotation(HASH_ANNOTATION),
            prune_disabled: annotation(PRUNE_ANNOTATION).is_some_and(|v| v == "disabled"),
            adopted: annotation(ADOPTED_ANNOTATION).is_some_and(|v| v == "true"),
            changed_by_others,
            others_signature,
            deleting: m.deletion_timestamp.is_some(),
        }
    }
}

/// What is known of an object in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// It does not exist.
    Absent,
    /// It exists.
    Present(Live),
    /// It could not be looked up (why).
    Unknown(String),
}

/// The live view the planner works from: every object it asks about (an object missing from the
/// map is [`Observed::Unknown`]).
pub type LiveView = BTreeMap<ObjectId, Observed>;

/// Who an object belongs to, as far as one KfDef is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// kfop created it for this KfDef (or will).
    Ours,
    /// It existed before this KfDef applied it: kfop manages its fields but never deletes it.
    Adopted,
    /// Another KfDef manages it (`namespace/name (uid …)`).
    Other(String),
}

/// The ownership rule: another KfDef's label means a conflict; an object this KfDef adopted
/// before (its inventory or the object's own annotation says so) stays adopted; an object found
/// without kfop's label that this KfDef never created is adopted; everything else is ours.
pub fn ownership(
    owner_uid: &str,
    previous: Option<&InventoryEntry>,
    observed: &Observed,
) -> Ownership {
    let live = match observed {
        Observed::Present(live) => Some(live),
        _ => None,
    };
    if let Some(other) = live.and_then(|l| l.kfdef_uid.as_deref())
        && other != owner_uid
    {
        let name = live
            .and_then(|l| l.kfdef.clone())
            .unwrap_or_else(|| "(unknown)".into());
        return Ownership::Other(format!("{name} (uid {other})"));
    }
    let adopted_before = previous.is_some_and(|e| e.adopted == Some(true));
    let adopted_now =
        live.is_some_and(|l| l.adopted || (l.kfdef_uid.is_none() && previous.is_none()));
    if adopted_before || adopted_now {
        Ownership::Adopted
    } else {
        Ownership::Ours
    }
}

/// Whether a synced watch saying an object is absent can be believed. The watches select on
/// kfop's label, so they cannot see an object someone else created: only for an object this
/// KfDef applied before (in its inventory) is absence from the watch final; any other object is
/// looked up, so that an object created before the KfDef, or after the watch synced, is adopted.
pub fn watch_absence_is_final(previous: Option<&InventoryEntry>) -> bool {
    previous.is_some()
}

/// Whether the change between two events of one object was made by someone else: the other
/// managers' entries moved, and the event is not the result of one of kfop's own writes.
pub fn changed_by_others(before: &Live, now: &Live, written_by_kfop: bool) -> bool {
    before.others_signature != now.others_signature && !written_by_kfop
}

/// The union of two copies of an inventory (the stored status and the one kfop wrote last,
/// which the stored copy may predate), one entry per object, the later copy winning.
pub fn merge(stored: &[InventoryEntry], written_last: &[InventoryEntry]) -> Vec<InventoryEntry> {
    if stored == written_last {
        // The usual case once kfop's last write is stored (kfop writes one entry per object).
        return written_last.to_vec();
    }
    let mut by_id: BTreeMap<&ObjectId, &InventoryEntry> = BTreeMap::new();
    for entry in stored.iter().chain(written_last) {
        by_id.insert(&entry.id, entry);
    }
    by_id.into_values().cloned().collect()
}

/// The objects to delete when a KfDef goes, wave by wave (webhooks first, namespaces last):
/// every inventory entry and every object labelled for it, except what it adopted.
pub fn deletion_order(
    inventory: &[InventoryEntry],
    labelled: &[(ObjectId, String, Live)],
) -> Vec<Vec<(ObjectId, String)>> {
    let mut objects: BTreeMap<ObjectId, (String, bool)> = BTreeMap::new();
    for entry in inventory {
        objects.insert(
            entry.id.clone(),
            (entry.version.clone(), entry.adopted == Some(true)),
        );
    }
    for (id, version, live) in labelled {
        let known = objects
            .entry(id.clone())
            .or_insert((version.clone(), false));
        known.1 |= live.adopted;
    }
    let mut waves: Vec<Vec<(ObjectId, String)>> = vec![Vec::new(); WAVES as usize];
    for (id, (version, adopted)) in objects {
        if !adopted {
            waves[id.wave() as usize].push((id, version));
        }
    }
    waves.reverse();
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(group: &str, kind: &str, name: &str) -> ObjectId {
        ObjectId {
            group: group.into(),
            kind: kind.into(),
            namespace: None,
            name: name.into(),
        }
    }

    fn entry(id: ObjectId, adopted: bool) -> InventoryEntry {
        InventoryEntry {
            id,
            version: "v1".into(),
            application: Some("app".into()),
            adopted: adopted.then_some(true),
        }
    }

    fn live(uid: Option<&str>) -> Observed {
        Observed::Present(Live {
            kfdef_uid: uid.map(str::to_string),
            kfdef: uid.map(|_| "kubeflow/other".into()),
            ..Default::default()
        })
    }

    #[test]
    fn waves_put_namespaces_and_crds_first_and_webhooks_last() {
        assert!(wave("", "Namespace") < wave("apiextensions.k8s.io", "CustomResourceDefinition"));
        assert!(
            wave("apiextensions.k8s.io", "CustomResourceDefinition") < wave("apps", "Deployment")
        );
        assert!(
            wave("apps", "Deployment")
                < wave(
                    "admissionregistration.k8s.io",
                    "MutatingWebhookConfiguration"
                )
        );
    }

    #[test]
    fn ids_print_kind_group_and_place() {
        let mut cm = id("", "ConfigMap", "a");
        cm.namespace = Some("ns".into());
        assert_eq!(cm.to_string(), "ConfigMap ns/a");
        assert_eq!(
            id("rbac.authorization.k8s.io", "ClusterRole", "r").to_string(),
            "ClusterRole.rbac.authorization.k8s.io r"
        );
    }

    #[test]
    fn ownership_rules() {
        let cm = id("", "ConfigMap", "a");
        let ours = entry(cm.clone(), false);
        let adopted = entry(cm.clone(), true);
        // Nothing there yet: ours.
        assert_eq!(ownership("me", None, &Observed::Absent), Ownership::Ours);
        // Found without a label and never created by this KfDef: adopted.
        assert_eq!(ownership("me", None, &live(None)), Ownership::Adopted);
        // Created by this KfDef, then its label was removed: still ours.
        assert_eq!(ownership("me", Some(&ours), &live(None)), Ownership::Ours);
        // Adopted once, adopted for good (even after it was deleted and kfop put it back).
        assert_eq!(
            ownership("me", Some(&adopted), &Observed::Absent),
            Ownership::Adopted
        );
        assert_eq!(
            ownership("me", Some(&adopted), &live(Some("me"))),
            Ownership::Adopted
        );
        // The object says it was adopted (the inventory was lost before it was written).
        let marked = Observed::Present(Live {
            kfdef_uid: Some("me".into()),
            adopted: true,
            ..Default::default()
        });
        assert_eq!(ownership("me", None, &marked), Ownership::Adopted);
        // Another KfDef's label: named by namespace/name and uid.
        assert_eq!(
            ownership("me", None, &live(Some("you"))),
            Ownership::Other("kubeflow/other (uid you)".into())
        );
    }

    #[test]
    fn changes_by_others_exclude_kfops_own_writes() {
        let before = Live {
            others_signature: 1,
            ..Default::default()
        };
        let edited = Live {
            others_signature: 2,
            ..Default::default()
        };
        assert!(changed_by_others(&before, &edited, false));
        // kfop took a field back: the other manager's entry shrank.
        assert!(!changed_by_others(&edited, &before, true));
        assert!(!changed_by_others(&before, &before, false));
    }

    #[test]
    fn merged_inventories_keep_one_entry_per_object_the_later_winning() {
        let a = entry(id("", "ConfigMap", "a"), false);
        let b = entry(id("", "ConfigMap", "b"), false);
        let a_adopted = entry(id("", "ConfigMap", "a"), true);
        let merged = merge(&[a.clone(), b.clone()], std::slice::from_ref(&a_adopted));
        assert_eq!(merged, vec![a_adopted, b]);
    }

    #[test]
    fn deletion_runs_the_waves_backwards_and_spares_adopted_objects() {
        let inventory = vec![
            entry(id("", "Namespace", "ns"), false),
            entry(
                id("apiextensions.k8s.io", "CustomResourceDefinition", "c"),
                false,
            ),
            entry(id("apps", "Deployment", "d"), false),
            entry(id("", "ConfigMap", "user-owned"), true),
            entry(
                id(
                    "admissionregistration.k8s.io",
                    "ValidatingWebhookConfiguration",
                    "w",
                ),
                false,
            ),
        ];
        let stray = id("", "Secret", "crashed-before-status");
        let marked = id("", "ConfigMap", "adopted-by-annotation");
        let labelled = vec![
            (stray.clone(), "v1".to_string(), Live::default()),
            (
                marked,
                "v1".to_string(),
                Live {
                    adopted: true,
                    ..Default::default()
                },
            ),
        ];
        let order: Vec<Vec<String>> = deletion_order(&inventory, &labelled)
            .into_iter()
            .map(|wave| wave.into_iter().map(|(id, _)| id.name).collect())
            .collect();
        assert_eq!(
            order,
            vec![
                vec!["w".to_string()],
                vec!["crashed-before-status".to_string(), "d".to_string()],
                vec!["c".to_string()],
                vec!["ns".to_string()],
            ]
        );
    }
}
