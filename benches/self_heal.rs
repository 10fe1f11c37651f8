//! Self-heal benchmark on the local control plane: an install of 500 managed objects, 100
//! deletions one after another, the time from each delete to the object being back (p50/p99),
//! the operator's peak RSS, and the write requests the API server served over an idle window.
//!
//! Run with `cargo bench --bench self_heal` (or `hack/bench-self-heal.sh`). `OBJECTS`, `DELETIONS`
//! and `IDLE_SECONDS` override the sizes. Needs the binaries `make control-plane` builds.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start_cluster() -> Option<(Child, String)> {
    let dir = kfop::control_plane::Binaries::default_dir();
    if kfop::control_plane::Binaries::in_dir(&dir).is_err() {
        eprintln!(
            "skipping: no control plane binaries in {} (run make control-plane)",
            dir.display()
        );
        return None;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args(["local-cluster", "--exit-on-stdin-eof", "--no-fake-kubelet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kfop local-cluster");
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(path) = line.strip_prefix("KUBECONFIG=") {
            return Some((child, path.to_string()));
        }
    }
    let _ = child.wait();
    panic!("the local control plane did not start");
}

async fn writes(client: &Client) -> std::collections::BTreeMap<String, f64> {
    kfop::control_plane::metrics::write_requests(client)
        .await
        .expect("metrics")
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let objects = env_number("OBJECTS", 500);
    let deletions = env_number("DELETIONS", 100).min(objects);
    let idle_seconds = env_number("IDLE_SECONDS", 60);
    let Some((_cluster, kubeconfig)) = start_cluster() else {
        return;
    };
    let client = kfop::control_plane::client_for_kubeconfig(std::path::Path::new(&kubeconfig))
        .await
        .expect("client");
    let namespace = "bench";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");

    // A repo with one application of `objects` ConfigMaps.
    let repo = tempfile::tempdir().expect("repo");
    let app = repo.path().join("bulk");
    std::fs::create_dir_all(&app).expect("app dir");
    let mut manifest = String::new();
    for i in 0..objects {
        manifest.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: item-{i}\ndata:\n  index: \"{i}\"\n"));
    }
    std::fs::write(app.join("objects.yaml"), manifest).expect("manifest");
    std::fs::write(
        app.join("kustomization.yaml"),
        "resources:\n- objects.yaml\n",
    )
    .expect("kustomization");

    let operator = Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args(["run", "--install-crds", "--namespace", namespace])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kfop run");
    let pid = operator.id();
    let _operator = KillOnDrop(operator);

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let kfdefs: Api<kfop::kfdef::KfDef> = Api::namespaced(client.clone(), namespace);
    let kfdef = json!({
        "apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef",
        "metadata": {"name": "bench", "namespace": namespace},
        "spec": {"repos": [{"name": "r", "uri": repo.path().display().to_string()}],
                 "applications": [{"name": "bulk", "kustomizeConfig": {"repoRef": {"name": "r", "path": "bulk"}}}]},
    });
    let started = Instant::now();
    loop {
        // The CRD may still be installing.
        if kfdefs
            .patch(
                "bench",
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&kfdef),
            )
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "could not create the KfDef"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let available = kfdefs
            .get("bench")
            .await
            .ok()
            .and_then(|k| k.status)
            .is_some_and(|s| {
                s.inventory.len() == objects
                    && s.condition("Available")
                        .is_some_and(|c| c.status == kfop::kfdef::ConditionStatus::True)
            });
        if available {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the install did not converge"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let converge = started.elapsed();

    // Every (re)creation as the watch sees it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, Instant)>();
    let watch_api = config_maps.clone();
    tokio::spawn(async move {
        let mut stream = watcher(watch_api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(cm)) = stream.next().await {
            let _ = tx.send((cm.name_any(), cm.uid().unwrap_or_default(), Instant::now()));
        }
    });
    let mut latencies = Vec::new();
    for i in 0..deletions {
        let name = format!("item-{i}");
        let old_uid = config_maps
            .get(&name)
            .await
            .expect("get")
            .uid()
            .unwrap_or_default();
        while rx.try_recv().is_ok() {}
        let deleted_at = Instant::now();
        config_maps
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
        let back = loop {
            let (seen, uid, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("the object came back within 30 s")
                .expect("watch");
            if seen == name && uid != old_uid {
                break at;
            }
        };
        latencies.push(back - deleted_at);
    }
    latencies.sort();

    // Let the last heals' events land, then measure.
    let mut settled = writes(&client).await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = writes(&client).await;
        if now == settled {
            break;
        }
        settled = now;
    }
    let before = settled;
    tokio::time::sleep(Duration::from_secs(idle_seconds as u64)).await;
    let after = writes(&client).await;
    let idle = kfop::control_plane::metrics::growth(&before, &after);
    let idle_writes = idle.values().sum::<f64>().max(0.0);

    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    println!("managed objects:              {objects}");
    println!(
        "install converged in:         {:.1} s",
        converge.as_secs_f64()
    );
    println!("deletions healed:             {}", latencies.len());
    println!(
        "delete -> re-created p50:     {:.1} ms",
        p50.as_secs_f64() * 1000.0
    );
    println!(
        "delete -> re-created p99:     {:.1} ms",
        p99.as_secs_f64() * 1000.0
    );
    println!(
        "delete -> re-created max:     {:.1} ms",
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    println!(
        "vs the Go operator (10-15 s): {:.0}x faster at p99",
        10.0 / p99.as_secs_f64().max(1e-6)
    );
    println!(
        "operator peak RSS:            {:.1} MiB",
        peak_rss_kib(pid) as f64 / 1024.0
    );
    println!("writes over {idle_seconds} s idle:        {idle_writes} {idle:?}");
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
