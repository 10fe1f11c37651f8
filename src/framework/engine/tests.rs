//! The Framework state machine, scenario by scenario. A small in-memory world stands in for the
//! API server: it creates and deletes what the plans ask for, the way the controller executes
//! them (write the status, act, fold the outcomes in, write again).

use super::*;
use crate::framework::api::{CompletionTypeAttribute, FrameworkSpec};
use serde_json::json;

const FW_UID: &str = "fw-uid";

fn framework(spec: serde_json::Value) -> Framework {
    let spec: FrameworkSpec = serde_json::from_value(spec).expect("spec");
    let mut fw = Framework::new("fw", spec);
    fw.metadata.namespace = Some("ns".into());
    fw.metadata.uid = Some(FW_UID.into());
    fw
}

/// One role `worker` of `tasks` tasks; completes on the first failure.
fn batch(
    tasks: i32,
    task_retry: serde_json::Value,
    framework_retry: serde_json::Value,
) -> Framework {
    framework(json!({
        "executionType": "Start",
        "retryPolicy": framework_retry,
        "taskRoles": [{
            "name": "worker", "taskNumber": tasks,
            "frameworkAttemptCompletionPolicy": {"minFailedTaskCount": 1, "minSucceededTaskCount": -1},
            "task": {"retryPolicy": task_retry, "podGracefulDeletionTimeoutSec": 600,
                "pod": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}},
        }],
    }))
}

fn no_retry() -> serde_json::Value {
    json!({"fancyRetryPolicy": false, "maxRetryCount": 0})
}

struct World {
    fw: Framework,
    status: Option<FrameworkStatus>,
    cm: Option<ConfigMap>,
    pods: HashMap<String, Pod>,
    now: i64,
    next_uid: u32,
    config: Config,
    /// Every action executed, in order.
    log: Vec<String>,
}

impl World {
    fn new(fw: Framework) -> Self {
        Self {
            fw,
            status: None,
            cm: None,
            pods: HashMap::new(),
            now: 1_700_000_000,
            next_uid: 0,
            config: Config::default(),
            log: Vec::new(),
        }
    }

    fn time(&self) -> Timestamp {
        Timestamp::from_second(self.now).expect("time")
    }

    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("uid-{}", self.next_uid)
    }

    fn observed(&self) -> Observed {
        Observed {
            config_map: self.cm.clone().map(Arc::new),
            pods: self
                .pods
                .iter()
                .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                .collect(),
        }
    }

    fn plan(&mut self) -> Plan {
        let observed = self.observed();
        let mut counter = 0;
        let mut new_uid = || {
            counter += 1;
            format!("instance-{counter}")
        };
        plan(
            &self.fw,
            self.status.as_ref(),
            &observed,
            &self.config,
            self.time(),
            &mut new_uid,
        )
    }

    /// One reconcile: plan, write, act, record, write. Returns the actions run.
    fn step(&mut self) -> Vec<Action> {
        let plan = self.plan();
        let mut status = plan.status;
        self.status = Some(status.clone());
        for action in &plan.actions {
            if let Some(outcome) = self.execute(action) {
                record(&mut status, outcome, self.time());
            }
        }
        self.status = Some(status);
        plan.actions
    }

    /// Steps until nothing changes and nothing is done.
    fn settle(&mut self) {
        for _ in 0..100 {
            let before = self.status.clone();
            let actions = self.step();
            if actions.is_empty() && before == self.status {
                return;
            }
        }
        panic!("no fixed point: {:?}", self.status);
    }

    fn execute(&mut self, action: &Action) -> Option<Outcome> {
        match action {
            Action::CreateConfigMap {
                attempt,
                config_map,
            } => {
                let mut cm = (**config_map).clone();
                let uid = self.uid();
                cm.metadata.uid = Some(uid.clone());
                self.log.push(format!("create cm {uid}"));
                self.cm = Some(cm);
                Some(Outcome::ConfigMapCreated {
                    attempt: *attempt,
                    uid,
                })
            }
            Action::DeleteConfigMap {
                uid,
                attempt,
                completing,
            } => {
                self.log.push(format!("delete cm {uid}"));
                if self.cm.as_ref().and_then(|c| c.metadata.uid.as_deref()) == Some(uid) {
                    // Foreground deletion: the pods it owns go first, then the ConfigMap.
                    self.pods
                        .retain(|_, p| !objects::controlled_by(&p.metadata, uid));
                    self.cm = None;
                }
                completing.then_some(Outcome::ConfigMapDeleteRequested { attempt: *attempt })
            }
            Action::CreatePod { task, pod } => {
                let mut pod = (**pod).clone();
                let name = pod.metadata.name.clone().unwrap_or_default();
                if self.pods.contains_key(&name) {
                    panic!("duplicate pod {name}");
                }
                let uid = self.uid();
                pod.metadata.uid = Some(uid.clone());
                pod.status =
                    Some(serde_json::from_value(json!({"phase": "Pending"})).expect("status"));
                self.log.push(format!("create pod {name}"));
                self.pods.insert(name, pod);
                Some(Outcome::PodCreated {
                    task: task.clone(),
                    uid,
                })
            }
            Action::DeletePod {
                task,
                name,
                uid,
                force,
                completing,
            } => {
                self.log.push(format!(
                    "{} pod {name}",
                    if *force { "force-delete" } else { "delete" }
                ));
                if self.pods.get(name).and_then(|p| p.metadata.uid.as_deref()) == Some(uid) {
                    self.pods.remove(name);
                }
                completing.then(|| Outcome::PodDeleteRequested { task: task.clone() })
            }
        }
    }

    fn set_phase(&mut self, name: &str, phase: &str, exit_code: Option<i32>) {
        let pod = self
            .pods
            .get_mut(name)
            .unwrap_or_else(|| panic!("no pod {name}"));
        let mut status = json!({"phase": phase, "podIP": "10.0.0.7", "hostIP": "10.1.0.1"});
        if let Some(code) = exit_code {
            status["containerStatuses"] = json!([{"name": "c", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": "Error",
                    "finishedAt": "2024-01-01T00:00:00Z"}}}]);
        }
        pod.status = Some(serde_json::from_value(status).expect("status"));
    }

    fn status(&self) -> &FrameworkStatus {
        self.status.as_ref().expect("status")
    }

    fn task(&self, role: &str, index: usize) -> &TaskStatus {
        &self
            .status()
            .attempt_status
            .task_role_statuses
            .iter()
            .find(|r| r.name == role)
            .expect("role")
            .task_statuses[index]
    }

    fn code(&self) -> Option<i32> {
        self.status()
            .attempt_status
            .completion_status
            .as_ref()
            .map(|c| c.status.code)
    }
}

#[test]
fn the_first_status_is_written_before_anything_is_created() {
    let mut world = World::new(batch(2, no_retry(), no_retry()));
    let actions = world.step();
    assert!(actions.is_empty(), "{actions:?}");
    let status = world.status();
    assert_eq!(status.state, FrameworkState::AttemptCreationPending);
    assert_eq!(status.attempt_status.config_map_name, "fw-attempt");
    assert_eq!(
        world.task("worker", 1).attempt_status.pod_name,
        "fw-worker-1"
    );
    assert_eq!(
        world.task("worker", 1).state,
        TaskState::AttemptCreationPending
    );

    // Next pass: the ConfigMap, recorded with its UID after the create.
    let actions = world.step();
    assert!(matches!(
        actions.as_slice(),
        [Action::CreateConfigMap { .. }]
    ));
    let status = world.status();
    assert_eq!(status.state, FrameworkState::AttemptCreationRequested);
    let cm_uid = status.attempt_status.config_map_uid.clone().expect("uid");
    assert_eq!(
        status.attempt_status.instance_uid,
        Some(format!("0_{cm_uid}"))
    );

    // The ConfigMap seen: Preparing, and the pods created, owned by the ConfigMap.
    let actions = world.step();
    assert_eq!(actions.len(), 2);
    assert_eq!(world.status().state, FrameworkState::AttemptPreparing);
    let pod = &world.pods["fw-worker-0"];
    assert!(objects::controlled_by(&pod.metadata, &cm_uid));
    assert_eq!(
        world.task("worker", 0).state,
        TaskState::AttemptCreationRequested
    );
}

#[test]
fn a_batch_runs_to_completed_with_code_zero() {
    let mut world = World::new(batch(2, no_retry(), no_retry()));
    world.settle();
    world.set_phase("fw-worker-0", "Running", None);
    world.set_phase("fw-worker-1", "Running", None);
    world.settle();
    assert_eq!(world.status().state, FrameworkState::AttemptRunning);
    assert_eq!(
        world.task("worker", 0).attempt_status.pod_ip.as_deref(),
        Some("10.0.0.7")
    );
    assert!(world.status().run_time.is_some());
    world.set_phase("fw-worker-0", "Succeeded", Some(0));
    world.settle();
    assert_eq!(world.task("worker", 0).state, TaskState::Completed);
    assert!(
        !world.pods.contains_key("fw-worker-0"),
        "a completed task's pod is deleted"
    );
    assert_eq!(world.status().state, FrameworkState::AttemptRunning);
    world.set_phase("fw-worker-1", "Succeeded", Some(0));
    world.settle();
    let status = world.status();
    assert_eq!(status.state, FrameworkState::Completed);
    assert_eq!(world.code(), Some(0));
    let completion = status
        .attempt_status
        .completion_status
        .as_ref()
        .expect("set");
    assert_eq!(completion.status.phrase, "Succeeded");
    assert!(
        completion
            .status
            .diagnostics
            .contains("CompletedTaskCount 2")
    );
    assert!(world.cm.is_none() && world.pods.is_empty());
}

#[test]
fn a_pod_is_deleted_only_after_its_completion_is_written() {
    let mut world = World::new(batch(1, no_retry(), no_retry()));
    world.settle();
    world.set_phase("fw-worker-0", "Failed", Some(1));
    let plan = world.plan();
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let task = &plan.status.attempt_status.task_role_statuses[0].task_statuses[0];
    assert_eq!(task.state, TaskState::AttemptDeletionPending);
    assert_eq!(
        task.attempt_status
            .completion_status
            .as_ref()
            .map(|c| c.status.code),
        Some(1)
    );
    world.step();
    let actions = world.step();
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::DeletePod {
                completing: true,
                ..
            }
        )),
        "{actions:?}"
    );
    assert_eq!(
        world.task("worker", 0).state,
        TaskState::AttemptDeletionRequested
    );
}

#[test]
fn a_transient_failure_is_retried_without_counting_and_a_permanent_one_is_not_retried() {
    let fancy = json!({"fancyRetryPolicy": true, "maxRetryCount": 1});
    let mut world = World::new(batch(1, fancy.clone(), no_retry()));
    world.settle();
    let first_uid = world.task("worker", 0).attempt_status.pod_uid.clone();
    world.set_phase("fw-worker-0", "Failed", Some(200));
    // The retry is written (attempt 1, AttemptCreationPending) before the new pod is created.
    let mut created_in_same_pass = false;
    for _ in 0..10 {
        let before = world.task("worker", 0).state;
        let actions = world.step();
        if before != TaskState::AttemptCreationPending
            && world.task("worker", 0).attempt_status.id == 1
            && actions
                .iter()
                .any(|a| matches!(a, Action::CreatePod { .. }))
        {
            created_in_same_pass = true;
        }
    }
    assert!(!created_in_same_pass);
    let task = world.task("worker", 0);
    assert_eq!(task.retry_policy_status.total_retried_count, 1);
    assert_eq!(task.retry_policy_status.accountable_retried_count, 0);
    assert_eq!(task.attempt_status.id, 1);
    assert_ne!(task.attempt_status.pod_uid, first_uid, "same name, new pod");
    assert_eq!(task.attempt_status.pod_name, "fw-worker-0");
    assert_eq!(world.status().state, FrameworkState::AttemptPreparing);

    world.set_phase("fw-worker-0", "Failed", Some(210));
    world.settle();
    let task = world.task("worker", 0);
    assert_eq!(task.state, TaskState::Completed);
    assert_eq!(task.retry_policy_status.total_retried_count, 1);
    assert_eq!(world.status().state, FrameworkState::Completed);
    assert_eq!(world.code(), Some(210));
    let completion = world
        .status()
        .attempt_status
        .completion_status
        .clone()
        .expect("set");
    assert_eq!(
        completion.status.type_.attributes,
        [CompletionTypeAttribute::Permanent]
    );
    let trigger = completion.trigger.expect("trigger");
    assert_eq!(
        (trigger.task_role_name.as_str(), trigger.task_index),
        ("worker", 0)
    );
}

#[test]
fn the_framework_retries_per_max_retry_count_then_completes_with_the_last_code() {
    let mut world = World::new(batch(
        1,
        no_retry(),
        json!({"fancyRetryPolicy": false, "maxRetryCount": 2}),
    ));
    for attempt in 0..3 {
        world.settle();
        assert_eq!(world.status().attempt_status.id, attempt);
        assert_eq!(
            world.status().retry_policy_status.total_retried_count,
            attempt
        );
        world.set_phase("fw-worker-0", "Failed", Some(1));
        world.settle();
    }
    let status = world.status();
    assert_eq!(status.state, FrameworkState::Completed);
    assert_eq!(status.retry_policy_status.accountable_retried_count, 2);
    assert_eq!(world.code(), Some(1));
    let creates = world
        .log
        .iter()
        .filter(|l| l.starts_with("create cm"))
        .count();
    assert_eq!(creates, 3, "one ConfigMap per attempt: {:?}", world.log);
}

#[test]
fn extended_unlimited_retries_even_success() {
    let mut world = World::new(batch(
        1,
        no_retry(),
        json!({"fancyRetryPolicy": false, "maxRetryCount": -2}),
    ));
    world.settle();
    world.set_phase("fw-worker-0", "Succeeded", Some(0));
    world.settle();
    assert_eq!(world.status().attempt_status.id, 1);
    assert_eq!(world.status().state, FrameworkState::AttemptPreparing);
}

#[test]
fn min_succeeded_task_count_completes_the_attempt_and_stops_the_others() {
    let mut world = World::new(framework(json!({
        "retryPolicy": {"maxRetryCount": 0},
        "taskRoles": [
            {"name": "server", "taskNumber": 2,
             "frameworkAttemptCompletionPolicy": {"minFailedTaskCount": 1, "minSucceededTaskCount": -1},
             "task": {"pod": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}},
            {"name": "worker", "taskNumber": 2,
             "frameworkAttemptCompletionPolicy": {"minFailedTaskCount": 1, "minSucceededTaskCount": 2},
             "task": {"pod": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}},
        ],
    })));
    world.settle();
    assert_eq!(world.pods.len(), 4);
    world.set_phase("fw-server-0", "Running", None);
    world.set_phase("fw-worker-0", "Succeeded", Some(0));
    world.settle();
    assert_eq!(world.status().state, FrameworkState::AttemptRunning);
    world.now += 5;
    world.set_phase("fw-worker-1", "Succeeded", Some(0));
    world.settle();
    let status = world.status();
    assert_eq!(status.state, FrameworkState::Completed);
    let completion = status
        .attempt_status
        .completion_status
        .clone()
        .expect("set");
    assert_eq!(completion.status.code, 0);
    let trigger = completion.trigger.expect("trigger");
    assert_eq!(
        (trigger.task_role_name.as_str(), trigger.task_index),
        ("worker", 1)
    );
    assert!(
        trigger.message.contains("MinSucceededTaskCount 2"),
        "{}",
        trigger.message
    );
    // The still-running server was stopped with the attempt, not retried.
    let server = world.task("server", 0);
    assert_eq!(server.state, TaskState::Completed);
    assert_eq!(
        server
            .attempt_status
            .completion_status
            .as_ref()
            .map(|c| c.status.code),
        Some(completion::FRAMEWORK_ATTEMPT_COMPLETION)
    );
    assert!(world.pods.is_empty());
}

#[test]
fn a_completed_framework_is_never_rerun_when_its_objects_vanish() {
    let mut world = World::new(batch(1, no_retry(), no_retry()));
    world.settle();
    world.set_phase("fw-worker-0", "Succeeded", Some(0));
    world.settle();
    assert_eq!(world.status().state, FrameworkState::Completed);
    world.cm = None;
    world.pods.clear();
    let plan = world.plan();
    assert!(plan.actions.is_empty());
    assert_eq!(Some(&plan.status), world.status.as_ref());
}

#[test]
fn a_pod_created_but_never_recorded_is_deleted_not_adopted() {
    let mut world = World::new(batch(1, no_retry(), no_retry()));
    world.step();
    world.step();
    world.step();
    // As if the controller died after creating the pod, before writing its UID.
    let task = &mut world
        .status
        .as_mut()
        .expect("status")
        .attempt_status
        .task_role_statuses[0]
        .task_statuses[0];
    task.state = TaskState::AttemptCreationPending;
    task.attempt_status.pod_uid = None;
    task.attempt_status.instance_uid = None;
    let actions = world.step();
    assert!(
        matches!(
            actions.as_slice(),
            [Action::DeletePod {
                completing: false,
                ..
            }]
        ),
        "{actions:?}"
    );
    // Only once it is gone is the pod created again.
    let actions = world.step();
    assert!(
        matches!(actions.as_slice(), [Action::CreatePod { .. }]),
        "{actions:?}"
    );
}

#[test]
fn a_pod_deleted_by_others_completes_its_attempt_as_transient() {
    let fancy = json!({"fancyRetryPolicy": true, "maxRetryCount": 0});
    let mut world = World::new(batch(1, fancy, no_retry()));
    world.settle();
    world.set_phase("fw-worker-0", "Running", None);
    world.settle();
    world.pods.clear();
    world.step();
    let task = world.task("worker", 0);
    assert_eq!(task.state, TaskState::AttemptCompleted);
    assert_eq!(
        task.attempt_status
            .completion_status
            .as_ref()
            .map(|c| c.status.code),
        Some(completion::POD_EXTERNAL_DELETED)
    );
    world.settle();
    assert_eq!(
        world.task("worker", 0).attempt_status.id,
        1,
        "retried for free"
    );
    assert_eq!(
        world
            .task("worker", 0)
            .retry_policy_status
            .accountable_retried_count,
        0
    );
}

#[test]
fn stop_completes_the_framework_with_code_minus_210() {
    let mut world = World::new(batch(2, no_retry(), json!({"maxRetryCount": -1})));
    world.settle();
    world.set_phase("fw-worker-0", "Running", None);
    world.settle();
    world.fw.spec.execution_type = ExecutionType::Stop;
    world.settle();
    assert_eq!(world.status().state, FrameworkState::Completed);
    assert_eq!(world.code(), Some(completion::STOP_FRAMEWORK_REQUESTED));
    assert!(world.pods.is_empty() && world.cm.is_none());
}

#[test]
fn execution_type_create_waits_and_stop_before_start_completes_at_once() {
    let mut fw = batch(1, no_retry(), no_retry());
    fw.spec.execution_type = ExecutionType::Create;
    let mut world = World::new(fw);
    world.settle();
    assert_eq!(world.status().state, FrameworkState::AttemptCreationPending);
    assert!(world.cm.is_none());
    world.fw.spec.execution_type = ExecutionType::Stop;
    world.settle();
    assert_eq!(world.status().state, FrameworkState::Completed);
    assert_eq!(world.code(), Some(completion::STOP_FRAMEWORK_REQUESTED));
    assert!(world.log.is_empty(), "{:?}", world.log);
}

#[test]
fn scale_up_adds_tasks_and_scale_down_deletes_the_tail_without_completing_the_attempt() {
    let mut world = World::new(batch(2, no_retry(), no_retry()));
    world.settle();
    world.set_phase("fw-worker-0", "Running", None);
    world.set_phase("fw-worker-1", "Running", None);
    world.settle();
    world.fw.spec.task_roles[0].task_number = 4;
    let plan = world.plan();
    assert!(
        plan.actions.is_empty(),
        "new tasks are written before their pods are created"
    );
    world.settle();
    assert_eq!(world.pods.len(), 4);
    assert_eq!(world.task("worker", 3).state, TaskState::AttemptPreparing);

    world.fw.spec.task_roles[0].task_number = 1;
    world.settle();
    let role = &world.status().attempt_status.task_role_statuses[0];
    assert_eq!(
        role.task_statuses.len(),
        1,
        "completed scaled-away tasks are removed"
    );
    assert_eq!(world.pods.len(), 1);
    assert!(world.pods.contains_key("fw-worker-0"));
    assert_eq!(world.status().state, FrameworkState::AttemptRunning);
    assert!(world.status().attempt_status.completion_status.is_none());
    assert!(
        world.log.iter().any(|l| l == "delete pod fw-worker-3"),
        "{:?}",
        world.log
    );
}

fn terminating(world: &mut World, name: &str, deleted_at: i64, grace: i64) {
    let pod = world.pods.get_mut(name).expect("pod");
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(deleted_at).expect("t")));
    pod.metadata.deletion_grace_period_seconds = Some(grace);
}

#[test]
fn a_pod_stuck_terminating_is_force_deleted_after_the_graceful_deletion_timeout() {
    let mut world = World::new(batch(1, no_retry(), no_retry()));
    world.settle();
    world.set_phase("fw-worker-0", "Running", None);
    world.settle();
    // Someone deleted it at now, with 30 s of grace; the node never confirms.
    let now = world.now;
    terminating(&mut world, "fw-worker-0", now + 30, 30);
    let plan = world.plan();
    assert!(plan.actions.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
    world.step();
    assert_eq!(world.task("worker", 0).state, TaskState::AttemptDeleting);
    world.now += 600;
    let actions = world.step();
    assert!(
        matches!(actions.as_slice(), [Action::DeletePod { force: true, .. }]),
        "{actions:?}"
    );
    world.settle();
    assert_eq!(world.code(), Some(completion::POD_EXTERNAL_DELETED));
}

#[test]
fn without_a_timeout_a_terminating_pod_is_never_force_deleted() {
    let mut world = World::new(batch(1, no_retry(), no_retry()));
    world.fw.spec.task_roles[0]
        .task
        .pod_graceful_deletion_timeout_sec = None;
    world.settle();
    let now = world.now;
    terminating(&mut world, "fw-worker-0", now, 0);
    world.now += 100_000;
    let plan = world.plan();
    assert!(plan.actions.is_empty());
    assert_eq!(plan.requeue_after, None);
}

#[test]
fn a_created_pod_that_never_shows_up_times_out_as_transient() {
    let mut world = World::new(batch(1, no_retry(), no_retry()));
    world.step();
    world.step();
    world.step();
    world.pods.clear();
    let plan = world.plan();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(300)));
    world.now += 300;
    world.step();
    let task = world.task("worker", 0);
    assert_eq!(task.state, TaskState::AttemptCompleted);
    assert_eq!(
        task.attempt_status
            .completion_status
            .as_ref()
            .map(|c| c.status.code),
        Some(completion::POD_LOCAL_CACHE_CREATION_TIMEOUT)
    );
}

#[test]
fn a_transient_conflict_delays_the_framework_retry() {
    let mut world = World::new(batch(
        1,
        no_retry(),
        json!({"fancyRetryPolicy": true, "maxRetryCount": 0}),
    ));
    world.config.classifier.conflict_retry_delay_sec = (60, 60);
    world.settle();
    world.set_phase("fw-worker-0", "Failed", Some(201));
    world.settle();
    let status = world.status();
    assert_eq!(status.state, FrameworkState::AttemptCompleted);
    assert_eq!(status.retry_policy_status.retry_delay_sec, Some(60));
    assert_eq!(world.plan().requeue_after, Some(Duration::from_secs(60)));
    world.now += 60;
    world.settle();
    assert_eq!(world.status().attempt_status.id, 1);
    assert_eq!(
        world.status().retry_policy_status.accountable_retried_count,
        0
    );
}

#[test]
fn pods_carry_the_fc_labels_annotations_environment_and_placeholders() {
    let mut world = World::new(framework(json!({
        "taskRoles": [{"name": "server", "taskNumber": 1, "task": {"pod": {
            "metadata": {"labels": {"app": "{{FC_FRAMEWORK_NAME}}"}},
            "spec": {"hostname": "{{FC_TASKROLE_NAME}}-{{FC_TASK_INDEX}}",
                "subdomain": "{{FC_FRAMEWORK_NAME}}",
                "containers": [{"name": "c", "image": "i",
                    "env": [{"name": "MINE", "value": "{{FC_POD_NAME}} in {{FC_FRAMEWORK_NAMESPACE}}"}]}],
                "initContainers": [{"name": "init", "image": "i"}]}}}}],
    })));
    world.settle();
    let pod = &world.pods["fw-server-0"];
    let labels = pod.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels["FC_FRAMEWORK_NAME"], "fw");
    assert_eq!(labels["FC_TASKROLE_NAME"], "server");
    assert_eq!(labels["FC_TASK_INDEX"], "0");
    assert_eq!(labels["app"], "fw");
    let annotations = pod.metadata.annotations.as_ref().expect("annotations");
    let status = world.status();
    assert_eq!(annotations["FC_CONFIGMAP_NAME"], "fw-attempt");
    assert_eq!(annotations["FC_FRAMEWORK_UID"], FW_UID);
    assert_eq!(
        Some(&annotations["FC_FRAMEWORK_ATTEMPT_INSTANCE_UID"]),
        status.attempt_status.instance_uid.as_ref()
    );
    assert_eq!(
        annotations["FC_TASK_UID"],
        world.task("server", 0).instance_uid
    );
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.hostname.as_deref(), Some("server-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("fw"));
    for container in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let env = container.env.as_ref().expect("env");
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names[0], "FC_FRAMEWORK_NAMESPACE");
        assert!(names.contains(&"FC_POD_UID") && names.contains(&"FC_TASK_ATTEMPT_INSTANCE_UID"));
        assert_eq!(
            container.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
    }
    let env = spec.containers[0].env.as_ref().expect("env");
    let mine = env
        .iter()
        .find(|e| e.name == "MINE")
        .expect("own env kept, after FC_*");
    assert_eq!(mine.value.as_deref(), Some("fw-server-0 in ns"));
    let attempt = env
        .iter()
        .find(|e| e.name == "FC_TASK_ATTEMPT_INSTANCE_UID")
        .expect("env");
    assert_eq!(attempt.value.as_deref(), Some("0_$(FC_POD_UID)"));
}

#[test]
fn the_attempt_config_map_is_owned_by_the_framework_and_deleted_in_the_foreground() {
    let world = World::new(batch(1, no_retry(), no_retry()));
    let mut uids = || "x".to_string();
    let status = new_status(&world.fw, world.time(), &mut uids);
    let cm = objects::config_map(&world.fw, &status);
    assert_eq!(cm.metadata.name.as_deref(), Some("fw-attempt"));
    assert!(objects::controlled_by(&cm.metadata, FW_UID));
    assert_eq!(
        cm.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert_eq!(
        cm.metadata.labels.as_ref().expect("labels")["FC_FRAMEWORK_NAME"],
        "fw"
    );
}

#[test]
fn a_deleted_config_map_completes_the_attempt_as_transient() {
    let mut world = World::new(batch(
        1,
        no_retry(),
        json!({"fancyRetryPolicy": true, "maxRetryCount": 0}),
    ));
    world.settle();
    world.cm = None;
    world.pods.clear();
    world.step();
    assert_eq!(world.status().state, FrameworkState::AttemptCompleted);
    assert_eq!(world.code(), Some(completion::CONFIG_MAP_EXTERNAL_DELETED));
    world.settle();
    assert_eq!(
        world.status().attempt_status.id,
        1,
        "transient: retried for free"
    );
}

#[test]
fn a_permanent_pod_creation_error_completes_the_task_attempt() {
    let mut world = World::new(batch(1, no_retry(), no_retry()));
    world.step();
    world.step();
    let plan = world.plan();
    let task = match plan.actions.as_slice() {
        [Action::CreatePod { task, .. }] => task.clone(),
        other => panic!("{other:?}"),
    };
    let mut status = plan.status;
    record(
        &mut status,
        Outcome::PodCreationFailed {
            task,
            code: completion::POD_CREATION_PERMANENT_ERROR,
            diagnostics: "Invalid".into(),
        },
        world.time(),
    );
    world.status = Some(status);
    world.settle();
    assert_eq!(world.status().state, FrameworkState::Completed);
    assert_eq!(world.code(), Some(completion::POD_CREATION_PERMANENT_ERROR));
}

#[test]
fn outcomes_for_another_attempt_or_state_are_ignored() {
    let mut world = World::new(batch(1, no_retry(), no_retry()));
    world.step();
    let status = world.status().clone();
    let task = TaskRef {
        role: "worker".into(),
        index: 0,
        attempt: 0,
    };
    for outcome in [
        Outcome::ConfigMapCreated {
            attempt: 1,
            uid: "old".into(),
        },
        Outcome::ConfigMapDeleteRequested { attempt: 0 },
        Outcome::PodCreated {
            task: TaskRef {
                attempt: 3,
                ..task.clone()
            },
            uid: "stale".into(),
        },
        Outcome::PodCreated {
            task: TaskRef {
                role: "nosuchrole".into(),
                ..task.clone()
            },
            uid: "x".into(),
        },
        Outcome::PodDeleteRequested { task: task.clone() },
    ] {
        let mut recorded = status.clone();
        record(&mut recorded, outcome.clone(), world.time());
        assert_eq!(recorded, status, "{outcome:?}");
    }
}

#[test]
fn a_task_is_not_retried_once_its_framework_attempt_is_completing() {
    let fancy = json!({"fancyRetryPolicy": true, "maxRetryCount": -1});
    let mut world = World::new(framework(json!({
        "taskRoles": [
            {"name": "a", "taskNumber": 1,
             "frameworkAttemptCompletionPolicy": {"minFailedTaskCount": 1},
             "task": {"retryPolicy": {"maxRetryCount": 0},
                 "pod": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}},
            {"name": "b", "taskNumber": 1,
             "task": {"retryPolicy": fancy,
                 "pod": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}},
        ],
    })));
    world.settle();
    // Both fail in the same pass: a completes the attempt, b (transient) must not be retried.
    world.set_phase("fw-a-0", "Failed", Some(1));
    world.set_phase("fw-b-0", "Failed", Some(200));
    world.settle();
    assert_eq!(world.status().state, FrameworkState::Completed);
    assert_eq!(world.code(), Some(1));
    let b = world.task("b", 0);
    assert_eq!(b.state, TaskState::Completed);
    assert_eq!(b.retry_policy_status.total_retried_count, 0);
    assert_eq!(
        world
            .log
            .iter()
            .filter(|l| l.as_str() == "create pod fw-b-0")
            .count(),
        1
    );
}
