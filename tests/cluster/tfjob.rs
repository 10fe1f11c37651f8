//! The TFJob controller on a real control plane: pods driven through their phases by the kubelet
//! stand-in, the controller running in-process (or as the `kfop` binary for the restart test).

use crate::job_support::{
    self, PodHistory, TIMEOUT, create, is, pod_names, pods_named, replica, start, state,
    status_when,
};
use crate::support::{self, eventually};
use k8s_openapi::api::core::v1::{Pod, Service};
use kfop::control_plane::kubelet::{self, Termination};
use kfop::jobs::api::{ConditionType, JOB_ATTEMPT_LABEL};
use kfop::jobs::controller::Kind;
use kfop::jobs::tensorflow::TFJob;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn tfjob(name: &str, specs: Value, run_policy: Value) -> Value {
    json!({
        "apiVersion": "kubeflow.org/v1", "kind": "TFJob",
        "metadata": {"name": name},
        "spec": {"runPolicy": run_policy, "tfReplicaSpecs": specs},
    })
}

fn tf(replicas: u32, restart_policy: &str) -> Value {
    replica(replicas, "tensorflow", restart_policy)
}

struct Fixture {
    ns: support::TestNamespace,
    jobs: Api<TFJob>,
    pods: Api<Pod>,
    _controller: job_support::RunningController,
}

async fn fixture(test: &str) -> Option<Fixture> {
    let ns = support::namespace(test).await?;
    let controller = start(&ns, &[Kind::TFJob], job_support::options(&ns)).await;
    Some(Fixture {
        jobs: Api::namespaced(ns.client.clone(), &ns.name),
        pods: Api::namespaced(ns.client.clone(), &ns.name),
        ns,
        _controller: controller,
    })
}

async fn run_all(pods: &Api<Pod>, names: &[&str]) {
    for name in names {
        kubelet::mark_running(pods, name, true)
            .await
            .expect("mark running");
    }
}

#[tokio::test]
async fn distributed_tfjob_succeeds_when_the_chief_succeeds() {
    let Some(f) = fixture("tf-chief").await else {
        return;
    };
    let specs = json!({"Chief": tf(1, "Never"), "PS": tf(2, "Never"), "Worker": tf(3, "Never")});
    create(&f.jobs, tfjob("dist", specs, json!({}))).await;
    let names = [
        "dist-chief-0",
        "dist-ps-0",
        "dist-ps-1",
        "dist-worker-0",
        "dist-worker-1",
        "dist-worker-2",
    ];
    pods_named(&f.pods, &names).await;
    let services: Api<Service> = Api::namespaced(f.ns.client.clone(), &f.ns.name);
    eventually(TIMEOUT, "six headless services", || async {
        let list = services.list(&ListParams::default()).await.ok()?;
        let headless = list
            .items
            .iter()
            .filter(|s| s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None"));
        (headless.count() == 6).then_some(())
    })
    .await;
    run_all(&f.pods, &names).await;
    status_when(&f.jobs, "dist", "the job to run", |s| {
        state(s) == Some(ConditionType::Running)
    })
    .await;
    for name in ["dist-worker-0", "dist-worker-1", "dist-worker-2"] {
        kubelet::mark_succeeded(&f.pods, name)
            .await
            .expect("succeed");
    }
    let status = status_when(&f.jobs, "dist", "workers recorded", |s| {
        s.replica_statuses
            .get("Worker")
            .is_some_and(|w| w.succeeded == 3)
    })
    .await;
    assert!(
        !is(&status, ConditionType::Succeeded),
        "workers alone do not finish a job with a chief"
    );
    kubelet::mark_succeeded(&f.pods, "dist-chief-0")
        .await
        .expect("succeed");
    let status = status_when(&f.jobs, "dist", "Succeeded", |s| {
        is(s, ConditionType::Succeeded)
    })
    .await;
    assert_eq!(state(&status), Some(ConditionType::Succeeded));
    assert!(status.completion_time.is_some());
    assert_eq!(
        status.replica_statuses["PS"].active, 2,
        "cleanPodPolicy None keeps the PS running"
    );
    assert_eq!(pod_names(&f.pods).await.len(), 6);
}

#[tokio::test]
async fn tf_config_of_every_pod_matches_training_operator() {
    let Some(f) = fixture("tf-config").await else {
        return;
    };
    let mut ps = tf(2, "Never");
    ps["template"]["spec"]["containers"][0]["ports"] =
        json!([{"name": "tfjob-port", "containerPort": 2223}]);
    let specs = json!({"Chief": tf(1, "Never"), "PS": ps, "Worker": tf(2, "Never"), "Evaluator": tf(1, "Never")});
    create(&f.jobs, tfjob("cfg", specs, json!({}))).await;
    let names = [
        "cfg-chief-0",
        "cfg-evaluator-0",
        "cfg-ps-0",
        "cfg-ps-1",
        "cfg-worker-0",
        "cfg-worker-1",
    ];
    let pods = pods_named(&f.pods, &names).await;
    let ns = &f.ns.name;
    let cluster = format!(
        concat!(
            r#"{{"chief":["cfg-chief-0.{ns}.svc:2222"],"evaluator":["cfg-evaluator-0.{ns}.svc:2222"],"#,
            r#""ps":["cfg-ps-0.{ns}.svc:2223","cfg-ps-1.{ns}.svc:2223"],"#,
            r#""worker":["cfg-worker-0.{ns}.svc:2222","cfg-worker-1.{ns}.svc:2222"]}}"#
        ),
        ns = ns
    );
    for pod in &pods {
        let labels = pod.labels();
        let (type_, index) = (
            &labels["training.kubeflow.org/replica-type"],
            &labels["training.kubeflow.org/replica-index"],
        );
        let expected = format!(
            r#"{{"cluster":{cluster},"task":{{"type":"{type_}","index":{index}}},"environment":"cloud"}}"#
        );
        let container = &pod.spec.as_ref().expect("spec").containers[0];
        let env: BTreeMap<String, String> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            env.get("TF_CONFIG"),
            Some(&expected),
            "TF_CONFIG of {}",
            pod.name_any()
        );
        let role = labels
            .get("training.kubeflow.org/job-role")
            .map(String::as_str);
        assert_eq!(
            role,
            (type_ == "chief").then_some("master"),
            "job-role of {}",
            pod.name_any()
        );
        assert_eq!(
            labels["training.kubeflow.org/operator-name"],
            "tfjob-controller"
        );
        assert_eq!(labels["training.kubeflow.org/job-name"], "cfg");
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()),
            Some("Never")
        );
    }
}

#[tokio::test]
async fn worker_zero_finishing_succeeds_under_the_default_success_policy() {
    let Some(f) = fixture("tf-worker0").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob(
            "w0",
            json!({"PS": tf(1, "Never"), "Worker": tf(2, "Never")}),
            json!({}),
        ),
    )
    .await;
    let names = ["w0-ps-0", "w0-worker-0", "w0-worker-1"];
    pods_named(&f.pods, &names).await;
    run_all(&f.pods, &names).await;
    kubelet::mark_succeeded(&f.pods, "w0-worker-0")
        .await
        .expect("succeed");
    let status = status_when(&f.jobs, "w0", "Succeeded", |s| {
        is(s, ConditionType::Succeeded)
    })
    .await;
    assert_eq!(
        status.replica_statuses["Worker"]
            .succeeded_indexes
            .as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn all_workers_success_policy_waits_for_every_worker() {
    let Some(f) = fixture("tf-allworkers").await else {
        return;
    };
    let mut job = tfjob("aw", json!({"Worker": tf(2, "Never")}), json!({}));
    job["spec"]["successPolicy"] = json!("AllWorkers");
    create(&f.jobs, job).await;
    pods_named(&f.pods, &["aw-worker-0", "aw-worker-1"]).await;
    kubelet::mark_succeeded(&f.pods, "aw-worker-0")
        .await
        .expect("succeed");
    status_when(&f.jobs, "aw", "worker 0 recorded", |s| {
        s.replica_statuses
            .get("Worker")
            .is_some_and(|w| w.succeeded == 1)
    })
    .await;
    let job = f.jobs.get("aw").await.expect("job");
    assert!(!is(
        job.status.as_ref().expect("status"),
        ConditionType::Succeeded
    ));
    kubelet::mark_succeeded(&f.pods, "aw-worker-1")
        .await
        .expect("succeed");
    status_when(&f.jobs, "aw", "Succeeded", |s| {
        is(s, ConditionType::Succeeded)
    })
    .await;
}

#[tokio::test]
async fn a_retryable_exit_code_recreates_the_worker() {
    let Some(f) = fixture("tf-retry").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob(
            "rt",
            json!({"Worker": tf(2, "ExitCode")}),
            json!({"backoffLimit": 3}),
        ),
    )
    .await;
    let before = pods_named(&f.pods, &["rt-worker-0", "rt-worker-1"]).await;
    kubelet::mark_failed(&f.pods, "rt-worker-1", &Termination::exit(137))
        .await
        .expect("fail");
    let replaced = eventually(TIMEOUT, "a new rt-worker-1", || async {
        let pod = f.pods.get_opt("rt-worker-1").await.ok()??;
        (pod.uid() != before[1].uid()).then_some(pod)
    })
    .await;
    assert_eq!(replaced.labels()["kfop.dev/replica-attempt"], "1");
    let status = status_when(&f.jobs, "rt", "one restart recorded", |s| s.restarts == 1).await;
    assert!(!is(&status, ConditionType::Failed));
    assert_eq!(
        f.pods.get("rt-worker-0").await.expect("pod").uid(),
        before[0].uid(),
        "worker 0 untouched"
    );
}

#[tokio::test]
async fn a_permanent_exit_code_fails_the_job() {
    let Some(f) = fixture("tf-permanent").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob("pm", json!({"Worker": tf(2, "ExitCode")}), json!({})),
    )
    .await;
    pods_named(&f.pods, &["pm-worker-0", "pm-worker-1"]).await;
    kubelet::mark_failed(&f.pods, "pm-worker-0", &Termination::exit(1))
        .await
        .expect("fail");
    let status = status_when(&f.jobs, "pm", "Failed", |s| is(s, ConditionType::Failed)).await;
    let failed = status.conditions.last().expect("condition");
    assert_eq!(failed.reason.as_deref(), Some("TFJobFailed"));
    assert_eq!(
        failed.message.as_deref(),
        Some(r#"job "pm" is failing because "Worker" replica(s) failed."#)
    );
    assert_eq!(status.restarts, 0);
    assert_eq!(
        pod_names(&f.pods).await,
        ["pm-worker-0", "pm-worker-1"],
        "cleanPodPolicy None keeps pods"
    );
}

#[tokio::test]
async fn an_evicted_pod_is_recreated_without_burning_a_retry() {
    let Some(f) = fixture("tf-evicted").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob(
            "ev",
            json!({"Worker": tf(2, "Never")}),
            json!({"backoffLimit": 0}),
        ),
    )
    .await;
    let before = pods_named(&f.pods, &["ev-worker-0", "ev-worker-1"]).await;
    let eviction = Termination {
        exit_code: 137,
        pod_reason: Some("Evicted".into()),
    };
    kubelet::mark_failed(&f.pods, "ev-worker-0", &eviction)
        .await
        .expect("evict");
    eventually(TIMEOUT, "a new ev-worker-0", || async {
        let pod = f.pods.get_opt("ev-worker-0").await.ok()??;
        (pod.uid() != before[0].uid()).then_some(())
    })
    .await;
    let status = status_when(&f.jobs, "ev", "the disruption recorded", |s| {
        s.disruptions == 1
    })
    .await;
    assert_eq!(status.restarts, 0);
    assert!(!is(&status, ConditionType::Failed));
}

#[tokio::test]
async fn reaching_the_backoff_limit_fails_the_job() {
    let Some(f) = fixture("tf-backoff").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob(
            "bo",
            json!({"Worker": tf(1, "OnFailure")}),
            json!({"backoffLimit": 2, "cleanPodPolicy": "All"}),
        ),
    )
    .await;
    let first = pods_named(&f.pods, &["bo-worker-0"]).await;
    kubelet::mark_failed(&f.pods, "bo-worker-0", &Termination::exit(2))
        .await
        .expect("fail");
    let second = eventually(TIMEOUT, "a second bo-worker-0", || async {
        let pod = f.pods.get_opt("bo-worker-0").await.ok()??;
        (pod.uid() != first[0].uid()).then_some(pod)
    })
    .await;
    assert_eq!(
        second
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref()),
        Some("OnFailure")
    );
    kubelet::mark_failed(&f.pods, "bo-worker-0", &Termination::exit(2))
        .await
        .expect("fail");
    let status = status_when(&f.jobs, "bo", "Failed", |s| is(s, ConditionType::Failed)).await;
    assert_eq!(
        status.conditions.last().and_then(|c| c.message.as_deref()),
        Some("Job bo has failed because it has reached the specified backoff limit")
    );
    assert_eq!(status.restarts, 2);
    eventually(TIMEOUT, "cleanPodPolicy All to delete the pod", || async {
        pod_names(&f.pods).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn active_deadline_fires_with_no_other_event() {
    let Some(f) = fixture("tf-deadline").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob(
            "dl",
            json!({"Worker": tf(2, "Never")}),
            json!({"activeDeadlineSeconds": 3}),
        ),
    )
    .await;
    pods_named(&f.pods, &["dl-worker-0", "dl-worker-1"]).await;
    // Nothing touches the job or its pods from here on: only the controller's own timer can fire.
    let status = status_when(&f.jobs, "dl", "Failed by the deadline", |s| {
        is(s, ConditionType::Failed)
    })
    .await;
    let started = status.start_time.expect("start time").0;
    let finished = status.completion_time.expect("completion time").0;
    let active = finished.duration_since(started).as_secs_f64();
    assert!((3.0..6.0).contains(&active), "failed after {active}s");
    assert_eq!(
        status.conditions.last().and_then(|c| c.message.as_deref()),
        Some("Job dl has failed because it was active longer than specified deadline")
    );
}

#[tokio::test]
async fn suspend_deletes_pods_and_resume_recreates_them() {
    let Some(f) = fixture("tf-suspend").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob("sp", json!({"Worker": tf(2, "Never")}), json!({})),
    )
    .await;
    pods_named(&f.pods, &["sp-worker-0", "sp-worker-1"]).await;
    kubelet::mark_succeeded(&f.pods, "sp-worker-1")
        .await
        .expect("succeed");
    let first_start = status_when(&f.jobs, "sp", "worker 1 recorded", |s| {
        s.replica_statuses
            .get("Worker")
            .is_some_and(|w| w.succeeded == 1)
    })
    .await
    .start_time;
    let suspend = |value: bool| json!({"spec": {"runPolicy": {"suspend": value}}});
    f.jobs
        .patch("sp", &PatchParams::default(), &Patch::Merge(suspend(true)))
        .await
        .expect("suspend");
    status_when(&f.jobs, "sp", "Suspended", |s| {
        is(s, ConditionType::Suspended)
    })
    .await;
    eventually(TIMEOUT, "every pod deleted", || async {
        pod_names(&f.pods).await.is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // startTime has one-second resolution
    f.jobs
        .patch("sp", &PatchParams::default(), &Patch::Merge(suspend(false)))
        .await
        .expect("resume");
    let status = status_when(&f.jobs, "sp", "resumed", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == ConditionType::Suspended && c.status == "False")
    })
    .await;
    assert_eq!(
        status
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Suspended)
            .and_then(|c| c.reason.as_deref()),
        Some("TFJobResumed")
    );
    assert!(
        status.start_time > first_start,
        "resuming restarts the clock"
    );
    pods_named(&f.pods, &["sp-worker-0"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pod_names(&f.pods).await,
        ["sp-worker-0"],
        "the succeeded worker is not rerun"
    );
}

async fn finish_with_policy(test: &str, policy: &str) -> Option<(Fixture, Vec<String>)> {
    let f = fixture(test).await?;
    let specs = json!({"Chief": tf(1, "Never"), "PS": tf(1, "Never"), "Worker": tf(1, "Never")});
    create(
        &f.jobs,
        tfjob("cp", specs, json!({"cleanPodPolicy": policy})),
    )
    .await;
    pods_named(&f.pods, &["cp-chief-0", "cp-ps-0", "cp-worker-0"]).await;
    kubelet::mark_running(&f.pods, "cp-ps-0", true)
        .await
        .expect("run");
    kubelet::mark_succeeded(&f.pods, "cp-worker-0")
        .await
        .expect("succeed");
    kubelet::mark_succeeded(&f.pods, "cp-chief-0")
        .await
        .expect("succeed");
    status_when(&f.jobs, "cp", "Succeeded", |s| {
        is(s, ConditionType::Succeeded)
    })
    .await;
    let services: Api<Service> = Api::namespaced(f.ns.client.clone(), &f.ns.name);
    let expected_pods: usize = match policy {
        "All" => 0,
        "Running" => 2,
        _ => 3,
    };
    let names = eventually(TIMEOUT, &format!("cleanPodPolicy {policy}"), || async {
        let names = pod_names(&f.pods).await;
        let services = services
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .len();
        (names.len() == expected_pods && services == expected_pods).then_some(names)
    })
    .await;
    Some((f, names))
}

#[tokio::test]
async fn clean_pod_policy_all_deletes_every_pod_and_service() {
    let Some((_f, names)) = finish_with_policy("tf-clean-all", "All").await else {
        return;
    };
    assert!(names.is_empty());
}

#[tokio::test]
async fn clean_pod_policy_running_deletes_only_live_pods() {
    let Some((_f, names)) = finish_with_policy("tf-clean-running", "Running").await else {
        return;
    };
    assert_eq!(names, ["cp-chief-0", "cp-worker-0"]);
}

#[tokio::test]
async fn clean_pod_policy_none_keeps_every_pod() {
    let Some((f, names)) = finish_with_policy("tf-clean-none", "None").await else {
        return;
    };
    assert_eq!(names, ["cp-chief-0", "cp-ps-0", "cp-worker-0"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pod_names(&f.pods).await.len(), 3, "and keeps them");
}

#[tokio::test]
async fn ttl_deletes_the_finished_job() {
    let Some(f) = fixture("tf-ttl").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob(
            "ttl",
            json!({"Worker": tf(1, "Never")}),
            json!({"ttlSecondsAfterFinished": 2}),
        ),
    )
    .await;
    pods_named(&f.pods, &["ttl-worker-0"]).await;
    kubelet::mark_succeeded(&f.pods, "ttl-worker-0")
        .await
        .expect("succeed");
    let status = status_when(&f.jobs, "ttl", "Succeeded", |s| {
        is(s, ConditionType::Succeeded)
    })
    .await;
    let finished = status.completion_time.expect("completion time").0;
    eventually(TIMEOUT, "the job to be deleted", || async {
        f.jobs.get_opt("ttl").await.ok()?.is_none().then_some(())
    })
    .await;
    let waited = k8s_openapi::jiff::Timestamp::now()
        .duration_since(finished)
        .as_secs_f64();
    assert!(
        waited >= 2.0,
        "deleted {waited}s after finishing, before its TTL"
    );
    assert!(
        waited < 8.0,
        "deleted {waited}s after finishing: the TTL timer is late"
    );
}

#[tokio::test]
async fn a_succeeded_pod_that_is_deleted_is_not_run_again() {
    let Some(f) = fixture("tf-gc").await else {
        return;
    };
    let mut job = tfjob("gc", json!({"Worker": tf(2, "Never")}), json!({}));
    job["spec"]["successPolicy"] = json!("AllWorkers");
    create(&f.jobs, job).await;
    pods_named(&f.pods, &["gc-worker-0", "gc-worker-1"]).await;
    kubelet::mark_succeeded(&f.pods, "gc-worker-1")
        .await
        .expect("succeed");
    status_when(&f.jobs, "gc", "worker 1 recorded", |s| {
        s.replica_statuses
            .get("Worker")
            .is_some_and(|w| w.succeeded_indexes.as_deref() == Some("1"))
    })
    .await;
    f.pods
        .delete("gc-worker-1", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(TIMEOUT, "gc-worker-1 gone", || async {
        f.pods
            .get_opt("gc-worker-1")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pod_names(&f.pods).await, ["gc-worker-0"], "not re-run");
    kubelet::mark_succeeded(&f.pods, "gc-worker-0")
        .await
        .expect("succeed");
    status_when(&f.jobs, "gc", "Succeeded", |s| {
        is(s, ConditionType::Succeeded)
    })
    .await;
}

#[tokio::test]
async fn a_pod_stuck_terminating_on_a_lost_node_is_force_deleted_and_replaced() {
    let Some(f) = fixture("tf-lostnode").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob("ln", json!({"Worker": tf(2, "Never")}), json!({})),
    )
    .await;
    let before = pods_named(&f.pods, &["ln-worker-0", "ln-worker-1"]).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "ln-worker-0"},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "lost-node"}});
    f.pods
        .create_subresource::<Value, Value>(
            "binding",
            "ln-worker-0",
            &PostParams::default(),
            &binding,
        )
        .await
        .expect("bind to a node");
    kubelet::mark_running(&f.pods, "ln-worker-0", true)
        .await
        .expect("run");
    // The node is gone: the eviction's deletion never completes (there is no kubelet to confirm it).
    f.pods
        .delete("ln-worker-0", &DeleteParams::default())
        .await
        .expect("delete");
    let stuck = f.pods.get("ln-worker-0").await.expect("still there");
    assert!(stuck.metadata.deletion_timestamp.is_some(), "terminating");
    eventually(TIMEOUT, "a replacement ln-worker-0", || async {
        let pod = f.pods.get_opt("ln-worker-0").await.ok()??;
        (pod.uid() != before[0].uid() && pod.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await;
    let status = status_when(&f.jobs, "ln", "the disruption recorded", |s| {
        s.disruptions == 1
    })
    .await;
    assert_eq!(status.restarts, 0);
}

#[tokio::test]
async fn whole_job_restart_replaces_every_replica_together() {
    let Some(f) = fixture("tf-wholejob").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob(
            "wj",
            json!({"Worker": tf(3, "OnFailure")}),
            json!({"restartScope": "Job"}),
        ),
    )
    .await;
    let names = ["wj-worker-0", "wj-worker-1", "wj-worker-2"];
    let before = pods_named(&f.pods, &names).await;
    run_all(&f.pods, &names).await;
    kubelet::mark_failed(&f.pods, "wj-worker-1", &Termination::exit(1))
        .await
        .expect("fail");
    let after = eventually(TIMEOUT, "three pods of attempt 1", || async {
        let list = f.pods.list(&ListParams::default()).await.ok()?;
        let current: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.labels().get(JOB_ATTEMPT_LABEL).map(String::as_str) == Some("1"))
            .collect();
        (current.len() == 3).then_some(current)
    })
    .await;
    for pod in &after {
        assert!(
            before.iter().all(|b| b.uid() != pod.uid()),
            "{} is new",
            pod.name_any()
        );
    }
    let status = status_when(&f.jobs, "wj", "one job restart", |s| s.attempt == 1).await;
    assert_eq!(status.restarts, 1);
}

#[tokio::test]
async fn zero_replicas_create_nothing() {
    let Some(f) = fixture("tf-zero").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob(
            "zr",
            json!({"Chief": tf(1, "Never"), "Worker": tf(0, "Never")}),
            json!({}),
        ),
    )
    .await;
    pods_named(&f.pods, &["zr-chief-0"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pod_names(&f.pods).await, ["zr-chief-0"]);
}

#[tokio::test]
async fn names_that_cannot_fit_in_63_characters_are_rejected_up_front() {
    let Some(ns) = support::namespace("tf-names").await else {
        return;
    };
    job_support::install_crds(&ns.client).await;
    let jobs: Api<TFJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let long = "a".repeat(54); // a…a-worker-10: 64 characters
    let job: TFJob =
        serde_json::from_value(tfjob(&long, json!({"Worker": tf(11, "Never")}), json!({})))
            .expect("job");
    let error = jobs
        .create(&PostParams::default(), &job)
        .await
        .expect_err("rejected");
    assert!(error.to_string().contains("63 characters"), "{error}");
    let fits: TFJob =
        serde_json::from_value(tfjob(&long, json!({"Worker": tf(10, "Never")}), json!({})))
            .expect("job");
    jobs.create(&PostParams::default(), &fits)
        .await
        .expect("63 characters fit");
    let bad_type: TFJob =
        serde_json::from_value(tfjob("bt", json!({"Driver": tf(1, "Never")}), json!({})))
            .expect("job");
    let error = jobs
        .create(&PostParams::default(), &bad_type)
        .await
        .expect_err("rejected");
    assert!(error.to_string().contains("replica types"), "{error}");
}

#[tokio::test]
async fn run_policy_admission_rules_are_training_operators() {
    let Some(ns) = support::namespace("tf-run-policy").await else {
        return;
    };
    job_support::install_crds(&ns.client).await;
    let jobs: Api<TFJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let job = |name: &str, run_policy: Value| -> TFJob {
        serde_json::from_value(tfjob(name, json!({"Worker": tf(1, "Never")}), run_policy))
            .expect("job")
    };
    let error = jobs
        .create(
            &PostParams::default(),
            &job("other", json!({"managedBy": "example.com/mine"})),
        )
        .await
        .expect_err("an unknown manager is refused");
    assert!(
        error.to_string().contains("managedBy: Unsupported value"),
        "{error}"
    );
    let created = jobs
        .create(
            &PostParams::default(),
            &job(
                "q",
                json!({"managedBy": "kueue.x-k8s.io/multikueue", "schedulingPolicy": {"queue": "a"}}),
            ),
        )
        .await
        .expect("training-operator's values are accepted");
    assert_eq!(
        created.spec.run_policy.suspend,
        Some(false),
        "suspend defaults to false"
    );
    let patch = |run_policy: Value| {
        let jobs = jobs.clone();
        async move {
            jobs.patch(
                "q",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"runPolicy": run_policy}})),
            )
            .await
        }
    };
    let error = patch(json!({"schedulingPolicy": {"queue": "b"}}))
        .await
        .expect_err("queue is immutable");
    assert!(
        error
            .to_string()
            .contains("spec.runPolicy.schedulingPolicy.queue is immutable"),
        "{error}"
    );
    for change in [json!("kubeflow.org/training-operator"), Value::Null] {
        let error = patch(json!({"managedBy": change}))
            .await
            .expect_err("managedBy is immutable");
        assert!(error.to_string().contains("field is immutable"), "{error}");
    }
    patch(json!({"suspend": true}))
        .await
        .expect("other fields may change");
}

#[tokio::test]
async fn events_record_pods_and_phase_changes() {
    let Some(f) = fixture("tf-events").await else {
        return;
    };
    create(
        &f.jobs,
        tfjob("evt", json!({"Worker": tf(1, "Never")}), json!({})),
    )
    .await;
    pods_named(&f.pods, &["evt-worker-0"]).await;
    kubelet::mark_succeeded(&f.pods, "evt-worker-0")
        .await
        .expect("succeed");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(f.ns.client.clone(), &f.ns.name);
    eventually(TIMEOUT, "creation and phase events", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<String> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
        ["TFJobCreated", "SuccessfulCreatePod", "TFJobSucceeded"]
            .iter()
            .all(|r| reasons.iter().any(|x| x == r))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_killed_and_restarted_controller_creates_no_duplicate_pod() {
    let Some(ns) = support::namespace("tf-restart").await else {
        return;
    };
    job_support::install_crds(&ns.client).await;
    let kubeconfig = support::kubeconfig().expect("kubeconfig of the test cluster");
    let jobs: Api<TFJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let history = PodHistory::start(pods.clone()).await;
    let controller = |extra: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kfop"))
            .args([
                "job-controller",
                "--kinds",
                "tfjob",
                "--namespace",
                &ns.name,
                "--force-delete-after",
                "1",
            ])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start kfop job-controller")
    };
    // Slow writes, so the kill lands in the middle of creating the job's pods.
    let mut first = controller(&["--api-qps", "10", "--api-burst", "1"]);
    create(
        &jobs,
        tfjob("rs", json!({"Worker": tf(20, "ExitCode")}), json!({})),
    )
    .await;
    eventually(TIMEOUT, "a few pods", || async {
        (pod_names(&pods).await.len() >= 3).then_some(())
    })
    .await;
    first.kill().await.expect("kill the controller");
    let created_before = pod_names(&pods).await;
    assert!(
        created_before.len() < 20,
        "killed mid-creation ({} pods)",
        created_before.len()
    );
    // While it is down, one worker fails with a retryable code.
    kubelet::mark_failed(&pods, &created_before[0], &Termination::exit(143))
        .await
        .expect("fail");

    let _second = controller(&[]);
    let names: Vec<String> = (0..20).map(|i| format!("rs-worker-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    pods_named(&pods, &refs).await;
    let status = status_when(&jobs, "rs", "the restart recorded", |s| s.restarts == 1).await;
    assert!(!is(&status, ConditionType::Failed));
    eventually(TIMEOUT, "the failed worker replaced", || async {
        let counts = history.counts();
        (counts.get(&created_before[0]) == Some(&2)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (name, count) in history.counts() {
        let expected = if name == created_before[0] { 2 } else { 1 };
        assert_eq!(count, expected, "{name} was created {count} times");
    }
}
