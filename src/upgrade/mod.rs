//! Upgrading rendered objects whose API version the target cluster no longer serves.
//!
//! KfDefs were written for Kubernetes 1.14–1.21; their manifests use API versions that later
//! releases removed (`apiextensions.k8s.io/v1beta1`, `rbac.authorization.k8s.io/v1beta1`, …).
//! Between render and apply, [`upgrade`] rewrites such an object into the served version with the
//! same meaning (the old version's defaults made explicit), marks it with
//! [`UPGRADED_FROM_ANNOTATION`], and skips kinds that have no modern equivalent
//! (PodSecurityPolicy). Everything here is a pure function over JSON; [`Served`] says what the
//! cluster serves, from discovery or from a Kubernetes release number. `docs/upgrade.md` lists
//! every conversion.

mod admission;
mod autoscaling;
mod crd;
mod fields;
mod networking;
mod renamed;
mod served;
mod workloads;

pub use served::{Served, ServedParseError};

use crate::applications::RenderedApplication;
use crate::kfdef::{SkippedObject, UpgradeStatus, UpgradedKind};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Set on every upgraded object: the apiVersion its manifest was written in.
pub const UPGRADED_FROM_ANNOTATION: &str = "kfop.dev/upgraded-from";

/// Rewrites an object's fields (its apiVersion is set by the caller); `Err` says why it cannot be
/// upgraded without changing its meaning.
type Convert = fn(&mut Map<String, Value>) -> Result<(), String>;

/// What to do with one removed apiVersion and kind.
struct Rule {
    /// The removed `apiVersion`.
    from: &'static str,
    /// The kinds of that version this rule covers.
    kinds: &'static [&'static str],
    /// The Kubernetes minor release (1.x) that stopped serving them.
    removed_in: u32,
    /// Where they go: the new `apiVersion` and the conversion, or why they are skipped.
    action: Action,
}

enum Action {
    Upgrade { to: &'static str, convert: Convert },
    Skip { reason: &'static str },
}

const RBAC: &[&str] = &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];
const WEBHOOKS: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];
const HPA: &[&str] = &["HorizontalPodAutoscaler"];
const INGRESS: &[&str] = &["Ingress"];
const STORAGE: &[&str] = &["StorageClass", "VolumeAttachment", "CSIDriver", "CSINode"];
const PSP_GONE: &str = "PodSecurityPolicy was removed in Kubernetes 1.25 and has no replacement \
     kind; use Pod Security Admission (namespace labels) instead";

/// Every removed apiVersion/kind kfop knows, after the Kubernetes deprecated-API migration guide.
const RULES: &[Rule] = &[
    Rule {
        from: "apiextensions.k8s.io/v1beta1",
        kinds: &["CustomResourceDefinition"],
        removed_in: 22,
        action: Action::Upgrade {
            to: "apiextensions.k8s.io/v1",
            convert: crd::to_v1,
        },
    },
    Rule {
        from: "admissionregistration.k8s.io/v1beta1",
        kinds: WEBHOOKS,
        removed_in: 22,
        action: Action::Upgrade {
            to: "admissionregistration.k8s.io/v1",
            convert: admission::to_v1,
        },
    },
    Rule {
        from: "apiregistration.k8s.io/v1beta1",
        kinds: &["APIService"],
        removed_in: 22,
        action: Action::Upgrade {
            to: "apiregistration.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "rbac.authorization.k8s.io/v1beta1",
        kinds: RBAC,
        removed_in: 22,
        action: Action::Upgrade {
            to: "rbac.authorization.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "rbac.authorization.k8s.io/v1alpha1",
        kinds: RBAC,
        removed_in: 22,
        action: Action::Upgrade {
            to: "rbac.authorization.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "policy/v1beta1",
        kinds: &["PodDisruptionBudget"],
        removed_in: 25,
        action: Action::Upgrade {
            to: "policy/v1",
            convert: renamed::pod_disruption_budget,
        },
    },
    Rule {
        from: "policy/v1beta1",
        kinds: &["PodSecurityPolicy"],
        removed_in: 25,
        action: Action::Skip { reason: PSP_GONE },
    },
    Rule {
        from: "extensions/v1beta1",
        kinds: &["PodSecurityPolicy"],
        removed_in: 16,
        action: Action::Skip { reason: PSP_GONE },
    },
    Rule {
        from: "autoscaling/v2beta1",
        kinds: HPA,
        removed_in: 25,
        action: Action::Upgrade {
            to: "autoscaling/v2",
            convert: autoscaling::from_v2beta1,
        },
    },
    Rule {
        from: "autoscaling/v2beta2",
        kinds: HPA,
        removed_in: 26,
        action: Action::Upgrade {
            to: "autoscaling/v2",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "extensions/v1beta1",
        kinds: &["Deployment", "DaemonSet", "ReplicaSet"],
        removed_in: 16,
        action: Action::Upgrade {
            to: "apps/v1",
            convert: workloads::from_extensions_v1beta1,
        },
    },
    Rule {
        from: "apps/v1beta1",
        kinds: &["Deployment", "StatefulSet"],
        removed_in: 16,
        action: Action::Upgrade {
            to: "apps/v1",
            convert: workloads::from_apps_v1beta1,
        },
    },
    Rule {
        from: "apps/v1beta2",
        kinds: &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"],
        removed_in: 16,
        action: Action::Upgrade {
            to: "apps/v1",
            convert: workloads::from_apps_v1beta2,
        },
    },
    Rule {
        from: "extensions/v1beta1",
        kinds: INGRESS,
        removed_in: 22,
        action: Action::Upgrade {
            to: "networking.k8s.io/v1",
            convert: networking::ingress,
        },
    },
    Rule {
        from: "networking.k8s.io/v1beta1",
        kinds: INGRESS,
        removed_in: 22,
        action: Action::Upgrade {
            to: "networking.k8s.io/v1",
            convert: networking::ingress,
        },
    },
    Rule {
        from: "networking.k8s.io/v1beta1",
        kinds: &["IngressClass"],
        removed_in: 22,
        action: Action::Upgrade {
            to: "networking.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "extensions/v1beta1",
        kinds: &["NetworkPolicy"],
        removed_in: 16,
        action: Action::Upgrade {
            to: "networking.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "batch/v1beta1",
        kinds: &["CronJob"],
        removed_in: 25,
        action: Action::Upgrade {
            to: "batch/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "scheduling.k8s.io/v1beta1",
        kinds: &["PriorityClass"],
        removed_in: 22,
        action: Action::Upgrade {
            to: "scheduling.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "storage.k8s.io/v1beta1",
        kinds: STORAGE,
        removed_in: 22,
        action: Action::Upgrade {
            to: "storage.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "storage.k8s.io/v1beta1",
        kinds: &["CSIStorageCapacity"],
        removed_in: 27,
        action: Action::Upgrade {
            to: "storage.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "coordination.k8s.io/v1beta1",
        kinds: &["Lease"],
        removed_in: 22,
        action: Action::Upgrade {
            to: "coordination.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "certificates.k8s.io/v1beta1",
        kinds: &["CertificateSigningRequest"],
        removed_in: 22,
        action: Action::Upgrade {
            to: "certificates.k8s.io/v1",
            convert: renamed::certificate_signing_request,
        },
    },
    Rule {
        from: "events.k8s.io/v1beta1",
        kinds: &["Event"],
        removed_in: 25,
        action: Action::Upgrade {
            to: "events.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "node.k8s.io/v1beta1",
        kinds: &["RuntimeClass"],
        removed_in: 25,
        action: Action::Upgrade {
            to: "node.k8s.io/v1",
            convert: renamed::unchanged,
        },
    },
    Rule {
        from: "discovery.k8s.io/v1beta1",
        kinds: &["EndpointSlice"],
        removed_in: 25,
        action: Action::Upgrade {
            to: "discovery.k8s.io/v1",
            convert: renamed::endpoint_slice,
        },
    },
];

fn rule(api_version: &str, kind: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|r| r.from == api_version && r.kinds.contains(&kind))
}

/// Whether kfop has a rule for some kind of `api_version` (discovery lists the kinds of these).
pub fn has_rules(api_version: &str) -> bool {
    RULES.iter().any(|r| r.from == api_version)
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Served as written (or unknown to kfop: applying it reports what is wrong).
    Kept(Value),
    /// Rewritten into a served version.
    Upgraded { object: Value, from: String },
    /// Not applied: the cluster serves no equivalent.
    Skipped { object: Value, reason: String },
}

/// Upgrades `object` if the cluster does not serve its apiVersion and kind, and removes fields
/// Kubernetes removed from every kind (an object that only lost such a field is annotated with
/// its own apiVersion).
pub fn upgrade(mut object: Value, served: &Served) -> Outcome {
    let api_version = text(&object, "apiVersion");
    let kind = text(&object, "kind");
    let stripped = fields::strip(&mut object);
    let kept = |mut object: Value| {
        if stripped {
            annotate(&mut object, &api_version);
            Outcome::Upgraded {
                object,
                from: api_version.clone(),
            }
        } else {
            Outcome::Kept(object)
        }
    };
    if served.serves(&api_version, &kind) {
        return kept(object);
    }
    let Some(rule) = rule(&api_version, &kind) else {
        return kept(object);
    };
    match &rule.action {
        Action::Skip { reason } => Outcome::Skipped {
            object,
            reason: (*reason).to_string(),
        },
        Action::Upgrade { to, convert } => {
            if !served.serves(to, &kind) {
                return kept(object);
            }
            let mut converted = object.clone();
            let Some(map) = converted.as_object_mut() else {
                return kept(object);
            };
            if let Err(reason) = convert(map) {
                return Outcome::Skipped {
                    object,
                    reason: format!("cannot be upgraded to {to}: {reason}"),
                };
            }
            map.insert("apiVersion".into(), Value::String((*to).to_string()));
            annotate(&mut converted, &api_version);
            Outcome::Upgraded {
                object: converted,
                from: api_version,
            }
        }
    }
}

/// Sets [`UPGRADED_FROM_ANNOTATION`].
fn annotate(object: &mut Value, from: &str) {
    let annotations = object
        .as_object_mut()
        .and_then(|o| object_at(o, "metadata"))
        .and_then(|m| object_at(m, "annotations"));
    if let Some(annotations) = annotations {
        annotations.insert(
            UPGRADED_FROM_ANNOTATION.into(),
            Value::String(from.to_string()),
        );
    }
}

fn text(object: &Value, field: &str) -> String {
    object
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// An object left out because the cluster serves no equivalent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    /// The application that rendered it.
    pub application: String,
    /// `Kind.apiVersion namespace/name`.
    pub object: String,
    /// Why it has no served equivalent.
    pub reason: String,
}

/// What an upgrade pass over a render did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Objects rewritten, by the apiVersion and kind they were written in.
    pub upgraded: BTreeMap<(String, String), usize>,
    /// Objects left out.
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// How many objects were upgraded.
    pub fn upgraded_count(&self) -> usize {
        self.upgraded.values().sum()
    }
}

/// Upgrades one application's objects, recording what it did in `report`; skipped objects are
/// left out of the result.
pub fn objects(
    application: &str,
    objects: Vec<Value>,
    served: &Served,
    report: &mut Report,
) -> Vec<Value> {
    let mut kept = Vec::with_capacity(objects.len());
    for object in objects {
        match upgrade(object, served) {
            Outcome::Kept(object) => kept.push(object),
            Outcome::Upgraded { object, from } => {
                *report
                    .upgraded
                    .entry((from, text(&object, "kind")))
                    .or_default() += 1;
                kept.push(object);
            }
            Outcome::Skipped { object, reason } => report.skipped.push(Skipped {
                application: application.to_string(),
                object: describe(&object),
                reason,
            }),
        }
    }
    kept
}

/// Upgrades every rendered application's objects in place (skipped objects move to
/// [`RenderedApplication::skipped`]) and reports what it did.
pub fn applications(apps: &mut [RenderedApplication], served: &Served) -> Report {
    let mut report = Report::default();
    for app in apps.iter_mut() {
        if let Ok(list) = &mut app.result {
            let before = report.skipped.len();
            *list = objects(&app.name, std::mem::take(list), served, &mut report);
            app.skipped = report.skipped[before..].to_vec();
        }
    }
    report
}

/// The status summary of upgraded applications (`None` when nothing was upgraded or skipped):
/// counted from the [`UPGRADED_FROM_ANNOTATION`] each upgraded object carries.
pub fn status(apps: &[RenderedApplication]) -> Option<UpgradeStatus> {
    let mut from: BTreeMap<(String, String), i64> = BTreeMap::new();
    for object in apps.iter().filter_map(|a| a.result.as_ref().ok()).flatten() {
        if let Some(old) = object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(UPGRADED_FROM_ANNOTATION))
            .and_then(Value::as_str)
        {
            *from
                .entry((old.to_string(), text(object, "kind")))
                .or_default() += 1;
        }
    }
    let skipped: Vec<SkippedObject> = apps
        .iter()
        .flat_map(|a| a.skipped.iter())
        .map(|s| SkippedObject {
            application: s.application.clone(),
            object: s.object.clone(),
            reason: s.reason.clone(),
        })
        .collect();
    if from.is_empty() && skipped.is_empty() {
        return None;
    }
    Some(UpgradeStatus {
        upgraded: from.values().sum(),
        upgraded_from: from
            .into_iter()
            .map(|((api_version, kind), count)| UpgradedKind {
                api_version,
                kind,
                count,
            })
            .collect(),
        skipped,
    })
}

/// `Kind.apiVersion namespace/name` (or `name` when cluster-scoped or unnamespaced).
pub fn describe(object: &Value) -> String {
    let meta = |field: &str| {
        object
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (namespace, name) = (meta("namespace"), meta("name"));
    let id = if namespace.is_empty() {
        name
    } else {
        format!("{namespace}/{name}")
    };
    format!(
        "{}.{} {id}",
        text(object, "kind"),
        text(object, "apiVersion")
    )
}

/// The object at `key` of `map` as a mutable map, created when absent.
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    map.entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn release(minor: u32) -> Served {
        Served::release(1, minor)
    }

    #[test]
    fn served_objects_are_kept_as_written() {
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1beta1", "kind": "Role",
            "metadata": {"name": "r"}, "rules": []});
        assert_eq!(
            upgrade(role.clone(), &release(21)),
            Outcome::Kept(role.clone())
        );
        let custom = json!({"apiVersion": "app.k8s.io/v1beta1", "kind": "Application",
            "metadata": {"name": "a"}});
        assert_eq!(upgrade(custom.clone(), &release(37)), Outcome::Kept(custom));
    }

    #[test]
    fn an_upgraded_object_names_its_old_version() {
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1beta1", "kind": "ClusterRole",
            "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        let Outcome::Upgraded { object, from } = upgrade(role.clone(), &release(22)) else {
            panic!("not upgraded");
        };
        assert_eq!(from, "rbac.authorization.k8s.io/v1beta1");
        assert_eq!(object["apiVersion"], "rbac.authorization.k8s.io/v1");
        assert_eq!(
            object["metadata"]["annotations"][UPGRADED_FROM_ANNOTATION],
            "rbac.authorization.k8s.io/v1beta1"
        );
        assert_eq!(object["rules"], role["rules"]);
    }

    #[test]
    fn a_served_object_that_sets_a_removed_field_loses_it_and_says_so() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"metadata": {"initializers": {"pending": []}}}}});
        let Outcome::Upgraded { object, from } = upgrade(deployment, &release(37)) else {
            panic!("not upgraded");
        };
        assert_eq!(from, "apps/v1");
        assert_eq!(object["spec"]["template"]["metadata"], json!({}));
        assert_eq!(
            object["metadata"]["annotations"][UPGRADED_FROM_ANNOTATION],
            "apps/v1"
        );
    }

    #[test]
    fn pod_security_policies_are_skipped_with_a_reason() {
        let psp = json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy",
            "metadata": {"name": "p"}, "spec": {}});
        assert!(matches!(
            upgrade(psp.clone(), &release(24)),
            Outcome::Kept(_)
        ));
        let Outcome::Skipped { reason, .. } = upgrade(psp, &release(25)) else {
            panic!("not skipped");
        };
        assert!(reason.contains("Pod Security Admission"), "{reason}");
    }

    #[test]
    fn a_pass_counts_upgrades_and_leaves_skipped_objects_out() {
        let input = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kf"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1beta1", "kind": "Role", "metadata": {"name": "a", "namespace": "kf"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1beta1", "kind": "Role", "metadata": {"name": "b", "namespace": "kf"}}),
            json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "p"}}),
        ];
        let mut report = Report::default();
        let kept = objects("app", input, &release(37), &mut report);
        assert_eq!(kept.len(), 3);
        assert_eq!(report.upgraded_count(), 2);
        assert_eq!(
            report.upgraded.get(&(
                "rbac.authorization.k8s.io/v1beta1".to_string(),
                "Role".to_string()
            )),
            Some(&2)
        );
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].application, "app");
        assert_eq!(
            report.skipped[0].object,
            "PodSecurityPolicy.policy/v1beta1 p"
        );
    }

    #[test]
    fn applications_are_upgraded_in_place_and_summed_up_for_the_status() {
        let mut apps = vec![
            RenderedApplication {
                name: "a".into(),
                result: Ok(vec![
                    json!({"apiVersion": "rbac.authorization.k8s.io/v1beta1", "kind": "Role", "metadata": {"name": "r"}}),
                    json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "p"}}),
                ]),
                skipped: Vec::new(),
            },
            RenderedApplication {
                name: "b".into(),
                result: Ok(vec![
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
                ]),
                skipped: Vec::new(),
            },
        ];
        let report = applications(&mut apps, &release(37));
        assert_eq!(report.upgraded_count(), 1);
        assert_eq!(apps[0].result.as_ref().map(Vec::len).ok(), Some(1));
        assert_eq!(apps[0].skipped.len(), 1);
        assert!(apps[1].skipped.is_empty());
        let summary = status(&apps).expect("a summary");
        assert_eq!(summary.upgraded, 1);
        assert_eq!(
            summary.upgraded_from,
            vec![UpgradedKind {
                api_version: "rbac.authorization.k8s.io/v1beta1".into(),
                kind: "Role".into(),
                count: 1
            }]
        );
        assert_eq!(summary.skipped[0].application, "a");
        assert_eq!(status(&apps[1..]), None);
    }

    #[test]
    fn nothing_is_upgraded_into_a_version_the_cluster_does_not_serve() {
        // A cluster that serves neither the old nor the new version: leave the object as it is
        // and let applying report it.
        let served = Served::discovered([("v1".to_string(), None)]);
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1beta1", "kind": "Role", "metadata": {"name": "a"}});
        assert_eq!(upgrade(role.clone(), &served), Outcome::Kept(role));
    }

    #[test]
    fn every_rule_targets_a_version_that_outlived_it() {
        for rule in RULES {
            for kind in rule.kinds {
                assert!(release(rule.removed_in - 1).serves(rule.from, kind));
                assert!(!release(rule.removed_in).serves(rule.from, kind));
                if let Action::Upgrade { to, .. } = rule.action {
                    assert!(release(rule.removed_in).serves(to, kind), "{to} {kind}");
                    assert!(release(40).serves(to, kind), "{to} {kind}");
                }
            }
        }
    }
}
