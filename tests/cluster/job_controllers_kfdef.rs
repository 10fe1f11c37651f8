//! kfop's job controllers as managed children of a KfDef: the operator applies the `manifests/`
//! repo of this repository and puts the job controller's Deployment back when it is deleted.

use crate::operator_support::{self as op, App};
use crate::support::{self, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kfdef_deploys_and_heals_the_job_controllers() {
    let Some(ns) = support::namespace("job-controllers").await else {
        return;
    };
    let _operator = op::start(&ns.client, &ns.name).await;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let uri = format!("file://{}", repo.display());
    let apps = [
        App {
            name: "tf-job-controller",
            path: "tf-job-controller",
            overlays: &[],
            parameters: &[("namespace", ns.name.as_str())],
        },
        App {
            name: "pytorch-job-controller",
            path: "pytorch-job-controller",
            overlays: &["gang-volcano"],
            parameters: &[("namespace", ns.name.as_str())],
        },
        App {
            name: "framework-controller",
            path: "framework-controller",
            overlays: &[],
            parameters: &[("namespace", ns.name.as_str())],
        },
    ];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("jobs", &ns.name, &uri, &apps),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let tf = eventually(op::TIMEOUT, "the TFJob controller Deployment", || async {
        deployments.get_opt("tf-job-controller").await.ok()?
    })
    .await;
    let args = |d: &Deployment| {
        d.spec
            .template
            .spec
            .as_ref()
            .map(|s| s.containers[0].args.clone().unwrap_or_default())
            .unwrap_or_default()
    };
    // Each controller runs two replicas with leader election, metrics and probes.
    let serving = |lease: &str| {
        [
            "--leader-elect",
            "--leader-elect-lease",
            lease,
            "--metrics-addr",
            "0.0.0.0:8080",
            "--health-addr",
            "0.0.0.0:8081",
        ]
        .map(str::to_string)
    };
    let expected = |head: &[&str], lease: &str, tail: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = head.iter().map(|a| a.to_string()).collect();
        args.extend(serving(lease));
        args.extend(tail.iter().map(|a| a.to_string()));
        args
    };
    assert_eq!(
        args(&tf),
        expected(
            &["job-controller", "--kinds", "tfjob"],
            "tf-job-controller",
            &[]
        )
    );
    assert_eq!(
        tf.labels().get("kfop.dev/application").map(String::as_str),
        Some("tf-job-controller")
    );
    let pytorch = eventually(
        op::TIMEOUT,
        "the PyTorchJob controller Deployment",
        || async { deployments.get_opt("pytorch-job-controller").await.ok()? },
    )
    .await;
    assert_eq!(
        args(&pytorch),
        expected(
            &["job-controller", "--kinds", "pytorchjob"],
            "pytorch-job-controller",
            &["--gang-scheduler=volcano"]
        )
    );

    let framework = eventually(
        op::TIMEOUT,
        "the Framework controller Deployment",
        || async { deployments.get_opt("framework-controller").await.ok()? },
    )
    .await;
    assert_eq!(
        args(&framework),
        expected(
            &[
                "job-controller",
                "--kinds",
                "framework",
                "--framework-config",
                "/etc/frameworkcontroller/frameworkcontroller.yaml"
            ],
            "framework-controller",
            &[]
        )
    );
    // Its config is a generated ConfigMap (name with a content hash) mounted into the pod.
    let config = framework
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v.iter().find_map(|v| v.config_map.as_ref()))
        .map(|c| c.name.clone())
        .expect("a ConfigMap volume");
    assert!(
        config.starts_with("framework-controller-config-"),
        "{config}"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let data = eventually(op::TIMEOUT, "the Framework controller config", || async {
        config_maps.get_opt(&config).await.ok()??.data
    })
    .await;
    assert!(data["frameworkcontroller.yaml"].contains("podFailureSpec"));

    deployments
        .delete("tf-job-controller", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(
        op::TIMEOUT,
        "the TFJob controller to be re-created",
        || async {
            let now = deployments.get_opt("tf-job-controller").await.ok()??;
            (now.uid() != tf.uid()).then_some(())
        },
    )
    .await;
}
