//! Output order: kustomize's legacy order (by kind rank, then group/version/kind, then namespace
//! and name), or the order of accumulation with `sortOptions.order: fifo`.

use crate::render::kustomization::SortOptions;
use crate::render::resource::{Gvk, ResId, Resource};
use std::cmp::Ordering;

const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Sorts `resources` as the kustomization's `sortOptions` (default legacy) say.
pub fn apply(resources: &mut Vec<Resource>, options: Option<&SortOptions>) {
    if options.is_some_and(|o| o.order == "fifo") {
        return;
    }
    let legacy = options.and_then(|o| o.legacy_sort_options.as_ref());
    let first: Vec<&str> = match legacy {
        Some(l) if !l.order_first.is_empty() || !l.order_last.is_empty() => {
            l.order_first.iter().map(String::as_str).collect()
        }
        _ => ORDER_FIRST.to_vec(),
    };
    let last: Vec<&str> = match legacy {
        Some(l) if !l.order_first.is_empty() || !l.order_last.is_empty() => {
            l.order_last.iter().map(String::as_str).collect()
        }
        _ => ORDER_LAST.to_vec(),
    };
    let rank = |kind: &str| -> i64 {
        if let Some(i) = first.iter().position(|k| *k == kind) {
            return i as i64 - first.len() as i64;
        }
        last.iter()
            .position(|k| *k == kind)
            .map_or(0, |i| 1 + i as i64)
    };
    let mut keyed: Vec<(SortKey, Resource)> = std::mem::take(resources)
        .into_iter()
        .map(|r| (SortKey::of(r.id(), &rank), r))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare(a, b));
    resources.extend(keyed.into_iter().map(|(_, r)| r));
}

/// What an object sorts by, worked out once.
struct SortKey {
    id: ResId,
    rank: i64,
    gvk: String,
    id_string: String,
}

impl SortKey {
    fn of(id: ResId, rank: &dyn Fn(&str) -> i64) -> Self {
        Self {
            rank: rank(&id.gvk.kind),
            gvk: gvk_sort_string(&id.gvk),
            id_string: id_sort_string(&id),
            id,
        }
    }
}

fn compare(a: &SortKey, b: &SortKey) -> Ordering {
    if a.id.gvk != b.id.gvk {
        if a.rank != b.rank {
            return a.rank.cmp(&b.rank);
        }
        if a.id.gvk.kind == "Namespace"
            && b.id.gvk.kind == "Namespace"
            && (a.id.gvk.group.is_empty() || b.id.gvk.group.is_empty())
        {
            return b.gvk.cmp(&a.gvk);
        }
        return a.gvk.cmp(&b.gvk);
    }
    a.id_string.cmp(&b.id_string)
}

fn or<'a>(value: &'a str, missing: &'a str) -> &'a str {
    if value.is_empty() { missing } else { value }
}

fn gvk_sort_string(gvk: &Gvk) -> String {
    format!(
        "{}_{}_{}",
        or(&gvk.group, "~G"),
        or(&gvk.version, "~V"),
        or(&gvk.kind, "~K")
    )
}

fn id_sort_string(id: &ResId) -> String {
    let gvk = format!(
        "{}.{}.{}",
        or(&id.gvk.kind, "~K"),
        or(&id.gvk.version, "~V"),
        or(&id.gvk.group, "~G")
    );
    format!("{gvk}|{}|{}", or(&id.namespace, "~X"), or(&id.name, "~N"))
}
