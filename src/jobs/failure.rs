//! Why a pod failed, and what that means for its replica: infrastructure disruptions are retried
//! for free, the replica's restart policy decides the rest.

use super::api::RestartPolicy;
use k8s_openapi::api::core::v1::Pod;

/// Pod-level reasons the kubelet or the control plane give a pod they stopped for reasons of their
/// own (eviction, node shutdown or loss, preemption, admission races).
const DISRUPTION_REASONS: &[&str] = &[
    "Evicted",
    "Preempting",
    "NodeLost",
    "Shutdown",
    "NodeShutdown",
    "Terminated",
    "UnexpectedAdmissionError",
    "NodeAffinity",
];

/// What a failed pod means for its replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The infrastructure stopped the pod: recreate it without counting a restart.
    Disruption {
        /// The pod-level reason or condition that showed it.
        reason: String,
    },
    /// Recreate the pod, counting one restart against `backoffLimit`.
    Retry {
        /// The exit code of the replica's container, when it has one.
        exit_code: Option<i32>,
    },
    /// The replica failed for good.
    Permanent {
        /// The exit code of the replica's container, when it has one.
        exit_code: Option<i32>,
    },
}

/// Classifies a pod in phase `Failed` whose main container is `container`.
pub fn classify(pod: &Pod, container: &str, policy: RestartPolicy) -> Verdict {
    if let Some(reason) = disruption(pod) {
        return Verdict::Disruption { reason };
    }
    by_policy(policy, exit_code(pod, container))
}

/// What the restart policy says of a failure with this exit code.
fn by_policy(policy: RestartPolicy, exit_code: Option<i32>) -> Verdict {
    let retry = match policy {
        RestartPolicy::Always | RestartPolicy::OnFailure => true,
        RestartPolicy::Never => false,
        // No exit code means the container never ran to an exit: not the program's verdict.
        RestartPolicy::ExitCode => exit_code.is_none_or(|code| code >= 128),
    };
    if retry {
        Verdict::Retry { exit_code }
    } else {
        Verdict::Permanent { exit_code }
    }
}

/// Classifies a pod in phase `Failed` as training-operator does: no infrastructure reason is
/// special (an evicted `Never` replica fails), and only `container`'s exit code counts (none
/// counts as retryable).
pub fn classify_as_training_operator(pod: &Pod, container: &str, policy: RestartPolicy) -> Verdict {
    let exit_code = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|statuses| {
            statuses
                .iter()
                .filter(|s| s.name == container)
                .find_map(|s| s.state.as_ref()?.terminated.as_ref())
        })
        .map(|t| t.exit_code);
    by_policy(policy, exit_code)
}

/// The infrastructure reason a pod was stopped, if it was: a disruption pod-level reason (or any
/// `OutOf<resource>` admission failure), or a `DisruptionTarget` condition.
pub fn disruption(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if let Some(reason) = status.reason.as_deref()
        && (DISRUPTION_REASONS.contains(&reason) || reason.starts_with("OutOf"))
    {
        return Some(reason.to_string());
    }
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        .map(|c| {
            c.reason
                .clone()
                .unwrap_or_else(|| "DisruptionTarget".to_string())
        })
}

/// The exit code of `container` if it terminated, else of the first container that terminated
/// with a non-zero code.
pub fn exit_code(pod: &Pod, container: &str) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let terminated = |name: Option<&str>| {
        statuses
            .iter()
            .filter(|s| name.is_none_or(|n| s.name == n))
            .filter_map(|s| s.state.as_ref()?.terminated.as_ref())
            .map(|t| t.exit_code)
            .find(|code| name.is_some() || *code != 0)
    };
    match terminated(Some(container)) {
        Some(0) | None => terminated(None).or(terminated(Some(container))),
        code => code,
    }
}

/// Container restarts the kubelet made in this pod (init containers included).
pub fn container_restarts(pod: &Pod) -> i32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .map(|s| s.restart_count)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed_pod(reason: Option<&str>, codes: &[(&str, i32)]) -> Pod {
        let statuses: Vec<_> = codes
            .iter()
            .map(|(name, code)| {
                json!({"name": name, "image": "i", "imageID": "i", "ready": false, "restartCount": 1,
                       "state": {"terminated": {"exitCode": code}}})
            })
            .collect();
        let mut status = json!({"phase": "Failed", "containerStatuses": statuses});
        if let Some(reason) = reason {
            status["reason"] = json!(reason);
        }
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).expect("pod")
    }

    #[test]
    fn exit_code_policy_retries_signals_and_fails_program_errors() {
        let retry = classify(
            &failed_pod(None, &[("tensorflow", 137)]),
            "tensorflow",
            RestartPolicy::ExitCode,
        );
        assert_eq!(
            retry,
            Verdict::Retry {
                exit_code: Some(137)
            }
        );
        let permanent = classify(
            &failed_pod(None, &[("tensorflow", 1)]),
            "tensorflow",
            RestartPolicy::ExitCode,
        );
        assert_eq!(permanent, Verdict::Permanent { exit_code: Some(1) });
        let boundary = classify(
            &failed_pod(None, &[("tensorflow", 127)]),
            "tensorflow",
            RestartPolicy::ExitCode,
        );
        assert_eq!(
            boundary,
            Verdict::Permanent {
                exit_code: Some(127)
            }
        );
        let unknown = classify(
            &failed_pod(None, &[]),
            "tensorflow",
            RestartPolicy::ExitCode,
        );
        assert_eq!(unknown, Verdict::Retry { exit_code: None });
    }

    #[test]
    fn never_fails_and_on_failure_or_always_retry() {
        let pod = failed_pod(None, &[("pytorch", 2)]);
        assert_eq!(
            classify(&pod, "pytorch", RestartPolicy::Never),
            Verdict::Permanent { exit_code: Some(2) }
        );
        assert_eq!(
            classify(&pod, "pytorch", RestartPolicy::OnFailure),
            Verdict::Retry { exit_code: Some(2) }
        );
        assert_eq!(
            classify(&pod, "pytorch", RestartPolicy::Always),
            Verdict::Retry { exit_code: Some(2) }
        );
    }

    #[test]
    fn infrastructure_failures_are_disruptions_under_every_policy() {
        for reason in [
            "Evicted",
            "NodeLost",
            "OutOfmemory",
            "Preempting",
            "Shutdown",
        ] {
            let pod = failed_pod(Some(reason), &[("tensorflow", 137)]);
            for policy in [
                RestartPolicy::Never,
                RestartPolicy::ExitCode,
                RestartPolicy::OnFailure,
            ] {
                assert_eq!(
                    classify(&pod, "tensorflow", policy),
                    Verdict::Disruption {
                        reason: reason.to_string()
                    },
                    "{reason} under {policy:?}"
                );
            }
        }
        let deadline = failed_pod(Some("DeadlineExceeded"), &[("tensorflow", 137)]);
        assert_eq!(
            classify(&deadline, "tensorflow", RestartPolicy::Never),
            Verdict::Permanent {
                exit_code: Some(137)
            }
        );
    }

    #[test]
    fn training_operator_fails_an_evicted_never_replica_and_reads_only_the_main_container() {
        // Its pod_test.go "Test Exit Code" (130 restarts) and "Test Unretryable Exit Code" (1
        // fails), and no eviction handling at all.
        let evicted = failed_pod(Some("Evicted"), &[("tensorflow", 137)]);
        let as_upstream =
            |pod: &Pod, policy| classify_as_training_operator(pod, "tensorflow", policy);
        assert_eq!(
            as_upstream(&evicted, RestartPolicy::Never),
            Verdict::Permanent {
                exit_code: Some(137)
            }
        );
        assert_eq!(
            as_upstream(&evicted, RestartPolicy::ExitCode),
            Verdict::Retry {
                exit_code: Some(137)
            }
        );
        assert_eq!(
            as_upstream(
                &failed_pod(None, &[("tensorflow", 130)]),
                RestartPolicy::ExitCode
            ),
            Verdict::Retry {
                exit_code: Some(130)
            }
        );
        assert_eq!(
            as_upstream(
                &failed_pod(None, &[("tensorflow", 1)]),
                RestartPolicy::ExitCode
            ),
            Verdict::Permanent { exit_code: Some(1) }
        );
        let sidecar_failed = failed_pod(None, &[("sidecar", 3), ("tensorflow", 143)]);
        assert_eq!(
            as_upstream(&sidecar_failed, RestartPolicy::ExitCode),
            Verdict::Retry {
                exit_code: Some(143)
            }
        );
        assert_eq!(
            as_upstream(&failed_pod(Some("Evicted"), &[]), RestartPolicy::ExitCode),
            Verdict::Retry { exit_code: None },
            "no exit code is retryable (its 0xbeef)"
        );
    }

    #[test]
    fn disruption_target_condition_is_a_disruption() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {
            "phase": "Failed",
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]
        }}))
        .expect("pod");
        assert_eq!(
            classify(&pod, "tensorflow", RestartPolicy::Never),
            Verdict::Disruption {
                reason: "PreemptionByScheduler".into()
            }
        );
    }

    #[test]
    fn exit_code_prefers_the_main_container_then_any_failed_one() {
        let pod = failed_pod(None, &[("sidecar", 3), ("tensorflow", 0)]);
        assert_eq!(exit_code(&pod, "tensorflow"), Some(3));
        let pod = failed_pod(None, &[("sidecar", 3), ("tensorflow", 139)]);
        assert_eq!(exit_code(&pod, "tensorflow"), Some(139));
        let pod = failed_pod(None, &[("tensorflow", 0)]);
        assert_eq!(exit_code(&pod, "tensorflow"), Some(0));
        assert_eq!(container_restarts(&pod), 1);
    }
}
