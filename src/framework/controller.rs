//! The kube-rs edge of the Framework controller: watch frameworks, their attempt ConfigMaps and
//! pods; run the engine; write the status before acting; execute the actions with bounded
//! parallelism under the shared client-side rate limit; fold what they returned into the status
//! and write it again.

use super::api::{Framework, FrameworkStatus};
use super::completion;
use super::engine::{self, Action, Observed, Outcome};
use super::objects;
use crate::endpoints::{Readiness, mark_synced};
use crate::jobs::controller::{scoped, slim_pod};
use crate::jobs::rate_limit::WriteLimits;
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action as Requeue, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a written status is preferred over an older cached one.
const WRITTEN_EXPIRY: Duration = Duration::from_secs(300);

/// How the Framework controller runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Frameworks reconciled at once.
    pub workers: u16,
    /// Writes in flight at once per framework.
    pub max_in_flight: usize,
    /// The engine's settings (failure classification, timeouts).
    pub engine: engine::Config,
    /// Set once the caches have synced.
    pub ready: Readiness,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("{action} for Framework {framework}: {source}")]
    Api {
        /// What was being done (`creating pod fw-worker-0`).
        action: String,
        /// The framework, `namespace/name`.
        framework: String,
        /// The API error.
        source: kube::Error,
    },
}

struct Context {
    client: Client,
    /// Set once the pod and ConfigMap caches have listed once.
    caches_synced: Readiness,
    pods: Store<Pod>,
    config_maps: Store<ConfigMap>,
    /// The status last written per framework (`namespace/name` → UID, status, when), used until
    /// the watch cache catches up with it.
    written: Mutex<HashMap<String, (String, FrameworkStatus, Instant)>>,
    failures: Mutex<HashMap<String, u32>>,
    limits: Arc<WriteLimits>,
    max_in_flight: usize,
    engine: engine::Config,
}

/// Runs the Framework controller until the process ends.
pub async fn run(client: Client, options: Options, limits: Arc<WriteLimits>) {
    let namespace = options.namespace.as_deref();
    let frameworks: Api<Framework> = scoped(&client, namespace);
    let ours = watcher::Config::default().labels(objects::FRAMEWORK_NAME);

    let (pods, pod_writer) = reflector::store::<Pod>();
    let pods_synced = Readiness::default();
    let pod_events = mark_synced(
        watcher(scoped::<Pod>(&client, namespace), ours.clone()),
        pods_synced.clone(),
    )
    .default_backoff()
    .modify(slim_pod)
    .reflect(pod_writer)
    .touched_objects();
    let (config_maps, cm_writer) = reflector::store::<ConfigMap>();
    let config_maps_synced = Readiness::default();
    let cm_events = mark_synced(
        watcher(scoped::<ConfigMap>(&client, namespace), ours),
        config_maps_synced.clone(),
    )
    .default_backoff()
    .modify(|cm| cm.managed_fields_mut().clear())
    .reflect(cm_writer)
    .touched_objects();

    let caches_synced = Readiness::default();
    caches_synced.when_all(vec![pods_synced, config_maps_synced]);
    let context = Arc::new(Context {
        client,
        caches_synced: caches_synced.clone(),
        pods,
        config_maps,
        written: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        limits,
        max_in_flight: options.max_in_flight.max(1),
        engine: options.engine,
    });
    tracing::info!(namespace = ?options.namespace, workers = options.workers, "framework controller started");
    let (frameworks_cache, frameworks_writer) = reflector::store::<Framework>();
    let frameworks_synced = Readiness::default();
    let framework_events = reflector(
        frameworks_writer,
        mark_synced(
            watcher(frameworks, watcher::Config::default()),
            frameworks_synced.clone(),
        ),
    )
    .applied_objects();
    crate::metrics::global().count_job_phases("Framework", {
        let frameworks_cache = frameworks_cache.clone();
        move || {
            frameworks_cache
                .state()
                .iter()
                .map(|framework| state_name(framework.status.as_ref()))
                .collect()
        }
    });
    options
        .ready
        .when_all(vec![frameworks_synced, caches_synced]);
    Controller::for_stream(framework_events, frameworks_cache)
        .with_config(ControllerConfig::default().concurrency(options.workers.max(1)))
        .owns_stream(cm_events)
        .watches_stream(pod_events, |pod: Pod| {
            let name = pod.labels().get(objects::FRAMEWORK_NAME)?.clone();
            Some(ObjectRef::<Framework>::new(&name).within(&pod.namespace()?))
        })
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "framework controller");
            }
            future::ready(())
        })
        .await;
}

/// A fresh random UID (RFC 4122 version 4) for task role and task instances.
fn new_uid() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: fall back to the clock, still unique per process and call.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A framework's state for the metrics, as its `State` column shows it.
fn state_name(status: Option<&FrameworkStatus>) -> String {
    status
        .and_then(|s| serde_json::to_value(s.state).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "AttemptCreationPending".to_string())
}

async fn reconcile(framework: Arc<Framework>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let result = reconcile_framework(framework, ctx).await;
    crate::metrics::global().job_reconciled("Framework", started.elapsed());
    result
}

async fn reconcile_framework(
    framework: Arc<Framework>,
    ctx: Arc<Context>,
) -> Result<Requeue, Error> {
    let namespace = framework.namespace().unwrap_or_default();
    let name = framework.name_any();
    let key = format!("{namespace}/{name}");
    let uid = framework.uid().unwrap_or_default();
    // The first pass must see every existing pod.
    ctx.caches_synced.wait().await;

    let base = ctx.base_status(&key, &uid, framework.status.as_ref());
    let mut observed = Observed {
        config_map: ctx
            .config_maps
            .get(&ObjectRef::new(&objects::config_map_name(&name)).within(&namespace)),
        pods: HashMap::new(),
    };
    for role in base
        .iter()
        .flat_map(|s| &s.attempt_status.task_role_statuses)
    {
        for task in &role.task_statuses {
            let pod_name = &task.attempt_status.pod_name;
            if let Some(pod) = ctx.pods.get(&ObjectRef::new(pod_name).within(&namespace)) {
                observed.pods.insert(pod_name.clone(), pod);
            }
        }
    }
    let now = whole_seconds(Timestamp::now());
    let mut mint = new_uid;
    let plan = engine::plan(
        framework.as_ref(),
        base.as_ref(),
        &observed,
        &ctx.engine,
        now,
        &mut mint,
    );
    let mut status = plan.status;
    // Write ahead: what this pass decided is persisted before anything is done about it.
    if base.as_ref() != Some(&status) {
        ctx.write_status(&framework, &key, &status).await?;
    }

    let mut results = futures::stream::iter(
        plan.actions
            .into_iter()
            .map(|action| ctx.execute(&framework, &key, action)),
    )
    .buffer_unordered(ctx.max_in_flight);
    let mut outcomes = Vec::new();
    let mut first_error = None;
    while let Some(result) = results.next().await {
        match result {
            Ok(Some(outcome)) => outcomes.push(outcome),
            Ok(None) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    drop(results);
    if !outcomes.is_empty() {
        let now = whole_seconds(Timestamp::now());
        for outcome in outcomes {
            engine::record(&mut status, outcome, now);
        }
        ctx.write_status(&framework, &key, &status).await?;
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    ctx.lock_failures().remove(&key);
    Ok(plan
        .requeue_after
        .map_or_else(Requeue::await_change, Requeue::requeue))
}

/// The API server stores times in whole seconds; planning with them makes what is written read
/// back equal.
fn whole_seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

fn error_policy(framework: Arc<Framework>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = format!(
        "{}/{}",
        framework.namespace().unwrap_or_default(),
        framework.name_any()
    );
    let failures = {
        let mut failures = ctx.lock_failures();
        let count = failures.entry(key).or_default();
        *count = count.saturating_add(1);
        *count
    };
    let delay = Duration::from_millis(100)
        .saturating_mul(1 << failures.min(10))
        .min(Duration::from_secs(60));
    tracing::warn!(%error, retry_in = ?delay, "framework reconcile failed");
    Requeue::requeue(delay)
}

impl Context {
    /// The status to decide from: the one last written, until the cache shows it.
    fn base_status(
        &self,
        key: &str,
        uid: &str,
        cached: Option<&FrameworkStatus>,
    ) -> Option<FrameworkStatus> {
        let mut written = match self.written.lock() {
            Ok(written) => written,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        written.retain(|_, (_, _, when)| now.saturating_duration_since(*when) < WRITTEN_EXPIRY);
        match written.get(key) {
            Some((written_uid, status, _)) if written_uid == uid && Some(status) != cached => {
                Some(status.clone())
            }
            Some(_) => {
                written.remove(key);
                cached.cloned()
            }
            None => cached.cloned(),
        }
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        match self.failures.lock() {
            Ok(failures) => failures,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Replaces the status (a merge patch of the status subresource: lists are replaced whole,
    /// absent optional fields removed).
    async fn write_status(
        &self,
        framework: &Framework,
        key: &str,
        status: &FrameworkStatus,
    ) -> Result<(), Error> {
        let api: Api<Framework> = Api::namespaced(
            self.client.clone(),
            &framework.namespace().unwrap_or_default(),
        );
        let body = json!({ "status": status });
        let _permit = self.limits.permit().await;
        api.patch_status(
            &framework.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
        .map_err(|source| Error::Api {
            action: "writing the status".into(),
            framework: key.to_string(),
            source,
        })?;
        let mut written = match self.written.lock() {
            Ok(written) => written,
            Err(poisoned) => poisoned.into_inner(),
        };
        written.insert(
            key.to_string(),
            (
                framework.uid().unwrap_or_default(),
                status.clone(),
                Instant::now(),
            ),
        );
        Ok(())
    }

    async fn execute(
        &self,
        framework: &Framework,
        key: &str,
        action: Action,
    ) -> Result<Option<Outcome>, Error> {
        let namespace = framework.namespace().unwrap_or_default();
        let fail = |action: String, source| Error::Api {
            action,
            framework: key.to_string(),
            source,
        };
        let _permit = self.limits.permit().await;
        match action {
            Action::CreateConfigMap {
                attempt,
                config_map: cm,
            } => {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
                let created = api
                    .create(&PostParams::default(), &cm)
                    .await
                    .map_err(|source| {
                        fail(format!("creating ConfigMap {}", cm.name_any()), source)
                    })?;
                tracing::info!(framework = key, attempt, "created the attempt ConfigMap");
                Ok(Some(Outcome::ConfigMapCreated {
                    attempt,
                    uid: created.uid().unwrap_or_default(),
                }))
            }
            Action::DeleteConfigMap {
                uid,
                attempt,
                completing,
            } => {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
                let name = objects::config_map_name(&framework.name_any());
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    propagation_policy: Some(PropagationPolicy::Foreground),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {}
                    Err(e) if is_gone(&e) => {}
                    Err(source) => return Err(fail(format!("deleting ConfigMap {name}"), source)),
                }
                Ok(completing.then_some(Outcome::ConfigMapDeleteRequested { attempt }))
            }
            Action::CreatePod { task, pod } => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                let name = pod.name_any();
                match api.create(&PostParams::default(), &pod).await {
                    Ok(created) => {
                        crate::metrics::global().job_pod_created("Framework");
                        Ok(Some(Outcome::PodCreated {
                            task,
                            uid: created.uid().unwrap_or_default(),
                        }))
                    }
                    Err(source) => {
                        let (code, reason, message) = match &source {
                            kube::Error::Api(status) => (
                                Some(status.code),
                                status.reason.clone(),
                                status.message.clone(),
                            ),
                            other => (None, String::new(), other.to_string()),
                        };
                        let classified =
                            completion::classify_pod_creation_error(code, &reason, &message);
                        if classified == completion::POD_CREATION_TRANSIENT_ERROR {
                            return Err(fail(format!("creating pod {name}"), source));
                        }
                        tracing::warn!(framework = key, pod = name, code = classified, %message, "pod creation failed for good");
                        Ok(Some(Outcome::PodCreationFailed {
                            task,
                            code: classified,
                            diagnostics: format!("Failed to create Pod: {message}"),
                        }))
                    }
                }
            }
            Action::DeletePod {
                task,
                name,
                uid,
                force,
                completing,
            } => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    grace_period_seconds: force.then_some(0),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {
                        if force {
                            tracing::warn!(
                                framework = key,
                                pod = name,
                                "force-deleted a pod past its graceful deletion timeout"
                            );
                        }
                    }
                    Err(e) if is_gone(&e) => {}
                    Err(source) => return Err(fail(format!("deleting pod {name}"), source)),
                }
                Ok(completing.then_some(Outcome::PodDeleteRequested { task }))
            }
        }
    }
}

/// Whether a delete failed because the object is already gone or was replaced.
fn is_gone(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404 || status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_version_4_and_distinct() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
