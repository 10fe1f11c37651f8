//! The PyTorchJob controller on a real control plane, and gang scheduling (Volcano and
//! scheduler-plugins PodGroups, served by stand-in CRDs).

use crate::job_support::{
    self, TIMEOUT, apply_crds, create, is, pod_names, pods_named, replica, start, status_when,
};
use crate::support::{self, eventually};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kfop::control_plane::kubelet::{self, Termination};
use kfop::jobs::api::ConditionType;
use kfop::jobs::controller::Kind;
use kfop::jobs::gang::GangScheduler;
use kfop::jobs::pytorch::PyTorchJob;
use kfop::jobs::tensorflow::TFJob;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn pytorchjob(name: &str, specs: Value, extra: Value) -> Value {
    let mut job = json!({
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": specs},
    });
    if let (Some(spec), Some(extra)) = (job["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    job
}

fn env_of(pod: &Pod, container: &str) -> Vec<(String, String)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| c.name == container)
        .flat_map(|c| c.env.iter().flatten())
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn pytorchjob_env_of_every_pod_matches_training_operator() {
    let Some(ns) = support::namespace("pt-env").await else {
        return;
    };
    let _controller = start(&ns, &[Kind::PyTorchJob], job_support::options(&ns)).await;
    let jobs: Api<PyTorchJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let mut master = replica(1, "pytorch", "OnFailure");
    master["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "USER_SET", "value": "yes"}]);
    let specs = json!({"Master": master, "Worker": replica(2, "pytorch", "OnFailure")});
    create(
        &jobs,
        pytorchjob("ddp", specs, json!({"nprocPerNode": "2"})),
    )
    .await;
    let all = pods_named(&pods, &["ddp-master-0", "ddp-worker-0", "ddp-worker-1"]).await;
    for (pod, rank) in all.iter().zip(["0", "1", "2"]) {
        let mut expected: Vec<(String, String)> = Vec::new();
        if pod.name_any() == "ddp-master-0" {
            expected.push(("USER_SET".into(), "yes".into()));
        }
        expected.extend(
            [
                ("PYTHONUNBUFFERED", "1"),
                ("MASTER_PORT", "23456"),
                ("PET_MASTER_PORT", "23456"),
                ("MASTER_ADDR", "ddp-master-0"),
                ("PET_MASTER_ADDR", "ddp-master-0"),
                ("WORLD_SIZE", "6"),
                ("RANK", rank),
                ("PET_NODE_RANK", rank),
                ("PET_NPROC_PER_NODE", "2"),
                ("PET_NNODES", "3"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(
            env_of(pod, "pytorch"),
            expected,
            "env of {}",
            pod.name_any()
        );
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
        let ports = spec.containers[0].ports.clone().unwrap_or_default();
        assert!(
            ports
                .iter()
                .any(|p| p.name.as_deref() == Some("pytorchjob-port") && p.container_port == 23456)
        );
        let role = pod
            .labels()
            .get("training.kubeflow.org/job-role")
            .map(String::as_str);
        assert_eq!(role, (rank == "0").then_some("master"));
    }
}

#[tokio::test]
async fn pytorchjob_succeeds_with_its_master_after_a_worker_restart() {
    let Some(ns) = support::namespace("pt-master").await else {
        return;
    };
    let _controller = start(&ns, &[Kind::PyTorchJob], job_support::options(&ns)).await;
    let jobs: Api<PyTorchJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let specs = json!({"Master": replica(1, "pytorch", "OnFailure"), "Worker": replica(1, "pytorch", "OnFailure")});
    create(&jobs, pytorchjob("pm", specs, json!({}))).await;
    let before = pods_named(&pods, &["pm-master-0", "pm-worker-0"]).await;
    kubelet::mark_running(&pods, "pm-master-0", true)
        .await
        .expect("run");
    kubelet::mark_failed(&pods, "pm-worker-0", &Termination::exit(1))
        .await
        .expect("fail");
    let status = status_when(&jobs, "pm", "the restart recorded", |s| s.restarts == 1).await;
    assert!(!is(&status, ConditionType::Failed));
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(ns.client.clone(), &ns.name);
    eventually(TIMEOUT, "a PyTorchJobRestarting event", || async {
        let list = events.list(&kube::api::ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("PyTorchJobRestarting"))
            .then_some(())
    })
    .await;
    eventually(TIMEOUT, "a new pm-worker-0", || async {
        let pod = pods.get_opt("pm-worker-0").await.ok()??;
        (pod.uid() != before[1].uid()).then_some(())
    })
    .await;
    kubelet::mark_succeeded(&pods, "pm-master-0")
        .await
        .expect("succeed");
    let status = status_when(&jobs, "pm", "Succeeded", |s| {
        is(s, ConditionType::Succeeded)
    })
    .await;
    assert_eq!(
        status.conditions.last().and_then(|c| c.reason.as_deref()),
        Some("PyTorchJobSucceeded")
    );
}

#[tokio::test]
async fn an_elastic_pytorchjob_gets_its_autoscaler_and_follows_its_scale() {
    let Some(ns) = support::namespace("pt-elastic").await else {
        return;
    };
    let _controller = start(&ns, &[Kind::PyTorchJob], job_support::options(&ns)).await;
    let jobs: Api<PyTorchJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let no_workers: PyTorchJob = serde_json::from_value(pytorchjob(
        "nw",
        json!({"Master": replica(1, "pytorch", "OnFailure")}),
        json!({"elasticPolicy": {"maxReplicas": 3}}),
    ))
    .expect("job");
    let error = jobs
        .create(&PostParams::default(), &no_workers)
        .await
        .expect_err("refused at admission");
    assert!(
        error
            .to_string()
            .contains("must be configured if elastic policy is used"),
        "{error}"
    );
    let metrics = json!([{"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    create(
        &jobs,
        pytorchjob(
            "el",
            json!({"Worker": replica(2, "pytorch", "OnFailure")}),
            json!({"elasticPolicy": {"minReplicas": 1, "maxReplicas": 4, "maxRestarts": 3,
                "metrics": metrics}}),
        ),
    )
    .await;
    let created = pods_named(&pods, &["el-worker-0", "el-worker-1"]).await;
    let env = env_of(&created[1], "pytorch");
    assert!(
        env.contains(&("PET_RDZV_ENDPOINT".into(), "el-worker-0:23456".into()))
            && env.contains(&("PET_NNODES".into(), "1:4".into()))
            && !env.iter().any(|(k, _)| k == "MASTER_ADDR"),
        "{env:?}"
    );
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(ns.client.clone(), &ns.name);
    let hpa = eventually(TIMEOUT, "the autoscaler", || async {
        autoscalers.get_opt("el").await.ok().flatten()
    })
    .await;
    let spec = hpa.spec;
    assert_eq!(
        (
            spec.scale_target_ref.kind.as_str(),
            spec.min_replicas,
            spec.max_replicas
        ),
        ("PyTorchJob", Some(1), 4)
    );
    // What the autoscaler does: write the Workers' replicas through the scale subresource.
    let scale = |replicas: i32| {
        let jobs = jobs.clone();
        async move {
            jobs.patch_scale(
                "el",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .expect("scale")
        }
    };
    scale(4).await;
    pods_named(
        &pods,
        &["el-worker-0", "el-worker-1", "el-worker-2", "el-worker-3"],
    )
    .await;
    scale(1).await;
    eventually(TIMEOUT, "the scale-down to one worker", || async {
        (pod_names(&pods).await == ["el-worker-0"]).then_some(())
    })
    .await;
    let selector = jobs
        .get_scale("el")
        .await
        .expect("scale")
        .status
        .and_then(|s| s.selector);
    assert_eq!(
        selector.as_deref(),
        Some(
            "training.kubeflow.org/job-name=el,training.kubeflow.org/operator-name=pytorchjob-controller,training.kubeflow.org/replica-type=worker"
        ),
        "the autoscaler finds the Workers with it"
    );
    jobs.patch(
        "el",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"runPolicy": {"suspend": true}}})),
    )
    .await
    .expect("suspend");
    eventually(
        TIMEOUT,
        "the autoscaler to go with the suspension",
        || async {
            autoscalers
                .get_opt("el")
                .await
                .ok()
                .and_then(|found| found.is_none().then_some(()))
        },
    )
    .await;
}

/// A stand-in PodGroup CRD (the schedulers are not installed): any spec and status.
fn pod_group_crd(group: &str, version: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("podgroups.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "podgroups", "singular": "podgroup", "kind": "PodGroup"},
            "versions": [{"name": version, "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .expect("PodGroup CRD")
}

fn tfjob(name: &str, specs: Value) -> Value {
    json!({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": name},
           "spec": {"tfReplicaSpecs": specs, "runPolicy": {"schedulingPolicy": {"queue": "research"}}}})
}

#[tokio::test]
async fn volcano_gang_scheduling_waits_for_the_pod_group() {
    let Some(ns) = support::namespace("gang-volcano").await else {
        return;
    };
    apply_crds(
        &ns.client,
        vec![pod_group_crd("scheduling.volcano.sh", "v1beta1")],
    )
    .await;
    let mut options = job_support::options(&ns);
    options.engine.gang = Some(GangScheduler::Volcano);
    let _controller = start(&ns, &[Kind::TFJob], options).await;
    let jobs: Api<TFJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "scheduling.volcano.sh",
        "v1beta1",
        "PodGroup",
    ));
    let groups: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    create(&jobs, tfjob("gv", json!({"PS": replica(1, "tensorflow", "Never"), "Worker": replica(2, "tensorflow", "Never")}))).await;
    let group = eventually(TIMEOUT, "the PodGroup", || async {
        groups.get_opt("gv").await.ok()?
    })
    .await;
    assert_eq!(group.data["spec"]["minMember"], 3);
    assert_eq!(group.data["spec"]["queue"], "research");
    assert_eq!(group.owner_references()[0].kind, "TFJob");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        pod_names(&pods).await.is_empty(),
        "no pods before Volcano admits the gang"
    );

    let admitted = json!({"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup", "status": {"phase": "Inqueue"}});
    groups
        .patch_status(
            "gv",
            &PatchParams::apply("volcano-stand-in").force(),
            &Patch::Apply(&admitted),
        )
        .await
        .expect("admit the gang");
    let created = pods_named(&pods, &["gv-ps-0", "gv-worker-0", "gv-worker-1"]).await;
    for pod in &created {
        let annotations: &BTreeMap<String, String> = pod.annotations();
        assert_eq!(annotations["scheduling.k8s.io/group-name"], "gv");
        assert_eq!(
            annotations["volcano.sh/task-spec"],
            pod.labels()["training.kubeflow.org/replica-type"]
        );
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()),
            Some("volcano")
        );
    }
}

#[tokio::test]
async fn scheduler_plugins_gang_labels_pods_and_deletes_the_group_when_done() {
    let Some(ns) = support::namespace("gang-coscheduling").await else {
        return;
    };
    apply_crds(
        &ns.client,
        vec![pod_group_crd("scheduling.x-k8s.io", "v1alpha1")],
    )
    .await;
    let mut options = job_support::options(&ns);
    options.engine.gang = Some(GangScheduler::SchedulerPlugins(
        "scheduler-plugins-scheduler".into(),
    ));
    let _controller = start(&ns, &[Kind::TFJob], options).await;
    let jobs: Api<TFJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "scheduling.x-k8s.io",
        "v1alpha1",
        "PodGroup",
    ));
    let groups: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    create(
        &jobs,
        tfjob("gs", json!({"Worker": replica(2, "tensorflow", "Never")})),
    )
    .await;
    let created = pods_named(&pods, &["gs-worker-0", "gs-worker-1"]).await;
    for pod in &created {
        assert_eq!(pod.labels()["scheduling.x-k8s.io/pod-group"], "gs");
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()),
            Some("scheduler-plugins-scheduler")
        );
    }
    let group = eventually(TIMEOUT, "the PodGroup", || async {
        groups.get_opt("gs").await.ok()?
    })
    .await;
    assert_eq!(group.data["spec"]["minMember"], 2);
    kubelet::mark_succeeded(&pods, "gs-worker-0")
        .await
        .expect("succeed");
    status_when(&jobs, "gs", "Succeeded", |s| {
        is(s, ConditionType::Succeeded)
    })
    .await;
    eventually(TIMEOUT, "the PodGroup deleted", || async {
        groups.get_opt("gs").await.ok()?.is_none().then_some(())
    })
    .await;
}
