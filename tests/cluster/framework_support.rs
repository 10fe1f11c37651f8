//! Helpers for the Framework controller tests: the controller running in-process for a test
//! namespace, and waits on frameworks and their pods.

use crate::job_support::{self, RunningController, TIMEOUT};
use crate::support::{TestNamespace, eventually};
use k8s_openapi::api::core::v1::Pod;
use kfop::control_plane::kubelet::{self, Termination};
use kfop::framework::api::{Framework, FrameworkState, FrameworkStatus};
use kfop::framework::completion::Classifier;
use kfop::jobs::controller::{Kind, Options};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

/// Options for a Framework controller scoped to the test namespace; transient conflicts retry
/// after one second instead of minutes.
pub fn options(ns: &TestNamespace) -> Options {
    let mut options = job_support::options(ns);
    options.framework.classifier = Classifier {
        conflict_retry_delay_sec: (1, 1),
        ..Classifier::default()
    };
    options
}

/// Starts the Framework controller for the test namespace.
pub async fn start(ns: &TestNamespace) -> RunningController {
    job_support::start(ns, &[Kind::Framework], options(ns)).await
}

/// Creates a framework from JSON, retrying briefly while a just-installed CRD becomes served.
pub async fn create(api: &Api<Framework>, framework: serde_json::Value) -> Framework {
    let framework: Framework = serde_json::from_value(framework).expect("framework JSON");
    let mut attempts = 0;
    loop {
        match api.create(&PostParams::default(), &framework).await {
            Ok(created) => return created,
            Err(kube::Error::Api(status)) if status.code == 404 && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating framework {}: {e}", framework.name_any()),
        }
    }
}

/// A framework of one role `worker` with `tasks` tasks.
pub fn batch(
    name: &str,
    tasks: u32,
    framework_retry: serde_json::Value,
    task_retry: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "frameworkcontroller.microsoft.com/v1", "kind": "Framework",
        "metadata": {"name": name},
        "spec": {
            "executionType": "Start",
            "retryPolicy": framework_retry,
            "taskRoles": [{
                "name": "worker", "taskNumber": tasks,
                "frameworkAttemptCompletionPolicy": {"minFailedTaskCount": 1, "minSucceededTaskCount": -1},
                "task": {"retryPolicy": task_retry, "podGracefulDeletionTimeoutSec": 600,
                    "pod": job_support::template("main")},
            }],
        },
    })
}

/// The framework's status once `check` holds for it.
pub async fn status_when(
    api: &Api<Framework>,
    name: &str,
    what: &str,
    check: impl Fn(&FrameworkStatus) -> bool,
) -> FrameworkStatus {
    eventually(TIMEOUT, &format!("{name}: {what}"), || async {
        let framework = api.get(name).await.ok()?;
        let status = framework.status?;
        check(&status).then_some(status)
    })
    .await
}

/// The framework's status once it is `Completed`.
pub async fn completed(api: &Api<Framework>, name: &str) -> FrameworkStatus {
    status_when(api, name, "Completed", |s| {
        s.state == FrameworkState::Completed
    })
    .await
}

/// The completion code of the framework's current attempt.
pub fn code(status: &FrameworkStatus) -> Option<i32> {
    status
        .attempt_status
        .completion_status
        .as_ref()
        .map(|c| c.status.code)
}

/// Waits for a live pod `name` whose UID is not `previous`, and returns its UID.
pub async fn next_pod(pods: &Api<Pod>, name: &str, previous: Option<&str>) -> String {
    eventually(TIMEOUT, &format!("a new pod {name}"), || async {
        let pod = pods.get_opt(name).await.ok()??;
        let uid = pod.uid()?;
        (pod.metadata.deletion_timestamp.is_none() && Some(uid.as_str()) != previous).then_some(uid)
    })
    .await
}

/// Runs pod `name` and ends it with `exit_code` (0: Succeeded, otherwise Failed).
pub async fn finish(pods: &Api<Pod>, name: &str, exit_code: i32) {
    kubelet::mark_running(pods, name, true)
        .await
        .unwrap_or_else(|e| panic!("marking {name} running: {e}"));
    let result = if exit_code == 0 {
        kubelet::mark_succeeded(pods, name).await
    } else {
        kubelet::mark_failed(pods, name, &Termination::exit(exit_code)).await
    };
    result.unwrap_or_else(|e| panic!("finishing {name}: {e}"));
}

/// Waits for a new pod `name` (not `previous`) and ends it with `exit_code`; returns its UID.
pub async fn run_attempt(
    pods: &Api<Pod>,
    name: &str,
    previous: Option<&str>,
    exit_code: i32,
) -> String {
    let uid = next_pod(pods, name, previous).await;
    finish(pods, name, exit_code).await;
    uid
}

/// Waits until the namespace has no live pod and no attempt ConfigMap of `framework`.
pub async fn attempt_gone(ns: &TestNamespace, framework: &str) {
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(ns.client.clone(), &ns.name);
    let selector = format!("FC_FRAMEWORK_NAME={framework}");
    eventually(
        TIMEOUT,
        &format!("{framework}: pods and ConfigMap deleted"),
        || async {
            let params = ListParams::default().labels(&selector);
            let pods = pods.list(&params).await.ok()?;
            let cms = cms.list(&params).await.ok()?;
            (pods.items.is_empty() && cms.items.is_empty()).then_some(())
        },
    )
    .await;
}
