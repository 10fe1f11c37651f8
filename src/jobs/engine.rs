//! The job engine: given a job, the status last written, the pods and services it controls and
//! the time, decide the new status and the actions (create, delete, apply) that move the cluster
//! toward the job. Pure: no I/O, no clock; every decision is unit-tested here.
//!
//! Truth lives in the status: succeeded and permanently failed indexes are recorded there, so a
//! finished pod that disappears is never run again; each index's restart count is recorded before
//! its pod is deleted (write-ahead), and pods carry the attempt they were created for, so a pod
//! whose failure was already handled is recognised as stale, even after a controller restart.

use super::api::{
    CleanPodPolicy, ConditionType, JOB_ATTEMPT_LABEL, JobStatus, MANAGED_BY_VALUES,
    REPLICA_ATTEMPT_LABEL, ReplicaStatus, RestartPolicy, RestartScope,
};
use super::conditions::{self, FALSE, TRUE};
use super::failure::{self, Verdict};
use super::framework::{self, Counts, Framework, Replica, StatusMessage, object_name};
use super::gang::GangScheduler;
use super::indexes::IndexSet;
use super::pytorch_init::InitContainers;
use super::template::{self, Slot};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Settings of the engine that come from the controller, not from the job.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Appended to service addresses in cluster specs (`CUSTOM_CLUSTER_DOMAIN`).
    pub cluster_domain: Option<String>,
    /// The gang scheduler, when gang scheduling is on.
    pub gang: Option<GangScheduler>,
    /// How long past its deletion deadline a terminating pod may linger (a lost node never
    /// confirms the deletion) before it is force-deleted.
    pub force_delete_after: Duration,
    /// The init containers PyTorchJob workers get to wait for their Master (training-operator's
    /// `init-pytorch`), or none.
    pub pytorch_init: Option<InitContainers>,
    /// Whose semantics to follow where kfop differs from training-operator.
    pub semantics: Semantics,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_domain: None,
            gang: None,
            force_delete_after: Duration::from_secs(300),
            pytorch_init: Some(InitContainers::default()),
            semantics: Semantics::Kfop,
        }
    }
}

/// Whose run-policy semantics the engine follows where kfop deliberately differs from
/// training-operator (`docs/jobs.md`, "What differs").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Semantics {
    /// kfop's: infrastructure disruptions never fail or count, every restart counts against
    /// `backoffLimit`, a job stopped by a limit keeps its finished pods under `cleanPodPolicy:
    /// None`, counts stay what is true.
    #[default]
    Kfop,
    /// training-operator v1's (release-1.9): an evicted `Never`/`ExitCode` replica fails,
    /// `backoffLimit` counts container restarts of running pods only, a job stopped by a limit
    /// deletes every pod, a succeeded job's active pods count as succeeded, a failure is a Normal
    /// event, `lastReconcileTime` is written while gang scheduling holds the pods.
    TrainingOperator,
}

/// The tail of the Failed message of a job stopped by `activeDeadlineSeconds`.
const DEADLINE_EXCEEDED: &str = " has failed because it was active longer than specified deadline";
/// The tail of the Failed message of a job stopped by `backoffLimit`.
const BACKOFF_LIMIT_REACHED: &str =
    " has failed because it has reached the specified backoff limit";

/// The job's PodGroup as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct PodGroup {
    /// Its `spec`.
    pub spec: Value,
    /// Its `status.phase`, if the scheduler set one.
    pub phase: Option<String>,
}

/// What the controller sees of a job's children (only objects the job controls).
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed<'a> {
    /// The job's pods.
    pub pods: &'a [&'a Pod],
    /// The job's services.
    pub services: &'a [&'a Service],
    /// The job's PodGroup, when gang scheduling is on and it exists.
    pub pod_group: Option<&'a PodGroup>,
}

/// One change to make in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this pod.
    CreatePod(Box<Pod>),
    /// Delete the pod `name` if its UID is still `uid`; `force` skips the grace period.
    DeletePod {
        /// The pod's name.
        name: String,
        /// The pod's UID (a precondition).
        uid: String,
        /// Delete with a zero grace period.
        force: bool,
    },
    /// Create this service.
    CreateService(Box<Service>),
    /// Delete the service `name` if its UID is still `uid`.
    DeleteService {
        /// The service's name.
        name: String,
        /// The service's UID (a precondition).
        uid: String,
    },
    /// Create or update the job's PodGroup with this spec.
    ApplyPodGroup(Value),
    /// Delete the job's PodGroup.
    DeletePodGroup,
    /// Create or update the job's HorizontalPodAutoscaler (this whole object).
    ApplyAutoscaler(Value),
    /// Delete the job's HorizontalPodAutoscaler.
    DeleteAutoscaler,
    /// Delete the job (its TTL after finishing expired).
    DeleteJob,
}

/// An event to record on the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// A warning rather than a normal event.
    pub warning: bool,
    /// The machine-readable reason (`TFJobRunning`, `PodRestarting`, …).
    pub reason: String,
    /// What happened.
    pub message: String,
    /// The pod the event is about, if any.
    pub pod: Option<String>,
}

/// The engine's decision for one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The status to write before acting (unchanged when nothing changed).
    pub status: JobStatus,
    /// The changes to make, after the status is written.
    pub actions: Vec<Action>,
    /// Events to record.
    pub events: Vec<Event>,
    /// Look at the job again after this long even if nothing happens (deadlines, TTL, force
    /// deletion).
    pub requeue_after: Option<Duration>,
}

/// Decides the next step for `job`, whose last written status is `base`.
pub fn plan<F: Framework>(
    job: &F,
    base: &JobStatus,
    observed: Observed<'_>,
    config: &Config,
    now: Timestamp,
) -> Plan {
    let mut pass = Pass::<F> {
        job,
        kind: F::kind(&()).to_string(),
        name: job.name_any(),
        config,
        now,
        plan: Plan {
            status: base.clone(),
            ..Plan::default()
        },
        observed,
        handled_pods: BTreeSet::new(),
    };
    if job.meta().deletion_timestamp.is_some() || !manages(job) {
        return pass.plan;
    }
    pass.run();
    pass.plan
}

/// Whether this controller manages `job` (`runPolicy.managedBy` is unset or names it).
pub fn manages<F: Framework>(job: &F) -> bool {
    job.run_policy()
        .managed_by
        .as_deref()
        .is_none_or(|m| m.is_empty() || MANAGED_BY_VALUES.contains(&m))
}

/// The state of one engine pass.
struct Pass<'a, F: Framework> {
    job: &'a F,
    kind: String,
    name: String,
    config: &'a Config,
    now: Timestamp,
    plan: Plan,
    observed: Observed<'a>,
    /// Pods this pass already decided about (deleted, kept), by name.
    handled_pods: BTreeSet<String>,
}

/// A failed pod that will be recreated.
struct Restart<'p> {
    type_: &'static str,
    index: u32,
    pod: &'p Pod,
    verdict: Verdict,
}

impl<'a, F: Framework> Pass<'a, F> {
    fn run(&mut self) {
        let replicas = match framework::replicas(self.job) {
            Ok(replicas) => replicas,
            Err(errors) => {
                let message = format!(
                    "{} {} is invalid: {}",
                    self.kind,
                    self.name,
                    errors.join("; ")
                );
                self.finish_failed("FailedValidation", &message);
                self.clean_up(&[]);
                return;
            }
        };
        if self.plan.status.conditions.is_empty() {
            let message = format!("{} {} is created.", self.kind, self.name);
            self.condition(ConditionType::Created, TRUE, "Created", &message, false);
        }
        if conditions::is_finished(&self.plan.status) {
            self.record_late_successes(&replicas);
            self.clean_up(&replicas);
            return;
        }
        if self.job.run_policy().suspend == Some(true) {
            self.suspend(&replicas);
            return;
        }
        if conditions::is_true(&self.plan.status, ConditionType::Suspended) {
            let message = format!("{} {} is resumed.", self.kind, self.name);
            self.condition(ConditionType::Suspended, FALSE, "Resumed", &message, false);
            self.plan.status.start_time = Some(Time(self.now));
        }
        let start = self.plan.status.start_time.get_or_insert(Time(self.now)).0;
        if let Some(deadline) = self
            .job
            .run_policy()
            .active_deadline_seconds
            .and_then(|seconds| later(start, SignedDuration::from_secs(seconds)))
        {
            if self.now >= deadline {
                let message = format!("Job {}{DEADLINE_EXCEEDED}", self.name);
                self.finish_failed("Failed", &message);
                self.clean_up(&replicas);
                return;
            }
            self.requeue_at(deadline);
        }
        self.run_replicas(&replicas);
    }

    /// The heart of a pass for a job that is neither finished nor suspended.
    fn run_replicas(&mut self, replicas: &[Replica]) {
        let pods = self.pods_by_name();
        let attempt = self.plan.status.attempt;
        let mut restarts: Vec<Restart<'a>> = Vec::new();
        let mut permanent: Vec<(&'static str, u32)> = Vec::new();
        let mut creates: Vec<(usize, u32, i32)> = Vec::new();
        let mut live_container_restarts = 0;
        // training-operator's measure: container restarts of Running pods of retried replicas.
        let mut running_container_restarts = 0;
        let mut stale_pods = false;
        let mut active: BTreeMap<&'static str, u32> = BTreeMap::new();
        self.plan
            .status
            .replica_statuses
            .retain(|t, _| replicas.iter().any(|r| r.type_ == t));

        for (position, replica) in replicas.iter().enumerate() {
            let lower = replica.lower();
            let mut record = Record::read(
                self.plan.status.replica_statuses.get(replica.type_),
                replica.replicas,
            );
            for index in 0..replica.replicas {
                let name = object_name(&self.name, &lower, index);
                let recorded = record.attempt(index);
                let Some(pod) = pods.get(name.as_str()).copied() else {
                    if !record.is_done(index) {
                        creates.push((position, index, recorded));
                    }
                    continue;
                };
                let (pod_job_attempt, pod_attempt) = pod_attempts(pod);
                if pod_job_attempt < attempt
                    || (pod_job_attempt == attempt && pod_attempt < recorded)
                {
                    stale_pods = true;
                    continue; // deleted below with the other pods nobody wants
                }
                self.handled_pods.insert(name.clone());
                let phase = pod_phase(pod);
                let terminating = pod.metadata.deletion_timestamp.is_some();
                let restarts_in_place = matches!(
                    replica.restart_policy,
                    RestartPolicy::OnFailure | RestartPolicy::Always
                );
                if restarts_in_place && !terminating && !matches!(phase, "Succeeded" | "Failed") {
                    live_container_restarts += failure::container_restarts(pod);
                }
                if phase == "Running" && replica.restart_policy != RestartPolicy::Never {
                    running_container_restarts += failure::container_restarts(pod);
                }
                let verdict = match phase {
                    "Succeeded" => {
                        let first_sight = record.succeeded.insert(index);
                        if first_sight {
                            self.event(
                                false,
                                "ExitedWithCode",
                                format!("Pod {name} succeeded"),
                                Some(&name),
                            );
                        }
                        None
                    }
                    "Failed" if record.is_done(index) => None,
                    "Failed" => Some(match self.config.semantics {
                        Semantics::Kfop => {
                            failure::classify(pod, F::DEFAULT_CONTAINER, replica.restart_policy)
                        }
                        Semantics::TrainingOperator => failure::classify_as_training_operator(
                            pod,
                            F::DEFAULT_CONTAINER,
                            replica.restart_policy,
                        ),
                    }),
                    // Deleted by someone else (eviction, node drain, a user) before finishing:
                    // training-operator counts it failed, so a Never or ExitCode replica fails.
                    _ if terminating => Some(
                        if self.config.semantics == Semantics::TrainingOperator
                            && !restarts_in_place
                        {
                            Verdict::Permanent { exit_code: None }
                        } else {
                            Verdict::Disruption {
                                reason: failure::disruption(pod)
                                    .unwrap_or_else(|| "deleted".to_string()),
                            }
                        },
                    ),
                    "Running" => {
                        *active.entry(replica.type_).or_default() += 1;
                        None
                    }
                    _ => None, // Pending or Unknown: waiting
                };
                match verdict {
                    None => {}
                    Some(Verdict::Permanent { exit_code }) => {
                        record.failed.insert(index);
                        let code = exit_code.map_or_else(
                            || "no exit code".to_string(),
                            |c| format!("exit code {c}"),
                        );
                        self.event(
                            true,
                            "ExitedWithCode",
                            format!("Pod {name} failed with {code}"),
                            Some(&name),
                        );
                        if !self.job.tolerates_failure(replica.type_) {
                            permanent.push((replica.type_, index));
                        }
                    }
                    Some(verdict) => restarts.push(Restart {
                        type_: replica.type_,
                        index,
                        pod,
                        verdict,
                    }),
                }
            }
            record.write(
                self.plan
                    .status
                    .replica_statuses
                    .entry(replica.type_.to_string())
                    .or_default(),
            );
        }

        let scope = self.job.run_policy().restart_scope.unwrap_or_default();
        let counted = restarts
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Retry { .. }))
            .count();
        let folded: i32 = restarts
            .iter()
            .map(|r| failure::container_restarts(r.pod))
            .sum();
        let new_restarts = match scope {
            RestartScope::Replica => count_i32(counted),
            RestartScope::Job => i32::from(counted > 0),
        };
        let used = self.plan.status.restarts + folded + new_restarts + live_container_restarts;
        // A limit of N is reached by the Nth restart (0: by any), as in training-operator, which
        // counts only the container restarts of running pods, and with a limit of 0 any failure
        // (it checks this before a replica's failure).
        let backoff_reached =
            self.job
                .run_policy()
                .backoff_limit
                .is_some_and(|limit| match self.config.semantics {
                    Semantics::Kfop => used >= limit.max(1),
                    Semantics::TrainingOperator if limit == 0 => {
                        running_container_restarts > 0
                            || !restarts.is_empty()
                            || !permanent.is_empty()
                    }
                    Semantics::TrainingOperator => running_container_restarts >= limit,
                });
        let backoff_first = self.config.semantics == Semantics::TrainingOperator;
        if backoff_reached && (backoff_first || permanent.is_empty()) {
            self.plan.status.restarts = used;
            let message = format!("Job {}{BACKOFF_LIMIT_REACHED}", self.name);
            self.finish_failed("Failed", &message);
            self.clean_up(replicas);
            return;
        }
        if !permanent.is_empty() {
            let (type_, _) = permanent[0];
            let count = permanent.iter().filter(|(t, _)| *t == type_).count();
            let by_exit_code = replicas
                .iter()
                .any(|r| r.type_ == type_ && r.restart_policy == RestartPolicy::ExitCode);
            let message = if by_exit_code {
                format!(
                    "job {:?} is failing because {type_:?} replica(s) failed.",
                    self.name
                )
            } else {
                self.job
                    .status_message(replicas, StatusMessage::ReplicasFailed { count, type_ })
            };
            // As training-operator: a job whose deciding replica succeeded in this same pass is
            // marked Succeeded, and then Failed.
            let counts = self.update_counts(replicas, &active);
            if self.job.progress(&counts).succeeded {
                self.succeed(replicas);
            }
            self.finish_failed("Failed", &message);
            self.clean_up(replicas);
            return;
        }

        let restarted = !restarts.is_empty();
        if restarted {
            self.plan.status.restarts += folded + new_restarts;
            match scope {
                RestartScope::Replica => self.restart_replicas(&restarts),
                RestartScope::Job => {
                    self.restart_job(&restarts);
                    creates.clear();
                    active.clear();
                }
            }
        }
        // Everything not current is stale: delete it (and wait for it to go before re-creating).
        let stale = self.delete_unwanted_pods(&pods);
        stale_pods |= stale;
        if scope == RestartScope::Job && stale_pods {
            creates.clear(); // the whole job starts together, once the old attempt is gone
        }
        let hold = self.sync_pod_group(replicas);
        if hold && self.config.semantics == Semantics::TrainingOperator {
            // training-operator stamps the status while the PodGroup holds the pods.
            self.plan.status.last_reconcile_time = Some(Time(self.now));
        }
        if !hold && !creates.is_empty() {
            let cluster = self.job.cluster(replicas, self.config);
            for (position, index, recorded) in creates {
                let replica = &replicas[position];
                let slot = Slot {
                    replica,
                    index,
                    job_attempt: self.plan.status.attempt,
                    replica_attempt: recorded,
                };
                let pod = template::pod(
                    self.job,
                    replicas,
                    slot,
                    &cluster,
                    self.config.gang.as_ref(),
                );
                self.plan.actions.push(Action::CreatePod(Box::new(pod)));
            }
        }
        self.sync_services(replicas);
        if let Some(autoscaler) = self.job.autoscaler(replicas) {
            self.plan.actions.push(Action::ApplyAutoscaler(autoscaler));
        }
        let counts = self.update_counts(replicas, &active);
        let progress = self.job.progress(&counts);
        if progress.succeeded {
            self.succeed(replicas);
            self.clean_up(replicas);
        } else if !restarted && progress.running {
            let message = self.job.status_message(replicas, StatusMessage::Running);
            self.condition(ConditionType::Running, TRUE, "Running", &message, false);
        }
    }

    /// Records each restart (write-ahead: the status carries the new attempt before the pod goes).
    fn restart_replicas(&mut self, restarts: &[Restart<'a>]) {
        let mut per_type: BTreeSet<&'static str> = BTreeSet::new();
        for restart in restarts {
            let status = self
                .plan
                .status
                .replica_statuses
                .entry(restart.type_.to_string())
                .or_default();
            let next = status
                .attempts
                .get(&restart.index.to_string())
                .copied()
                .unwrap_or(0)
                + 1;
            status.attempts.insert(restart.index.to_string(), next);
            per_type.insert(restart.type_);
            self.restart_event(restart);
        }
        for type_ in per_type {
            let message = format!(
                "job {} is restarting because {type_} replica(s) failed.",
                self.name
            );
            self.condition(
                ConditionType::Restarting,
                TRUE,
                "Restarting",
                &message,
                true,
            );
        }
    }

    /// Starts the whole job again: a new job attempt, per-index progress forgotten.
    fn restart_job(&mut self, restarts: &[Restart<'a>]) {
        self.plan.status.attempt += 1;
        for status in self.plan.status.replica_statuses.values_mut() {
            status.attempts.clear();
            status.succeeded_indexes = None;
            status.failed_indexes = None;
        }
        for restart in restarts {
            self.restart_event(restart);
        }
        let message = format!(
            "{} {} is restarting every replica (attempt {}) because {} replica(s) failed.",
            self.kind,
            self.name,
            self.plan.status.attempt,
            restarts.len()
        );
        self.condition(
            ConditionType::Restarting,
            TRUE,
            "Restarting",
            &message,
            true,
        );
        self.handled_pods.clear();
    }

    fn restart_event(&mut self, restart: &Restart<'a>) {
        let name = restart.pod.name_any();
        let (reason, message) = match &restart.verdict {
            Verdict::Disruption { reason } => {
                self.plan.status.disruptions += 1;
                (
                    "PodDisrupted",
                    format!(
                        "Pod {name} was stopped by the infrastructure ({reason}): recreating it without counting a restart"
                    ),
                )
            }
            Verdict::Retry { exit_code } => {
                let code = exit_code
                    .map_or_else(|| "no exit code".to_string(), |c| format!("exit code {c}"));
                (
                    "PodRestarting",
                    format!("Pod {name} failed with {code}: recreating it"),
                )
            }
            Verdict::Permanent { .. } => return,
        };
        self.event(true, reason, message, Some(&name));
        self.handled_pods.remove(&name);
    }

    /// Deletes every pod this pass did not keep; returns whether any such pod exists.
    fn delete_unwanted_pods(&mut self, pods: &HashMap<&'a str, &'a Pod>) -> bool {
        let mut any = false;
        let mut unwanted: Vec<&'a Pod> = pods
            .iter()
            .filter(|(name, _)| !self.handled_pods.contains(**name))
            .map(|(_, pod)| *pod)
            .collect();
        unwanted.sort_by_key(|p| p.metadata.name.clone());
        for pod in unwanted {
            any = true;
            self.delete_pod(pod);
        }
        any
    }

    /// Deletes a pod, or force-deletes it once it has lingered past its deletion deadline.
    fn delete_pod(&mut self, pod: &Pod) {
        let name = pod.name_any();
        let uid = pod.uid().unwrap_or_default();
        match &pod.metadata.deletion_timestamp {
            None => self.plan.actions.push(Action::DeletePod {
                name,
                uid,
                force: false,
            }),
            Some(deleted) => {
                let Some(force_at) = SignedDuration::try_from(self.config.force_delete_after)
                    .ok()
                    .and_then(|wait| later(deleted.0, wait))
                else {
                    return;
                };
                if self.now >= force_at {
                    let message = format!(
                        "Pod {name} is still terminating {}s after its deletion deadline: force-deleting it",
                        self.config.force_delete_after.as_secs()
                    );
                    self.event(true, "ForceDeletingPod", message, Some(&name));
                    self.plan.actions.push(Action::DeletePod {
                        name,
                        uid,
                        force: true,
                    });
                } else {
                    self.requeue_at(force_at);
                }
            }
        }
    }

    /// Creates missing services and deletes those no replica index wants.
    fn sync_services(&mut self, replicas: &[Replica]) {
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        let existing: BTreeSet<String> = self
            .observed
            .services
            .iter()
            .map(|s| s.name_any())
            .collect();
        for replica in replicas {
            let lower = replica.lower();
            for index in 0..replica.replicas {
                let name = object_name(&self.name, &lower, index);
                if !existing.contains(&name) {
                    let service = template::service(self.job, replica, index);
                    self.plan
                        .actions
                        .push(Action::CreateService(Box::new(service)));
                }
                wanted.insert(name);
            }
        }
        for service in self.observed.services {
            if !wanted.contains(&service.name_any())
                && service.metadata.deletion_timestamp.is_none()
            {
                self.plan.actions.push(Action::DeleteService {
                    name: service.name_any(),
                    uid: service.uid().unwrap_or_default(),
                });
            }
        }
    }

    /// Applies the PodGroup when it is missing or differs; returns whether pods must wait for it.
    fn sync_pod_group(&mut self, replicas: &[Replica]) -> bool {
        let Some(gang) = &self.config.gang else {
            return false;
        };
        let spec = gang.pod_group_spec(replicas, self.job.run_policy().scheduling_policy.as_ref());
        if self
            .observed
            .pod_group
            .is_none_or(|pg| !contains(&pg.spec, &spec))
        {
            self.plan.actions.push(Action::ApplyPodGroup(spec));
        }
        gang.holds_pods(self.observed.pod_group.and_then(|pg| pg.phase.as_deref()))
    }

    /// Suspends the job: every pod, service and PodGroup goes, whatever `cleanPodPolicy` says.
    fn suspend(&mut self, replicas: &[Replica]) {
        let message = format!("{} {} is suspended.", self.kind, self.name);
        if conditions::is_true(&self.plan.status, ConditionType::Running) {
            self.condition(ConditionType::Running, FALSE, "Suspended", &message, false);
        }
        if !conditions::is_true(&self.plan.status, ConditionType::Suspended) {
            self.condition(ConditionType::Suspended, TRUE, "Suspended", &message, false);
        }
        for pod in self.observed.pods {
            self.delete_pod(pod);
        }
        self.delete_services(|_| true);
        if self.observed.pod_group.is_some() {
            self.plan.actions.push(Action::DeletePodGroup);
        }
        self.delete_autoscaler(replicas);
        self.update_counts(replicas, &BTreeMap::new());
    }

    /// A finished job: delete what `cleanPodPolicy` says, the PodGroup, and the job after its TTL.
    fn clean_up(&mut self, replicas: &[Replica]) {
        self.plan.actions.retain(|a| {
            !matches!(
                a,
                Action::CreatePod(_) | Action::CreateService(_) | Action::ApplyPodGroup(_)
            )
        });
        let policy = self.clean_pod_policy();
        let mut deleted: BTreeSet<String> = BTreeSet::new();
        let mut remaining: BTreeMap<&'static str, u32> = BTreeMap::new();
        let already: BTreeSet<String> = self
            .plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::DeletePod { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        for pod in self.observed.pods {
            let phase = pod_phase(pod);
            let clean = match policy {
                CleanPodPolicy::All => true,
                CleanPodPolicy::Running => !matches!(phase, "Succeeded" | "Failed"),
                CleanPodPolicy::None => false,
            };
            if clean || pod.metadata.deletion_timestamp.is_some() {
                deleted.insert(pod.name_any());
                if !already.contains(&pod.name_any()) {
                    self.delete_pod(pod);
                }
            } else if phase == "Running"
                && let Some(type_) = replica_type_of(replicas, pod)
            {
                *remaining.entry(type_).or_default() += 1;
            }
        }
        match policy {
            CleanPodPolicy::All => self.delete_services(|_| true),
            CleanPodPolicy::Running => self.delete_services(|name| deleted.contains(name)),
            CleanPodPolicy::None => {}
        }
        if self.observed.pod_group.is_some() {
            self.plan.actions.push(Action::DeletePodGroup);
        }
        self.delete_autoscaler(replicas);
        self.update_counts(replicas, &remaining);
        if let (Some(ttl), Some(done)) = (
            self.job.run_policy().ttl_seconds_after_finished,
            self.plan.status.completion_time.as_ref(),
        ) && let Some(expiry) = later(done.0, SignedDuration::from_secs(i64::from(ttl)))
        {
            if self.now >= expiry {
                self.plan.actions.push(Action::DeleteJob);
            } else {
                self.requeue_at(expiry);
            }
        }
    }

    /// The clean-up in force. A job stopped by its deadline or backoff limit stops its running
    /// pods whatever `cleanPodPolicy` says, as a Kubernetes Job does (finished pods are kept
    /// under `None`); training-operator deletes every pod then.
    fn clean_pod_policy(&self) -> CleanPodPolicy {
        let policy = self
            .job
            .run_policy()
            .clean_pod_policy
            .unwrap_or(CleanPodPolicy::None);
        let stopped_by_limit = self.plan.status.conditions.iter().any(|c| {
            c.type_ == ConditionType::Failed
                && c.status == TRUE
                && c.message.as_deref().is_some_and(|m| {
                    m.ends_with(DEADLINE_EXCEEDED) || m.ends_with(BACKOFF_LIMIT_REACHED)
                })
        });
        match (stopped_by_limit, self.config.semantics, policy) {
            (false, _, policy) | (true, Semantics::Kfop, policy @ CleanPodPolicy::All) => policy,
            (true, Semantics::Kfop, _) => CleanPodPolicy::Running,
            (true, Semantics::TrainingOperator, _) => CleanPodPolicy::All,
        }
    }

    /// A finished or suspended job scales nothing: its autoscaler goes.
    fn delete_autoscaler(&mut self, replicas: &[Replica]) {
        self.plan
            .actions
            .retain(|a| !matches!(a, Action::ApplyAutoscaler(_)));
        if self.job.autoscaler(replicas).is_some() {
            self.plan.actions.push(Action::DeleteAutoscaler);
        }
    }

    fn delete_services(&mut self, wanted: impl Fn(&str) -> bool) {
        for service in self.observed.services {
            let name = service.name_any();
            if wanted(&name) && service.metadata.deletion_timestamp.is_none() {
                self.plan.actions.push(Action::DeleteService {
                    name,
                    uid: service.uid().unwrap_or_default(),
                });
            }
        }
    }

    /// Pods that succeed after the job finished still count as succeeded.
    fn record_late_successes(&mut self, replicas: &[Replica]) {
        let pods = self.pods_by_name();
        for replica in replicas {
            let lower = replica.lower();
            let Some(status) = self.plan.status.replica_statuses.get_mut(replica.type_) else {
                continue;
            };
            let mut record = Record::read(Some(status), replica.replicas);
            for index in 0..replica.replicas {
                let name = object_name(&self.name, &lower, index);
                if pods
                    .get(name.as_str())
                    .is_some_and(|p| pod_phase(p) == "Succeeded")
                {
                    record.succeeded.insert(index);
                }
            }
            record.write(status);
        }
    }

    /// Writes the pod counts and selectors of every replica type; returns the counts.
    fn update_counts(
        &mut self,
        replicas: &[Replica],
        active: &BTreeMap<&'static str, u32>,
    ) -> Vec<(&'static str, Counts)> {
        let mut counts = Vec::with_capacity(replicas.len());
        // training-operator counts the pods still running when a job succeeds as succeeded.
        let folds_active = self.config.semantics == Semantics::TrainingOperator
            && conditions::is_true(&self.plan.status, ConditionType::Succeeded);
        for replica in replicas {
            let status = self
                .plan
                .status
                .replica_statuses
                .entry(replica.type_.to_string())
                .or_default();
            let succeeded = IndexSet::parse(status.succeeded_indexes.as_deref());
            let failed = IndexSet::parse(status.failed_indexes.as_deref());
            let mut count = Counts {
                replicas: replica.replicas,
                active: active.get(replica.type_).copied().unwrap_or(0),
                succeeded: count_u32(succeeded.len()),
                failed: count_u32(failed.len()),
                index0_succeeded: succeeded.contains(0),
            };
            if folds_active {
                count.succeeded += count.active;
                count.active = 0;
            }
            status.active = count_i32(count.active as usize);
            status.succeeded = count_i32(count.succeeded as usize);
            status.failed = count_i32(count.failed as usize);
            let mut labels = template::job_labels::<F>(&self.name);
            labels.insert(super::api::REPLICA_TYPE_LABEL.into(), replica.lower());
            status.selector = Some(
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            counts.push((replica.type_, count));
        }
        counts
    }

    fn succeed(&mut self, replicas: &[Replica]) {
        let message = self.job.status_message(replicas, StatusMessage::Succeeded);
        self.plan
            .status
            .completion_time
            .get_or_insert(Time(self.now));
        self.condition(ConditionType::Succeeded, TRUE, "Succeeded", &message, false);
    }

    fn finish_failed(&mut self, reason: &str, message: &str) {
        self.plan
            .status
            .completion_time
            .get_or_insert(Time(self.now));
        // training-operator records a job's failure as a Normal event.
        let warning = self.config.semantics == Semantics::Kfop;
        self.condition(ConditionType::Failed, TRUE, reason, message, warning);
    }

    /// Sets a condition (reason prefixed with the kind) and records an event when it changed.
    fn condition(
        &mut self,
        type_: ConditionType,
        status: &str,
        reason: &str,
        message: &str,
        warning: bool,
    ) {
        let reason = format!("{}{reason}", self.kind);
        if conditions::set(
            &mut self.plan.status,
            type_,
            status,
            &reason,
            message,
            self.now,
        ) {
            self.event(warning, &reason, message.to_string(), None);
        }
    }

    fn event(&mut self, warning: bool, reason: &str, message: String, pod: Option<&str>) {
        self.plan.events.push(Event {
            warning,
            reason: reason.to_string(),
            message,
            pod: pod.map(str::to_string),
        });
    }

    fn requeue_at(&mut self, at: Timestamp) {
        let wait = at.duration_since(self.now);
        let wait = Duration::try_from(wait).unwrap_or_default() + Duration::from_millis(1);
        self.plan.requeue_after = Some(self.plan.requeue_after.map_or(wait, |w| w.min(wait)));
    }

    fn pods_by_name(&self) -> HashMap<&'a str, &'a Pod> {
        self.observed
            .pods
            .iter()
            .filter_map(|p| Some((p.metadata.name.as_deref()?, *p)))
            .collect()
    }
}

/// The per-index record of one replica type in the status.
struct Record {
    succeeded: IndexSet,
    failed: IndexSet,
    attempts: BTreeMap<String, i32>,
}

impl Record {
    fn read(status: Option<&ReplicaStatus>, replicas: u32) -> Self {
        let empty = ReplicaStatus::default();
        let status = status.unwrap_or(&empty);
        let mut succeeded = IndexSet::parse(status.succeeded_indexes.as_deref());
        let mut failed = IndexSet::parse(status.failed_indexes.as_deref());
        succeeded.truncate(replicas);
        failed.truncate(replicas);
        let attempts = status
            .attempts
            .iter()
            .filter(|(i, _)| i.parse::<u32>().is_ok_and(|i| i < replicas))
            .map(|(i, a)| (i.clone(), *a))
            .collect();
        Self {
            succeeded,
            failed,
            attempts,
        }
    }

    fn attempt(&self, index: u32) -> i32 {
        self.attempts.get(&index.to_string()).copied().unwrap_or(0)
    }

    fn is_done(&self, index: u32) -> bool {
        self.succeeded.contains(index) || self.failed.contains(index)
    }

    fn write(self, status: &mut ReplicaStatus) {
        status.succeeded_indexes = self.succeeded.to_field();
        status.failed_indexes = self.failed.to_field();
        status.attempts = self.attempts;
    }
}

/// `at + wait`, or `None` past the end of time (a huge deadline never fires).
fn later(at: Timestamp, wait: SignedDuration) -> Option<Timestamp> {
    at.checked_add(wait).ok()
}

/// Whether `observed` has every field of `wanted` with the same value (the scheduler may add its
/// own defaults).
fn contains(observed: &Value, wanted: &Value) -> bool {
    match (observed, wanted) {
        (Value::Object(observed), Value::Object(wanted)) => wanted
            .iter()
            .all(|(k, v)| observed.get(k).is_some_and(|o| contains(o, v))),
        _ => observed == wanted,
    }
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The (job attempt, replica attempt) a pod was created for; pods without the labels count as 0.
fn pod_attempts(pod: &Pod) -> (i32, i32) {
    let label = |key: &str| {
        pod.labels()
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (label(JOB_ATTEMPT_LABEL), label(REPLICA_ATTEMPT_LABEL))
}

fn replica_type_of(replicas: &[Replica], pod: &Pod) -> Option<&'static str> {
    let lower = pod.labels().get(super::api::REPLICA_TYPE_LABEL)?;
    replicas
        .iter()
        .find(|r| r.lower() == *lower)
        .map(|r| r.type_)
}

fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_tests;
