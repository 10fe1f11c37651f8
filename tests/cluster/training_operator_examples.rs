//! training-operator's own examples (`tests/fixtures/training-operator/`, its `examples/` byte for
//! byte): each TFJob and PyTorchJob is accepted by kfop's CRDs unchanged (but for its namespace)
//! and runs to Succeeded, the kubelet stand-in running every pod and then exiting it with 0.

use crate::job_support::{self, HasStatus, create, is, pods_named, start, status_when};
use crate::support;
use k8s_openapi::api::core::v1::Pod;
use kfop::control_plane::kubelet;
use kfop::jobs::api::ConditionType;
use kfop::jobs::controller::Kind;
use kfop::jobs::pytorch::PyTorchJob;
use kfop::jobs::tensorflow::TFJob;
use kube::Api;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

/// Every fixture: (file name, the job document).
fn examples() -> Vec<(String, Value)> {
    let dir = format!(
        "{}/tests/fixtures/training-operator",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let path = format!("{dir}/{file}");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let job: Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            (file, job)
        })
        .collect()
}

/// The pod names a job's replica specs make.
fn pod_names_of(job: &Value, specs_field: &str) -> Vec<String> {
    let name = job["metadata"]["name"].as_str().unwrap_or_default();
    let mut names = Vec::new();
    for (type_, spec) in job["spec"][specs_field].as_object().into_iter().flatten() {
        let replicas = spec["replicas"].as_u64().unwrap_or(1);
        for index in 0..replicas {
            names.push(format!("{name}-{}-{index}", type_.to_ascii_lowercase()));
        }
    }
    names
}

/// Creates the job, runs every pod to success and waits for the job to succeed.
async fn run_to_success<K>(
    api: Api<K>,
    pods: Api<Pod>,
    file: String,
    mut job: Value,
    specs_field: &str,
) where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + Debug + HasStatus,
{
    if let Some(meta) = job["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let expected = pod_names_of(&job, specs_field);
    assert!(!expected.is_empty(), "{file}: no replicas");
    create(&api, job).await;
    let names: Vec<&str> = expected.iter().map(String::as_str).collect();
    pods_named(&pods, &names).await;
    for pod in &names {
        kubelet::mark_running(&pods, pod, true)
            .await
            .unwrap_or_else(|e| panic!("{file}: running {pod}: {e}"));
    }
    for pod in &names {
        kubelet::mark_succeeded(&pods, pod)
            .await
            .unwrap_or_else(|e| panic!("{file}: succeeding {pod}: {e}"));
    }
    let status = status_when(&api, &name, &format!("{file} to succeed"), |s| {
        is(s, ConditionType::Succeeded) || is(s, ConditionType::Failed)
    })
    .await;
    assert!(
        is(&status, ConditionType::Succeeded) && !is(&status, ConditionType::Failed),
        "{file}: {:?}",
        status.conditions
    );
}

#[tokio::test]
async fn every_training_operator_example_is_accepted_and_runs_to_success() {
    let Some(ns) = support::namespace("to-examples").await else {
        return;
    };
    let _controller = start(
        &ns,
        &[Kind::TFJob, Kind::PyTorchJob],
        job_support::options(&ns),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let tfjobs: Api<TFJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let pytorchjobs: Api<PyTorchJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let mut examples = examples();
    assert_eq!(examples.len(), 13, "every job example of release-1.9");
    // The first of each kind alone: once it has run, its controller is surely watching; then
    // the rest at once.
    let mut started = Vec::new();
    for kind in ["TFJob", "PyTorchJob"] {
        if let Some(at) = examples.iter().position(|(_, job)| job["kind"] == kind) {
            started.push(examples.remove(at));
        }
    }
    let run = |(file, job): (String, Value)| {
        let (pods, tfjobs, pytorchjobs) = (pods.clone(), tfjobs.clone(), pytorchjobs.clone());
        async move {
            match job["kind"].as_str() {
                Some("TFJob") => run_to_success(tfjobs, pods, file, job, "tfReplicaSpecs").await,
                Some("PyTorchJob") => {
                    run_to_success(pytorchjobs, pods, file, job, "pytorchReplicaSpecs").await
                }
                other => panic!("{file}: not a job ({other:?})"),
            }
        }
    };
    for example in started {
        run(example).await;
    }
    futures::future::join_all(examples.into_iter().map(run)).await;
}
