//! A converged install causes no write requests (measured with the API server's own
//! `apiserver_request_total`), and a restart — even `kill -9` in the middle of applying —
//! converges without duplicates, without deleting anything, and without a write storm.
//!
//! This file is its own test binary so that it has a control plane to itself: the API server's
//! counters then count kfop's requests only.

#[path = "cluster/operator_support.rs"]
#[allow(dead_code)]
mod operator_support;
#[path = "cluster/support.rs"]
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use operator_support::{self as op, App};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::eventually;

async fn writes(client: &kube::Client) -> BTreeMap<String, f64> {
    kfop::control_plane::metrics::write_requests(client)
        .await
        .expect("metrics")
}

fn difference(
    after: &BTreeMap<String, f64>,
    before: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    kfop::control_plane::metrics::growth(before, after)
}

/// `kfop run` as a child process, logging to `log`.
fn spawn_operator(kubeconfig: &Path, namespace: &str, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args(["run", "--namespace", namespace, "--resync-seconds", "2"])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kfop run")
}

fn log_lines(log: &Path) -> Vec<String> {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        let _ = file.read_to_string(&mut text);
    }
    text.lines().map(|l| l.to_string()).collect()
}

/// How many converged reconciles that wrote nothing the operator has logged.
fn idle_reconciles(log: &Path) -> usize {
    log_lines(log)
        .iter()
        .filter(|l| {
            l.contains("reconciled") && l.contains("written=0") && l.contains("converged=true")
        })
        .count()
}

/// Waits until the operator has logged `count` converged reconciles that wrote nothing.
async fn wait_idle_reconciles(log: &Path, count: usize) {
    eventually(
        op::TIMEOUT,
        "converged reconciles that write nothing",
        || async { (idle_reconciles(log) >= count).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_installs_write_nothing_and_restarts_converge_quietly() {
    let Some(ns) = support::namespace("idle").await else {
        return;
    };
    let kubeconfig = support::kubeconfig().expect("kubeconfig");
    op::install_crds(&ns.client).await;
    let repo = op::fixture_repo(&ns.name);
    let uri = format!("file://{}", repo.path().display());
    let apps = [
        App {
            name: "web",
            path: "web",
            overlays: &["extra"],
            parameters: &[],
        },
        App::plain("rbac"),
        App::plain("crd"),
    ];
    let logs = tempfile::tempdir().expect("log dir");
    let first_log = logs.path().join("first.log");
    let mut operator = spawn_operator(&kubeconfig, &ns.name, &first_log);
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &apps),
    )
    .await;

    // kill -9 as soon as the first objects exist, in the middle of applying.
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(ns.client.clone(), &ns.name);
    let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(ns.client.clone(), &ns.name);
    eventually(op::TIMEOUT, "the first object", || async {
        config_maps.get_opt("web-config").await.ok()?
    })
    .await;
    operator.kill().expect("kill -9");
    let _ = operator.wait();

    let second_log = logs.path().join("second.log");
    let mut operator = spawn_operator(&kubeconfig, &ns.name, &second_log);
    eventually(op::TIMEOUT, "the Deployment", || async {
        deployments.get_opt("web").await.ok()?
    })
    .await;
    // Pods appear when the ReplicaSet gets to them: keep marking them ready while waiting.
    let kfdefs: kube::Api<kfop::kfdef::KfDef> = kube::Api::namespaced(ns.client.clone(), &ns.name);
    let kfdef = eventually(op::TIMEOUT, "Available after the restart", || async {
        op::make_pods_ready(&ns.client, &ns.name).await;
        let kfdef = kfdefs.get("kf").await.ok()?;
        let observed = kfdef.status.as_ref()?.observed_generation == kfdef.metadata.generation;
        (observed && op::condition_true(&kfdef, "Available")).then_some(kfdef)
    })
    .await;
    let inventory = kfdef.status.expect("status").inventory;
    assert_eq!(inventory.len(), 7, "{inventory:?}");
    let uids: BTreeMap<String, String> = config_maps
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap_or_default(),
                c.metadata.uid.unwrap_or_default(),
            )
        })
        .collect();

    // Idle: the window holds at least three resyncs (every 2 s), each comparing everything and
    // writing nothing.
    wait_idle_reconciles(&second_log, 1).await;
    let before = writes(&ns.client).await;
    assert!(
        before.keys().any(|k| k.starts_with("APPLY")),
        "the metrics show no applies at all: {before:?}"
    );
    let window = Instant::now();
    let quiet_before = idle_reconciles(&second_log);
    wait_idle_reconciles(&second_log, quiet_before + 3).await;
    let idle = difference(&writes(&ns.client).await, &before);
    assert!(idle.is_empty(), "an idle install wrote: {idle:?}");
    assert!(
        window.elapsed() >= Duration::from_secs(3),
        "three resyncs 2 s apart took only {:?}",
        window.elapsed()
    );

    // A restart of a converged install: no write storm, nothing re-created.
    let before = writes(&ns.client).await;
    operator.kill().expect("kill -9");
    let _ = operator.wait();
    let third_log = logs.path().join("third.log");
    let mut operator = spawn_operator(&kubeconfig, &ns.name, &third_log);
    let started = Instant::now();
    wait_idle_reconciles(&third_log, 2).await;
    let restart = difference(&writes(&ns.client).await, &before);
    let total: f64 = restart.values().sum();
    assert!(total <= 2.0, "a restart wrote {total} times: {restart:?}");
    let after: BTreeMap<String, String> = config_maps
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap_or_default(),
                c.metadata.uid.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        after, uids,
        "objects were re-created or deleted across the restart"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let _ = operator.kill();
    let _ = operator.wait();
}
