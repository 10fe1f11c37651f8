//! A kubelet stand-in: moves pods through their phases with the `pods/status` subresource, so that
//! Deployments become Available and job controllers see real pod phases on a cluster without nodes.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The field manager of every status write the stand-in makes.
const FIELD_MANAGER: &str = "kfop-fake-kubelet";

/// How a finished pod's containers ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// Every container's exit code.
    pub exit_code: i32,
    /// The pod-level reason, e.g. `Evicted`; `None` for an ordinary exit.
    pub pod_reason: Option<String>,
}

impl Termination {
    /// A container exit with `exit_code` and no pod-level reason.
    pub fn exit(exit_code: i32) -> Self {
        Self {
            exit_code,
            pod_reason: None,
        }
    }
}

/// Marks a pod Running, with every container started and, if `ready`, Ready.
pub async fn mark_running(pods: &Api<Pod>, name: &str, ready: bool) -> kube::Result<Pod> {
    let pod = pods.get(name).await?;
    let now = Timestamp::now().to_string();
    let flag = if ready { "True" } else { "False" };
    let statuses: Vec<Value> = container_names(&pod)
        .map(|(container, image)| {
            json!({
                "name": container, "image": image, "imageID": image, "ready": ready,
                "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let conditions = json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastTransitionTime": now},
    ]);
    patch_status(
        pods,
        name,
        json!({"phase": "Running", "startTime": now, "conditions": conditions,
               "containerStatuses": statuses, "podIP": "10.244.0.10", "hostIP": "10.0.0.1"}),
    )
    .await
}

/// Marks a pod Succeeded, every container terminated with exit code 0.
pub async fn mark_succeeded(pods: &Api<Pod>, name: &str) -> kube::Result<Pod> {
    finish(pods, name, "Succeeded", &Termination::exit(0)).await
}

/// Marks a pod Failed as `termination` says.
pub async fn mark_failed(
    pods: &Api<Pod>,
    name: &str,
    termination: &Termination,
) -> kube::Result<Pod> {
    finish(pods, name, "Failed", termination).await
}

async fn finish(
    pods: &Api<Pod>,
    name: &str,
    phase: &str,
    termination: &Termination,
) -> kube::Result<Pod> {
    let pod = pods.get(name).await?;
    let now = Timestamp::now().to_string();
    let container_reason = if termination.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    let statuses: Vec<Value> = container_names(&pod)
        .map(|(container, image)| {
            json!({
                "name": container, "image": image, "imageID": image, "ready": false,
                "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": termination.exit_code,
                    "reason": container_reason, "startedAt": now, "finishedAt": now}},
            })
        })
        .collect();
    let mut status = json!({
        "phase": phase,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
        ],
        "containerStatuses": statuses,
    });
    if let Some(reason) = &termination.pod_reason {
        status["reason"] = json!(reason);
        status["message"] = json!(format!("The pod was stopped: {reason}"));
    }
    patch_status(pods, name, status).await
}

async fn patch_status(pods: &Api<Pod>, name: &str, status: Value) -> kube::Result<Pod> {
    pods.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "Pod", "status": status})),
    )
    .await
}

fn container_names(pod: &Pod) -> impl Iterator<Item = (String, String)> + '_ {
    pod.spec.iter().flat_map(|spec| {
        spec.containers
            .iter()
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
    })
}

/// Runs until the watch ends, marking every new Pending pod Running and Ready: a cluster where
/// every container starts at once. Used by `kfop local-cluster` so that demos become Available.
pub async fn run_all_ready(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields("status.phase=Pending");
    let mut events = watcher(pods, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!(error = %e, "watching pods");
                continue;
            }
        };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (Some(name), Some(namespace)) = (&pod.metadata.name, &pod.metadata.namespace) else {
            continue;
        };
        let namespaced: Api<Pod> = Api::namespaced(client.clone(), namespace);
        if let Err(e) = mark_running(&namespaced, name, true).await {
            tracing::warn!(pod = %name, namespace = %namespace, error = %e, "marking pod ready");
        }
    }
}
