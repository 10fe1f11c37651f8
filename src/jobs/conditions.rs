//! Job condition rules, as kubeflow/common defines them: `Failed` is sticky, `Running` and
//! `Restarting` replace each other, finishing turns `Running` to `False`, the newest condition is
//! last (the `State` printer column shows it), and an unchanged status keeps its transition time.

use super::api::{ConditionType, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// `True` as a condition status.
pub const TRUE: &str = "True";
/// `False` as a condition status.
pub const FALSE: &str = "False";

/// Whether `status` has condition `type_` with status `True`.
pub fn is_true(status: &JobStatus, type_: ConditionType) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == TRUE)
}

/// Whether the job succeeded or failed.
pub fn is_finished(status: &JobStatus) -> bool {
    is_true(status, ConditionType::Succeeded) || is_true(status, ConditionType::Failed)
}

/// Sets a condition following the rules above; returns whether anything changed.
pub fn set(
    status: &mut JobStatus,
    type_: ConditionType,
    condition_status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if is_true(status, ConditionType::Failed) {
        return false;
    }
    let current = status.conditions.iter().find(|c| c.type_ == type_);
    if let Some(current) = current
        && current.status == condition_status
        && current.reason.as_deref() == Some(reason)
    {
        return false;
    }
    let transition = match current {
        Some(current) if current.status == condition_status => {
            current.last_transition_time.clone().unwrap_or(Time(now))
        }
        _ => Time(now),
    };
    let finishing = matches!(type_, ConditionType::Succeeded | ConditionType::Failed);
    let mut kept: Vec<JobCondition> = Vec::with_capacity(status.conditions.len() + 1);
    for mut c in status.conditions.drain(..) {
        let replaced = c.type_ == type_
            || (type_ == ConditionType::Running && c.type_ == ConditionType::Restarting)
            || (type_ == ConditionType::Restarting && c.type_ == ConditionType::Running);
        if replaced {
            continue;
        }
        if finishing && c.type_ == ConditionType::Running && c.status != FALSE {
            c.status = FALSE.to_string();
            c.last_transition_time = Some(Time(now));
            c.last_update_time = Some(Time(now));
        }
        kept.push(c);
    }
    kept.push(JobCondition {
        type_,
        status: condition_status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(transition),
    });
    status.conditions = kept;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
    }

    fn types(status: &JobStatus) -> Vec<(ConditionType, String)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_, c.status.clone()))
            .collect()
    }

    #[test]
    fn running_and_restarting_replace_each_other() {
        let mut status = JobStatus::default();
        set(
            &mut status,
            ConditionType::Created,
            TRUE,
            "TFJobCreated",
            "created",
            at(0),
        );
        set(
            &mut status,
            ConditionType::Running,
            TRUE,
            "TFJobRunning",
            "running",
            at(1),
        );
        set(
            &mut status,
            ConditionType::Restarting,
            TRUE,
            "TFJobRestarting",
            "restarting",
            at(2),
        );
        assert_eq!(
            types(&status),
            vec![
                (ConditionType::Created, TRUE.into()),
                (ConditionType::Restarting, TRUE.into())
            ]
        );
        set(
            &mut status,
            ConditionType::Running,
            TRUE,
            "TFJobRunning",
            "running",
            at(3),
        );
        assert_eq!(
            status.conditions.last().map(|c| c.type_),
            Some(ConditionType::Running)
        );
        assert_eq!(status.conditions.len(), 2);
    }

    #[test]
    fn finishing_turns_running_false_and_failed_is_sticky() {
        let mut status = JobStatus::default();
        set(
            &mut status,
            ConditionType::Running,
            TRUE,
            "TFJobRunning",
            "running",
            at(0),
        );
        set(
            &mut status,
            ConditionType::Failed,
            TRUE,
            "TFJobFailed",
            "failed",
            at(1),
        );
        assert_eq!(
            types(&status),
            vec![
                (ConditionType::Running, FALSE.into()),
                (ConditionType::Failed, TRUE.into())
            ]
        );
        assert!(!set(
            &mut status,
            ConditionType::Succeeded,
            TRUE,
            "TFJobSucceeded",
            "ok",
            at(2)
        ));
        assert!(!set(
            &mut status,
            ConditionType::Running,
            TRUE,
            "TFJobRunning",
            "again",
            at(2)
        ));
        assert!(is_finished(&status));
    }

    #[test]
    fn same_status_and_reason_is_a_no_op_and_same_status_keeps_transition_time() {
        let mut status = JobStatus::default();
        assert!(set(
            &mut status,
            ConditionType::Suspended,
            TRUE,
            "TFJobSuspended",
            "a",
            at(0)
        ));
        assert!(!set(
            &mut status,
            ConditionType::Suspended,
            TRUE,
            "TFJobSuspended",
            "b",
            at(5)
        ));
        assert!(set(
            &mut status,
            ConditionType::Suspended,
            TRUE,
            "Other",
            "c",
            at(7)
        ));
        let condition = &status.conditions[0];
        assert_eq!(condition.last_transition_time, Some(Time(at(0))));
        assert_eq!(condition.last_update_time, Some(Time(at(7))));
        assert!(set(
            &mut status,
            ConditionType::Suspended,
            FALSE,
            "TFJobResumed",
            "d",
            at(9)
        ));
        assert_eq!(status.conditions[0].last_transition_time, Some(Time(at(9))));
        assert!(!is_true(&status, ConditionType::Suspended));
    }
}
