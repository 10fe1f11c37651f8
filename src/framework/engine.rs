//! The Framework state machine as a pure planner: from a framework, its last written status and
//! what the watch caches show (the attempt ConfigMap, the tasks' pods), decide the next status
//! and the actions to take, following FrameworkController's `syncFrameworkState` and
//! `syncTaskState`.
//!
//! Write-ahead: every action comes from a state that was already written (a task's pod is only
//! created while its `AttemptCreationPending` is persisted; a pod is only deleted once its
//! completion is persisted as `AttemptDeletionPending`). Whatever a pass changes must be written
//! before its actions run; what the actions returned (new UIDs) is folded in with [`record`] and
//! written after them. Pods and ConfigMaps whose UIDs the status does not record are deleted,
//! never adopted, so a restart between a create and its status write cannot leave two
//! instances of a task.

use super::api::{
    CompletionPolicyTriggerStatus, CompletionStatus, CompletionTypeName, ExecutionType, Framework,
    FrameworkAttemptCompletionStatus, FrameworkAttemptStatus, FrameworkState, FrameworkStatus,
    RetryPolicyStatus, TaskAttemptCompletionStatus, TaskAttemptStatus, TaskRoleSpec,
    TaskRoleStatus, TaskState, TaskStatus,
};
use super::completion::{self, Classifier};
use super::objects;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What the watch caches show of a framework's objects.
#[derive(Default)]
pub struct Observed {
    /// The object named `{framework}-attempt`, if any.
    pub config_map: Option<Arc<ConfigMap>>,
    /// Pods by name (at least those the status names).
    pub pods: HashMap<String, Arc<Pod>>,
}

/// Something to do against the API server.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the attempt ConfigMap.
    CreateConfigMap {
        /// The framework attempt id.
        attempt: i32,
        /// The ConfigMap.
        config_map: Box<ConfigMap>,
    },
    /// Delete the attempt ConfigMap with this UID.
    DeleteConfigMap {
        /// Its UID (a precondition of the delete).
        uid: String,
        /// The framework attempt id.
        attempt: i32,
        /// Record the request for the current attempt (it is completing).
        completing: bool,
    },
    /// Create a task's pod.
    CreatePod {
        /// The task.
        task: TaskRef,
        /// The pod.
        pod: Box<Pod>,
    },
    /// Delete a pod with this UID.
    DeletePod {
        /// The task it belongs to.
        task: TaskRef,
        /// Its name.
        name: String,
        /// Its UID (a precondition of the delete).
        uid: String,
        /// With grace period 0 (its graceful deletion timed out).
        force: bool,
        /// Record the request for the task's attempt (its completion is persisted).
        completing: bool,
    },
}

/// A task attempt: role, index and attempt id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef {
    /// The task role.
    pub role: String,
    /// The task index.
    pub index: i32,
    /// The task attempt id the action was planned for.
    pub attempt: i32,
}

/// What an executed action returned, to fold into the status.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The ConfigMap of `attempt` was created with this UID.
    ConfigMapCreated {
        /// The framework attempt id.
        attempt: i32,
        /// The new UID.
        uid: String,
    },
    /// The completing attempt's ConfigMap delete was accepted.
    ConfigMapDeleteRequested {
        /// The framework attempt id.
        attempt: i32,
    },
    /// A task's pod was created with this UID.
    PodCreated {
        /// The task attempt.
        task: TaskRef,
        /// The new UID.
        uid: String,
    },
    /// A task's pod could not be created for a reason that is not transient: the attempt completes.
    PodCreationFailed {
        /// The task attempt.
        task: TaskRef,
        /// The completion code (-200 or -310).
        code: i32,
        /// The API server's answer.
        diagnostics: String,
    },
    /// A completing task's pod delete was accepted.
    PodDeleteRequested {
        /// The task attempt.
        task: TaskRef,
    },
}

/// The planner's settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Failure classification, creation timeout and conflict retry delays.
    pub classifier: Classifier,
}

/// The next status, and the actions to run once it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The status to write before any action.
    pub status: FrameworkStatus,
    /// What to do.
    pub actions: Vec<Action>,
    /// Look again after this long (a timeout or retry delay is running), if nothing happens first.
    pub requeue_after: Option<Duration>,
}

/// Plans the next step of `framework`. `base` is the status last written (`None` for a new
/// framework); `new_uid` mints instance UIDs for new task roles and tasks.
pub fn plan(
    framework: &Framework,
    base: Option<&FrameworkStatus>,
    observed: &Observed,
    config: &Config,
    now: Timestamp,
    new_uid: &mut dyn FnMut() -> String,
) -> Plan {
    let Some(base) = base else {
        // The first status is written before anything is created.
        return Plan {
            status: new_status(framework, now, new_uid),
            actions: Vec::new(),
            requeue_after: None,
        };
    };
    let mut sync = Sync {
        framework,
        status: base.clone(),
        observed,
        config,
        now,
        actions: Vec::new(),
        requeue_after: None,
    };
    sync.run(new_uid);
    Plan {
        status: sync.status,
        actions: sync.actions,
        requeue_after: sync.requeue_after,
    }
}

/// Folds what an action returned into `status` (the status written before the action).
pub fn record(status: &mut FrameworkStatus, outcome: Outcome, now: Timestamp) {
    let time = Time(now);
    match outcome {
        Outcome::ConfigMapCreated { attempt, uid } => {
            let a = &mut status.attempt_status;
            if a.id == attempt && status.state == FrameworkState::AttemptCreationPending {
                a.instance_uid = Some(format!("{attempt}_{uid}"));
                a.config_map_uid = Some(uid);
                transition_framework(status, FrameworkState::AttemptCreationRequested, &time);
            }
        }
        Outcome::ConfigMapDeleteRequested { attempt } => {
            if status.attempt_status.id == attempt
                && status.state == FrameworkState::AttemptDeletionPending
            {
                transition_framework(status, FrameworkState::AttemptDeletionRequested, &time);
            }
        }
        Outcome::PodCreated { task, uid } => {
            if let Some(t) = task_at(status, &task, TaskState::AttemptCreationPending) {
                t.attempt_status.instance_uid = Some(format!("{}_{uid}", task.attempt));
                t.attempt_status.pod_uid = Some(uid);
                transition_task(t, TaskState::AttemptCreationRequested, &time);
            }
        }
        Outcome::PodCreationFailed {
            task,
            code,
            diagnostics,
        } => {
            if let Some(t) = task_at(status, &task, TaskState::AttemptCreationPending) {
                complete_task_attempt(t, true, Some(completion::status(code, diagnostics)), &time);
            }
        }
        Outcome::PodDeleteRequested { task } => {
            if let Some(t) = task_at(status, &task, TaskState::AttemptDeletionPending) {
                transition_task(t, TaskState::AttemptDeletionRequested, &time);
            }
        }
    }
}

fn task_at<'a>(
    status: &'a mut FrameworkStatus,
    task: &TaskRef,
    state: TaskState,
) -> Option<&'a mut TaskStatus> {
    status
        .attempt_status
        .task_role_statuses
        .iter_mut()
        .find(|r| r.name == task.role)?
        .task_statuses
        .get_mut(usize::try_from(task.index).ok()?)
        .filter(|t| t.attempt_status.id == task.attempt && t.state == state)
}

/// A new framework's status: attempt 0, every task waiting for creation.
pub fn new_status(
    framework: &Framework,
    now: Timestamp,
    new_uid: &mut dyn FnMut() -> String,
) -> FrameworkStatus {
    FrameworkStatus {
        start_time: Time(now),
        run_time: None,
        completion_time: None,
        state: FrameworkState::AttemptCreationPending,
        transition_time: Time(now),
        retry_policy_status: RetryPolicyStatus::default(),
        attempt_status: new_attempt(framework, 0, now, new_uid),
    }
}

fn new_attempt(
    framework: &Framework,
    id: i32,
    now: Timestamp,
    new_uid: &mut dyn FnMut() -> String,
) -> FrameworkAttemptStatus {
    let name = framework.name_any();
    FrameworkAttemptStatus {
        id,
        start_time: Time(now),
        run_time: None,
        completion_time: None,
        instance_uid: None,
        config_map_name: objects::config_map_name(&name),
        config_map_uid: None,
        completion_status: None,
        task_role_statuses: framework
            .spec
            .task_roles
            .iter()
            .map(|role| new_role(&name, role, now, new_uid))
            .collect(),
    }
}

fn new_role(
    framework: &str,
    role: &TaskRoleSpec,
    now: Timestamp,
    new_uid: &mut dyn FnMut() -> String,
) -> TaskRoleStatus {
    TaskRoleStatus {
        name: role.name.clone(),
        instance_uid: new_uid(),
        pod_graceful_deletion_timeout_sec: role.task.pod_graceful_deletion_timeout_sec,
        task_statuses: (0..role.task_number.max(0))
            .map(|index| new_task(framework, &role.name, index, now, new_uid))
            .collect(),
    }
}

fn new_task(
    framework: &str,
    role: &str,
    index: i32,
    now: Timestamp,
    new_uid: &mut dyn FnMut() -> String,
) -> TaskStatus {
    TaskStatus {
        index,
        instance_uid: new_uid(),
        start_time: Time(now),
        run_time: None,
        completion_time: None,
        state: TaskState::AttemptCreationPending,
        transition_time: Time(now),
        deletion_pending: false,
        retry_policy_status: RetryPolicyStatus::default(),
        attempt_status: new_task_attempt(framework, role, index, 0, now),
    }
}

fn new_task_attempt(
    framework: &str,
    role: &str,
    index: i32,
    id: i32,
    now: Timestamp,
) -> TaskAttemptStatus {
    TaskAttemptStatus {
        id,
        start_time: Time(now),
        run_time: None,
        completion_time: None,
        instance_uid: None,
        pod_name: objects::pod_name(framework, role, index),
        pod_uid: None,
        pod_node_name: None,
        pod_ip: None,
        pod_host_ip: None,
        completion_status: None,
    }
}

fn transition_framework(status: &mut FrameworkStatus, state: FrameworkState, now: &Time) {
    if status.state == state {
        return;
    }
    match state {
        FrameworkState::AttemptRunning => {
            status.attempt_status.run_time = Some(now.clone());
            status.run_time.get_or_insert_with(|| now.clone());
        }
        FrameworkState::AttemptCompleted => {
            status.attempt_status.completion_time = Some(now.clone());
        }
        FrameworkState::Completed => status.completion_time = Some(now.clone()),
        _ => {}
    }
    status.state = state;
    status.transition_time = now.clone();
}

fn transition_task(task: &mut TaskStatus, state: TaskState, now: &Time) {
    if task.state == state {
        return;
    }
    match state {
        TaskState::AttemptRunning => {
            task.attempt_status.run_time = Some(now.clone());
            task.run_time.get_or_insert_with(|| now.clone());
        }
        TaskState::AttemptCompleted => task.attempt_status.completion_time = Some(now.clone()),
        TaskState::Completed => task.completion_time = Some(now.clone()),
        _ => {}
    }
    task.state = state;
    task.transition_time = now.clone();
}

/// Records a task attempt's completion (kept if one is already set): with `force` the attempt is
/// over (its pod is gone), otherwise its pod is to be deleted first.
fn complete_task_attempt(
    task: &mut TaskStatus,
    force: bool,
    completion: Option<CompletionStatus>,
    now: &Time,
) {
    if task.attempt_status.completion_status.is_none() {
        task.attempt_status.completion_status =
            completion.map(|status| TaskAttemptCompletionStatus { status, pod: None });
    }
    let state = if force {
        TaskState::AttemptCompleted
    } else {
        TaskState::AttemptDeletionPending
    };
    transition_task(task, state, now);
}

/// Seconds left until `since + timeout_sec`, or `None` if it passed.
fn remaining(since: &Time, timeout_sec: i64, now: Timestamp) -> Option<Duration> {
    let left = since.0.as_second().saturating_add(timeout_sec) - now.as_second();
    (left > 0).then(|| Duration::from_secs(left.unsigned_abs()))
}

struct Sync<'a> {
    framework: &'a Framework,
    status: FrameworkStatus,
    observed: &'a Observed,
    config: &'a Config,
    now: Timestamp,
    actions: Vec<Action>,
    requeue_after: Option<Duration>,
}

impl Sync<'_> {
    fn time(&self) -> Time {
        Time(self.now)
    }

    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |r| r.min(after)));
    }

    fn stopping(&self) -> bool {
        self.framework.spec.execution_type == ExecutionType::Stop
    }

    fn role_spec(&self, name: &str) -> Option<&TaskRoleSpec> {
        self.framework
            .spec
            .task_roles
            .iter()
            .find(|r| r.name == name)
    }

    fn run(&mut self, new_uid: &mut dyn FnMut() -> String) {
        if self.status.state == FrameworkState::Completed {
            return;
        }
        // Rescales and new deletion timeouts are written before they are acted on.
        let rescaled = self.sync_scale(new_uid);
        let compacted = self.compact_scale(new_uid);
        if rescaled || compacted || self.update_deletion_timeouts() {
            return;
        }
        self.sync_framework();
    }

    /// Adds the tasks and roles the spec gained, marks those it lost `deletionPending`.
    fn sync_scale(&mut self, new_uid: &mut dyn FnMut() -> String) -> bool {
        if self.frozen() {
            return false;
        }
        let name = self.framework.name_any();
        let now = self.now;
        let mut changed = false;
        for role in &self.framework.spec.task_roles {
            let statuses = &mut self.status.attempt_status.task_role_statuses;
            let Some(status) = statuses.iter_mut().find(|r| r.name == role.name) else {
                statuses.push(new_role(&name, role, now, new_uid));
                changed = true;
                continue;
            };
            let have = status.task_statuses.len();
            let want = usize::try_from(role.task_number.max(0)).unwrap_or(0);
            for index in have..want {
                let index = i32::try_from(index).unwrap_or(i32::MAX);
                status
                    .task_statuses
                    .push(new_task(&name, &role.name, index, now, new_uid));
                changed = true;
            }
            for task in status.task_statuses.iter_mut().skip(want) {
                changed |= mark_deletion_pending(task);
            }
        }
        let spec_roles: Vec<&str> = self
            .framework
            .spec
            .task_roles
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        for role in &mut self.status.attempt_status.task_role_statuses {
            if !spec_roles.contains(&role.name.as_str()) {
                for task in &mut role.task_statuses {
                    changed |= mark_deletion_pending(task);
                }
            }
        }
        changed
    }

    /// Removes completed scaled-away tasks (and roles) from the tail, and replaces completed
    /// scaled-away tasks the spec wants again with new task instances.
    fn compact_scale(&mut self, new_uid: &mut dyn FnMut() -> String) -> bool {
        if self.frozen() {
            return false;
        }
        let name = self.framework.name_any();
        let now = self.now;
        let mut changed = false;
        let wanted: HashMap<String, usize> = self
            .framework
            .spec
            .task_roles
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    usize::try_from(r.task_number.max(0)).unwrap_or(0),
                )
            })
            .collect();
        let done = |t: &TaskStatus| t.deletion_pending && t.state == TaskState::Completed;
        self.status
            .attempt_status
            .task_role_statuses
            .retain_mut(|role| {
                let want = wanted.get(&role.name).copied();
                while role.task_statuses.len() > want.unwrap_or(0)
                    && role.task_statuses.last().is_some_and(done)
                {
                    role.task_statuses.pop();
                    changed = true;
                }
                let gone = want.is_none() && role.task_statuses.is_empty();
                changed |= gone;
                !gone
            });
        for role in &mut self.status.attempt_status.task_role_statuses {
            let Some(want) = wanted.get(&role.name).copied() else {
                continue;
            };
            for task in role.task_statuses.iter_mut().take(want) {
                if done(task) {
                    *task = new_task(&name, &role.name, task.index, now, new_uid);
                    changed = true;
                }
            }
        }
        changed
    }

    /// The attempt no longer reacts to rescaling once it is completing.
    fn frozen(&self) -> bool {
        self.status.state.is_completing()
            || matches!(
                self.status.state,
                FrameworkState::AttemptCompleted | FrameworkState::Completed
            )
    }

    fn update_deletion_timeouts(&mut self) -> bool {
        let mut changed = false;
        for role in &self.framework.spec.task_roles {
            if let Some(status) = self
                .status
                .attempt_status
                .task_role_statuses
                .iter_mut()
                .find(|r| r.name == role.name)
                && status.pod_graceful_deletion_timeout_sec
                    != role.task.pod_graceful_deletion_timeout_sec
            {
                status.pod_graceful_deletion_timeout_sec =
                    role.task.pod_graceful_deletion_timeout_sec;
                changed = true;
            }
        }
        changed
    }

    /// The attempt ConfigMap the status records, if the cache shows it; a ConfigMap this
    /// framework controls under another UID (created but never recorded) is deleted.
    fn managed_config_map(&mut self) -> Cached<ConfigMap> {
        let Some(cm) = self.observed.config_map.clone() else {
            return Cached::Absent;
        };
        let uid = cm.uid().unwrap_or_default();
        if self.status.attempt_status.config_map_uid.as_deref() == Some(uid.as_str()) {
            return Cached::Managed(cm);
        }
        let framework_uid = self.framework.uid().unwrap_or_default();
        if objects::controlled_by(&cm.metadata, &framework_uid)
            && cm.metadata.deletion_timestamp.is_none()
        {
            self.actions.push(Action::DeleteConfigMap {
                uid,
                attempt: self.status.attempt_status.id,
                completing: false,
            });
        }
        Cached::Blocked
    }

    fn complete_framework_attempt(
        &mut self,
        force: bool,
        completion: FrameworkAttemptCompletionStatus,
    ) {
        let now = self.time();
        let attempt = &mut self.status.attempt_status;
        attempt.completion_status.get_or_insert(completion);
        for role in &mut attempt.task_role_statuses {
            for task in &mut role.task_statuses {
                if task.attempt_status.completion_status.is_none() {
                    task.attempt_status.completion_status = Some(TaskAttemptCompletionStatus {
                        status: completion::status(
                            completion::FRAMEWORK_ATTEMPT_COMPLETION,
                            "Stop to complete current FrameworkAttempt",
                        ),
                        pod: None,
                    });
                }
                if force && task.state != TaskState::Completed {
                    if task.state != TaskState::AttemptCompleted {
                        complete_task_attempt(task, true, None, &now);
                    }
                    task.retry_policy_status.retry_delay_sec = None;
                    transition_task(task, TaskState::Completed, &now);
                }
            }
        }
        let state = if force {
            FrameworkState::AttemptCompleted
        } else {
            FrameworkState::AttemptDeletionPending
        };
        transition_framework(&mut self.status, state, &now);
    }

    fn sync_framework(&mut self) {
        let now = self.time();
        let mut cm = None;
        let mut blocked = false;
        if self.status.state != FrameworkState::AttemptCompleted {
            let cached = self.managed_config_map();
            blocked = matches!(cached, Cached::Blocked);
            if let Cached::Managed(managed) = cached {
                cm = Some(managed);
            }
            match &cm {
                None => {
                    if self.status.state == FrameworkState::AttemptCreationRequested {
                        let code = if self.stopping() {
                            completion::STOP_FRAMEWORK_REQUESTED
                        } else if let Some(left) = remaining(
                            &self.status.transition_time,
                            self.config.classifier.creation_timeout_sec,
                            self.now,
                        ) {
                            // Waiting for the created ConfigMap to show up in the cache.
                            self.requeue(left);
                            return;
                        } else {
                            completion::CONFIG_MAP_LOCAL_CACHE_CREATION_TIMEOUT
                        };
                        if let Some(uid) = self.status.attempt_status.config_map_uid.clone() {
                            self.actions.push(Action::DeleteConfigMap {
                                uid,
                                attempt: self.status.attempt_status.id,
                                completing: false,
                            });
                        }
                        let diagnostics = if code == completion::STOP_FRAMEWORK_REQUESTED {
                            "User has requested to stop the Framework".to_string()
                        } else {
                            format!(
                                "ConfigMap does not appear in the local cache within timeout {}s, so consider it was deleted and explicitly delete it",
                                self.config.classifier.creation_timeout_sec
                            )
                        };
                        self.complete_framework_attempt(
                            true,
                            framework_completion(code, diagnostics),
                        );
                        return;
                    }
                    if self.status.state != FrameworkState::AttemptCreationPending {
                        self.complete_framework_attempt(
                            true,
                            framework_completion(
                                completion::CONFIG_MAP_EXTERNAL_DELETED,
                                "ConfigMap was deleted by others",
                            ),
                        );
                        return;
                    }
                }
                Some(cm) => {
                    if cm.metadata.deletion_timestamp.is_none() {
                        match self.status.state {
                            FrameworkState::AttemptDeletionPending => {
                                self.actions.push(Action::DeleteConfigMap {
                                    uid: cm.uid().unwrap_or_default(),
                                    attempt: self.status.attempt_status.id,
                                    completing: true,
                                });
                            }
                            FrameworkState::AttemptCreationRequested => {
                                transition_framework(
                                    &mut self.status,
                                    FrameworkState::AttemptPreparing,
                                    &now,
                                );
                            }
                            _ => {}
                        }
                    } else {
                        self.status
                            .attempt_status
                            .completion_status
                            .get_or_insert_with(|| {
                                framework_completion(
                                    completion::CONFIG_MAP_EXTERNAL_DELETED,
                                    "ConfigMap is being deleted by others",
                                )
                            });
                        transition_framework(
                            &mut self.status,
                            FrameworkState::AttemptDeleting,
                            &now,
                        );
                    }
                }
            }
        }

        if self.status.state == FrameworkState::AttemptCompleted {
            self.retry_framework();
            return;
        }

        if self.status.state == FrameworkState::AttemptCreationPending {
            if self.framework.metadata.deletion_timestamp.is_some()
                || self.framework.spec.execution_type == ExecutionType::Create
            {
                return;
            }
            if self.stopping() {
                self.complete_framework_attempt(
                    true,
                    framework_completion(
                        completion::STOP_FRAMEWORK_REQUESTED,
                        "User has requested to stop the Framework",
                    ),
                );
                return;
            }
            if blocked {
                // Another ConfigMap holds the name: create once it is gone.
                return;
            }
            self.actions.push(Action::CreateConfigMap {
                attempt: self.status.attempt_status.id,
                config_map: Box::new(objects::config_map(self.framework, &self.status)),
            });
            return;
        }

        // Preparing, Running, or completing.
        if !self.status.state.is_completing() {
            if self.stopping() {
                self.complete_framework_attempt(
                    false,
                    framework_completion(
                        completion::STOP_FRAMEWORK_REQUESTED,
                        "User has requested to stop the Framework",
                    ),
                );
            } else {
                self.sync_completion_policy();
            }
        }
        let tasks: Vec<(String, usize)> = self
            .status
            .attempt_status
            .task_role_statuses
            .iter()
            .flat_map(|r| (0..r.task_statuses.len()).map(|i| (r.name.clone(), i)))
            .collect();
        for (role, index) in tasks {
            self.sync_task(&role, index, cm.as_deref());
        }
        if !self.status.state.is_completing() {
            self.sync_completion_policy();
        }
        if self.status.state == FrameworkState::AttemptPreparing
            && self
                .status
                .attempt_status
                .task_role_statuses
                .iter()
                .flat_map(|r| &r.task_statuses)
                .any(|t| !t.deletion_pending && t.state == TaskState::AttemptRunning)
        {
            transition_framework(&mut self.status, FrameworkState::AttemptRunning, &now);
        }
    }

    /// After an attempt: schedule a retry (or complete), then run it once its delay passed.
    fn retry_framework(&mut self) {
        let now = self.time();
        let completion = self
            .status
            .attempt_status
            .completion_status
            .as_ref()
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let decision = completion::should_retry(
            &self.framework.spec.retry_policy,
            &self.status.retry_policy_status,
            &completion,
            self.conflict_delay(),
        );
        if self.status.retry_policy_status.retry_delay_sec.is_none() {
            if !decision.retry {
                transition_framework(&mut self.status, FrameworkState::Completed, &now);
                return;
            }
            self.status.retry_policy_status.retry_delay_sec = Some(decision.delay_sec);
        }
        let delay = self.status.retry_policy_status.retry_delay_sec.unwrap_or(0);
        if !self.stopping()
            && let Some(left) = remaining(&self.status.transition_time, delay, self.now)
        {
            self.requeue(left);
            return;
        }
        let retries = &mut self.status.retry_policy_status;
        retries.total_retried_count += 1;
        if decision.accountable {
            retries.accountable_retried_count += 1;
        }
        retries.retry_delay_sec = None;
        let id = retries.total_retried_count;
        // Instance UIDs of the new attempt's roles and tasks come from the framework UID, the
        // attempt and their position, so the plan stays a function of its inputs.
        let uid = self.framework.uid().unwrap_or_default();
        let mut counter = 0;
        let mut attempt_uid = || {
            counter += 1;
            format!("{uid}-{id}-{counter}")
        };
        self.status.attempt_status = new_attempt(self.framework, id, self.now, &mut attempt_uid);
        transition_framework(
            &mut self.status,
            FrameworkState::AttemptCreationPending,
            &now,
        );
    }

    /// The delay before retrying after a transient conflict failure: spread over the configured
    /// bounds by the attempt, so frameworks failing together do not retry together.
    fn conflict_delay(&self) -> i64 {
        let (min, max) = self.config.classifier.conflict_retry_delay_sec;
        let seed = self
            .framework
            .uid()
            .unwrap_or_default()
            .bytes()
            .chain(self.status.attempt_status.id.to_le_bytes())
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let span = u64::try_from(max - min + 1).unwrap_or(1).max(1);
        min + i64::try_from(seed % span).unwrap_or(0)
    }

    /// Completes the attempt if a role's completion policy fired, or every task completed.
    fn sync_completion_policy(&mut self) {
        let mut first: Option<(Time, FrameworkAttemptCompletionStatus)> = None;
        for role in &self.framework.spec.task_roles {
            let Some(status) = self
                .status
                .attempt_status
                .task_role_statuses
                .iter()
                .find(|r| r.name == role.name)
            else {
                continue;
            };
            let policy = role.framework_attempt_completion_policy;
            for (min, name, what) in [
                (
                    policy.min_failed_task_count,
                    CompletionTypeName::Failed,
                    "FailedTaskCount",
                ),
                (
                    policy.min_succeeded_task_count,
                    CompletionTypeName::Succeeded,
                    "SucceededTaskCount",
                ),
            ] {
                if min < 1 {
                    continue;
                }
                let mut tasks: Vec<&TaskStatus> = status
                    .task_statuses
                    .iter()
                    .filter(|t| t.completed_as(name))
                    .collect();
                let count = tasks.len();
                let Some(nth) = usize::try_from(min - 1).ok().filter(|n| *n < count) else {
                    continue;
                };
                tasks.sort_by_key(|t| t.completion_time.as_ref().map(|c| c.0));
                let trigger = tasks[nth];
                let when = trigger
                    .completion_time
                    .clone()
                    .unwrap_or_else(|| self.time());
                if first.as_ref().is_none_or(|(t, _)| when.0 < t.0) {
                    let completion = trigger
                        .attempt_status
                        .completion_status
                        .as_ref()
                        .map(|c| c.status.clone())
                        .unwrap_or_default();
                    let label = if name == CompletionTypeName::Failed {
                        "MinFailedTaskCount"
                    } else {
                        "MinSucceededTaskCount"
                    };
                    first = Some((
                        when,
                        FrameworkAttemptCompletionStatus {
                            status: completion,
                            trigger: Some(CompletionPolicyTriggerStatus {
                                message: format!(
                                    "{what} {count} has reached {label} {min} in the TaskRole"
                                ),
                                task_role_name: role.name.clone(),
                                task_index: trigger.index,
                            }),
                        },
                    ));
                }
            }
        }
        if let Some((_, completion)) = first {
            self.complete_framework_attempt(false, completion);
            return;
        }
        let total: i64 = self
            .framework
            .spec
            .task_roles
            .iter()
            .map(|r| i64::from(r.task_number.max(0)))
            .sum();
        if total < 1 {
            return;
        }
        let completed: Vec<(&str, &TaskStatus)> = self
            .status
            .attempt_status
            .task_role_statuses
            .iter()
            .flat_map(|r| r.task_statuses.iter().map(move |t| (r.name.as_str(), t)))
            .filter(|(_, t)| t.is_completed())
            .collect();
        let count = i64::try_from(completed.len()).unwrap_or(i64::MAX);
        if count < total {
            return;
        }
        let last = completed
            .iter()
            .max_by_key(|(_, t)| t.completion_time.as_ref().map(|c| c.0));
        let diagnostics = format!(
            "CompletedTaskCount {count} has reached TotalTaskCount {total} and no user specified conditions in FrameworkAttemptCompletionPolicy have ever been triggered"
        );
        let trigger = last.map(|(role, task)| CompletionPolicyTriggerStatus {
            message: diagnostics.clone(),
            task_role_name: role.to_string(),
            task_index: task.index,
        });
        self.complete_framework_attempt(
            false,
            FrameworkAttemptCompletionStatus {
                status: completion::status(completion::SUCCEEDED, diagnostics),
                trigger,
            },
        );
    }

    fn sync_task(&mut self, role: &str, index: usize, cm: Option<&ConfigMap>) {
        let now = self.time();
        let framework_completing = self.status.state.is_completing();
        let timeout = self.config.classifier.creation_timeout_sec;
        let retry_policy = self.role_spec(role).map(|s| s.task.retry_policy);
        let has_spec = retry_policy.is_some();
        let Some(role_status) = self
            .status
            .attempt_status
            .task_role_statuses
            .iter()
            .position(|r| r.name == role)
        else {
            return;
        };
        let grace_timeout = self.status.attempt_status.task_role_statuses[role_status]
            .pod_graceful_deletion_timeout_sec;
        let task = &self.status.attempt_status.task_role_statuses[role_status].task_statuses[index];
        let task_ref = TaskRef {
            role: role.to_string(),
            index: task.index,
            attempt: task.attempt_status.id,
        };
        if task.state == TaskState::Completed {
            return;
        }
        let mut actions = Vec::new();
        let mut requeue = None;
        let task =
            &mut self.status.attempt_status.task_role_statuses[role_status].task_statuses[index];
        if task.state != TaskState::AttemptCompleted {
            let pod = managed_pod(
                self.observed,
                task,
                &task_ref,
                cm,
                grace_timeout,
                self.now,
                &mut actions,
                &mut requeue,
            );
            let blocked = matches!(pod, Cached::Blocked);
            let pod = match pod {
                Cached::Managed(pod) => Some(pod),
                Cached::Absent | Cached::Blocked => None,
            };
            if blocked && task.state == TaskState::AttemptCreationPending {
                // Another pod holds the name: create once it is gone.
                self.finish(actions, requeue);
                return;
            }
            match pod {
                None => {
                    if task.state == TaskState::AttemptCreationRequested {
                        let (code, diagnostics) = if task.deletion_pending {
                            (
                                completion::DELETE_TASK_REQUESTED,
                                "User has requested to delete the Task by Framework ScaleDown"
                                    .to_string(),
                            )
                        } else if let Some(left) =
                            remaining(&task.transition_time, timeout, self.now)
                        {
                            requeue = Some(left);
                            (0, String::new())
                        } else {
                            (
                                completion::POD_LOCAL_CACHE_CREATION_TIMEOUT,
                                format!(
                                    "Pod does not appear in the local cache within timeout {timeout}s, so consider it was deleted and explicitly delete it"
                                ),
                            )
                        };
                        if code != 0 {
                            if let Some(uid) = task.attempt_status.pod_uid.clone() {
                                actions.push(Action::DeletePod {
                                    task: task_ref.clone(),
                                    name: task.attempt_status.pod_name.clone(),
                                    uid,
                                    force: false,
                                    completing: false,
                                });
                            }
                            complete_task_attempt(
                                task,
                                true,
                                Some(completion::status(code, diagnostics)),
                                &now,
                            );
                        }
                        self.finish(actions, requeue);
                        return;
                    }
                    if task.state != TaskState::AttemptCreationPending {
                        complete_task_attempt(
                            task,
                            true,
                            Some(completion::status(
                                completion::POD_EXTERNAL_DELETED,
                                "Pod was deleted by others",
                            )),
                            &now,
                        );
                        self.finish(actions, requeue);
                        return;
                    }
                }
                Some(pod) => {
                    if pod.metadata.deletion_timestamp.is_none() {
                        match task.state {
                            TaskState::AttemptDeletionPending => {
                                actions.push(Action::DeletePod {
                                    task: task_ref.clone(),
                                    name: pod.name_any(),
                                    uid: pod.uid().unwrap_or_default(),
                                    force: false,
                                    completing: true,
                                });
                                self.finish(actions, requeue);
                                return;
                            }
                            TaskState::AttemptDeletionRequested => {
                                self.finish(actions, requeue);
                                return;
                            }
                            _ => {}
                        }
                        if task.state == TaskState::AttemptCreationRequested {
                            transition_task(task, TaskState::AttemptPreparing, &now);
                        }
                        let attempt = &mut task.attempt_status;
                        attempt.pod_node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                        attempt.pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
                        attempt.pod_host_ip = pod.status.as_ref().and_then(|s| s.host_ip.clone());
                        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                        match phase {
                            Some("Pending") => {
                                transition_task(task, TaskState::AttemptPreparing, &now)
                            }
                            Some("Running") => {
                                transition_task(task, TaskState::AttemptRunning, &now)
                            }
                            Some("Succeeded") => {
                                let mut status =
                                    completion::status(completion::SUCCEEDED, "Pod succeeded");
                                status.diagnostics = "Pod succeeded".into();
                                set_pod_completion(task, status, &pod);
                                complete_task_attempt(task, false, None, &now);
                                self.finish(actions, requeue);
                                return;
                            }
                            Some("Failed") => {
                                let status = self.config.classifier.classify_failed_pod(&pod);
                                set_pod_completion(task, status, &pod);
                                complete_task_attempt(task, false, None, &now);
                                self.finish(actions, requeue);
                                return;
                            }
                            // Unknown: the node went silent; wait for it or for the pod's deletion.
                            _ => {}
                        }
                    } else {
                        task.attempt_status
                            .completion_status
                            .get_or_insert_with(|| TaskAttemptCompletionStatus {
                                status: completion::status(
                                    completion::POD_EXTERNAL_DELETED,
                                    "Pod is being deleted by others",
                                ),
                                pod: None,
                            });
                        transition_task(task, TaskState::AttemptDeleting, &now);
                        force_delete_if_overdue(
                            &pod,
                            &task_ref,
                            grace_timeout,
                            self.now,
                            &mut actions,
                            &mut requeue,
                        );
                        self.finish(actions, requeue);
                        return;
                    }
                }
            }
        }

        if matches!(
            task.state,
            TaskState::AttemptPreparing | TaskState::AttemptRunning
        ) {
            if task.deletion_pending {
                complete_task_attempt(
                    task,
                    false,
                    Some(completion::status(
                        completion::DELETE_TASK_REQUESTED,
                        "User has requested to delete the Task by Framework ScaleDown",
                    )),
                    &now,
                );
            }
            self.finish(actions, requeue);
            return;
        }

        if task.state == TaskState::AttemptCompleted {
            let completion = task
                .attempt_status
                .completion_status
                .as_ref()
                .map(|c| c.status.clone())
                .unwrap_or_default();
            let decision = match &retry_policy {
                Some(policy) if !framework_completing => {
                    completion::should_retry(policy, &task.retry_policy_status, &completion, 0)
                }
                // The attempt is completing, or the role is gone: no retry.
                _ => completion::RetryDecision {
                    retry: false,
                    accountable: true,
                    delay_sec: 0,
                    reason: "FrameworkAttempt is completing or TaskRoleSpec is deleted".into(),
                },
            };
            let framework_name = self.framework.name_any();
            let task = &mut self.status.attempt_status.task_role_statuses[role_status]
                .task_statuses[index];
            let mut completed = false;
            if task.retry_policy_status.retry_delay_sec.is_none() {
                if decision.retry {
                    task.retry_policy_status.retry_delay_sec = Some(decision.delay_sec);
                } else {
                    transition_task(task, TaskState::Completed, &now);
                    completed = true;
                }
            }
            if let Some(delay) = task.retry_policy_status.retry_delay_sec {
                if !task.deletion_pending
                    && let Some(left) = remaining(&task.transition_time, delay, self.now)
                {
                    self.finish(actions, Some(left));
                    return;
                }
                let retries = &mut task.retry_policy_status;
                retries.total_retried_count += 1;
                if decision.accountable {
                    retries.accountable_retried_count += 1;
                }
                retries.retry_delay_sec = None;
                task.attempt_status = new_task_attempt(
                    &framework_name,
                    role,
                    task.index,
                    retries.total_retried_count,
                    self.now,
                );
                transition_task(task, TaskState::AttemptCreationPending, &now);
                // The new attempt is written before its pod is created.
            }
            self.finish(actions, requeue);
            // A task completing may complete the attempt; the tasks after it then see a
            // completing attempt and are not retried.
            if completed && !self.status.state.is_completing() {
                self.sync_completion_policy();
            }
            return;
        }

        let task =
            &mut self.status.attempt_status.task_role_statuses[role_status].task_statuses[index];
        if task.state == TaskState::AttemptCreationPending {
            if framework_completing {
                self.finish(actions, requeue);
                return;
            }
            if task.deletion_pending || !has_spec {
                complete_task_attempt(
                    task,
                    true,
                    Some(completion::status(
                        completion::DELETE_TASK_REQUESTED,
                        "User has requested to delete the Task by Framework ScaleDown",
                    )),
                    &now,
                );
                self.finish(actions, requeue);
                return;
            }
            self.finish(actions, requeue);
            self.create_pod(role_status, index, task_ref, cm);
        }
    }

    fn create_pod(&mut self, role: usize, index: usize, task: TaskRef, cm: Option<&ConfigMap>) {
        let Some(cm) = cm else {
            return;
        };
        let role_status = &self.status.attempt_status.task_role_statuses[role];
        let Some(spec) = self.role_spec(&role_status.name) else {
            return;
        };
        let task_status = &role_status.task_statuses[index];
        match objects::pod(
            self.framework,
            &self.status,
            &spec.task.pod,
            role_status,
            task_status,
            &cm.metadata,
        ) {
            Ok(pod) => self.actions.push(Action::CreatePod {
                task,
                pod: Box::new(pod),
            }),
            Err(error) => {
                let now = self.time();
                let task_status =
                    &mut self.status.attempt_status.task_role_statuses[role].task_statuses[index];
                complete_task_attempt(
                    task_status,
                    true,
                    Some(completion::status(
                        completion::POD_CREATION_PERMANENT_ERROR,
                        error.to_string(),
                    )),
                    &now,
                );
            }
        }
    }

    fn finish(&mut self, actions: Vec<Action>, requeue: Option<Duration>) {
        self.actions.extend(actions);
        if let Some(after) = requeue {
            self.requeue(after);
        }
    }
}

fn framework_completion(
    code: i32,
    diagnostics: impl Into<String>,
) -> FrameworkAttemptCompletionStatus {
    FrameworkAttemptCompletionStatus {
        status: completion::status(code, diagnostics),
        trigger: None,
    }
}

fn set_pod_completion(task: &mut TaskStatus, status: CompletionStatus, pod: &Pod) {
    task.attempt_status
        .completion_status
        .get_or_insert_with(|| TaskAttemptCompletionStatus {
            status,
            pod: Some(completion::pod_completion(pod)),
        });
}

fn mark_deletion_pending(task: &mut TaskStatus) -> bool {
    if task.deletion_pending {
        return false;
    }
    task.deletion_pending = true;
    task.attempt_status
        .completion_status
        .get_or_insert_with(|| TaskAttemptCompletionStatus {
            status: completion::status(
                completion::DELETE_TASK_REQUESTED,
                "User has requested to delete the Task by Framework ScaleDown",
            ),
            pod: None,
        });
    true
}

/// The task's pod if the cache shows the one the status records; a pod the attempt's ConfigMap
/// controls under another UID (created but never recorded) is deleted, never adopted.
#[allow(clippy::too_many_arguments)]
fn managed_pod(
    observed: &Observed,
    task: &TaskStatus,
    task_ref: &TaskRef,
    cm: Option<&ConfigMap>,
    grace_timeout: Option<i64>,
    now: Timestamp,
    actions: &mut Vec<Action>,
    requeue: &mut Option<Duration>,
) -> Cached<Pod> {
    let Some(pod) = observed.pods.get(&task.attempt_status.pod_name).cloned() else {
        return Cached::Absent;
    };
    let uid = pod.uid().unwrap_or_default();
    if task.attempt_status.pod_uid.as_deref() == Some(uid.as_str()) {
        return Cached::Managed(pod);
    }
    let cm_uid = cm.and_then(|cm| cm.uid());
    if cm_uid.is_some_and(|cm_uid| objects::controlled_by(&pod.metadata, &cm_uid)) {
        if pod.metadata.deletion_timestamp.is_some() {
            force_delete_if_overdue(&pod, task_ref, grace_timeout, now, actions, requeue);
        } else {
            actions.push(Action::DeletePod {
                task: task_ref.clone(),
                name: pod.name_any(),
                uid,
                force: false,
                completing: false,
            });
        }
    }
    Cached::Blocked
}

/// What the cache shows under an object's name.
enum Cached<T> {
    /// The object the status records.
    Managed(Arc<T>),
    /// Nothing.
    Absent,
    /// Another object (being deleted, or not ours): nothing is created until it is gone.
    Blocked,
}

/// Force-deletes a terminating pod once `grace_timeout` seconds passed since its deletion
/// started (deletion timestamp minus grace period); otherwise looks again then.
fn force_delete_if_overdue(
    pod: &Pod,
    task: &TaskRef,
    grace_timeout: Option<i64>,
    now: Timestamp,
    actions: &mut Vec<Action>,
    requeue: &mut Option<Duration>,
) {
    let (Some(timeout), Some(deleted)) = (grace_timeout, pod.metadata.deletion_timestamp.as_ref())
    else {
        return;
    };
    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
    let started = Time(Timestamp::from_second(deleted.0.as_second() - grace).unwrap_or(deleted.0));
    match remaining(&started, timeout, now) {
        Some(left) => *requeue = Some(requeue.map_or(left, |r| r.min(left))),
        None => actions.push(Action::DeletePod {
            task: task.clone(),
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            force: true,
            completing: false,
        }),
    }
}

#[cfg(test)]
mod tests;
