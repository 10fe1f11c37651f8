//! Scenario tests of the engine: a small simulated cluster applies each plan's actions the way
//! the API server would, and the tests drive pod phases between passes.

use super::*;
use crate::jobs::api::{JOB_ROLE_LABEL, REPLICA_INDEX_LABEL, REPLICA_TYPE_LABEL};
use crate::jobs::pytorch::PyTorchJob;
use crate::jobs::tensorflow::TFJob;
use serde_json::json;

const T0: i64 = 1_700_000_000;

pub(super) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(T0 + seconds).expect("timestamp")
}

fn container(name: &str) -> Value {
    json!({"name": name, "image": "registry.example/train:1"})
}

pub(super) fn replica(n: u32, container_name: &str) -> Value {
    json!({"replicas": n, "template": {"spec": {"containers": [container(container_name)]}}})
}

pub(super) fn with_policy(mut spec: Value, policy: &str) -> Value {
    spec["restartPolicy"] = json!(policy);
    spec
}

pub(super) fn tfjob(specs: Value, run_policy: Value) -> TFJob {
    serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1", "kind": "TFJob",
        "metadata": {"name": "dist", "namespace": "ml", "uid": "job-uid"},
        "spec": {"tfReplicaSpecs": specs, "runPolicy": run_policy},
    }))
    .expect("TFJob")
}

/// A simulated cluster: applies actions like the API server (unscheduled pods vanish on delete,
/// pods bound to a node wait for their grace period), and remembers every pod UID per name.
pub(super) struct Sim<F: Framework> {
    pub(super) job: F,
    pub(super) status: JobStatus,
    pub(super) pods: Vec<Pod>,
    pub(super) services: Vec<Service>,
    pod_group: Option<PodGroup>,
    autoscaler: Option<Value>,
    pub(super) config: Config,
    pub(super) now: Timestamp,
    next_uid: u32,
    job_deleted: bool,
    created: Vec<String>,
    events: Vec<Event>,
}

impl<F: Framework> Sim<F> {
    pub(super) fn new(job: F) -> Self {
        Self {
            job,
            status: JobStatus::default(),
            pods: Vec::new(),
            services: Vec::new(),
            pod_group: None,
            autoscaler: None,
            config: Config::default(),
            now: at(0),
            next_uid: 0,
            job_deleted: false,
            created: Vec::new(),
            events: Vec::new(),
        }
    }

    pub(super) fn step(&mut self) -> Plan {
        let pods: Vec<&Pod> = self.pods.iter().collect();
        let services: Vec<&Service> = self.services.iter().collect();
        let observed = Observed {
            pods: &pods,
            services: &services,
            pod_group: self.pod_group.as_ref(),
        };
        let plan = plan(&self.job, &self.status, observed, &self.config, self.now);
        self.status = plan.status.clone();
        self.events.extend(plan.events.iter().cloned());
        for action in &plan.actions {
            self.apply(action);
        }
        plan
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::CreatePod(pod) => {
                let name = pod.name_any();
                assert!(
                    !self.pods.iter().any(|p| p.name_any() == name),
                    "the engine created pod {name}, which exists"
                );
                let mut pod = (**pod).clone();
                self.next_uid += 1;
                pod.metadata.uid = Some(format!("uid-{}", self.next_uid));
                pod.status =
                    Some(serde_json::from_value(json!({"phase": "Pending"})).expect("status"));
                self.created.push(name);
                self.pods.push(pod);
            }
            Action::DeletePod { name, uid, force } => {
                let Some(position) = self.pods.iter().position(|p| p.name_any() == *name) else {
                    return;
                };
                let pod = &mut self.pods[position];
                assert_eq!(
                    pod.uid().as_deref(),
                    Some(uid.as_str()),
                    "precondition of {name}"
                );
                let bound = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .is_some();
                if bound && !force {
                    pod.metadata
                        .deletion_timestamp
                        .get_or_insert(Time(self.now + SignedDuration::from_secs(30)));
                } else {
                    self.pods.remove(position);
                }
            }
            Action::CreateService(service) => {
                let name = service.name_any();
                assert!(
                    !self.services.iter().any(|s| s.name_any() == name),
                    "service {name} exists"
                );
                let mut service = (**service).clone();
                service.metadata.uid = Some(format!("svc-{name}"));
                self.services.push(service);
            }
            Action::DeleteService { name, .. } => self.services.retain(|s| s.name_any() != *name),
            Action::ApplyPodGroup(spec) => {
                let phase = self.pod_group.as_ref().and_then(|pg| pg.phase.clone());
                self.pod_group = Some(PodGroup {
                    spec: spec.clone(),
                    phase,
                });
            }
            Action::DeletePodGroup => self.pod_group = None,
            Action::ApplyAutoscaler(autoscaler) => self.autoscaler = Some(autoscaler.clone()),
            Action::DeleteAutoscaler => self.autoscaler = None,
            Action::DeleteJob => self.job_deleted = true,
        }
    }

    pub(super) fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.name_any() == name)
            .unwrap_or_else(|| panic!("pod {name}"))
    }

    pub(super) fn pod_mut(&mut self, name: &str) -> &mut Pod {
        self.pods
            .iter_mut()
            .find(|p| p.name_any() == name)
            .unwrap_or_else(|| panic!("pod {name}"))
    }

    pub(super) fn pod_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pods.iter().map(|p| p.name_any()).collect();
        names.sort();
        names
    }

    pub(super) fn service_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.services.iter().map(|s| s.name_any()).collect();
        names.sort();
        names
    }

    pub(super) fn set_status(&mut self, name: &str, status: Value) {
        self.pod_mut(name).status = Some(serde_json::from_value(status).expect("pod status"));
    }

    pub(super) fn run(&mut self, name: &str) {
        self.set_status(
            name,
            json!({"phase": "Running", "containerStatuses": [
            {"name": "main", "image": "i", "imageID": "i", "ready": true, "restartCount": 0,
             "state": {"running": {}}}]}),
        );
    }

    fn run_all(&mut self) {
        for name in self.pod_names() {
            self.run(&name);
        }
    }

    pub(super) fn exit(&mut self, name: &str, code: i32) {
        let container = self.pod(name).spec.as_ref().expect("spec").containers[0]
            .name
            .clone();
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        self.set_status(
            name,
            json!({"phase": phase, "containerStatuses": [
            {"name": container, "image": "i", "imageID": "i", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": code}}}]}),
        );
    }

    fn evict(&mut self, name: &str) {
        self.set_status(
            name,
            json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}),
        );
    }

    fn condition(&self) -> Option<(ConditionType, String, String)> {
        self.status.conditions.last().map(|c| {
            (
                c.type_,
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
            )
        })
    }

    pub(super) fn is(&self, type_: ConditionType) -> bool {
        conditions::is_true(&self.status, type_)
    }

    fn replica_status(&self, type_: &str) -> &ReplicaStatus {
        &self.status.replica_statuses[type_]
    }
}

pub(super) fn creates(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreatePod(p) => Some(p.name_any()),
            _ => None,
        })
        .collect()
}

pub(super) fn pod_deletes(plan: &Plan) -> Vec<(String, bool)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeletePod { name, force, .. } => Some((name.clone(), *force)),
            _ => None,
        })
        .collect()
}

pub(super) fn env(pod: &Pod, container: &str, name: &str) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

fn distributed(run_policy: Value) -> Sim<TFJob> {
    Sim::new(tfjob(
        json!({"PS": replica(1, "tensorflow"), "Worker": replica(2, "tensorflow"), "Chief": replica(1, "tensorflow")}),
        run_policy,
    ))
}

#[test]
fn first_pass_creates_every_pod_and_service_once() {
    let mut sim = distributed(json!({}));
    let plan = sim.step();
    assert_eq!(
        creates(&plan),
        [
            "dist-chief-0",
            "dist-ps-0",
            "dist-worker-0",
            "dist-worker-1"
        ]
    );
    assert_eq!(
        sim.service_names(),
        [
            "dist-chief-0",
            "dist-ps-0",
            "dist-worker-0",
            "dist-worker-1"
        ]
    );
    assert_eq!(
        sim.condition(),
        Some((ConditionType::Created, TRUE.into(), "TFJobCreated".into()))
    );
    assert_eq!(sim.status.start_time, Some(Time(at(0))));

    let worker = sim.pod("dist-worker-1");
    let labels = worker.labels();
    assert_eq!(labels[REPLICA_TYPE_LABEL], "worker");
    assert_eq!(labels[REPLICA_INDEX_LABEL], "1");
    assert_eq!(labels["training.kubeflow.org/job-name"], "dist");
    assert_eq!(
        labels["training.kubeflow.org/operator-name"],
        "tfjob-controller"
    );
    assert_eq!(labels[JOB_ATTEMPT_LABEL], "0");
    assert_eq!(labels[REPLICA_ATTEMPT_LABEL], "0");
    assert!(!labels.contains_key(JOB_ROLE_LABEL));
    assert_eq!(sim.pod("dist-chief-0").labels()[JOB_ROLE_LABEL], "master");
    let owner = &worker.owner_references()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.uid.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("TFJob", "job-uid", Some(true), Some(true))
    );
    assert_eq!(
        worker
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref()),
        Some("Never")
    );
    let config = env(worker, "tensorflow", "TF_CONFIG").expect("TF_CONFIG");
    assert!(
        config.contains(r#""task":{"type":"worker","index":1}"#),
        "{config}"
    );

    let service = sim
        .services
        .iter()
        .find(|s| s.name_any() == "dist-worker-1")
        .expect("service");
    let spec = service.spec.as_ref().expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(
        spec.selector.as_ref().expect("selector")[REPLICA_INDEX_LABEL],
        "1"
    );
    assert_eq!(spec.ports.as_ref().expect("ports")[0].port, 2222);

    let again = sim.step();
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    assert_eq!(again.status, sim.status);
}

#[test]
fn chief_success_finishes_and_none_policy_keeps_the_other_pods() {
    let mut sim = distributed(json!({}));
    sim.step();
    sim.run_all();
    sim.step();
    assert_eq!(
        sim.condition(),
        Some((ConditionType::Running, TRUE.into(), "TFJobRunning".into()))
    );
    assert_eq!(sim.replica_status("Worker").active, 2);
    sim.now = at(10);
    sim.exit("dist-chief-0", 0);
    let plan = sim.step();
    assert!(sim.is(ConditionType::Succeeded));
    assert_eq!(sim.status.completion_time, Some(Time(at(10))));
    let running = sim
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Running)
        .expect("running");
    assert_eq!(running.status, FALSE);
    assert!(pod_deletes(&plan).is_empty());
    assert_eq!(sim.replica_status("Chief").succeeded, 1);
    assert_eq!(sim.replica_status("Worker").active, 2);
    assert_eq!(sim.pods.len(), 4);
    assert!(sim.events.iter().any(|e| e.reason == "TFJobSucceeded"));
}

#[test]
fn clean_pod_policy_running_deletes_live_pods_and_their_services() {
    let mut sim = distributed(json!({"cleanPodPolicy": "Running"}));
    sim.step();
    sim.run_all();
    sim.step();
    sim.exit("dist-worker-1", 0);
    sim.exit("dist-chief-0", 0);
    sim.step();
    assert!(sim.is(ConditionType::Succeeded));
    assert_eq!(sim.pod_names(), ["dist-chief-0", "dist-worker-1"]);
    assert_eq!(sim.service_names(), ["dist-chief-0", "dist-worker-1"]);
    let later = sim.step();
    assert!(later.actions.is_empty(), "{:?}", later.actions);
}

#[test]
fn clean_pod_policy_all_deletes_everything() {
    let mut sim = distributed(json!({"cleanPodPolicy": "All"}));
    sim.step();
    sim.exit("dist-chief-0", 0);
    sim.step();
    assert!(sim.pods.is_empty());
    assert!(sim.services.is_empty());
}

#[test]
fn worker_zero_finishing_succeeds_by_default_but_not_under_all_workers() {
    let specs = json!({"PS": replica(1, "tensorflow"), "Worker": replica(3, "tensorflow")});
    let mut default = Sim::new(tfjob(specs.clone(), json!({})));
    default.step();
    default.run_all();
    default.exit("dist-worker-0", 0);
    default.step();
    assert!(default.is(ConditionType::Succeeded));

    let mut job = tfjob(specs, json!({}));
    job.spec.success_policy = Some(crate::jobs::tensorflow::SuccessPolicy::AllWorkers);
    let mut all = Sim::new(job);
    all.step();
    all.run_all();
    all.exit("dist-worker-0", 0);
    all.step();
    assert!(!all.is(ConditionType::Succeeded));
    assert_eq!(all.condition().map(|c| c.0), Some(ConditionType::Running));
    all.exit("dist-worker-1", 0);
    all.exit("dist-worker-2", 0);
    all.step();
    assert!(all.is(ConditionType::Succeeded));
    assert_eq!(
        all.replica_status("Worker").succeeded_indexes.as_deref(),
        Some("0-2")
    );
}

#[test]
fn a_succeeded_pod_that_disappears_is_not_run_again() {
    let mut job = tfjob(json!({"Worker": replica(2, "tensorflow")}), json!({}));
    job.spec.success_policy = Some(crate::jobs::tensorflow::SuccessPolicy::AllWorkers);
    let mut sim = Sim::new(job);
    sim.step();
    sim.exit("dist-worker-1", 0);
    sim.step();
    sim.pods.retain(|p| p.name_any() != "dist-worker-1"); // garbage-collected
    let plan = sim.step();
    assert!(creates(&plan).is_empty(), "{:?}", plan.actions);
    assert_eq!(sim.replica_status("Worker").succeeded, 1);
    assert_eq!(
        sim.created.iter().filter(|n| *n == "dist-worker-1").count(),
        1
    );
}

#[test]
fn exit_code_policy_restarts_on_128_and_up_and_fails_below() {
    let mut sim = Sim::new(tfjob(
        json!({"Worker": with_policy(replica(2, "tensorflow"), "ExitCode")}),
        json!({}),
    ));
    sim.step();
    sim.run_all();
    sim.step();
    sim.exit("dist-worker-1", 137);
    let plan = sim.step();
    assert_eq!(pod_deletes(&plan), [("dist-worker-1".to_string(), false)]);
    assert_eq!(sim.status.restarts, 1);
    assert_eq!(sim.replica_status("Worker").attempts["1"], 1);
    assert_eq!(
        sim.condition(),
        Some((
            ConditionType::Restarting,
            TRUE.into(),
            "TFJobRestarting".into()
        ))
    );
    assert_eq!(
        sim.status
            .conditions
            .last()
            .and_then(|c| c.message.as_deref()),
        Some("job dist is restarting because Worker replica(s) failed."),
        "training-operator's message"
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.reason == "PodRestarting" && e.message.contains("exit code 137"))
    );
    let plan = sim.step();
    assert_eq!(creates(&plan), ["dist-worker-1"]);
    assert_eq!(
        sim.pod("dist-worker-1").labels()[REPLICA_ATTEMPT_LABEL],
        "1"
    );
    sim.run("dist-worker-1");
    sim.step();
    assert_eq!(sim.condition().map(|c| c.0), Some(ConditionType::Running));

    sim.exit("dist-worker-0", 3);
    let plan = sim.step();
    assert!(sim.is(ConditionType::Failed));
    let failed = sim.status.conditions.last().expect("condition");
    assert_eq!(
        failed.message.as_deref(),
        Some(r#"job "dist" is failing because "Worker" replica(s) failed."#)
    );
    assert!(
        pod_deletes(&plan).is_empty(),
        "cleanPodPolicy None keeps pods"
    );
    assert_eq!(
        sim.replica_status("Worker").failed_indexes.as_deref(),
        Some("0")
    );
    assert_eq!(sim.status.restarts, 1);
}

#[test]
fn never_policy_fails_the_job_on_a_program_error() {
    let mut sim = distributed(json!({"cleanPodPolicy": "Running"}));
    sim.step();
    sim.run_all();
    sim.exit("dist-ps-0", 1);
    sim.step();
    assert!(sim.is(ConditionType::Failed));
    assert_eq!(
        sim.pod_names(),
        ["dist-ps-0"],
        "Running pods cleaned, the failed one kept"
    );
    sim.step();
    assert!(sim.is(ConditionType::Failed), "Failed is sticky");
}

#[test]
fn an_evicted_pod_is_recreated_without_counting_a_restart() {
    let mut sim = distributed(json!({"backoffLimit": 0}));
    sim.step();
    sim.run_all();
    sim.step();
    sim.evict("dist-worker-0");
    let plan = sim.step();
    assert_eq!(pod_deletes(&plan), [("dist-worker-0".to_string(), false)]);
    assert!(!sim.is(ConditionType::Failed));
    assert_eq!((sim.status.restarts, sim.status.disruptions), (0, 1));
    assert!(
        sim.events
            .iter()
            .any(|e| e.reason == "PodDisrupted" && e.message.contains("Evicted"))
    );
    let plan = sim.step();
    assert_eq!(creates(&plan), ["dist-worker-0"]);
}

#[test]
fn a_pod_deleted_by_someone_else_is_a_disruption_and_waits_for_the_old_pod() {
    let mut sim = distributed(json!({}));
    sim.step();
    sim.run_all();
    sim.pod_mut("dist-worker-0").metadata.deletion_timestamp = Some(Time(at(30)));
    let plan = sim.step();
    assert!(pod_deletes(&plan).is_empty(), "already terminating");
    assert!(creates(&plan).is_empty(), "the name is still taken");
    assert_eq!(sim.status.disruptions, 1);
    assert!(
        plan.requeue_after.is_some(),
        "wakes up to force-delete if it lingers"
    );
    sim.pods.retain(|p| p.name_any() != "dist-worker-0");
    let plan = sim.step();
    assert_eq!(creates(&plan), ["dist-worker-0"]);
    assert_eq!(sim.status.disruptions, 1, "counted once");
}

#[test]
fn a_pod_stuck_terminating_on_a_lost_node_is_force_deleted() {
    let mut sim = distributed(json!({}));
    sim.config.force_delete_after = Duration::from_secs(60);
    sim.step();
    sim.run_all();
    sim.pod_mut("dist-worker-1")
        .spec
        .as_mut()
        .expect("spec")
        .node_name = Some("lost".into());
    sim.pod_mut("dist-worker-1").metadata.deletion_timestamp = Some(Time(at(30)));
    let plan = sim.step();
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(90) + Duration::from_millis(1))
    );
    sim.now = at(89);
    assert!(pod_deletes(&sim.step()).is_empty());
    sim.now = at(90);
    let plan = sim.step();
    assert_eq!(pod_deletes(&plan), [("dist-worker-1".to_string(), true)]);
    assert!(sim.events.iter().any(|e| e.reason == "ForceDeletingPod"));
    let plan = sim.step();
    assert_eq!(creates(&plan), ["dist-worker-1"]);
}

#[test]
fn backoff_limit_counts_every_recreation() {
    // As training-operator: a limit of 2 is reached by the second restart.
    let mut sim = Sim::new(tfjob(
        json!({"Worker": with_policy(replica(2, "tensorflow"), "OnFailure")}),
        json!({"backoffLimit": 2, "cleanPodPolicy": "All"}),
    ));
    sim.step();
    sim.run_all();
    sim.exit("dist-worker-0", 1);
    sim.step();
    assert_eq!(sim.status.restarts, 1);
    sim.step();
    sim.run_all();
    sim.exit("dist-worker-0", 1);
    sim.step();
    assert!(sim.is(ConditionType::Failed));
    let failed = sim.status.conditions.last().expect("condition");
    assert_eq!(
        failed.message.as_deref(),
        Some("Job dist has failed because it has reached the specified backoff limit")
    );
    assert!(
        sim.pods.is_empty(),
        "cleanPodPolicy All honoured on the backoff path"
    );
}

#[test]
fn container_restarts_by_the_kubelet_count_against_the_backoff_limit() {
    let mut sim = Sim::new(tfjob(
        json!({"Worker": with_policy(replica(1, "tensorflow"), "OnFailure")}),
        json!({"backoffLimit": 2}),
    ));
    sim.step();
    sim.set_status(
        "dist-worker-0",
        json!({"phase": "Running", "containerStatuses": [
        {"name": "tensorflow", "image": "i", "imageID": "i", "ready": true, "restartCount": 1,
         "state": {"running": {}}}]}),
    );
    sim.step();
    assert!(!sim.is(ConditionType::Failed));
    // As training-operator (`restartCount >= backoffLimit`): the second restart reaches 2.
    sim.set_status(
        "dist-worker-0",
        json!({"phase": "Running", "containerStatuses": [
        {"name": "tensorflow", "image": "i", "imageID": "i", "ready": true, "restartCount": 2,
         "state": {"running": {}}}]}),
    );
    sim.step();
    assert!(sim.is(ConditionType::Failed));
    assert_eq!(sim.status.restarts, 2);
}

#[test]
fn a_restart_recorded_before_a_crash_is_not_counted_twice() {
    let mut sim = Sim::new(tfjob(
        json!({"Worker": with_policy(replica(1, "tensorflow"), "ExitCode")}),
        json!({"backoffLimit": 2}),
    ));
    sim.step();
    sim.exit("dist-worker-0", 143);
    let pods = sim.pods.clone();
    let plan = sim.step(); // status written, then the controller dies before deleting the pod
    assert_eq!(pod_deletes(&plan).len(), 1);
    sim.pods = pods;
    let plan = sim.step();
    assert_eq!(
        pod_deletes(&plan),
        [("dist-worker-0".to_string(), false)],
        "the stale pod goes"
    );
    assert_eq!(sim.status.restarts, 1);
    assert!(!sim.is(ConditionType::Failed));
    let plan = sim.step();
    assert_eq!(creates(&plan), ["dist-worker-0"]);
}

#[test]
fn active_deadline_fires_on_time_and_stops_running_pods() {
    let mut sim = distributed(json!({"activeDeadlineSeconds": 60}));
    let plan = sim.step();
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(60) + Duration::from_millis(1))
    );
    sim.run_all();
    sim.now = at(59);
    sim.step();
    assert!(!sim.is(ConditionType::Failed));
    sim.now = at(60);
    let plan = sim.step();
    assert!(sim.is(ConditionType::Failed));
    let failed = sim.status.conditions.last().expect("condition");
    assert_eq!(
        failed.message.as_deref(),
        Some("Job dist has failed because it was active longer than specified deadline")
    );
    assert_eq!(
        pod_deletes(&plan).len(),
        4,
        "running pods stop on the deadline path even under cleanPodPolicy None"
    );

    let mut all = distributed(json!({"activeDeadlineSeconds": 60, "cleanPodPolicy": "All"}));
    all.step();
    all.now = at(61);
    all.step();
    assert!(all.pods.is_empty());
}

#[test]
fn ttl_deletes_the_finished_job_on_time() {
    let mut sim = distributed(json!({"ttlSecondsAfterFinished": 30}));
    sim.step();
    sim.now = at(5);
    sim.exit("dist-chief-0", 0);
    let plan = sim.step();
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(30) + Duration::from_millis(1))
    );
    sim.now = at(34);
    sim.step();
    assert!(!sim.job_deleted);
    sim.now = at(35);
    let plan = sim.step();
    assert!(plan.actions.contains(&Action::DeleteJob));
}

#[test]
fn suspend_deletes_everything_and_resume_restarts_the_clock() {
    let mut sim = distributed(json!({"activeDeadlineSeconds": 100}));
    sim.step();
    sim.run_all();
    sim.step();
    sim.exit("dist-worker-1", 0);
    sim.step();
    sim.job.spec.run_policy.suspend = Some(true);
    sim.now = at(50);
    sim.step();
    assert!(sim.pods.is_empty() && sim.services.is_empty());
    assert!(sim.is(ConditionType::Suspended));
    let running = sim
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Running)
        .expect("running");
    assert_eq!(
        (running.status.as_str(), running.reason.as_deref()),
        (FALSE, Some("TFJobSuspended"))
    );
    assert_eq!(sim.replica_status("Worker").active, 0);
    sim.now = at(500);
    assert!(
        !sim.step()
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreatePod(_)))
    );
    assert!(
        !sim.is(ConditionType::Failed),
        "no deadline while suspended"
    );

    sim.job.spec.run_policy.suspend = Some(false);
    let plan = sim.step();
    assert_eq!(
        sim.condition(),
        Some((
            ConditionType::Suspended,
            FALSE.into(),
            "TFJobResumed".into()
        ))
    );
    assert_eq!(sim.status.start_time, Some(Time(at(500))));
    assert_eq!(
        creates(&plan),
        ["dist-chief-0", "dist-ps-0", "dist-worker-0"],
        "succeeded worker 1 is not rerun"
    );
    sim.now = at(599);
    sim.step();
    assert!(!sim.is(ConditionType::Failed));
}

#[test]
fn a_job_created_suspended_creates_nothing() {
    let mut sim = distributed(json!({"suspend": true}));
    let plan = sim.step();
    assert!(creates(&plan).is_empty());
    assert!(sim.is(ConditionType::Suspended));
    assert_eq!(sim.status.start_time, None);
}

#[test]
fn scaling_down_deletes_pods_and_services_above_the_new_count() {
    let mut sim = Sim::new(tfjob(
        json!({"Worker": replica(3, "tensorflow")}),
        json!({}),
    ));
    sim.step();
    sim.job
        .spec
        .tf_replica_specs
        .get_mut("Worker")
        .expect("worker")
        .replicas = Some(1);
    sim.step();
    assert_eq!(sim.pod_names(), ["dist-worker-0"]);
    assert_eq!(sim.service_names(), ["dist-worker-0"]);
}

#[test]
fn zero_replicas_create_nothing() {
    let mut sim = Sim::new(tfjob(
        json!({"Chief": replica(1, "tensorflow"), "Worker": replica(0, "tensorflow")}),
        json!({}),
    ));
    let plan = sim.step();
    assert_eq!(creates(&plan), ["dist-chief-0"]);
    assert_eq!(sim.service_names(), ["dist-chief-0"]);
    let config = env(sim.pod("dist-chief-0"), "tensorflow", "TF_CONFIG");
    assert_eq!(config, None, "one replica in total: not distributed");
}

#[test]
fn an_invalid_job_fails_validation_and_creates_nothing() {
    let mut sim = Sim::new(tfjob(
        json!({"Worker": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "main", "image": "x"}]}}}}),
        json!({}),
    ));
    let plan = sim.step();
    assert!(creates(&plan).is_empty());
    let (type_, status, reason) = sim.condition().expect("condition");
    assert_eq!(
        (type_, status.as_str(), reason.as_str()),
        (ConditionType::Failed, TRUE, "TFJobFailedValidation")
    );
    let message = sim.status.conditions[0].message.clone().unwrap_or_default();
    assert!(
        message.contains("must have a container named tensorflow"),
        "{message}"
    );
}

#[test]
fn names_over_63_characters_are_rejected() {
    let mut job = tfjob(json!({"Worker": replica(100, "tensorflow")}), json!({}));
    job.metadata.name = Some("a".repeat(54)); // a-…-worker-99: 64 characters
    let mut sim = Sim::new(job);
    sim.step();
    assert!(sim.is(ConditionType::Failed));
    assert!(
        sim.status.conditions[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("more than 63")
    );
}

#[test]
fn jobs_managed_by_another_controller_or_being_deleted_are_left_alone() {
    let mut other = distributed(json!({"managedBy": "kueue.x-k8s.io/multikueue"}));
    let plan = other.step();
    assert!(plan.actions.is_empty() && plan.status == JobStatus::default());
    let mut ours = distributed(json!({"managedBy": "kubeflow.org/training-operator"}));
    assert!(!ours.step().actions.is_empty());
    let mut deleting = distributed(json!({}));
    deleting.job.metadata.deletion_timestamp = Some(Time(at(0)));
    assert!(deleting.step().actions.is_empty());
}

#[test]
fn whole_job_restart_stops_every_replica_and_starts_them_together() {
    let mut sim = Sim::new(tfjob(
        json!({"Worker": with_policy(replica(3, "tensorflow"), "OnFailure")}),
        json!({"restartScope": "Job", "backoffLimit": 5}),
    ));
    sim.step();
    sim.run_all();
    sim.step();
    for name in ["dist-worker-0", "dist-worker-2"] {
        let pod = sim.pod_mut(name);
        pod.spec.as_mut().expect("spec").node_name = Some("node".into());
    }
    sim.exit("dist-worker-1", 1);
    let plan = sim.step();
    assert_eq!(pod_deletes(&plan).len(), 3);
    assert_eq!((sim.status.attempt, sim.status.restarts), (1, 1));
    assert_eq!(
        sim.condition().map(|c| c.0),
        Some(ConditionType::Restarting)
    );
    assert_eq!(
        sim.pod_names(),
        ["dist-worker-0", "dist-worker-2"],
        "terminating on their nodes"
    );
    let plan = sim.step();
    assert!(
        creates(&plan).is_empty(),
        "no replica starts before the old attempt is gone"
    );
    sim.pods.retain(|p| p.name_any() != "dist-worker-0");
    assert!(creates(&sim.step()).is_empty());
    sim.pods.clear();
    let plan = sim.step();
    assert_eq!(
        creates(&plan),
        ["dist-worker-0", "dist-worker-1", "dist-worker-2"]
    );
    assert!(
        sim.pods
            .iter()
            .all(|p| p.labels()[JOB_ATTEMPT_LABEL] == "1")
    );
    sim.run_all();
    sim.step();
    assert_eq!(sim.condition().map(|c| c.0), Some(ConditionType::Running));
}

#[test]
fn volcano_holds_pods_until_the_pod_group_is_admitted() {
    let mut sim = distributed(json!({"schedulingPolicy": {"queue": "research"}}));
    sim.config.gang = Some(GangScheduler::Volcano);
    let plan = sim.step();
    assert!(creates(&plan).is_empty());
    let spec = &sim.pod_group.as_ref().expect("PodGroup").spec;
    assert_eq!(
        (spec["minMember"].clone(), spec["queue"].clone()),
        (json!(4), json!("research"))
    );
    sim.pod_group.as_mut().expect("PodGroup").spec["minTaskMember"] = json!({"ps": 1});
    assert!(
        !sim.step()
            .actions
            .iter()
            .any(|a| matches!(a, Action::ApplyPodGroup(_))),
        "unchanged (scheduler defaults aside): not re-applied"
    );
    sim.pod_group.as_mut().expect("PodGroup").phase = Some("Inqueue".into());
    let plan = sim.step();
    assert_eq!(creates(&plan).len(), 4);
    let pod = sim.pod("dist-ps-0");
    assert_eq!(
        pod.annotations()[crate::jobs::gang::VOLCANO_GROUP_ANNOTATION],
        "dist"
    );
    assert_eq!(
        pod.annotations()[crate::jobs::gang::VOLCANO_TASK_ANNOTATION],
        "ps"
    );
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()),
        Some("volcano")
    );
    sim.exit("dist-chief-0", 0);
    sim.step();
    assert!(sim.pod_group.is_none(), "deleted when the job finishes");
    assert!(
        sim.status.last_reconcile_time.is_none(),
        "kfop does not stamp it"
    );
}

#[test]
fn with_training_operators_semantics_a_held_job_stamps_its_last_reconcile_time() {
    let mut sim = as_training_operator(distributed(json!({})));
    sim.config.gang = Some(GangScheduler::Volcano);
    sim.step();
    assert_eq!(
        sim.status.last_reconcile_time.as_ref().map(|t| t.0),
        Some(at(0))
    );
    sim.now = at(5);
    sim.step();
    assert_eq!(
        sim.status.last_reconcile_time.as_ref().map(|t| t.0),
        Some(at(5)),
        "at every pass while the PodGroup holds the pods"
    );
}

#[test]
fn scheduler_plugins_label_pods_without_holding_them() {
    let mut sim = distributed(json!({}));
    sim.config.gang = Some(GangScheduler::SchedulerPlugins(
        "scheduler-plugins-scheduler".into(),
    ));
    let plan = sim.step();
    assert_eq!(creates(&plan).len(), 4);
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyPodGroup(_)))
    );
    assert_eq!(
        sim.pod("dist-worker-0").labels()[crate::jobs::gang::SCHEDULER_PLUGINS_GROUP_LABEL],
        "dist"
    );
}

#[test]
fn dynamic_workers_may_fail_without_failing_the_job() {
    let mut job = tfjob(
        json!({"PS": replica(1, "tensorflow"), "Worker": replica(3, "tensorflow")}),
        json!({}),
    );
    job.spec.enable_dynamic_worker = true;
    let mut sim = Sim::new(job);
    sim.step();
    sim.run_all();
    sim.exit("dist-worker-2", 1);
    sim.step();
    assert!(!sim.is(ConditionType::Failed));
    assert_eq!(sim.replica_status("Worker").failed, 1);
    assert!(
        creates(&sim.step()).is_empty(),
        "the failed worker is not rerun"
    );
    sim.exit("dist-worker-0", 0);
    sim.step();
    assert!(sim.is(ConditionType::Succeeded));
}

#[test]
fn pytorch_master_success_and_on_failure_default() {
    let job: PyTorchJob = serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "metadata": {"name": "ddp", "namespace": "ml", "uid": "u"},
        "spec": {"pytorchReplicaSpecs": {"Master": replica(1, "pytorch"), "Worker": replica(2, "pytorch")}},
    }))
    .expect("PyTorchJob");
    let mut sim = Sim::new(job);
    sim.step();
    assert_eq!(
        sim.pod_names(),
        ["ddp-master-0", "ddp-worker-0", "ddp-worker-1"]
    );
    assert_eq!(
        sim.pod("ddp-worker-1")
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref()),
        Some("OnFailure")
    );
    assert_eq!(
        env(sim.pod("ddp-worker-1"), "pytorch", "RANK").as_deref(),
        Some("2")
    );
    sim.run_all();
    sim.exit("ddp-worker-0", 1);
    sim.step();
    assert_eq!(
        sim.condition().map(|c| c.2),
        Some("PyTorchJobRestarting".to_string())
    );
    sim.step();
    sim.run_all();
    sim.step();
    sim.exit("ddp-master-0", 0);
    sim.step();
    assert_eq!(
        sim.condition().map(|c| c.2),
        Some("PyTorchJobSucceeded".to_string())
    );
}

#[test]
fn status_records_counts_and_selectors() {
    let mut sim = distributed(json!({}));
    sim.step();
    sim.run("dist-worker-0");
    sim.exit("dist-worker-1", 0);
    sim.step();
    let worker = sim.replica_status("Worker");
    assert_eq!((worker.active, worker.succeeded, worker.failed), (1, 1, 0));
    assert_eq!(
        worker.selector.as_deref(),
        Some(
            "training.kubeflow.org/job-name=dist,training.kubeflow.org/operator-name=tfjob-controller,training.kubeflow.org/replica-type=worker"
        )
    );
}

#[test]
fn pods_of_a_finished_job_that_succeed_later_are_counted() {
    let mut sim = distributed(json!({}));
    sim.step();
    sim.run_all();
    sim.exit("dist-chief-0", 0);
    sim.step();
    sim.exit("dist-worker-0", 0);
    sim.step();
    assert_eq!(sim.replica_status("Worker").succeeded, 1);
    assert_eq!(sim.replica_status("Worker").active, 1);
}

#[test]
fn huge_deadlines_and_timeouts_never_fire_and_never_overflow() {
    let mut sim = distributed(
        json!({"activeDeadlineSeconds": i64::MAX, "ttlSecondsAfterFinished": i32::MAX}),
    );
    sim.config.force_delete_after = Duration::MAX;
    sim.step();
    sim.run_all();
    sim.pod_mut("dist-ps-0").metadata.deletion_timestamp = Some(Time(at(1)));
    sim.now = at(1_000_000);
    let plan = sim.step();
    assert!(!sim.is(ConditionType::Failed));
    assert!(pod_deletes(&plan).is_empty(), "never force-deleted");
    sim.exit("dist-chief-0", 0);
    let plan = sim.step();
    assert!(sim.is(ConditionType::Succeeded));
    assert!(!plan.actions.contains(&Action::DeleteJob));
}

#[test]
fn names_of_exactly_63_characters_are_accepted() {
    let mut job = tfjob(json!({"Worker": replica(100, "tensorflow")}), json!({}));
    job.metadata.name = Some("a".repeat(53)); // a…a-worker-99: 63 characters
    let mut sim = Sim::new(job);
    let plan = sim.step();
    assert_eq!(creates(&plan).len(), 100);
}

#[test]
fn growing_a_replica_type_adds_pods_and_removing_one_deletes_its_pods() {
    let mut sim = Sim::new(tfjob(
        json!({"PS": replica(1, "tensorflow"), "Worker": replica(1, "tensorflow")}),
        json!({}),
    ));
    sim.step();
    sim.job
        .spec
        .tf_replica_specs
        .get_mut("Worker")
        .expect("worker")
        .replicas = Some(3);
    let plan = sim.step();
    assert_eq!(creates(&plan), ["dist-worker-1", "dist-worker-2"]);
    sim.job.spec.tf_replica_specs.remove("PS");
    sim.step();
    assert_eq!(
        sim.pod_names(),
        ["dist-worker-0", "dist-worker-1", "dist-worker-2"]
    );
    assert_eq!(
        sim.service_names(),
        ["dist-worker-0", "dist-worker-1", "dist-worker-2"]
    );
    assert!(!sim.status.replica_statuses.contains_key("PS"));
}

#[test]
fn restarting_gives_way_to_running_once_the_replacement_runs() {
    let mut sim = distributed(json!({}));
    sim.step();
    sim.run_all();
    sim.step();
    sim.evict("dist-ps-0");
    sim.step();
    assert_eq!(
        sim.condition().map(|c| c.0),
        Some(ConditionType::Restarting)
    );
    sim.step();
    sim.run("dist-ps-0");
    sim.step();
    assert_eq!(
        sim.condition(),
        Some((ConditionType::Running, TRUE.into(), "TFJobRunning".into()))
    );
    let types: Vec<ConditionType> = sim.status.conditions.iter().map(|c| c.type_).collect();
    assert_eq!(types, [ConditionType::Created, ConditionType::Running]);
}

#[test]
fn a_pod_deleted_while_the_controller_was_away_is_recreated() {
    let mut sim = distributed(json!({}));
    sim.step();
    sim.pods.retain(|p| p.name_any() != "dist-worker-1");
    let plan = sim.step();
    assert_eq!(creates(&plan), ["dist-worker-1"]);
    assert_eq!(
        sim.pod("dist-worker-1").labels()[REPLICA_ATTEMPT_LABEL],
        "0"
    );
}

#[test]
fn a_chief_that_succeeds_as_workers_fail_marks_the_job_succeeded_then_failed() {
    // training-operator's TFJob status ("Chief is succeeded, workers are failed"): both.
    let mut sim = Sim::new(tfjob(
        json!({"Chief": replica(1, "tensorflow"), "Worker": with_policy(replica(2, "tensorflow"), "Never")}),
        json!({}),
    ));
    sim.step();
    sim.run_all();
    sim.step();
    sim.exit("dist-chief-0", 0);
    sim.exit("dist-worker-0", 1);
    sim.step();
    let types: Vec<(ConditionType, String)> = sim
        .status
        .conditions
        .iter()
        .map(|c| (c.type_, c.status.clone()))
        .collect();
    assert_eq!(
        types,
        [
            (ConditionType::Created, TRUE.to_string()),
            (ConditionType::Running, "False".to_string()),
            (ConditionType::Succeeded, TRUE.to_string()),
            (ConditionType::Failed, TRUE.to_string()),
        ]
    );
    assert_eq!(
        sim.status.conditions[3].message.as_deref(),
        Some("TFJob ml/dist has failed because 1 Worker replica(s) failed.")
    );
}

fn as_training_operator<F: Framework>(mut sim: Sim<F>) -> Sim<F> {
    sim.config.semantics = Semantics::TrainingOperator;
    sim
}

#[test]
fn with_training_operators_semantics_an_evicted_never_replica_fails_the_job() {
    let mut sim = as_training_operator(distributed(json!({})));
    sim.step();
    sim.run_all();
    sim.step();
    sim.evict("dist-worker-0");
    sim.step();
    assert!(sim.is(ConditionType::Failed));
    assert_eq!(sim.status.disruptions, 0);
    assert!(
        sim.events
            .iter()
            .any(|e| e.reason == "TFJobFailed" && !e.warning),
        "a Normal event, as training-operator records it"
    );
    // kfop's own semantics recreate it (an_evicted_pod_is_recreated_without_counting_a_restart).
}

#[test]
fn with_training_operators_semantics_only_running_container_restarts_count() {
    let mut sim = as_training_operator(Sim::new(tfjob(
        json!({"Worker": with_policy(replica(2, "tensorflow"), "OnFailure")}),
        json!({"backoffLimit": 2}),
    )));
    sim.step();
    sim.run_all();
    // Recreations do not count (training-operator #2045)...
    for _ in 0..3 {
        sim.exit("dist-worker-0", 1);
        sim.step();
        sim.step();
        sim.run_all();
        assert!(!sim.is(ConditionType::Failed));
    }
    // ...the kubelet's restarts of running containers do, up to the limit.
    sim.set_status(
        "dist-worker-1",
        json!({"phase": "Running", "containerStatuses": [
        {"name": "tensorflow", "image": "i", "imageID": "i", "ready": true, "restartCount": 2,
         "state": {"running": {}}}]}),
    );
    sim.step();
    assert!(sim.is(ConditionType::Failed));
    assert!(sim.pods.is_empty(), "a limit deletes every pod");
}

#[test]
fn a_job_stopped_by_its_deadline_stops_running_pods_and_keeps_finished_ones() {
    let stop = |semantics: Semantics| {
        let mut sim = distributed(json!({"activeDeadlineSeconds": 60}));
        sim.config.semantics = semantics;
        sim.step();
        sim.run_all();
        sim.exit("dist-worker-1", 0);
        sim.step();
        sim.now = at(60);
        sim.step();
        assert!(sim.is(ConditionType::Failed));
        sim.step();
        sim.pod_names()
    };
    assert_eq!(
        stop(Semantics::Kfop),
        ["dist-worker-1"],
        "cleanPodPolicy None"
    );
    assert!(stop(Semantics::TrainingOperator).is_empty());
}

#[test]
fn with_training_operators_semantics_a_succeeded_jobs_running_pods_count_as_succeeded() {
    let mut sim = as_training_operator(distributed(json!({})));
    sim.step();
    sim.run_all();
    sim.step();
    sim.exit("dist-chief-0", 0);
    sim.step();
    assert!(sim.is(ConditionType::Succeeded));
    sim.step();
    let ps = sim.replica_status("PS");
    assert_eq!((ps.active, ps.succeeded), (0, 1));
    let mut own = distributed(json!({}));
    own.step();
    own.run_all();
    own.step();
    own.exit("dist-chief-0", 0);
    own.step();
    own.step();
    let ps = own.replica_status("PS");
    assert_eq!(
        (ps.active, ps.succeeded),
        (1, 0),
        "kfop counts what is true"
    );
}

#[test]
fn an_elastic_job_scales_with_its_autoscaler_and_drops_it_when_it_stops() {
    let job: PyTorchJob = serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "metadata": {"name": "el", "namespace": "ml", "uid": "job-uid"},
        "spec": {"elasticPolicy": {"minReplicas": 1, "maxReplicas": 8,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80}}}]},
                 "pytorchReplicaSpecs": {"Worker": replica(2, "pytorch")}},
    }))
    .expect("PyTorchJob");
    let mut sim = Sim::new(job);
    let plan = sim.step();
    assert_eq!(creates(&plan), ["el-worker-0", "el-worker-1"]);
    assert_eq!(
        sim.autoscaler
            .as_ref()
            .map(|a| a["spec"]["maxReplicas"].clone()),
        Some(json!(8))
    );
    sim.run_all();
    sim.step();
    // The autoscaler writes the Workers' replicas through the scale subresource: 2 -> 4 -> 1.
    let scale = |sim: &mut Sim<PyTorchJob>, n: i32| {
        if let Some(worker) = sim.job.spec.pytorch_replica_specs.get_mut("Worker") {
            worker.replicas = Some(n);
        }
    };
    scale(&mut sim, 4);
    let plan = sim.step();
    assert_eq!(creates(&plan), ["el-worker-2", "el-worker-3"]);
    assert_eq!(
        env(sim.pod("el-worker-3"), "pytorch", "PET_NNODES").as_deref(),
        Some("1:8")
    );
    sim.run_all();
    sim.step();
    scale(&mut sim, 1);
    let plan = sim.step();
    let mut gone: Vec<String> = pod_deletes(&plan).into_iter().map(|(n, _)| n).collect();
    gone.sort();
    assert_eq!(gone, ["el-worker-1", "el-worker-2", "el-worker-3"]);
    assert!(!sim.is(ConditionType::Failed), "scaling down is no failure");
    sim.step();
    sim.exit("el-worker-0", 0);
    sim.step();
    assert!(sim.is(ConditionType::Succeeded));
    assert!(sim.autoscaler.is_none(), "a finished job scales nothing");
}
