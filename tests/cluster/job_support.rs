//! Helpers for the job-controller tests: kfop's CRDs installed once, a job controller running
//! in-process and scoped to the test's namespace, and waits on jobs and pods.

use crate::support::{TestNamespace, eventually};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kfop::jobs::api::{ConditionType, JobStatus};
use kfop::jobs::controller::{self, Kind, Options};
use kfop::jobs::engine;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{conditions, wait::await_condition};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

/// How long the job tests wait for anything.
pub const TIMEOUT: Duration = Duration::from_secs(60);

static CRDS: OnceCell<()> = OnceCell::const_new();

/// Installs kfop's CRDs (once per test run) and waits until the API serves them.
pub async fn install_crds(client: &Client) {
    CRDS.get_or_init(|| async {
        apply_crds(client, kfop::crds::all()).await;
    })
    .await;
}

/// Applies CRDs and waits until they are established and served.
pub async fn apply_crds(client: &Client, crds: Vec<CustomResourceDefinition>) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("kfop-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        tokio::time::timeout(
            TIMEOUT,
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} established in time"))
        .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }
}

/// A job controller running in-process for one test; stopped when dropped.
pub struct RunningController(JoinHandle<()>);

impl Drop for RunningController {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Options for a controller scoped to the test namespace, with a short force-delete timeout.
pub fn options(ns: &TestNamespace) -> Options {
    Options {
        namespace: Some(ns.name.clone()),
        workers: 4,
        engine: engine::Config {
            force_delete_after: Duration::from_secs(1),
            ..engine::Config::default()
        },
        ..Options::default()
    }
}

/// Starts the controllers of `kinds` for the test namespace (after installing the CRDs).
pub async fn start(ns: &TestNamespace, kinds: &[Kind], options: Options) -> RunningController {
    install_crds(&ns.client).await;
    let client = ns.client.clone();
    let kinds = kinds.to_vec();
    RunningController(tokio::spawn(async move {
        if let Err(e) = controller::run(client, &kinds, options).await {
            panic!("the job controller failed: {e}");
        }
    }))
}

/// Creates a job from JSON, retrying briefly while a just-installed CRD becomes served.
pub async fn create<K>(api: &Api<K>, job: serde_json::Value) -> K
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + Debug,
{
    let job: K = serde_json::from_value(job).expect("job JSON");
    let mut attempts = 0;
    loop {
        match api.create(&PostParams::default(), &job).await {
            Ok(created) => return created,
            Err(kube::Error::Api(status)) if status.code == 404 && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating {}: {e}", job.name_any()),
        }
    }
}

/// A pod template JSON with one container.
pub fn template(container: &str) -> serde_json::Value {
    serde_json::json!({"spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": container, "image": "registry.example/train:1"}]
    }})
}

/// A replica spec JSON.
pub fn replica(replicas: u32, container: &str, restart_policy: &str) -> serde_json::Value {
    serde_json::json!({"replicas": replicas, "restartPolicy": restart_policy, "template": template(container)})
}

/// Waits until pods with these names exist, and returns them.
pub async fn pods_named(pods: &Api<Pod>, names: &[&str]) -> Vec<Pod> {
    let wanted: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    eventually(TIMEOUT, &format!("pods {names:?}"), || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let found: BTreeMap<String, Pod> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| (p.name_any(), p))
            .collect();
        wanted
            .iter()
            .map(|n| found.get(n).cloned())
            .collect::<Option<Vec<Pod>>>()
    })
    .await
}

/// The names of the pods in the namespace, sorted.
pub async fn pod_names(pods: &Api<Pod>) -> Vec<String> {
    let mut names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    names.sort();
    names
}

/// The job's status once `check` holds for it.
pub async fn status_when<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    check: impl Fn(&JobStatus) -> bool,
) -> JobStatus
where
    K: Resource + Clone + DeserializeOwned + Debug + HasStatus,
{
    eventually(TIMEOUT, what, || async {
        let job = api.get(name).await.ok()?;
        let status = job.job_status()?.clone();
        check(&status).then_some(status)
    })
    .await
}

/// Whether condition `type_` is True.
pub fn is(status: &JobStatus, type_: ConditionType) -> bool {
    kfop::jobs::conditions::is_true(status, type_)
}

/// The last condition's type.
pub fn state(status: &JobStatus) -> Option<ConditionType> {
    status.conditions.last().map(|c| c.type_)
}

/// Jobs whose status the helpers can read.
pub trait HasStatus {
    /// The job's status.
    fn job_status(&self) -> Option<&JobStatus>;
}

impl HasStatus for kfop::jobs::tensorflow::TFJob {
    fn job_status(&self) -> Option<&JobStatus> {
        self.status.as_ref()
    }
}

impl HasStatus for kfop::jobs::pytorch::PyTorchJob {
    fn job_status(&self) -> Option<&JobStatus> {
        self.status.as_ref()
    }
}

/// Every pod UID ever seen per pod name in a namespace, recorded by a watch from the start.
pub struct PodHistory {
    seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    task: JoinHandle<()>,
}

impl PodHistory {
    /// Starts recording.
    pub async fn start(pods: Api<Pod>) -> Self {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
        let record = seen.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut events = watcher(pods, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                let pod = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
                    Ok(watcher::Event::InitDone) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                        continue;
                    }
                    _ => continue,
                };
                if let Ok(mut seen) = record.lock() {
                    seen.entry(pod.name_any())
                        .or_default()
                        .insert(pod.uid().unwrap_or_default());
                }
            }
        });
        let _ = ready_rx.await;
        Self { seen, task }
    }

    /// How many distinct pods (UIDs) each name has had.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.seen
            .lock()
            .map(|seen| {
                seen.iter()
                    .map(|(name, uids)| (name.clone(), uids.len()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for PodHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}
