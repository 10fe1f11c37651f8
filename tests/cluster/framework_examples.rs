//! FrameworkController's own examples (`tests/fixtures/framework/`, upstream's `example/framework`
//! byte for byte), created unchanged on the control plane and run to their end, the kubelet
//! stand-in exiting each container with the code the example's command would.

use crate::framework_support::{
    self as fw, attempt_gone, code, completed, create, finish, next_pod, run_attempt, status_when,
};
use crate::support::{self, TestNamespace};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kfop::framework::api::{Framework, FrameworkState, FrameworkStatus};
use kfop::framework::completion;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

struct Example {
    ns: TestNamespace,
    frameworks: Api<Framework>,
    pods: Api<Pod>,
    name: String,
    _controller: crate::job_support::RunningController,
}

/// Creates the Framework of fixture `file` (unchanged but for `edit`) in a new namespace that
/// holds the `frameworkbarrier` ServiceAccount the examples' prerequisites ask for.
async fn example(test: &str, file: &str, edit: impl FnOnce(&mut Value)) -> Option<Example> {
    let ns = support::namespace(test).await?;
    let controller = fw::start(&ns).await;
    let path = format!(
        "{}/tests/fixtures/framework/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut framework = docs
        .into_iter()
        .find(|d| d["kind"] == "Framework")
        .unwrap_or_else(|| panic!("{path}: no Framework"));
    edit(&mut framework);
    let accounts: Api<ServiceAccount> = Api::namespaced(ns.client.clone(), &ns.name);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "frameworkbarrier"}})).expect("sa");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("ServiceAccount frameworkbarrier");
    let frameworks: Api<Framework> = Api::namespaced(ns.client.clone(), &ns.name);
    let created = create(&frameworks, framework).await;
    Some(Example {
        frameworks,
        pods: Api::namespaced(ns.client.clone(), &ns.name),
        name: created.name_any(),
        ns,
        _controller: controller,
    })
}

impl Example {
    fn pod(&self, role: &str, index: u32) -> String {
        format!("{}-{role}-{index}", self.name)
    }

    async fn completed(&self) -> FrameworkStatus {
        let status = completed(&self.frameworks, &self.name).await;
        attempt_gone(&self.ns, &self.name).await;
        status
    }

    async fn stop(&self) {
        self.frameworks
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"executionType": "Stop"}})),
            )
            .await
            .expect("stop");
    }
}

#[tokio::test]
async fn batchsucceeded_completes_with_code_0() {
    let Some(e) = example("fwx-succeeded", "basic_batchsucceeded.yaml", |_| {}).await else {
        return;
    };
    run_attempt(&e.pods, &e.pod("worker", 0), None, 0).await;
    let status = e.completed().await;
    assert_eq!(code(&status), Some(0));
}

#[tokio::test]
async fn batchfailedpermanent_completes_with_code_210_without_retry() {
    let Some(e) = example("fwx-permanent", "basic_batchfailedpermanent.yaml", |_| {}).await else {
        return;
    };
    run_attempt(&e.pods, &e.pod("worker", 0), None, 210).await;
    let status = e.completed().await;
    assert_eq!(code(&status), Some(210));
    assert_eq!(status.retry_policy_status.total_retried_count, 0);
}

#[tokio::test]
async fn batchfailedtransient_is_retried_without_counting() {
    let Some(e) = example("fwx-transient", "basic_batchfailedtransient.yaml", |_| {}).await else {
        return;
    };
    let pod = e.pod("worker", 0);
    let first = run_attempt(&e.pods, &pod, None, 200).await;
    let second = run_attempt(&e.pods, &pod, Some(&first), 200).await;
    run_attempt(&e.pods, &pod, Some(&second), 0).await;
    let status = e.completed().await;
    assert_eq!(code(&status), Some(0));
    let task = &status.attempt_status.task_role_statuses[0].task_statuses[0];
    assert_eq!(task.retry_policy_status.total_retried_count, 2);
    assert_eq!(task.retry_policy_status.accountable_retried_count, 0);
}

#[tokio::test]
async fn batchfailedtransientconflict_retries_the_framework_after_a_delay() {
    let Some(e) = example(
        "fwx-conflict",
        "basic_batchfailedtransientconflict.yaml",
        |_| {},
    )
    .await
    else {
        return;
    };
    let pod = e.pod("worker", 0);
    let first = run_attempt(&e.pods, &pod, None, 201).await;
    let scheduled = status_when(&e.frameworks, &e.name, "a delayed retry", |s| {
        s.retry_policy_status.total_retried_count == 1
            || s.retry_policy_status.retry_delay_sec.is_some()
    })
    .await;
    if scheduled.retry_policy_status.total_retried_count == 0 {
        assert_eq!(scheduled.retry_policy_status.retry_delay_sec, Some(1));
        assert_eq!(code(&scheduled), Some(201));
    }
    run_attempt(&e.pods, &pod, Some(&first), 0).await;
    let status = e.completed().await;
    assert_eq!(code(&status), Some(0));
    assert_eq!(status.retry_policy_status.total_retried_count, 1);
    assert_eq!(status.retry_policy_status.accountable_retried_count, 0);
}

#[tokio::test]
async fn batchfailedunknown_is_retried_within_max_retry_count_then_fails_with_its_exit_code() {
    let Some(e) = example("fwx-unknown", "basic_batchfailedunknown.yaml", |_| {}).await else {
        return;
    };
    let pod = e.pod("worker", 0);
    let mut previous = None;
    // Task retried once per attempt, framework retried once: four failures in all.
    for _ in 0..4 {
        previous = Some(run_attempt(&e.pods, &pod, previous.as_deref(), 1).await);
    }
    let status = e.completed().await;
    assert_eq!(code(&status), Some(1));
    assert_eq!(status.retry_policy_status.accountable_retried_count, 1);
    let completion = status.attempt_status.completion_status.expect("completion");
    assert_eq!(completion.status.phrase, "ContainerUnrecognizedFailed");
}

#[tokio::test]
async fn batchstatefulfailed_fails_once_a_task_exhausts_its_retries() {
    let Some(e) = example("fwx-stateful", "basic_batchstatefulfailed.yaml", |_| {}).await else {
        return;
    };
    for index in 0..3 {
        next_pod(&e.pods, &e.pod("worker", index), None).await;
    }
    let pod = e.pod("worker", 1);
    let mut previous = None;
    for _ in 0..4 {
        previous = Some(run_attempt(&e.pods, &pod, previous.as_deref(), 1).await);
    }
    let status = e.completed().await;
    assert_eq!(code(&status), Some(1));
    let trigger = status
        .attempt_status
        .completion_status
        .and_then(|c| c.trigger)
        .expect("trigger");
    assert_eq!(trigger.task_index, 1);
}

#[tokio::test]
async fn batchwithservicesucceeded_succeeds_when_every_worker_did() {
    let Some(e) = example(
        "fwx-withservice",
        "basic_batchwithservicesucceeded.yaml",
        |_| {},
    )
    .await
    else {
        return;
    };
    for index in 0..2 {
        let server = e.pod("server", index);
        next_pod(&e.pods, &server, None).await;
        kfop::control_plane::kubelet::mark_running(&e.pods, &server, true)
            .await
            .expect("server running");
    }
    for index in 0..3 {
        run_attempt(&e.pods, &e.pod("worker", index), None, 0).await;
    }
    let status = e.completed().await;
    let completion = status.attempt_status.completion_status.expect("completion");
    assert_eq!(completion.status.code, 0);
    let trigger = completion.trigger.expect("trigger");
    assert_eq!(trigger.task_role_name, "worker");
    assert!(
        trigger.message.contains("MinSucceededTaskCount 3"),
        "{}",
        trigger.message
    );
}

#[tokio::test]
async fn service_runs_until_stopped_and_is_retried_even_after_success() {
    let Some(e) = example("fwx-service", "basic_service.yaml", |_| {}).await else {
        return;
    };
    for index in 0..3 {
        let pod = e.pod("server", index);
        next_pod(&e.pods, &pod, None).await;
        kfop::control_plane::kubelet::mark_running(&e.pods, &pod, true)
            .await
            .expect("running");
    }
    status_when(&e.frameworks, &e.name, "running", |s| {
        s.state == FrameworkState::AttemptRunning
    })
    .await;
    // maxRetryCount -2: even a success is retried.
    let pod = e.pod("server", 0);
    let first = e.pods.get(&pod).await.expect("pod").uid();
    finish(&e.pods, &pod, 0).await;
    next_pod(&e.pods, &pod, first.as_deref()).await;
    e.stop().await;
    let status = e.completed().await;
    assert_eq!(code(&status), Some(completion::STOP_FRAMEWORK_REQUESTED));
}

#[tokio::test]
async fn servicestateful_pods_get_their_placeholders_replaced() {
    let Some(e) = example("fwx-stateful-svc", "basic_servicestateful.yaml", |_| {}).await else {
        return;
    };
    for index in 0..3 {
        next_pod(&e.pods, &e.pod("serverstateful", index), None).await;
        let pod = e
            .pods
            .get(&e.pod("serverstateful", index))
            .await
            .expect("pod");
        let spec = pod.spec.expect("spec");
        assert_eq!(
            spec.hostname,
            Some(format!("serverstateful-{index}")),
            "{{{{FC_TASKROLE_NAME}}}}-{{{{FC_TASK_INDEX}}}}"
        );
        assert_eq!(spec.subdomain.as_deref(), Some("servicestateful"));
        let labels = pod.metadata.labels.expect("labels");
        assert_eq!(labels["FC_TASK_INDEX"], index.to_string());
    }
    e.stop().await;
    assert_eq!(
        code(&e.completed().await),
        Some(completion::STOP_FRAMEWORK_REQUESTED)
    );
}

#[tokio::test]
async fn frameworkbarrier_completes_when_all_twenty_tasks_succeed() {
    let Some(e) = example("fwx-barrier", "extension_frameworkbarrier.yaml", |_| {}).await else {
        return;
    };
    for role in ["server", "worker"] {
        for index in 0..10 {
            run_attempt(&e.pods, &e.pod(role, index), None, 0).await;
        }
    }
    let status = e.completed().await;
    assert_eq!(code(&status), Some(0));
    let completion = status.attempt_status.completion_status.expect("completion");
    assert!(
        completion
            .status
            .diagnostics
            .contains("CompletedTaskCount 20")
    );
}

/// Runs a TensorFlow example: parameter servers run, the three workers succeed, which completes
/// the attempt (`minSucceededTaskCount: 3`) with code 0.
async fn tensorflow_succeeds(e: Example) {
    for index in 0..2 {
        let ps = e.pod("ps", index);
        next_pod(&e.pods, &ps, None).await;
        kfop::control_plane::kubelet::mark_running(&e.pods, &ps, true)
            .await
            .expect("ps running");
    }
    for index in 0..3 {
        run_attempt(&e.pods, &e.pod("worker", index), None, 0).await;
    }
    let status = e.completed().await;
    let completion = status.attempt_status.completion_status.expect("completion");
    assert_eq!(completion.status.code, 0);
    assert_eq!(
        completion.trigger.expect("trigger").task_role_name,
        "worker"
    );
    let ps = &status.attempt_status.task_role_statuses[0].task_statuses[0];
    assert_eq!(ps.attempt_status.pod_ip.as_deref(), Some("10.244.0.10"));
    assert_eq!(
        ps.attempt_status
            .completion_status
            .as_ref()
            .map(|c| c.status.code),
        Some(completion::FRAMEWORK_ATTEMPT_COMPLETION)
    );
}

#[tokio::test]
async fn tensorflow_cpu_succeeds_when_its_workers_do() {
    let file = "scenario_tensorflow_ps_cpu_tensorflowdistributedtrainingwithcpu.yaml";
    if let Some(e) = example("fwx-tf-cpu", file, |_| {}).await {
        tensorflow_succeeds(e).await;
    }
}

#[tokio::test]
async fn tensorflow_gpu_succeeds_when_its_workers_do() {
    let file =
        "scenario_tensorflow_ps_gpu_tensorflowdistributedtrainingwithdefaultscheduledgpu.yaml";
    if let Some(e) = example("fwx-tf-gpu", file, |_| {}).await {
        tensorflow_succeeds(e).await;
    }
}

const HIVED: &str =
    "scenario_tensorflow_ps_gpu_tensorflowdistributedtrainingwithhivedscheduledgpu.yaml";

/// The HiveD example needs the cluster's `prod-priority` PriorityClass (its prerequisite): without
/// it every pod is forbidden, an unknown pod creation error (-310) that the framework retries per
/// its `maxRetryCount` (2) before completing with it; with it, it runs like the others. (One test:
/// the PriorityClass is cluster-wide.)
#[tokio::test]
async fn tensorflow_hived_fails_with_code_minus_310_without_its_priority_class_and_succeeds_with_it()
 {
    let Some(e) = example("fwx-tf-hived", HIVED, |_| {}).await else {
        return;
    };
    let classes: Api<PriorityClass> = Api::all(e.ns.client.clone());
    assert!(
        classes
            .get_opt("prod-priority")
            .await
            .expect("get")
            .is_none(),
        "no other test creates prod-priority"
    );
    let status = e.completed().await;
    assert_eq!(code(&status), Some(completion::POD_CREATION_UNKNOWN_ERROR));
    assert_eq!(status.retry_policy_status.total_retried_count, 2);
    assert_eq!(status.retry_policy_status.accountable_retried_count, 2);
    let completion = status.attempt_status.completion_status.expect("completion");
    assert!(
        completion.status.diagnostics.contains("prod-priority"),
        "{}",
        completion.status.diagnostics
    );

    let class: PriorityClass =
        serde_json::from_value(json!({"metadata": {"name": "prod-priority"}, "value": 1000}))
            .expect("PriorityClass");
    classes
        .create(&PostParams::default(), &class)
        .await
        .expect("PriorityClass prod-priority");
    let with_class = example("fwx-tf-hived-ok", HIVED, |_| {}).await;
    if let Some(e) = with_class {
        tensorflow_succeeds(e).await;
    }
    classes
        .delete("prod-priority", &Default::default())
        .await
        .expect("delete PriorityClass");
}
