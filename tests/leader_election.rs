//! Two `kfop run` replicas with leader election: one leads, the other stands by (ready, writing
//! nothing); `kill -9` of the leader hands over within the lease duration and the new leader heals.
//! The same run checks the endpoints: `/readyz` is 503 until the KfDef cache has synced,
//! `/metrics` counts a real heal in the heal latency histogram. The job controllers hand over the
//! same way, and the new leader creates a TFJob's pods.
//!
//! Its own test binary, so that it has a control plane to itself: no KfDef CRD exists until the
//! test installs it.

#[path = "cluster/operator_support.rs"]
#[allow(dead_code)]
mod operator_support;
#[path = "cluster/support.rs"]
mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use operator_support::{self as op, App};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::eventually;

/// The lease duration the replicas run with.
const LEASE_SECONDS: u64 = 4;

/// One `kfop run --leader-elect` or `kfop job-controller --leader-elect` child process and its
/// endpoints.
struct Replica {
    child: Child,
    log: PathBuf,
    endpoints: String,
}

impl Replica {
    fn start(kubeconfig: &Path, namespace: &str, name: &str, logs: &Path) -> Self {
        Self::start_command(kubeconfig, namespace, name, logs, &["run"])
    }

    fn start_command(
        kubeconfig: &Path,
        namespace: &str,
        name: &str,
        logs: &Path,
        command: &[&str],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let endpoints = format!("127.0.0.1:{port}");
        let log = logs.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_kfop"))
            .args(command)
            .args(["--namespace", namespace, "--leader-elect"])
            .args(["--leader-elect-namespace", namespace])
            .args(["--leader-elect-lease-seconds", &LEASE_SECONDS.to_string()])
            .args(["--metrics-addr", &endpoints])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start kfop run");
        Self {
            child,
            log,
            endpoints,
        }
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The index of the log line saying this replica leads.
    fn leading_line(&self) -> Option<usize> {
        self.lines().iter().position(|l| l.contains(" leading"))
    }

    /// Status code and body of `GET path` on the replica's endpoints.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("http://{}{path}", self.endpoints))
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Sends SIGTERM (a pod being shut down).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills `leader` (`kill -9`) and returns how long `standby` then took to lead: at most the lease
/// duration, plus the lease manager's random pause of up to a second after it clears an expired
/// lease, plus slack for a loaded machine.
async fn hand_over(leader: &mut Replica, standby: &Replica) -> Duration {
    leader.kill();
    let killed = Instant::now();
    eventually(
        Duration::from_secs(LEASE_SECONDS + 10),
        "the standby to lead",
        || async { standby.leading_line() },
    )
    .await;
    let handover = killed.elapsed();
    assert!(
        handover <= Duration::from_secs(LEASE_SECONDS + 3),
        "hand-over took {handover:?} with a {LEASE_SECONDS} s lease"
    );
    handover
}

/// The value of the sample `name` (with its labels, if any) in a metrics text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_killed_leader_and_heals() {
    let Some(ns) = support::namespace("leader").await else {
        return;
    };
    let kubeconfig = support::kubeconfig().expect("kubeconfig");
    let logs = tempfile::tempdir().expect("log dir");

    // The first replica leads; without the KfDef CRD its cache cannot sync: not ready.
    let mut first = Replica::start(&kubeconfig, &ns.name, "first", logs.path());
    eventually(op::TIMEOUT, "the first replica to lead", || async {
        first.leading_line()
    })
    .await;
    let (health, _) = eventually(op::TIMEOUT, "/healthz", || first.get("/healthz")).await;
    assert_eq!(health, 200);
    let (ready, body) = first.get("/readyz").await.expect("/readyz");
    assert_eq!(ready, 503, "ready without a KfDef CRD: {body}");
    op::install_crds(&ns.client).await;
    eventually(op::TIMEOUT, "/readyz once the cache synced", || async {
        (first.get("/readyz").await?.0 == 200).then_some(())
    })
    .await;

    // The second replica stands by, ready, and does nothing.
    let second = Replica::start(&kubeconfig, &ns.name, "second", logs.path());
    eventually(op::TIMEOUT, "the standby to be ready", || async {
        let waiting = second.lines().iter().any(|l| l.contains("waiting to lead"));
        (waiting && second.get("/readyz").await?.0 == 200).then_some(())
    })
    .await;

    let repo = op::fixture_repo(&ns.name);
    let uri = format!("file://{}", repo.path().display());
    let apps = [App::plain("web")];
    op::apply_kfdef(
        &ns.client,
        &ns.name,
        &op::kfdef("kf", &ns.name, &uri, &apps),
    )
    .await;
    let kfdefs: kube::Api<kfop::kfdef::KfDef> = kube::Api::namespaced(ns.client.clone(), &ns.name);
    eventually(op::TIMEOUT, "the KfDef Available", || async {
        op::make_pods_ready(&ns.client, &ns.name).await;
        let kfdef = kfdefs.get("kf").await.ok()?;
        let observed = kfdef.status.as_ref()?.observed_generation == kfdef.metadata.generation;
        (observed && op::condition_true(&kfdef, "Available")).then_some(())
    })
    .await;

    // A heal by the leader shows in its heal latency histogram.
    let config_maps: kube::Api<ConfigMap> = kube::Api::namespaced(ns.client.clone(), &ns.name);
    let uid_of = |config_map: ConfigMap| config_map.metadata.uid.unwrap_or_default();
    let old = uid_of(config_maps.get("web-config").await.expect("web-config"));
    config_maps
        .delete("web-config", &Default::default())
        .await
        .expect("delete web-config");
    let healed = eventually(op::HEAL, "web-config healed by the leader", || async {
        let uid = uid_of(config_maps.get_opt("web-config").await.ok()??);
        (uid != old).then_some(uid)
    })
    .await;
    let metrics = eventually(op::TIMEOUT, "the heal in /metrics", || async {
        let (_, text) = first.get("/metrics").await?;
        (sample(&text, "kfop_heal_latency_seconds_count")? >= 1.0).then_some(text)
    })
    .await;
    assert_eq!(sample(&metrics, "kfop_leader"), Some(1.0), "{metrics}");
    assert!(
        sample(&metrics, "kfop_heals_total{heal=\"missing\"}").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("kfop_reconcile_duration_seconds_count{kfdef="),
        "{metrics}"
    );
    let (_, standby_metrics) = second.get("/metrics").await.expect("standby /metrics");
    assert_eq!(
        sample(&standby_metrics, "kfop_leader"),
        Some(0.0),
        "{standby_metrics}"
    );

    // kill -9 the leader: the standby leads, then heals.
    let handover = hand_over(&mut first, &second).await;
    config_maps
        .delete("web-config", &Default::default())
        .await
        .expect("delete web-config again");
    eventually(
        op::TIMEOUT,
        "web-config healed by the new leader",
        || async {
            let uid = uid_of(config_maps.get_opt("web-config").await.ok()??);
            (uid != healed).then_some(())
        },
    )
    .await;
    eventually(op::TIMEOUT, "the new leader's heal in its log", || async {
        second
            .lines()
            .iter()
            .any(|l| l.contains("healed") && l.contains("web-config"))
            .then_some(())
    })
    .await;

    // Only the leader ever wrote: the standby logged no reconcile before it led, and the first
    // replica led once.
    let second_lines = second.lines();
    let led_at = second.leading_line().expect("leading");
    let before: Vec<&String> = second_lines[..led_at]
        .iter()
        .filter(|l| l.contains("reconciled") || l.contains("healed") || l.contains("apply"))
        .collect();
    assert!(before.is_empty(), "the standby worked: {before:?}");
    let first_led = first
        .lines()
        .iter()
        .filter(|l| l.contains(" leading"))
        .count();
    assert_eq!(first_led, 1);

    // A leader shut down releases the lease, and a standby leads at once: not after the lease it
    // last saw expires (between 1 and 4 s away with a 4 s lease renewed a second before expiry).
    let third = Replica::start(&kubeconfig, &ns.name, "third", logs.path());
    eventually(op::TIMEOUT, "the third replica to stand by", || async {
        let waiting = third.lines().iter().any(|l| l.contains("waiting to lead"));
        (waiting && third.get("/readyz").await?.0 == 200).then_some(())
    })
    .await;
    second.terminate();
    let terminated = Instant::now();
    eventually(op::TIMEOUT, "the third replica to lead", || async {
        third.leading_line()
    })
    .await;
    let graceful = terminated.elapsed();
    assert!(
        graceful < Duration::from_secs(1),
        "hand-over after SIGTERM took {graceful:?}"
    );
    eprintln!(
        "hand-over after kill -9 of the leader: {} ms, after SIGTERM: {} ms (lease {LEASE_SECONDS} s)",
        handover.as_millis(),
        graceful.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_job_controller_takes_over_and_creates_pods() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams, PostParams};
    let Some(ns) = support::namespace("job-leader").await else {
        return;
    };
    let kubeconfig = support::kubeconfig().expect("kubeconfig");
    let logs = tempfile::tempdir().expect("log dir");
    // The TFJob CRD only: the other test of this binary needs the KfDef CRD absent at first.
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(ns.client.clone());
    let tfjobs = kfop::crds::all()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("tfjobs.kubeflow.org"))
        .expect("the TFJob CRD");
    crds.patch(
        "tfjobs.kubeflow.org",
        &PatchParams::apply("kfop-test").force(),
        &Patch::Apply(&tfjobs),
    )
    .await
    .expect("apply the TFJob CRD");
    let command = ["job-controller", "--kinds", "tfjob"];
    let mut first =
        Replica::start_command(&kubeconfig, &ns.name, "first-jobs", logs.path(), &command);
    eventually(op::TIMEOUT, "the first job controller to lead", || async {
        first.leading_line()
    })
    .await;
    eventually(op::TIMEOUT, "its caches synced", || async {
        (first.get("/readyz").await?.0 == 200).then_some(())
    })
    .await;
    let second =
        Replica::start_command(&kubeconfig, &ns.name, "second-jobs", logs.path(), &command);
    eventually(op::TIMEOUT, "the standby job controller", || async {
        let waiting = second.lines().iter().any(|l| l.contains("waiting to lead"));
        (waiting && second.get("/readyz").await?.0 == 200).then_some(())
    })
    .await;

    let handover = hand_over(&mut first, &second).await;

    let jobs: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "kubeflow.org",
            "v1",
            "TFJob",
        )),
    );
    let job = serde_json::from_value(serde_json::json!({
        "apiVersion": "kubeflow.org/v1", "kind": "TFJob",
        "metadata": {"name": "after-handover", "namespace": ns.name},
        "spec": {"tfReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {
            "containers": [{"name": "tensorflow", "image": "busybox"}],
        }}}}},
    }))
    .expect("a TFJob");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create the TFJob");
    let pods: kube::Api<Pod> = kube::Api::namespaced(ns.client.clone(), &ns.name);
    eventually(op::TIMEOUT, "the new leader's pods", || async {
        let list = pods.list(&Default::default()).await.ok()?;
        (list.items.len() == 2).then_some(())
    })
    .await;
    let metrics = eventually(op::TIMEOUT, "its pods in /metrics", || async {
        let (_, text) = second.get("/metrics").await?;
        (sample(&text, "kfop_job_pods_created_total{kind=\"TFJob\"}")? >= 2.0).then_some(text)
    })
    .await;
    assert!(metrics.contains("kfop_jobs{kind=\"TFJob\""), "{metrics}");
    assert!(
        metrics.contains("kfop_job_reconcile_duration_seconds_count{kind=\"TFJob\"}"),
        "{metrics}"
    );
    eprintln!(
        "job controller hand-over after kill -9 of the leader: {} ms (lease {LEASE_SECONDS} s)",
        handover.as_millis()
    );
}
