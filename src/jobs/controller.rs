//! The kube-rs edge of the job controllers: watch jobs and their pods, services and PodGroups,
//! run the engine, write the status (before acting), execute the actions with bounded
//! parallelism under a client-side rate limit, record expectations, and publish events.

use super::api::{JobStatus, OPERATOR_NAME_LABEL};
use super::conditions;
use super::engine::{self, Action, Observed, PodGroup};
use super::expectations::{ChildKind, Expectations, Seen};
use super::framework::Framework;
use super::gang::GangScheduler;
use super::pytorch::PyTorchJob;
use super::rate_limit::{TokenBucket, WriteLimits};
use super::tensorflow::TFJob;
use crate::endpoints::{Readiness, mark_synced};
use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
    Preconditions, PropagationPolicy,
};
use kube::runtime::controller::{Action as Requeue, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Default jobs reconciled at once, per kind.
pub const DEFAULT_WORKERS: u16 = 8;
/// Default API writes per second.
pub const DEFAULT_API_QPS: f64 = 1000.0;
/// Default API writes allowed to burst above the rate.
pub const DEFAULT_API_BURST: u32 = 2000;
/// Default API writes in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// The field manager of the controllers' server-side applies.
pub const FIELD_MANAGER: &str = "kfop-job-controller";

/// How often events may be published (they queue behind a bounded buffer, oldest kept).
const EVENTS_PER_SECOND: f64 = 50.0;
/// How many events may wait to be published before new ones are dropped.
const EVENT_BUFFER: usize = 8192;
/// How long to wait before looking at a job whose expectations are outstanding, if no watch
/// event comes first.
const EXPECTATIONS_RECHECK: Duration = Duration::from_secs(5);

/// A job kind the controller can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `TFJob`.
    TFJob,
    /// `PyTorchJob`.
    PyTorchJob,
    /// FrameworkController's `Framework` (`frameworkcontroller.microsoft.com/v1`).
    Framework,
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tfjob" | "tfjobs" => Ok(Kind::TFJob),
            "pytorchjob" | "pytorchjobs" => Ok(Kind::PyTorchJob),
            "framework" | "frameworks" => Ok(Kind::Framework),
            other => Err(format!(
                "unknown job kind {other:?}: expected tfjob, pytorchjob or framework"
            )),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::TFJob => "tfjob",
            Kind::PyTorchJob => "pytorchjob",
            Kind::Framework => "framework",
        })
    }
}

/// How the controllers run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Jobs reconciled at once, per kind.
    pub workers: u16,
    /// Writes (creates, deletes, status) per second, shared by every kind.
    pub api_qps: f64,
    /// Writes that may burst above the rate.
    pub api_burst: u32,
    /// Writes in flight at once.
    pub max_in_flight: usize,
    /// The engine's settings (cluster domain, gang scheduler, force-delete timeout).
    pub engine: engine::Config,
    /// The Framework controller's settings (failure classification, timeouts).
    pub framework: crate::framework::engine::Config,
    /// Set once every kind's caches have synced.
    pub ready: Readiness,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: None,
            workers: DEFAULT_WORKERS,
            api_qps: DEFAULT_API_QPS,
            api_burst: DEFAULT_API_BURST,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            engine: engine::Config::default(),
            framework: crate::framework::engine::Config::default(),
            ready: Readiness::default(),
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("{action} for {job}: {source}")]
    Api {
        /// What was being done (`creating pod dist-worker-0`).
        action: String,
        /// The job, `Kind namespace/name`.
        job: String,
        /// The API error.
        source: kube::Error,
    },
    /// Gang scheduling was asked for but the cluster does not serve the scheduler's PodGroups.
    #[error(
        "--gang-scheduler {scheduler} needs PodGroups ({api_version}), which the cluster does not serve: {source}"
    )]
    NoPodGroups {
        /// The scheduler name.
        scheduler: String,
        /// The PodGroup API version looked for.
        api_version: String,
        /// The API error.
        source: kube::Error,
    },
}

/// Runs the controllers of `kinds` until they stop (they run until the process ends); fails at
/// once if one cannot start.
pub async fn run(client: Client, kinds: &[Kind], options: Options) -> Result<(), Error> {
    if let Some(gang) = &options.engine.gang {
        check_pod_groups(&client, gang).await?;
    }
    let limits = Arc::new(WriteLimits::new(
        options.api_qps,
        options.api_burst,
        options.max_in_flight,
    ));
    let mut unique: Vec<Kind> = Vec::new();
    for kind in kinds {
        if !unique.contains(kind) {
            unique.push(*kind);
        }
    }
    let mut controllers = Vec::new();
    let mut parts = Vec::new();
    for kind in &unique {
        let client = client.clone();
        let ready = Readiness::default();
        parts.push(ready.clone());
        let options = Options {
            ready,
            ..options.clone()
        };
        let limits = limits.clone();
        controllers.push(match kind {
            Kind::TFJob => run_kind::<TFJob>(client, options, limits).boxed(),
            Kind::PyTorchJob => run_kind::<PyTorchJob>(client, options, limits).boxed(),
            Kind::Framework => crate::framework::controller::run(
                client,
                crate::framework::controller::Options {
                    namespace: options.namespace,
                    workers: options.workers,
                    max_in_flight: options.max_in_flight,
                    engine: options.framework,
                    ready: options.ready,
                },
                limits,
            )
            .boxed(),
        });
    }
    options.ready.when_all(parts);
    future::join_all(controllers).await;
    Ok(())
}

/// Fails unless the cluster serves the gang scheduler's PodGroups (a missing CRD would otherwise
/// leave every reconcile waiting on a cache that never fills).
async fn check_pod_groups(client: &Client, gang: &GangScheduler) -> Result<(), Error> {
    let resource = pod_group_resource(gang);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    match api.list(&kube::api::ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(source) => Err(Error::NoPodGroups {
            scheduler: gang.scheduler_name().to_string(),
            api_version: resource.api_version,
            source,
        }),
    }
}

/// The state one kind's reconciles share.
struct Context<F: Framework> {
    client: Client,
    pods: Store<Pod>,
    services: Store<Service>,
    pod_groups: Option<(Store<DynamicObject>, ApiResource)>,
    /// Set once the pod, service (and PodGroup) caches have listed once.
    caches_synced: Readiness,
    expectations: Expectations,
    /// The status last written per job (`namespace/name` → UID, status, when), used until the
    /// watch cache catches up with it.
    written: Mutex<HashMap<String, (String, JobStatus, Instant)>>,
    /// Consecutive failures per job, for back-off.
    failures: Mutex<HashMap<String, u32>>,
    /// The autoscaler last applied per job (`None`: deleted), so an unchanged one costs no write.
    autoscalers: Mutex<HashMap<String, Option<Value>>>,
    limits: Arc<WriteLimits>,
    max_in_flight: usize,
    engine: engine::Config,
    events: mpsc::Sender<Published>,
    _kind: std::marker::PhantomData<F>,
}

/// An event waiting to be published.
struct Published {
    regarding: ObjectReference,
    event: KubeEvent,
}

async fn run_kind<F: Framework>(client: Client, options: Options, limits: Arc<WriteLimits>) {
    let jobs: Api<F> = scoped(&client, options.namespace.as_deref());
    let selector = format!("{OPERATOR_NAME_LABEL}={}", F::CONTROLLER_NAME);
    let children = watcher::Config::default().labels(&selector);

    let (pods, pod_writer) = reflector::store::<Pod>();
    let pods_synced = Readiness::default();
    let pod_events = mark_synced(
        watcher(
            scoped::<Pod>(&client, options.namespace.as_deref()),
            children.clone(),
        ),
        pods_synced.clone(),
    )
    .default_backoff()
    .modify(slim_pod)
    .reflect(pod_writer)
    .touched_objects();
    let (services, service_writer) = reflector::store::<Service>();
    let services_synced = Readiness::default();
    let service_events = mark_synced(
        watcher(
            scoped::<Service>(&client, options.namespace.as_deref()),
            children,
        ),
        services_synced.clone(),
    )
    .default_backoff()
    .reflect(service_writer)
    .touched_objects();

    let (jobs_cache, jobs_writer) = reflector::store::<F>();
    let jobs_synced = Readiness::default();
    let job_events = reflector(
        jobs_writer,
        mark_synced(
            watcher(jobs, watcher::Config::default()),
            jobs_synced.clone(),
        ),
    )
    .applied_objects();
    crate::metrics::global().count_job_phases(&F::kind(&()), {
        let jobs_cache = jobs_cache.clone();
        move || {
            jobs_cache
                .state()
                .iter()
                .map(|job| phase(job.job_status()))
                .collect()
        }
    });
    let mut controller = Controller::for_stream(job_events, jobs_cache)
        .with_config(ControllerConfig::default().concurrency(options.workers.max(1)))
        .owns_stream(pod_events)
        .owns_stream(service_events);

    let mut pod_groups = None;
    let mut caches = vec![pods_synced, services_synced];
    if let Some(gang) = &options.engine.gang {
        let resource = pod_group_resource(gang);
        let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
        let reader = writer.as_reader();
        let api: Api<DynamicObject> = match options.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let groups_synced = Readiness::default();
        let group_events = mark_synced(
            watcher(api, watcher::Config::default()),
            groups_synced.clone(),
        )
        .default_backoff()
        .reflect(writer)
        .touched_objects();
        controller = controller.owns_stream_with(group_events, resource.clone());
        pod_groups = Some((reader, resource));
        caches.push(groups_synced);
    }
    let caches_synced = Readiness::default();
    caches_synced.when_all(caches);
    options
        .ready
        .when_all(vec![jobs_synced, caches_synced.clone()]);

    let (events, queue) = mpsc::channel(EVENT_BUFFER);
    let recorder = Recorder::new(client.clone(), Reporter::from(F::CONTROLLER_NAME));
    tokio::spawn(publish_events(recorder, queue));

    let context = Arc::new(Context::<F> {
        client,
        pods,
        services,
        pod_groups,
        caches_synced,
        expectations: Expectations::default(),
        written: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        autoscalers: Mutex::new(HashMap::new()),
        limits,
        max_in_flight: options.max_in_flight.max(1),
        engine: options.engine,
        events,
        _kind: std::marker::PhantomData,
    });
    tracing::info!(kind = %F::kind(&()), namespace = ?options.namespace, workers = options.workers, "job controller started");
    controller
        .run(reconcile::<F>, error_policy::<F>, context)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "job controller");
            }
            future::ready(())
        })
        .await;
}

/// Drops what the engine never reads from a cached pod: managed fields and container
/// environments (a 1000-worker TFJob's `TF_CONFIG` alone is 40 kB per pod; each Framework task's
/// pod carries 15 `FC_*` variables).
pub(crate) fn slim_pod(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    if let Some(spec) = pod.spec.as_mut() {
        for container in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            container.env = None;
        }
    }
}

pub(crate) fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn pod_group_resource(gang: &GangScheduler) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(gang.group(), gang.version(), "PodGroup"),
        "podgroups",
    )
}

/// A job's phase for the metrics: its newest true condition (`Created` before it has one).
fn phase(status: Option<&JobStatus>) -> String {
    status
        .and_then(|s| {
            s.conditions
                .iter()
                .rev()
                .find(|c| c.status == conditions::TRUE)
        })
        .map_or_else(|| "Created".to_string(), |c| format!("{:?}", c.type_))
}

async fn reconcile<F: Framework>(job: Arc<F>, ctx: Arc<Context<F>>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let result = reconcile_job(job, ctx).await;
    crate::metrics::global().job_reconciled(&F::kind(&()), started.elapsed());
    result
}

async fn reconcile_job<F: Framework>(job: Arc<F>, ctx: Arc<Context<F>>) -> Result<Requeue, Error> {
    let namespace = job.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", job.name_any());
    let uid = job.uid().unwrap_or_default();
    // The first pass must see every existing pod.
    ctx.caches_synced.wait().await;
    let outstanding = !ctx
        .expectations
        .satisfied(&key, Instant::now(), |kind, child| {
            ctx.seen(kind, &namespace, child)
        });
    if outstanding {
        return Ok(Requeue::requeue(EXPECTATIONS_RECHECK));
    }

    let children = ctx.children(job.as_ref());
    let pods: Vec<&Pod> = children.pods.iter().map(Arc::as_ref).collect();
    let services: Vec<&Service> = children.services.iter().map(Arc::as_ref).collect();
    let observed = Observed {
        pods: &pods,
        services: &services,
        pod_group: children.pod_group.as_ref(),
    };
    let base = ctx.base_status(&key, &uid, job.job_status());
    // Whole seconds: the API server stores times that way, so what is written reads back equal.
    let now =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let planning = Instant::now();
    let plan = engine::plan(job.as_ref(), &base, observed, &ctx.engine, now);
    tracing::debug!(job = %key, actions = plan.actions.len(), elapsed = ?planning.elapsed(), "planned");

    let job_name = format!("{} {key}", F::kind(&()));
    if plan.status != base {
        ctx.write_status(job.as_ref(), &plan.status, &job_name)
            .await?;
        ctx.remember(&key, &uid, &plan.status);
    }
    let regarding = job.object_ref(&());
    for event in plan.events {
        ctx.publish(
            &regarding,
            event.pod.as_deref(),
            event.warning,
            &event.reason,
            event.message,
        );
    }
    let mut results = futures::stream::iter(
        plan.actions
            .into_iter()
            .map(|action| ctx.execute(job.as_ref(), &key, &job_name, &regarding, action)),
    )
    .buffer_unordered(ctx.max_in_flight);
    let mut first_error = None;
    while let Some(result) = results.next().await {
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    ctx.lock_failures().remove(&key);
    Ok(plan
        .requeue_after
        .map_or_else(Requeue::await_change, Requeue::requeue))
}

/// What a job controls, from the caches.
struct Children {
    pods: Vec<Arc<Pod>>,
    services: Vec<Arc<Service>>,
    pod_group: Option<PodGroup>,
}

fn error_policy<F: Framework>(job: Arc<F>, error: &Error, ctx: Arc<Context<F>>) -> Requeue {
    let key = format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any());
    let failures = {
        let mut failures = ctx.lock_failures();
        let count = failures.entry(key).or_default();
        *count = count.saturating_add(1);
        *count
    };
    let delay = Duration::from_millis(100)
        .saturating_mul(1 << failures.min(10))
        .min(Duration::from_secs(60));
    tracing::warn!(%error, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}

impl<F: Framework> Context<F> {
    /// The pods, services and PodGroup `job` controls.
    fn children(&self, job: &F) -> Children {
        let namespace = job.namespace().unwrap_or_default();
        let uid = job.uid().unwrap_or_default();
        let ours = |meta: &ObjectMeta| {
            meta.namespace.as_deref() == Some(namespace.as_str())
                && meta
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.controller == Some(true) && r.uid == uid)
        };
        let pod_group = self.pod_groups.as_ref().and_then(|(store, resource)| {
            let key = ObjectRef::new_with(&job.name_any(), resource.clone()).within(&namespace);
            let group = store.get(&key)?;
            ours(&group.metadata).then(|| PodGroup {
                spec: group.data.get("spec").cloned().unwrap_or_default(),
                phase: group
                    .data
                    .pointer("/status/phase")
                    .and_then(|p| p.as_str())
                    .map(str::to_string),
            })
        });
        Children {
            pods: self.pods.state_filter(|p| ours(&p.metadata)),
            services: self.services.state_filter(|s| ours(&s.metadata)),
            pod_group,
        }
    }

    /// What the caches show of a child, for expectations.
    fn seen(&self, kind: ChildKind, namespace: &str, name: &str) -> Option<Seen> {
        let (uid, deleting) = match kind {
            ChildKind::Pod => {
                let pod = self.pods.get(&ObjectRef::new(name).within(namespace))?;
                (pod.uid(), pod.metadata.deletion_timestamp.is_some())
            }
            ChildKind::Service => {
                let service = self.services.get(&ObjectRef::new(name).within(namespace))?;
                (service.uid(), service.metadata.deletion_timestamp.is_some())
            }
        };
        Some(Seen {
            uid: uid.unwrap_or_default(),
            deleting,
        })
    }

    /// The status to decide from: the one last written, until the cache shows it.
    fn base_status(&self, key: &str, uid: &str, cached: Option<&JobStatus>) -> JobStatus {
        let cached = cached.cloned().unwrap_or_default();
        let mut written = match self.written.lock() {
            Ok(written) => written,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        written.retain(|_, (_, _, when)| {
            now.saturating_duration_since(*when) < super::expectations::EXPIRY
        });
        match written.get(key) {
            Some((written_uid, status, _)) if written_uid == uid && *status != cached => {
                status.clone()
            }
            Some(_) => {
                written.remove(key);
                cached
            }
            None => cached,
        }
    }

    fn remember(&self, key: &str, uid: &str, status: &JobStatus) {
        let mut written = match self.written.lock() {
            Ok(written) => written,
            Err(poisoned) => poisoned.into_inner(),
        };
        written.insert(
            key.to_string(),
            (uid.to_string(), status.clone(), Instant::now()),
        );
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        match self.failures.lock() {
            Ok(failures) => failures,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn write_status(&self, job: &F, status: &JobStatus, job_name: &str) -> Result<(), Error> {
        let api: Api<F> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let body = json!({
            "apiVersion": F::api_version(&()),
            "kind": F::kind(&()),
            "status": status,
        });
        let _permit = self.limits.permit().await;
        api.patch_status(
            &job.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| Error::Api {
            action: "writing the status".into(),
            job: job_name.to_string(),
            source,
        })?;
        Ok(())
    }

    async fn execute(
        &self,
        job: &F,
        key: &str,
        job_name: &str,
        regarding: &ObjectReference,
        action: Action,
    ) -> Result<(), Error> {
        let namespace = job.namespace().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &namespace);
        let fail = |action: String, source| Error::Api {
            action,
            job: job_name.to_string(),
            source,
        };
        let _permit = self.limits.permit().await;
        match action {
            Action::CreatePod(pod) => {
                let name = pod.name_any();
                match pods.create(&PostParams::default(), &pod).await {
                    Ok(created) => {
                        crate::metrics::global().job_pod_created(&F::kind(&()));
                        self.expectations.created(
                            key,
                            ChildKind::Pod,
                            &name,
                            created.uid().unwrap_or_default(),
                            Instant::now(),
                        );
                        self.publish(
                            regarding,
                            Some(&name),
                            false,
                            "SuccessfulCreatePod",
                            format!("Created pod: {name}"),
                        );
                        Ok(())
                    }
                    Err(source) => {
                        self.publish(
                            regarding,
                            Some(&name),
                            true,
                            "FailedCreatePod",
                            format!("Error creating pod {name}: {source}"),
                        );
                        Err(fail(format!("creating pod {name}"), source))
                    }
                }
            }
            Action::DeletePod { name, uid, force } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    grace_period_seconds: force.then_some(0),
                    ..DeleteParams::default()
                };
                match pods.delete(&name, &params).await {
                    Ok(_) => {
                        self.expectations
                            .deleted(key, ChildKind::Pod, &name, uid, Instant::now());
                        let verb = if force { "Force-deleted" } else { "Deleted" };
                        self.publish(
                            regarding,
                            Some(&name),
                            false,
                            "SuccessfulDeletePod",
                            format!("{verb} pod: {name}"),
                        );
                        Ok(())
                    }
                    Err(e) if is_gone(&e) => Ok(()),
                    Err(source) => {
                        self.publish(
                            regarding,
                            Some(&name),
                            true,
                            "FailedDeletePod",
                            format!("Error deleting pod {name}: {source}"),
                        );
                        Err(fail(format!("deleting pod {name}"), source))
                    }
                }
            }
            Action::CreateService(service) => {
                let name = service.name_any();
                match services.create(&PostParams::default(), &service).await {
                    Ok(created) => {
                        self.expectations.created(
                            key,
                            ChildKind::Service,
                            &name,
                            created.uid().unwrap_or_default(),
                            Instant::now(),
                        );
                        Ok(())
                    }
                    Err(source) => {
                        self.publish(
                            regarding,
                            None,
                            true,
                            "FailedCreateService",
                            format!("Error creating service {name}: {source}"),
                        );
                        Err(fail(format!("creating service {name}"), source))
                    }
                }
            }
            Action::DeleteService { name, uid } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match services.delete(&name, &params).await {
                    Ok(_) => {
                        self.expectations.deleted(
                            key,
                            ChildKind::Service,
                            &name,
                            uid,
                            Instant::now(),
                        );
                        Ok(())
                    }
                    Err(e) if is_gone(&e) => Ok(()),
                    Err(source) => Err(fail(format!("deleting service {name}"), source)),
                }
            }
            Action::ApplyPodGroup(spec) => {
                let Some((_, resource)) = &self.pod_groups else {
                    return Ok(());
                };
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &namespace, resource);
                let body = json!({
                    "apiVersion": resource.api_version,
                    "kind": resource.kind,
                    "metadata": {"name": job.name_any(), "ownerReferences": super::template::owned_by(job).unwrap_or_default()},
                    "spec": spec,
                });
                api.patch(
                    &job.name_any(),
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(|source| fail("applying the PodGroup".into(), source))?;
                Ok(())
            }
            Action::DeletePodGroup => {
                let Some((_, resource)) = &self.pod_groups else {
                    return Ok(());
                };
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &namespace, resource);
                match api.delete(&job.name_any(), &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_gone(&e) => Ok(()),
                    Err(source) => Err(fail("deleting the PodGroup".into(), source)),
                }
            }
            Action::ApplyAutoscaler(autoscaler) => {
                if self.autoscaler_written(key).as_ref() == Some(&Some(autoscaler.clone())) {
                    return Ok(());
                }
                let api: Api<HorizontalPodAutoscaler> =
                    Api::namespaced(self.client.clone(), &namespace);
                api.patch(
                    &job.name_any(),
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&autoscaler),
                )
                .await
                .map_err(|source| fail("applying the HorizontalPodAutoscaler".into(), source))?;
                self.remember_autoscaler(key, Some(autoscaler));
                Ok(())
            }
            Action::DeleteAutoscaler => {
                if self.autoscaler_written(key) == Some(None) {
                    return Ok(());
                }
                let api: Api<HorizontalPodAutoscaler> =
                    Api::namespaced(self.client.clone(), &namespace);
                match api.delete(&job.name_any(), &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if is_gone(&e) => {}
                    Err(source) => {
                        return Err(fail("deleting the HorizontalPodAutoscaler".into(), source));
                    }
                }
                self.remember_autoscaler(key, None);
                Ok(())
            }
            Action::DeleteJob => {
                let api: Api<F> = Api::namespaced(self.client.clone(), &namespace);
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: job.uid(),
                        resource_version: None,
                    }),
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                match api.delete(&job.name_any(), &params).await {
                    Ok(_) => {
                        tracing::info!(
                            job = job_name,
                            "deleted the job: its ttlSecondsAfterFinished expired"
                        );
                        self.expectations.forget(key);
                        Ok(())
                    }
                    Err(e) if is_gone(&e) => Ok(()),
                    Err(source) => Err(fail("deleting the job after its TTL".into(), source)),
                }
            }
        }
    }

    /// What this controller last did to a job's autoscaler, if anything since it started.
    fn autoscaler_written(&self, key: &str) -> Option<Option<Value>> {
        self.autoscalers
            .lock()
            .ok()
            .and_then(|written| written.get(key).cloned())
    }

    fn remember_autoscaler(&self, key: &str, autoscaler: Option<Value>) {
        if let Ok(mut written) = self.autoscalers.lock() {
            written.insert(key.to_string(), autoscaler);
        }
    }

    /// Queues an event about the job (and a pod); drops it if the queue is full.
    fn publish(
        &self,
        regarding: &ObjectReference,
        pod: Option<&str>,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let related = pod.map(|name| ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.to_string()),
            namespace: regarding.namespace.clone(),
            ..ObjectReference::default()
        });
        let event = KubeEvent {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: related,
        };
        let published = Published {
            regarding: regarding.clone(),
            event,
        };
        if self.events.try_send(published).is_err() {
            tracing::debug!(reason, "event queue full: event dropped");
        }
    }
}

/// Whether a delete failed because the object is already gone or was replaced.
fn is_gone(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404 || status.code == 409)
}

/// Publishes queued events at a modest rate, so they never hold up pod creation.
async fn publish_events(recorder: Recorder, mut queue: mpsc::Receiver<Published>) {
    let bucket = TokenBucket::new(EVENTS_PER_SECOND, EVENTS_PER_SECOND as u32);
    while let Some(published) = queue.recv().await {
        bucket.acquire().await;
        if let Err(error) = recorder
            .publish(&published.event, &published.regarding)
            .await
        {
            tracing::debug!(%error, "publishing an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_case_insensitively_and_reject_others() {
        assert_eq!("TFJob".parse::<Kind>(), Ok(Kind::TFJob));
        assert_eq!("pytorchjobs".parse::<Kind>(), Ok(Kind::PyTorchJob));
        assert!("mpijob".parse::<Kind>().is_err());
        assert_eq!("Framework".parse::<Kind>(), Ok(Kind::Framework));
        assert_eq!(Kind::PyTorchJob.to_string(), "pytorchjob");
    }

    #[test]
    fn cached_pods_keep_what_the_engine_reads_and_drop_the_bulk() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"a": "b"},
                "managedFields": [{"manager": "kfop", "operation": "Update"}]},
            "spec": {"nodeName": "n", "containers": [{"name": "tensorflow",
                "env": [{"name": "TF_CONFIG", "value": "{}"}]}]},
            "status": {"phase": "Running"},
        }))
        .expect("pod");
        slim_pod(&mut pod);
        assert!(pod.managed_fields().is_empty());
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.containers[0].env, None);
        assert_eq!(spec.node_name.as_deref(), Some("n"));
        assert_eq!(pod.labels()["a"], "b");
        assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    }
}
