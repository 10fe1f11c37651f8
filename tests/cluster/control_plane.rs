//! Proof that the test cluster is a real Kubernetes: server-side apply and managedFields, CRDs,
//! the garbage collector, Deployments with the kubelet stand-in, Jobs, and namespace deletion.

use crate::support::{self, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kfop::control_plane::kubelet::{self, Termination};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::runtime::{conditions, wait::await_condition};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn deployment(name: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "registry.example/app:1"}]},
            },
        },
    })
}

/// The fields `manager` owns in `spec`, as the apiserver's managedFields list them.
fn owned_spec_fields(deployment: &Deployment, manager: &str) -> Vec<String> {
    deployment
        .managed_fields()
        .iter()
        .filter(|entry| entry.manager.as_deref() == Some(manager))
        .filter_map(|entry| entry.fields_v1.as_ref())
        .filter_map(|fields| fields.0.get("f:spec"))
        .filter_map(|spec| spec.as_object())
        .flat_map(|spec| spec.keys().cloned())
        .collect()
}

#[tokio::test]
async fn server_side_apply_records_field_managers() {
    let Some(ns) = support::namespace("ssa").await else {
        return;
    };
    let api: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);

    let first = api
        .patch(
            "web",
            &PatchParams::apply("manager-a"),
            &Patch::Apply(deployment("web", 1)),
        )
        .await
        .expect("first apply");
    let entry = first
        .managed_fields()
        .iter()
        .find(|e| e.manager.as_deref() == Some("manager-a"))
        .expect("manager-a in managedFields");
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert!(owned_spec_fields(&first, "manager-a").contains(&"f:replicas".to_string()));

    // Another manager changing an owned field conflicts unless it forces.
    let change = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                        "spec": {"replicas": 3}});
    let conflict = api
        .patch(
            "web",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(&change),
        )
        .await
        .expect_err("a conflicting apply without force fails");
    assert!(
        matches!(&conflict, kube::Error::Api(s) if s.code == 409),
        "{conflict}"
    );

    let second = api
        .patch(
            "web",
            &PatchParams::apply("manager-b").force(),
            &Patch::Apply(&change),
        )
        .await
        .expect("forced apply");
    assert_eq!(second.spec.replicas, Some(3));
    assert_eq!(
        owned_spec_fields(&second, "manager-b"),
        vec!["f:replicas".to_string()]
    );
    let a_fields = owned_spec_fields(&second, "manager-a");
    assert!(
        !a_fields.contains(&"f:replicas".to_string()),
        "{a_fields:?}"
    );
    assert!(a_fields.contains(&"f:template".to_string()), "{a_fields:?}");
}

#[tokio::test]
async fn custom_resource_definitions_are_served() {
    let Some(ns) = support::namespace("crd").await else {
        return;
    };
    let group = format!("{}.test.kfop.dev", ns.name);
    let crd_name = format!("widgets.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}],
        },
    }))
    .expect("CRD JSON");
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    tokio::time::timeout(
        TIMEOUT,
        await_condition(crds.clone(), &crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .expect("watching the CRD");

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3},
    }))
    .expect("widget JSON");
    // Established can precede the first successful request by a moment: retry the create briefly.
    eventually(TIMEOUT, "the Widget to be created", || async {
        widgets.create(&PostParams::default(), &widget).await.ok()
    })
    .await;
    let listed = widgets
        .list(&ListParams::default())
        .await
        .expect("list widgets");
    let names: Vec<String> = listed.items.iter().map(|w| w.name_any()).collect();
    assert_eq!(names, vec!["w1".to_string()]);
    assert_eq!(listed.items[0].data["spec"]["size"], json!(3));
    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .expect("delete CRD");
}

#[tokio::test]
async fn garbage_collector_deletes_dependents() {
    let Some(ns) = support::namespace("gc").await else {
        return;
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(ns.client.clone(), &ns.name);
    let owner: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("owner");
    let owner = config_maps
        .create(&PostParams::default(), &owner)
        .await
        .expect("create owner");
    let owner_ref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                            "uid": owner.uid().expect("owner uid")}]);
    let dependent: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "dependent", "ownerReferences": owner_ref}}),
    )
    .expect("dependent");
    config_maps
        .create(&PostParams::default(), &dependent)
        .await
        .expect("create dependent");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "dependent", "ownerReferences": owner_ref}}),
    )
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");

    config_maps
        .delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    eventually(
        TIMEOUT,
        "the garbage collector to delete the dependents",
        || async {
            let config_map_gone = config_maps.get_opt("dependent").await.ok()?.is_none();
            let secret_gone = secrets.get_opt("dependent").await.ok()?.is_none();
            (config_map_gone && secret_gone).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn deployment_becomes_available_with_the_kubelet_stand_in() {
    let Some(ns) = support::namespace("deploy").await else {
        return;
    };
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    deployments
        .patch(
            "web",
            &PatchParams::apply("kfop-test"),
            &Patch::Apply(deployment("web", 2)),
        )
        .await
        .expect("apply deployment");

    let names = eventually(TIMEOUT, "two pods from the ReplicaSet", || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let names: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    let owner = pods.get(&names[0]).await.expect("pod");
    assert_eq!(owner.owner_references()[0].kind, "ReplicaSet");

    for name in &names {
        let pod = kubelet::mark_running(&pods, name, true)
            .await
            .expect("mark running");
        assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    }
    eventually(TIMEOUT, "the Deployment to report Available", || async {
        let deployment = deployments.get("web").await.ok()?;
        let status = deployment.status?;
        let available = status.conditions?.iter().any(|c| {
            c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
        });
        (available && status.available_replicas == Some(2)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn job_controller_sees_pod_phases() {
    let Some(ns) = support::namespace("job").await else {
        return;
    };
    let jobs: Api<Job> = Api::namespaced(ns.client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let job = |name: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
               "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                   "containers": [{"name": "main", "image": "registry.example/job:1"}]}}}})
    };
    for name in ["passes", "fails"] {
        jobs.patch(
            name,
            &PatchParams::apply("kfop-test"),
            &Patch::Apply(job(name)),
        )
        .await
        .expect("apply job");
    }
    let pod_of = |job: &'static str| {
        let pods = pods.clone();
        async move {
            eventually(TIMEOUT, "the Job's pod", || async {
                let list = pods
                    .list(&ListParams::default().labels(&format!("job-name={job}")))
                    .await
                    .ok()?;
                list.items.first().map(|p| p.name_any())
            })
            .await
        }
    };
    let passing = pod_of("passes").await;
    kubelet::mark_running(&pods, &passing, true)
        .await
        .expect("running");
    kubelet::mark_succeeded(&pods, &passing)
        .await
        .expect("succeeded");
    let failing = pod_of("fails").await;
    let failed = kubelet::mark_failed(&pods, &failing, &Termination::exit(3))
        .await
        .expect("failed");
    let terminated = failed
        .status
        .and_then(|s| s.container_statuses)
        .expect("container statuses");
    assert_eq!(
        terminated[0]
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code),
        Some(3)
    );

    for (name, condition) in [("passes", "Complete"), ("fails", "Failed")] {
        eventually(
            TIMEOUT,
            &format!("Job {name} to be {condition}"),
            || async {
                let job = jobs.get(name).await.ok()?;
                job.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == condition && c.status == "True")
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn namespace_deletion_completes() {
    let Some(ns) = support::namespace("nsdel").await else {
        return;
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "data"}})).expect("cm");
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let namespaces: Api<Namespace> = Api::all(ns.client.clone());
    namespaces
        .delete(&ns.name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually(TIMEOUT, "the namespace to be gone", || async {
        namespaces
            .get_opt(&ns.name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}
