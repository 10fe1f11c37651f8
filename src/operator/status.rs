//! The KfDef's status: conditions in the Kubernetes API conventions and the per-application
//! summary, computed from one reconcile's outcome and the new inventory (pure, unit-tested).

use crate::kfdef::{ApplicationStatus, Condition, ConditionStatus, InventoryEntry, KfDefStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

/// What one reconcile found, per application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplicationOutcome {
    pub name: String,
    /// Objects rendered.
    pub objects: usize,
    /// Why it could not be rendered.
    pub render_error: Option<String>,
    /// Objects that failed permanently, with why.
    pub failed: Vec<String>,
    /// Objects waiting to be applied (kind not served yet, webhook not ready …), with why.
    pub pending: Vec<String>,
    /// Objects another KfDef owns.
    pub conflicts: Vec<String>,
    /// Workloads applied but not ready yet.
    pub not_ready: Vec<String>,
}

impl ApplicationOutcome {
    fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(e) = &self.render_error {
            return Some(("RenderFailed", e.clone()));
        }
        if let Some(c) = self.conflicts.first() {
            return Some(("Conflict", c.clone()));
        }
        if let Some(f) = self.failed.first() {
            return Some(("ApplyFailed", f.clone()));
        }
        if let Some(p) = self.pending.first() {
            return Some(("Pending", p.clone()));
        }
        self.not_ready
            .first()
            .map(|n| ("NotReady", format!("{n} is not ready")))
    }

    fn is_degraded(&self) -> bool {
        self.render_error.is_some() || !self.conflicts.is_empty() || !self.failed.is_empty()
    }
}

/// Whether a workload or CRD is ready, from its live object; `None` for kinds with no readiness.
pub fn readiness(object: &Value) -> Option<bool> {
    let kind = object.get("kind").and_then(Value::as_str)?;
    let status = object.get("status");
    let condition = |type_: &str| {
        status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .is_some_and(|conditions| {
                conditions.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some(type_)
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
    };
    let number = |path: &str| object.pointer(path).and_then(Value::as_i64);
    let observed = number("/status/observedGeneration").unwrap_or(0)
        >= number("/metadata/generation").unwrap_or(0);
    match kind {
        "CustomResourceDefinition" => Some(condition("Established")),
        "Deployment" => {
            let wanted = number("/spec/replicas").unwrap_or(1);
            Some(
                observed
                    && condition("Available")
                    && number("/status/updatedReplicas").unwrap_or(0) >= wanted
                    && number("/status/availableReplicas").unwrap_or(0) >= wanted,
            )
        }
        "StatefulSet" => {
            let wanted = number("/spec/replicas").unwrap_or(1);
            Some(observed && number("/status/readyReplicas").unwrap_or(0) >= wanted)
        }
        _ => None,
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: i64,
    previous: Option<&Condition>,
    now: &Time,
) -> Condition {
    let status = if status {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    // The transition time moves only when the status does.
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    Condition {
        type_: type_.into(),
        status,
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time,
        observed_generation: Some(generation),
        last_update_time: None,
    }
}

/// The status for this outcome, keeping transition times of unchanged conditions from `previous`.
pub fn build(
    previous: Option<&KfDefStatus>,
    generation: i64,
    outcomes: &[ApplicationOutcome],
    inventory: Vec<InventoryEntry>,
    now: Time,
) -> KfDefStatus {
    let previous_condition = |t: &str| previous.and_then(|p| p.condition(t));
    let total = outcomes.len();
    let ready = outcomes.iter().filter(|o| o.problem().is_none()).count();
    let degraded: Vec<String> = outcomes
        .iter()
        .filter(|o| o.is_degraded())
        .filter_map(|o| o.problem().map(|(_, m)| format!("{}: {m}", o.name)))
        .collect();
    let waiting: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.is_degraded())
        .filter_map(|o| o.problem().map(|(_, m)| format!("{}: {m}", o.name)))
        .collect();
    let summary = |items: &[String]| {
        let mut text = items.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
        if items.len() > 3 {
            text.push_str(&format!(" (and {} more)", items.len() - 3));
        }
        text
    };
    let degraded_reason = outcomes
        .iter()
        .find(|o| o.is_degraded())
        .and_then(|o| o.problem())
        .map_or("AsExpected", |(r, _)| r);
    let conditions = vec![
        condition(
            "Available",
            ready == total,
            if ready == total {
                "AllApplicationsReady"
            } else {
                "ApplicationsNotReady"
            },
            format!("{ready} of {total} applications are ready"),
            generation,
            previous_condition("Available"),
            &now,
        ),
        condition(
            "Progressing",
            !waiting.is_empty(),
            if waiting.is_empty() {
                "Converged"
            } else {
                "Reconciling"
            },
            if waiting.is_empty() {
                "every object is applied".into()
            } else {
                summary(&waiting)
            },
            generation,
            previous_condition("Progressing"),
            &now,
        ),
        condition(
            "Degraded",
            !degraded.is_empty(),
            degraded_reason,
            if degraded.is_empty() {
                "no errors".into()
            } else {
                summary(&degraded)
            },
            generation,
            previous_condition("Degraded"),
            &now,
        ),
    ];
    let applications = outcomes
        .iter()
        .map(|o| {
            let problem = o.problem();
            ApplicationStatus {
                name: o.name.clone(),
                ready: if problem.is_none() {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                reason: Some(problem.as_ref().map_or("Ready", |(r, _)| r).to_string()),
                message: problem.map(|(_, m)| m),
                objects: Some(o.objects as i64),
            }
        })
        .collect();
    KfDefStatus {
        observed_generation: Some(generation),
        conditions,
        applications_ready: Some(format!("{ready}/{total}")),
        applications,
        inventory,
        repos_cache: previous.map(|p| p.repos_cache.clone()).unwrap_or_default(),
        // Set from the render (`crate::upgrade::status`).
        upgrades: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn now() -> Time {
        Time(Timestamp::now())
    }

    #[test]
    fn all_ready_is_available_and_converged() {
        let outcomes = vec![ApplicationOutcome {
            name: "a".into(),
            objects: 3,
            ..Default::default()
        }];
        let status = build(None, 2, &outcomes, Vec::new(), now());
        assert_eq!(
            status.condition("Available").map(|c| &c.status),
            Some(&ConditionStatus::True)
        );
        assert_eq!(
            status.condition("Degraded").map(|c| &c.status),
            Some(&ConditionStatus::False)
        );
        assert_eq!(
            status.condition("Progressing").map(|c| &c.status),
            Some(&ConditionStatus::False)
        );
        assert_eq!(status.applications_ready.as_deref(), Some("1/1"));
        assert_eq!(status.observed_generation, Some(2));
    }

    #[test]
    fn render_errors_degrade_and_name_the_application() {
        let outcomes = vec![
            ApplicationOutcome {
                name: "good".into(),
                objects: 1,
                ..Default::default()
            },
            ApplicationOutcome {
                name: "bad".into(),
                render_error: Some("params.env: missing".into()),
                ..Default::default()
            },
        ];
        let status = build(None, 1, &outcomes, Vec::new(), now());
        let degraded = status.condition("Degraded").expect("degraded");
        assert_eq!(degraded.status, ConditionStatus::True);
        assert_eq!(degraded.reason.as_deref(), Some("RenderFailed"));
        assert!(
            degraded
                .message
                .as_deref()
                .unwrap_or("")
                .contains("bad: params.env: missing")
        );
        assert_eq!(status.applications_ready.as_deref(), Some("1/2"));
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let outcomes = vec![ApplicationOutcome {
            name: "a".into(),
            ..Default::default()
        }];
        let first = build(
            None,
            1,
            &outcomes,
            Vec::new(),
            Time(Timestamp::from_second(1000).expect("time")),
        );
        let second = build(
            Some(&first),
            1,
            &outcomes,
            Vec::new(),
            Time(Timestamp::from_second(2000).expect("time")),
        );
        assert_eq!(first.conditions, second.conditions);
    }

    #[test]
    fn readiness_of_workloads_and_crds() {
        let deployment = |available: i64| {
            json!({"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": available,
                       "conditions": [{"type": "Available", "status": "True"}]}})
        };
        assert_eq!(readiness(&deployment(2)), Some(true));
        assert_eq!(readiness(&deployment(1)), Some(false));
        let crd = json!({"kind": "CustomResourceDefinition", "status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(readiness(&crd), Some(true));
        assert_eq!(readiness(&json!({"kind": "ConfigMap"})), None);
    }
}
