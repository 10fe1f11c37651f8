//! The Framework controller on a real control plane: retries and their accounting, completion
//! policies, rescaling, stopping, restarts and the write-ahead status, with pods driven by the
//! kubelet stand-in.

use crate::framework_support::{
    self as fw, attempt_gone, batch, code, completed, create, finish, next_pod, run_attempt,
    status_when,
};
use crate::job_support::{self, PodHistory, TIMEOUT, pod_names};
use crate::support::{self, eventually};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kfop::framework::api::{CompletionTypeAttribute, Framework, FrameworkState, TaskState};
use kfop::framework::completion;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::BTreeSet;

fn no_retry() -> serde_json::Value {
    json!({"fancyRetryPolicy": false, "maxRetryCount": 0})
}

struct Fixture {
    ns: support::TestNamespace,
    frameworks: Api<Framework>,
    pods: Api<Pod>,
    _controller: job_support::RunningController,
}

async fn fixture(test: &str) -> Option<Fixture> {
    let ns = support::namespace(test).await?;
    let controller = fw::start(&ns).await;
    Some(Fixture {
        frameworks: Api::namespaced(ns.client.clone(), &ns.name),
        pods: Api::namespaced(ns.client.clone(), &ns.name),
        ns,
        _controller: controller,
    })
}

#[tokio::test]
async fn a_transient_failure_is_retried_for_free_and_a_permanent_one_is_not_retried() {
    let Some(f) = fixture("fw-transient").await else {
        return;
    };
    create(
        &f.frameworks,
        batch(
            "transient",
            1,
            no_retry(),
            json!({"fancyRetryPolicy": true, "maxRetryCount": 1}),
        ),
    )
    .await;
    let first = run_attempt(&f.pods, "transient-worker-0", None, 200).await;
    let second = run_attempt(&f.pods, "transient-worker-0", Some(&first), 200).await;
    let status = status_when(&f.frameworks, "transient", "two transient retries", |s| {
        let task = &s.attempt_status.task_role_statuses[0].task_statuses[0];
        task.retry_policy_status.total_retried_count == 2
    })
    .await;
    let task = &status.attempt_status.task_role_statuses[0].task_statuses[0];
    assert_eq!(task.retry_policy_status.accountable_retried_count, 0);
    assert_eq!(task.attempt_status.id, 2);
    run_attempt(&f.pods, "transient-worker-0", Some(&second), 210).await;
    let status = completed(&f.frameworks, "transient").await;
    assert_eq!(code(&status), Some(210));
    let task = &status.attempt_status.task_role_statuses[0].task_statuses[0];
    assert_eq!(
        task.retry_policy_status.total_retried_count, 2,
        "permanent: not retried"
    );
    let completion = status.attempt_status.completion_status.expect("completion");
    assert_eq!(completion.status.phrase, "ContainerPermanentFailed");
    assert_eq!(
        completion.status.type_.attributes,
        [CompletionTypeAttribute::Permanent]
    );
    assert_eq!(status.retry_policy_status.total_retried_count, 0);
    attempt_gone(&f.ns, "transient").await;
}

#[tokio::test]
async fn the_framework_is_retried_per_max_retry_count_with_a_new_attempt_each_time() {
    let Some(f) = fixture("fw-retry").await else {
        return;
    };
    create(
        &f.frameworks,
        batch(
            "retry",
            1,
            json!({"fancyRetryPolicy": false, "maxRetryCount": 2}),
            no_retry(),
        ),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(f.ns.client.clone(), &f.ns.name);
    let mut previous = None;
    let mut config_maps = BTreeSet::new();
    for attempt in 0..3 {
        let status = status_when(&f.frameworks, "retry", "the attempt's ConfigMap", |s| {
            s.attempt_status.id == attempt && s.attempt_status.config_map_uid.is_some()
        })
        .await;
        config_maps.insert(status.attempt_status.config_map_uid.clone());
        let cm = eventually(TIMEOUT, "the attempt ConfigMap", || async {
            cms.get_opt("retry-attempt").await.ok()?
        })
        .await;
        assert_eq!(
            cm.metadata.finalizers,
            Some(vec!["foregroundDeletion".into()])
        );
        let uid = run_attempt(&f.pods, "retry-worker-0", previous.as_deref(), 3).await;
        previous = Some(uid);
    }
    let status = completed(&f.frameworks, "retry").await;
    assert_eq!(status.attempt_status.id, 2);
    assert_eq!(status.retry_policy_status.accountable_retried_count, 2);
    assert_eq!(code(&status), Some(3));
    assert_eq!(config_maps.len(), 3, "one ConfigMap per attempt");
    attempt_gone(&f.ns, "retry").await;
}

#[tokio::test]
async fn min_failed_task_count_completes_the_attempt_while_other_tasks_still_run() {
    let Some(f) = fixture("fw-policy").await else {
        return;
    };
    create(&f.frameworks, batch("policy", 3, no_retry(), no_retry())).await;
    for i in 0..3 {
        next_pod(&f.pods, &format!("policy-worker-{i}"), None).await;
    }
    kfop::control_plane::kubelet::mark_running(&f.pods, "policy-worker-0", true)
        .await
        .expect("running");
    finish(&f.pods, "policy-worker-2", 1).await;
    let status = completed(&f.frameworks, "policy").await;
    let completion = status.attempt_status.completion_status.expect("completion");
    assert_eq!(completion.status.code, 1);
    let trigger = completion.trigger.expect("trigger");
    assert_eq!(
        (trigger.task_role_name.as_str(), trigger.task_index),
        ("worker", 2)
    );
    let running = &status.attempt_status.task_role_statuses[0].task_statuses[0];
    assert_eq!(
        running
            .attempt_status
            .completion_status
            .as_ref()
            .map(|c| c.status.code),
        Some(completion::FRAMEWORK_ATTEMPT_COMPLETION)
    );
    attempt_gone(&f.ns, "policy").await;
}

#[tokio::test]
async fn task_number_scales_a_running_framework_up_and_down() {
    let Some(f) = fixture("fw-scale").await else {
        return;
    };
    create(&f.frameworks, batch("scale", 2, no_retry(), no_retry())).await;
    for i in 0..2 {
        let name = format!("scale-worker-{i}");
        next_pod(&f.pods, &name, None).await;
        kfop::control_plane::kubelet::mark_running(&f.pods, &name, true)
            .await
            .expect("running");
    }
    status_when(&f.frameworks, "scale", "running", |s| {
        s.state == FrameworkState::AttemptRunning
    })
    .await;
    let scale = |n: i32| {
        let frameworks = f.frameworks.clone();
        async move {
            frameworks
                .patch(
                    "scale",
                    &PatchParams::default(),
                    &Patch::Json::<()>(
                        serde_json::from_value(json!([
                            {"op": "replace", "path": "/spec/taskRoles/0/taskNumber", "value": n}
                        ]))
                        .expect("patch"),
                    ),
                )
                .await
                .expect("scale");
        }
    };
    scale(4).await;
    for i in 2..4 {
        next_pod(&f.pods, &format!("scale-worker-{i}"), None).await;
    }
    let kept = f.pods.get("scale-worker-0").await.expect("pod 0").uid();
    scale(1).await;
    let status = status_when(&f.frameworks, "scale", "scaled down to 1 task", |s| {
        s.attempt_status.task_role_statuses[0].task_statuses.len() == 1
    })
    .await;
    assert_eq!(status.state, FrameworkState::AttemptRunning);
    assert!(status.attempt_status.completion_status.is_none());
    eventually(TIMEOUT, "only scale-worker-0 left", || async {
        (pod_names(&f.pods).await == ["scale-worker-0"]).then_some(())
    })
    .await;
    assert_eq!(
        f.pods.get("scale-worker-0").await.expect("pod 0").uid(),
        kept
    );
    // A scaled-down framework still completes when its remaining task does.
    finish(&f.pods, "scale-worker-0", 0).await;
    assert_eq!(code(&completed(&f.frameworks, "scale").await), Some(0));
}

#[tokio::test]
async fn execution_type_stop_stops_a_running_framework_for_good() {
    let Some(f) = fixture("fw-stop").await else {
        return;
    };
    create(
        &f.frameworks,
        batch(
            "stop",
            2,
            json!({"maxRetryCount": -2}),
            json!({"maxRetryCount": -2}),
        ),
    )
    .await;
    for i in 0..2 {
        next_pod(&f.pods, &format!("stop-worker-{i}"), None).await;
    }
    f.frameworks
        .patch(
            "stop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"executionType": "Stop"}})),
        )
        .await
        .expect("stop");
    let status = completed(&f.frameworks, "stop").await;
    assert_eq!(code(&status), Some(completion::STOP_FRAMEWORK_REQUESTED));
    attempt_gone(&f.ns, "stop").await;
    // executionType only moves forward.
    let back = f
        .frameworks
        .patch(
            "stop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"executionType": "Start"}})),
        )
        .await;
    assert!(back.is_err(), "Stop → Start must be rejected");
}

#[tokio::test]
async fn a_completed_framework_whose_objects_are_gone_is_not_rerun_after_a_restart() {
    let Some(ns) = support::namespace("fw-no-rerun").await else {
        return;
    };
    let frameworks: Api<Framework> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let history = PodHistory::start(pods.clone()).await;
    let controller = fw::start(&ns).await;
    create(&frameworks, batch("done", 2, no_retry(), no_retry())).await;
    run_attempt(&pods, "done-worker-0", None, 0).await;
    run_attempt(&pods, "done-worker-1", None, 0).await;
    let before = completed(&frameworks, "done").await;
    assert_eq!(code(&before), Some(0));
    attempt_gone(&ns, "done").await;
    drop(controller);

    // A new controller, with nothing in memory, sees a completed framework with no pods or
    // ConfigMap: it must leave it alone. A second framework run to completion proves it has
    // looked at everything by then.
    let _controller = fw::start(&ns).await;
    create(&frameworks, batch("after", 1, no_retry(), no_retry())).await;
    run_attempt(&pods, "after-worker-0", None, 0).await;
    completed(&frameworks, "after").await;
    let after = frameworks
        .get("done")
        .await
        .expect("done")
        .status
        .expect("status");
    assert_eq!(
        after, before,
        "the completed framework's status is untouched"
    );
    let counts = history.counts();
    assert_eq!(counts.get("done-worker-0"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("done-worker-1"), Some(&1), "{counts:?}");
}

#[tokio::test]
async fn a_pod_stuck_terminating_is_force_deleted_after_its_graceful_deletion_timeout() {
    let Some(f) = fixture("fw-force").await else {
        return;
    };
    let mut framework = batch(
        "force",
        1,
        no_retry(),
        json!({"fancyRetryPolicy": true, "maxRetryCount": 0}),
    );
    let task = &mut framework["spec"]["taskRoles"][0]["task"];
    task["podGracefulDeletionTimeoutSec"] = json!(2);
    // Bound to a node that never answers: a graceful delete never finishes on its own.
    task["pod"]["spec"]["nodeName"] = json!("lost-node");
    task["pod"]["spec"]["terminationGracePeriodSeconds"] = json!(30);
    create(&f.frameworks, framework).await;
    let first = next_pod(&f.pods, "force-worker-0", None).await;
    kfop::control_plane::kubelet::mark_running(&f.pods, "force-worker-0", true)
        .await
        .expect("running");
    f.pods
        .delete("force-worker-0", &DeleteParams::default())
        .await
        .expect("delete");
    // Force-deleted after 2 s, counted as deleted by others (transient), retried for free.
    let second = next_pod(&f.pods, "force-worker-0", Some(&first)).await;
    assert_ne!(first, second);
    // The status may first show the new attempt still pending creation: wait for its pod.
    let status = status_when(&f.frameworks, "force", "the retry's pod recorded", |s| {
        let task = &s.attempt_status.task_role_statuses[0].task_statuses[0];
        task.attempt_status.id == 1
            && matches!(
                task.state,
                TaskState::AttemptCreationRequested | TaskState::AttemptPreparing
            )
    })
    .await;
    let task = &status.attempt_status.task_role_statuses[0].task_statuses[0];
    assert_eq!(task.retry_policy_status.accountable_retried_count, 0);
}

#[tokio::test]
async fn a_killed_and_restarted_controller_creates_no_duplicate_pod_and_continues() {
    let Some(ns) = support::namespace("fw-restart").await else {
        return;
    };
    job_support::install_crds(&ns.client).await;
    let kubeconfig = support::kubeconfig().expect("kubeconfig of the test cluster");
    let frameworks: Api<Framework> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let history = PodHistory::start(pods.clone()).await;
    let controller = |extra: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kfop"))
            .args([
                "job-controller",
                "--kinds",
                "framework",
                "--namespace",
                &ns.name,
            ])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start kfop job-controller")
    };
    // Slow writes, so the kill (SIGKILL) lands in the middle of creating the pods.
    let mut first = controller(&["--api-qps", "10", "--api-burst", "1"]);
    create(&frameworks, batch("rs", 20, no_retry(), no_retry())).await;
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
    let recorded_before = frameworks
        .get("rs")
        .await
        .expect("rs")
        .status
        .expect("status");

    let _second = controller(&[]);
    let names: Vec<String> = (0..20).map(|i| format!("rs-worker-{i}")).collect();
    let status = status_when(&frameworks, "rs", "every pod recorded", |s| {
        s.attempt_status.task_role_statuses[0]
            .task_statuses
            .iter()
            .all(|t| t.attempt_status.pod_uid.is_some())
    })
    .await;
    // Every live pod is the one the status records; none of a task ever ran twice at once.
    for (i, name) in names.iter().enumerate() {
        let pod = next_pod(&pods, name, None).await;
        let task = &status.attempt_status.task_role_statuses[0].task_statuses[i];
        assert_eq!(Some(&pod), task.attempt_status.pod_uid.as_ref(), "{name}");
        // Pods whose UID was written before the kill are kept, not recreated.
        let before = &recorded_before.attempt_status.task_role_statuses[0].task_statuses[i];
        if let Some(uid) = &before.attempt_status.pod_uid {
            assert_eq!(
                uid, &pod,
                "{name} was recorded before the kill and must survive"
            );
        }
    }
    for (name, count) in history.counts() {
        assert!(count <= 2, "{name} was created {count} times");
    }
    // The status continues: the attempt completes once every task succeeds.
    for name in &names {
        finish(&pods, name, 0).await;
    }
    let status = completed(&frameworks, "rs").await;
    assert_eq!(code(&status), Some(0));
    assert_eq!(status.attempt_status.id, 0, "no framework retry");
    attempt_gone(&ns, "rs").await;
}

#[tokio::test]
async fn names_the_pod_names_could_not_hold_are_rejected_by_the_api_server() {
    let Some(ns) = support::namespace("fw-names").await else {
        return;
    };
    job_support::install_crds(&ns.client).await;
    let frameworks: Api<Framework> = Api::namespaced(ns.client.clone(), &ns.name);
    for (name, role) in [
        ("with-dash", "worker"),
        ("ok", "Upper"),
        ("ok", "dash-role"),
    ] {
        let mut framework = batch(name, 1, no_retry(), no_retry());
        framework["spec"]["taskRoles"][0]["name"] = json!(role);
        let framework: Framework = serde_json::from_value(framework).expect("json");
        let result = frameworks
            .create(&kube::api::PostParams::default(), &framework)
            .await;
        assert!(result.is_err(), "{name}/{role} must be rejected");
    }
}
