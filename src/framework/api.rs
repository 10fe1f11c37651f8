//! The `Framework` API (`frameworkcontroller.microsoft.com/v1`), field for field as
//! FrameworkController's `types.go`, so its YAML (spec and status) is read and written unchanged.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of `Framework`.
pub const GROUP: &str = "frameworkcontroller.microsoft.com";
/// The API version of `Framework`.
pub const VERSION: &str = "v1";
/// `maxRetryCount`: retry on every failure, without limit.
pub const UNLIMITED: i32 = -1;
/// `maxRetryCount`: retry on every completion, failed or succeeded, without limit.
pub const EXTENDED_UNLIMITED: i32 = -2;
/// The most tasks a task role may have (as upstream's CRD allows).
pub const MAX_TASK_NUMBER: i32 = 10000;

/// The desired state of a Framework: task roles, each a number of identical tasks (pods), and how
/// tasks and the whole framework are retried and completed.
// The printer columns repeat `type_` values, which this lint mistakes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "frameworkcontroller.microsoft.com",
    version = "v1",
    kind = "Framework",
    plural = "frameworks",
    singular = "framework",
    namespaced,
    status = "FrameworkStatus",
    doc = "A general-purpose distributed workload: task roles of pods with retry and completion policies.",
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Attempt",
        type_ = "integer",
        json_path = ".status.attemptStatus.id"
    ),
    printcolumn(
        name = "Code",
        type_ = "integer",
        json_path = ".status.attemptStatus.completionStatus.code"
    ),
    printcolumn(
        name = "Phrase",
        type_ = "string",
        json_path = ".status.attemptStatus.completionStatus.phrase"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkSpec {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `Create` only records the framework, `Start` runs it, `Stop` stops it for good. It may only
    /// move forward: Create → Start/Stop, Start → Stop.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf || oldSelf == 'Create' || (oldSelf == 'Start' && self == 'Stop')",
        "message": "executionType may only change from Create to Start or Stop, or from Start to Stop",
    }]))]
    pub execution_type: ExecutionType,
    /// When the whole framework is retried with a new attempt (a new ConfigMap and new pods).
    #[serde(default)]
    pub retry_policy: RetryPolicySpec,
    /// The task roles; names are unique.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub task_roles: Vec<TaskRoleSpec>,
}

/// What the controller does with a framework.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExecutionType {
    /// Keep it in `AttemptCreationPending`.
    Create,
    /// Run it.
    #[default]
    Start,
    /// Complete it now (code -210), whatever its tasks are doing.
    Stop,
}

/// A retry policy of the framework or of each task of a role.
///
/// Stop, attempt completion and scale-down completions are never retried. With
/// `fancyRetryPolicy`, transient failures are retried without counting and permanent ones are
/// not retried. Otherwise: `maxRetryCount` -2 retries every completion, -1 every failure, and N
/// retries failures while fewer than N accountable retries were made.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicySpec {
    /// Classify failures (transient retried for free, permanent never) before counting.
    #[serde(default)]
    pub fancy_retry_policy: bool,
    /// The accountable retries allowed; -1 any failure, -2 any completion, without limit.
    #[serde(default)]
    #[schemars(range(min = -2))]
    pub max_retry_count: i32,
}

/// When a task role completes the framework attempt early.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompletionPolicySpec {
    /// Fail the attempt once this many tasks of the role failed (disabled below 1).
    #[serde(default)]
    #[schemars(range(min = -1))]
    pub min_failed_task_count: i32,
    /// Succeed the attempt once this many tasks of the role succeeded (disabled below 1).
    #[serde(default)]
    #[schemars(range(min = -1))]
    pub min_succeeded_task_count: i32,
}

/// A set of identical tasks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRoleSpec {
    /// The role's name: up to 63 lowercase letters and digits (it is part of pod names).
    #[schemars(regex(pattern = r"^[a-z0-9]{1,63}$"))]
    pub name: String,
    /// How many tasks; editing it scales the role up or down.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub task_number: i32,
    /// When this role's tasks complete the framework attempt.
    #[serde(default)]
    pub framework_attempt_completion_policy: CompletionPolicySpec,
    /// Every task's retry policy, deletion timeout and pod template.
    #[serde(default)]
    pub task: TaskSpec,
}

/// What each task of a role is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// When a task is retried with a new pod (same name, new UID).
    #[serde(default)]
    pub retry_policy: RetryPolicySpec,
    /// Force-delete a task's pod still terminating this many seconds after its deletion started
    /// (null: never, so at most one instance of the task ever runs).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub pod_graceful_deletion_timeout_sec: Option<i64>,
    /// The pod template; `{{FC_…}}` placeholders in its strings are replaced per task.
    #[serde(default)]
    pub pod: PodTemplateSpec,
}

/// A framework's observed state, as FrameworkController records it: the truth about every attempt
/// (ConfigMap and pod UIDs, completion codes), kept even after the objects are gone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkStatus {
    /// When the framework was first seen.
    pub start_time: Time,
    /// When its first attempt started running.
    pub run_time: Option<Time>,
    /// When it completed.
    pub completion_time: Option<Time>,
    /// Where it is in its life.
    pub state: FrameworkState,
    /// When `state` last changed.
    pub transition_time: Time,
    /// Framework retries made and scheduled.
    pub retry_policy_status: RetryPolicyStatus,
    /// The current attempt.
    pub attempt_status: FrameworkAttemptStatus,
}

/// One attempt of a framework: one ConfigMap owning one pod per task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkAttemptStatus {
    /// The attempt number (= `retryPolicyStatus.totalRetriedCount`).
    pub id: i32,
    /// When the attempt was created.
    pub start_time: Time,
    /// When a task of it first ran.
    pub run_time: Option<Time>,
    /// When it completed.
    pub completion_time: Option<Time>,
    /// `{id}_{configMapUID}`, once the ConfigMap exists.
    #[serde(rename = "instanceUID")]
    pub instance_uid: Option<String>,
    /// `{framework}-attempt`.
    pub config_map_name: String,
    /// The attempt's ConfigMap, once created.
    #[serde(rename = "configMapUID")]
    pub config_map_uid: Option<String>,
    /// How the attempt completed (set once, never changed).
    pub completion_status: Option<FrameworkAttemptCompletionStatus>,
    /// Per task role, per task.
    #[serde(default)]
    pub task_role_statuses: Vec<TaskRoleStatus>,
}

/// The tasks of one role.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRoleStatus {
    /// The role's name.
    pub name: String,
    /// A UID for this role instance.
    #[serde(rename = "instanceUID")]
    pub instance_uid: String,
    /// The deletion timeout in force (copied from the spec before it is relied on).
    pub pod_graceful_deletion_timeout_sec: Option<i64>,
    /// One per task index.
    #[serde(default)]
    pub task_statuses: Vec<TaskStatus>,
}

/// One task: a pod `{framework}-{role}-{index}`, retried with new attempts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// The index within the role.
    pub index: i32,
    /// A UID for this task instance (a task added back by a scale-up gets a new one).
    #[serde(rename = "instanceUID")]
    pub instance_uid: String,
    /// When the task was created.
    pub start_time: Time,
    /// When its first attempt ran.
    pub run_time: Option<Time>,
    /// When it completed.
    pub completion_time: Option<Time>,
    /// Where it is in its life.
    pub state: TaskState,
    /// When `state` last changed.
    pub transition_time: Time,
    /// Scaled down: completes and is removed, never retried or counted.
    #[serde(default)]
    pub deletion_pending: bool,
    /// Task retries made and scheduled.
    pub retry_policy_status: RetryPolicyStatus,
    /// The current attempt (pod).
    pub attempt_status: TaskAttemptStatus,
}

/// One attempt of a task: one pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskAttemptStatus {
    /// The attempt number (= the task's `totalRetriedCount`).
    pub id: i32,
    /// When the attempt was created.
    pub start_time: Time,
    /// When its pod first ran.
    pub run_time: Option<Time>,
    /// When it completed.
    pub completion_time: Option<Time>,
    /// `{id}_{podUID}`, once the pod exists.
    #[serde(rename = "instanceUID")]
    pub instance_uid: Option<String>,
    /// `{framework}-{role}-{index}`.
    pub pod_name: String,
    /// The attempt's pod, once created.
    #[serde(rename = "podUID")]
    pub pod_uid: Option<String>,
    /// The node the pod is bound to.
    pub pod_node_name: Option<String>,
    /// The pod's IP.
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    /// The pod's node IP.
    #[serde(rename = "podHostIP")]
    pub pod_host_ip: Option<String>,
    /// How the attempt completed (set once, never changed).
    pub completion_status: Option<TaskAttemptCompletionStatus>,
}

/// Retries of a framework or task.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicyStatus {
    /// Every retry (= the current attempt id).
    pub total_retried_count: i32,
    /// Retries counted against `maxRetryCount` (transient failures under the fancy policy are not).
    pub accountable_retried_count: i32,
    /// Set while a retry is scheduled: it runs at the attempt's completion time plus this.
    pub retry_delay_sec: Option<i64>,
}

/// How an attempt completed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompletionStatus {
    /// 0 succeeded; predefined codes (-999..-1, 200..219) or the failed container's exit code.
    pub code: i32,
    /// The code's name, e.g. `ContainerTransientFailed`.
    pub phrase: String,
    /// Succeeded or Failed, with Transient/Permanent/Conflict attributes.
    #[serde(rename = "type")]
    pub type_: CompletionType,
    /// What happened, for people.
    pub diagnostics: String,
}

/// Succeeded or Failed, and how a failure should be treated.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CompletionType {
    /// `Succeeded` or `Failed`.
    pub name: CompletionTypeName,
    /// `Transient` (retry for free), `Permanent` (never retry), `Conflict` (retry after a delay).
    #[serde(default)]
    pub attributes: Vec<CompletionTypeAttribute>,
}

/// Whether an attempt succeeded.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CompletionTypeName {
    /// It succeeded.
    Succeeded,
    /// It failed.
    #[default]
    Failed,
}

/// How a failure is treated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CompletionTypeAttribute {
    /// It may go away on a retry: retried without counting under the fancy policy.
    Transient,
    /// It will happen again: never retried under the fancy policy.
    Permanent,
    /// Transient, caused by contention: the framework retry waits a random delay.
    Conflict,
}

/// How a task attempt completed, with what its pod showed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TaskAttemptCompletionStatus {
    /// Code, phrase, type and diagnostics.
    #[serde(flatten)]
    pub status: CompletionStatus,
    /// The pod's reason, message and container terminations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodCompletionStatus>,
}

/// How a framework attempt completed, and which task triggered it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct FrameworkAttemptCompletionStatus {
    /// Code, phrase, type and diagnostics.
    #[serde(flatten)]
    pub status: CompletionStatus,
    /// The task whose completion completed the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<CompletionPolicyTriggerStatus>,
}

/// The task that triggered a framework attempt's completion.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompletionPolicyTriggerStatus {
    /// Which policy fired.
    pub message: String,
    /// The task's role.
    pub task_role_name: String,
    /// The task's index.
    pub task_index: i32,
}

/// What a finished pod showed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct PodCompletionStatus {
    /// `status.reason`, e.g. `Evicted`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `status.message`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Init containers then containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerCompletionStatus>,
}

/// How one container ended.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ContainerCompletionStatus {
    /// The container's name.
    pub name: String,
    /// The termination reason, e.g. `OOMKilled`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The termination message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The signal that killed it, if any.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub signal: i32,
    /// The exit code.
    pub code: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The states of a framework, in order; `Completed` is final.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FrameworkState {
    /// The attempt is recorded; its ConfigMap is not yet created.
    AttemptCreationPending,
    /// The ConfigMap create was sent; waiting to see it.
    AttemptCreationRequested,
    /// The ConfigMap exists; no task runs yet.
    AttemptPreparing,
    /// A task runs.
    AttemptRunning,
    /// The attempt's completion is recorded; its ConfigMap is not yet deleted.
    AttemptDeletionPending,
    /// The ConfigMap delete was sent.
    AttemptDeletionRequested,
    /// The ConfigMap (and with it every pod) is being deleted.
    AttemptDeleting,
    /// The attempt is over; the framework is retried or completed.
    AttemptCompleted,
    /// The framework is over.
    Completed,
}

/// The states of a task, in order; `Completed` is final for the task instance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TaskState {
    /// The attempt is recorded; its pod is not yet created.
    AttemptCreationPending,
    /// The pod create was sent; waiting to see it.
    AttemptCreationRequested,
    /// The pod exists and is Pending.
    AttemptPreparing,
    /// The pod runs.
    AttemptRunning,
    /// The attempt's completion is recorded; its pod is not yet deleted.
    AttemptDeletionPending,
    /// The pod delete was sent.
    AttemptDeletionRequested,
    /// The pod is terminating.
    AttemptDeleting,
    /// The attempt is over; the task is retried or completed.
    AttemptCompleted,
    /// The task is over.
    Completed,
}

impl FrameworkState {
    /// The attempt is completing: its ConfigMap is to be, or being, deleted.
    pub fn is_completing(self) -> bool {
        matches!(
            self,
            Self::AttemptDeletionPending | Self::AttemptDeletionRequested | Self::AttemptDeleting
        )
    }
}

impl TaskStatus {
    /// The task completed (and is not being scaled away).
    pub fn is_completed(&self) -> bool {
        !self.deletion_pending && self.state == TaskState::Completed
    }

    /// The task completed with this completion type name.
    pub fn completed_as(&self, name: CompletionTypeName) -> bool {
        self.is_completed()
            && self
                .attempt_status
                .completion_status
                .as_ref()
                .is_some_and(|c| c.status.type_.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_frameworkcontroller_json() {
        let completion = serde_json::json!({
            "code": 200, "phrase": "ContainerTransientFailed",
            "type": {"name": "Failed", "attributes": ["Transient"]},
            "diagnostics": "Pod failed",
            "pod": {"containers": [{"name": "c", "reason": "Error", "code": 200}]}
        });
        let attempt = serde_json::json!({
            "id": 0, "startTime": "2024-01-02T03:04:05Z", "runTime": null,
            "completionTime": "2024-01-02T03:04:05Z", "instanceUID": "0_p",
            "podName": "fw-worker-0", "podUID": "p", "podNodeName": "n",
            "podIP": "10.0.0.1", "podHostIP": "10.0.0.2", "completionStatus": completion,
        });
        let task = serde_json::json!({
            "index": 0, "instanceUID": "t", "startTime": "2024-01-02T03:04:05Z",
            "runTime": null, "completionTime": null, "state": "AttemptCompleted",
            "transitionTime": "2024-01-02T03:04:05Z", "deletionPending": false,
            "retryPolicyStatus": {"totalRetriedCount": 0, "accountableRetriedCount": 0, "retryDelaySec": 0},
            "attemptStatus": attempt,
        });
        let json = serde_json::json!({
            "startTime": "2024-01-02T03:04:05Z", "runTime": null, "completionTime": null,
            "state": "AttemptRunning", "transitionTime": "2024-01-02T03:04:05Z",
            "retryPolicyStatus": {"totalRetriedCount": 1, "accountableRetriedCount": 0, "retryDelaySec": null},
            "attemptStatus": {
                "id": 1, "startTime": "2024-01-02T03:04:05Z", "runTime": null, "completionTime": null,
                "instanceUID": "1_abc", "configMapName": "fw-attempt", "configMapUID": "abc",
                "completionStatus": null,
                "taskRoleStatuses": [{
                    "name": "worker", "instanceUID": "r", "podGracefulDeletionTimeoutSec": 600,
                    "taskStatuses": [task],
                }],
            },
        });
        let status: FrameworkStatus = serde_json::from_value(json.clone()).expect("status");
        assert_eq!(serde_json::to_value(&status).expect("json"), json);
        let task = &status.attempt_status.task_role_statuses[0].task_statuses[0];
        let completion = task.attempt_status.completion_status.as_ref().expect("set");
        assert_eq!(completion.status.code, 200);
        assert_eq!(
            completion.status.type_.attributes,
            [CompletionTypeAttribute::Transient]
        );
    }

    #[test]
    fn execution_type_defaults_to_start() {
        let spec: FrameworkSpec = serde_json::from_value(serde_json::json!({
            "taskRoles": [{"name": "a", "taskNumber": 1, "task": {"pod": {}}}]
        }))
        .expect("spec");
        assert_eq!(spec.execution_type, ExecutionType::Start);
        assert_eq!(
            spec.task_roles[0].task.pod_graceful_deletion_timeout_sec,
            None
        );
    }
}
