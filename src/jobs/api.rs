//! The API types TFJob and PyTorchJob share (`kubeflow.org/v1`, field for field as training-operator's
//! `common_types.go`), plus kfop's additive extensions, each marked as such.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group of TFJob and PyTorchJob.
pub const GROUP: &str = "kubeflow.org";
/// The API version of TFJob and PyTorchJob.
pub const VERSION: &str = "v1";

/// Label: the controller that created a pod or service (e.g. `tfjob-controller`).
pub const OPERATOR_NAME_LABEL: &str = "training.kubeflow.org/operator-name";
/// Label: the job a pod or service belongs to.
pub const JOB_NAME_LABEL: &str = "training.kubeflow.org/job-name";
/// Label: the lowercase replica type (`worker`, `ps`, …).
pub const REPLICA_TYPE_LABEL: &str = "training.kubeflow.org/replica-type";
/// Label: the replica index within its type.
pub const REPLICA_INDEX_LABEL: &str = "training.kubeflow.org/replica-index";
/// Label: `master` on the replica that plays the master/chief role.
pub const JOB_ROLE_LABEL: &str = "training.kubeflow.org/job-role";
/// Label (kfop): the whole-job attempt a pod belongs to (see [`RestartScope::Job`]).
pub const JOB_ATTEMPT_LABEL: &str = "kfop.dev/job-attempt";
/// Label (kfop): how many times this replica index had been recreated when the pod was created.
pub const REPLICA_ATTEMPT_LABEL: &str = "kfop.dev/replica-attempt";

/// `runPolicy.managedBy` values this controller acts on; any other value belongs to another controller.
pub const MANAGED_BY_VALUES: [&str; 2] =
    ["kubeflow.org/training-operator", "kfop.dev/job-controller"];
/// `runPolicy.managedBy` values the CRDs accept (training-operator's, with Kueue's MultiKueue).
pub const MANAGED_BY_ACCEPTED: [&str; 3] = [
    "kubeflow.org/training-operator",
    "kueue.x-k8s.io/multikueue",
    "kfop.dev/job-controller",
];

/// One replica type of a job: how many pods, from which template, restarted how.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    /// The number of replicas (pods) of this type; defaults to 1. `0` creates none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// The pod template of every replica. Its `restartPolicy` is overwritten by the replica's.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// How a failed replica is restarted; the default depends on the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
}

/// How the replicas of one type are restarted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestartPolicy {
    /// The kubelet restarts containers in place (pod `restartPolicy: Always`); a failed pod is recreated.
    Always,
    /// The kubelet restarts failed containers (pod `restartPolicy: OnFailure`); a failed pod is recreated.
    OnFailure,
    /// A failed replica fails the job (infrastructure failures are still retried).
    Never,
    /// Exit codes 128 and above (signals, OOM kills) recreate the pod; 1–127 fail the job.
    ExitCode,
}

impl RestartPolicy {
    /// The pod-level `restartPolicy` the replica's pods get.
    pub fn pod_restart_policy(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never | RestartPolicy::ExitCode => "Never",
        }
    }
}

/// Which pods are deleted when the job finishes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CleanPodPolicy {
    /// Every pod (and its service).
    All,
    /// Pods still Pending or Running (and their services).
    Running,
    /// None: pods stay for inspection.
    None,
}

/// Which replicas restart when one of them fails and is retried (kfop extension).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RestartScope {
    /// Only the failed replica is recreated (training-operator's behaviour).
    #[default]
    Replica,
    /// Every replica is stopped and the whole job starts again together, as collective-communication
    /// jobs (NCCL, torchrun rendezvous) need.
    Job,
}

/// Run-time policies of a job: clean-up, limits, scheduling, suspension.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    /// Which pods to delete once the job finishes; defaults to `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_pod_policy: Option<CleanPodPolicy>,
    /// Delete the job this many seconds after it finished; unset keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Fail the job once it has been active (since `status.startTime`) this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// How many restarts (recreated pods and container restarts) the job may take before it fails.
    /// Infrastructure failures (eviction, preemption, node loss) do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,
    /// Gang-scheduling parameters, used when the controller runs with `--gang-scheduler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_policy: Option<SchedulingPolicy>,
    /// While true, no pods run: existing ones are deleted, and resuming starts the clock again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub suspend: Option<bool>,
    /// The controller that manages this job: `kubeflow.org/training-operator` or
    /// `kfop.dev/job-controller` (this controller), or `kueue.x-k8s.io/multikueue` (left alone).
    /// Set at creation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// kfop extension: `Job` restarts every replica together when one is retried; defaults to `Replica`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_scope: Option<RestartScope>,
}

/// Gang-scheduling parameters of a job (PodGroup fields).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingPolicy {
    /// The number of pods that must be schedulable together; defaults to every replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<i32>,
    /// The Volcano queue; defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The resources the gang needs; defaults to the sum of the first `minAvailable` pods' requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resources: Option<BTreeMap<String, Quantity>>,
    /// The PodGroup's priority class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,
    /// scheduler-plugins: how long the gang may wait to be scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_seconds: Option<i32>,
}

/// The observed state of a job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The job's conditions; the last one is the job's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,
    /// Per replica type (`Worker`, `PS`, …): pod counts and, in kfop, per-index progress.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replica_statuses: BTreeMap<String, ReplicaStatus>,
    /// When the controller started the job (reset when a suspended job resumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When the job was last reconciled: written only with training-operator semantics, while
    /// gang scheduling holds the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// kfop: restarts counted against `runPolicy.backoffLimit` (recreated pods and container restarts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: i32,
    /// kfop: pods recreated after infrastructure failures (eviction, preemption, node loss), not counted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disruptions: i32,
    /// kfop: how many times the whole job was restarted (`runPolicy.restartScope: Job`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: i32,
}

/// The observed state of one replica type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Pods of this type currently Running.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub active: i32,
    /// Replicas that succeeded (recorded: a succeeded pod deleted later still counts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub succeeded: i32,
    /// Replicas that failed for good.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i32,
    /// Deprecated: use `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// The label selector of this type's pods, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// kfop: the indexes that succeeded, as ranges (`0-3,7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_indexes: Option<String>,
    /// kfop: the indexes that failed for good, as ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_indexes: Option<String>,
    /// kfop: how many times each recreated index has been recreated in the current job attempt.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attempts: BTreeMap<String, i32>,
}

/// One condition of a job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    /// The condition's type.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why the condition last changed, `<Kind><Reason>` (e.g. `TFJobRunning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable account of the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the condition was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When the condition last changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// The condition types of a job.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionType {
    /// The job was accepted; pods may not exist yet.
    Created,
    /// The job's deciding replicas run.
    Running,
    /// One or more replicas failed and are being restarted.
    Restarting,
    /// The job finished successfully.
    Succeeded,
    /// The job is suspended: no pods run.
    Suspended,
    /// The job failed; this condition never goes away.
    Failed,
}

impl ConditionType {
    /// The condition type as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Created => "Created",
            ConditionType::Running => "Running",
            ConditionType::Restarting => "Restarting",
            ConditionType::Succeeded => "Succeeded",
            ConditionType::Suspended => "Suspended",
            ConditionType::Failed => "Failed",
        }
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_round_trips_training_operator_json() {
        let status = json!({
            "conditions": [{"type": "Created", "status": "True", "reason": "TFJobCreated",
                "message": "TFJob dist is created.", "lastUpdateTime": "2024-01-02T03:04:05Z",
                "lastTransitionTime": "2024-01-02T03:04:05Z"}],
            "replicaStatuses": {"Worker": {"active": 2, "labelSelector": {"matchLabels": {"a": "b"}},
                "selector": "a=b"}, "PS": {}},
            "startTime": "2024-01-02T03:04:05Z",
        });
        let parsed: JobStatus = serde_json::from_value(status.clone()).expect("parses");
        assert_eq!(parsed.conditions[0].type_, ConditionType::Created);
        assert_eq!(parsed.replica_statuses["Worker"].active, 2);
        assert_eq!(serde_json::to_value(&parsed).expect("serializes"), status);
    }

    #[test]
    fn replica_spec_accepts_every_restart_policy_and_rejects_others() {
        for policy in ["Always", "OnFailure", "Never", "ExitCode"] {
            let spec: ReplicaSpec =
                serde_json::from_value(json!({"restartPolicy": policy})).expect(policy);
            assert!(spec.restart_policy.is_some());
        }
        assert!(
            serde_json::from_value::<ReplicaSpec>(json!({"restartPolicy": "Sometimes"})).is_err()
        );
    }

    #[test]
    fn exit_code_and_never_pods_are_not_restarted_by_the_kubelet() {
        assert_eq!(RestartPolicy::ExitCode.pod_restart_policy(), "Never");
        assert_eq!(RestartPolicy::Never.pod_restart_policy(), "Never");
        assert_eq!(RestartPolicy::OnFailure.pod_restart_policy(), "OnFailure");
        assert_eq!(RestartPolicy::Always.pod_restart_policy(), "Always");
    }
}
