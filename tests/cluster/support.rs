//! Finds the cluster the cluster tests run on and gives each test its own namespace.
//!
//! In order: `KFOP_TEST_KUBECONFIG` (an existing cluster); else a local control plane started once per
//! test binary by `kfop local-cluster` from the binaries `make control-plane` built; else the tests skip,
//! saying so, unless `KFOP_REQUIRE_CLUSTER=1` (set by `make test` and CI), where they fail.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A cluster for one test: a client and a namespace of its own.
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

/// The cluster shared by every test of this binary.
struct SharedCluster {
    kubeconfig: PathBuf,
    // Held until the process exits: the supervisor stops the control plane when its stdin closes.
    _supervisor: Option<Mutex<Child>>,
}

static CLUSTER: OnceLock<Result<SharedCluster, String>> = OnceLock::new();
static NAMESPACES: AtomicUsize = AtomicUsize::new(0);

/// Returns a fresh namespace on the test cluster, or `None` (after saying why) when there is none
/// and none is required.
pub async fn namespace(test: &str) -> Option<TestNamespace> {
    let cluster = match CLUSTER.get_or_init(find_cluster) {
        Ok(cluster) => cluster,
        Err(why) if required() => panic!("KFOP_REQUIRE_CLUSTER is set but {why}"),
        Err(why) => {
            eprintln!("skipping cluster test {test}: {why}");
            return None;
        }
    };
    let client = kfop::control_plane::client_for_kubeconfig(&cluster.kubeconfig)
        .await
        .unwrap_or_else(|e| panic!("client for the test cluster: {e}"));
    let name = format!(
        "{}-{}-{}",
        test.replace('_', "-"),
        std::process::id(),
        NAMESPACES.fetch_add(1, Ordering::SeqCst)
    );
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("kfop.dev/test".to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    Some(TestNamespace { client, name })
}

/// The kubeconfig of the test cluster (after [`namespace`] has found one).
#[allow(dead_code)]
pub fn kubeconfig() -> Option<PathBuf> {
    CLUSTER.get()?.as_ref().ok().map(|c| c.kubeconfig.clone())
}

/// Polls `check` until it returns `Some`, failing the test with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn required() -> bool {
    std::env::var("KFOP_REQUIRE_CLUSTER").is_ok_and(|v| v == "1" || v == "true")
}

fn find_cluster() -> Result<SharedCluster, String> {
    if let Some(path) = std::env::var_os("KFOP_TEST_KUBECONFIG") {
        return Ok(SharedCluster {
            kubeconfig: PathBuf::from(path),
            _supervisor: None,
        });
    }
    let dir = kfop::control_plane::Binaries::default_dir();
    kfop::control_plane::Binaries::in_dir(&dir).map_err(|e| e.to_string())?;
    start_local_cluster(dir)
}

/// Starts `kfop local-cluster` and waits for the `KUBECONFIG=` line it prints when ready.
fn start_local_cluster(bin_dir: PathBuf) -> Result<SharedCluster, String> {
    let log_path =
        std::env::temp_dir().join(format!("kfop-test-cluster-{}.log", std::process::id()));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args([
            "local-cluster",
            "--exit-on-stdin-eof",
            "--no-fake-kubelet",
            "--bin-dir",
        ])
        .arg(&bin_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting kfop local-cluster: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or("no stdout from kfop local-cluster")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading kfop local-cluster: {e}"))?;
        if let Some(path) = line.strip_prefix("KUBECONFIG=") {
            return Ok(SharedCluster {
                kubeconfig: PathBuf::from(path),
                _supervisor: Some(Mutex::new(child)),
            });
        }
    }
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    Err(format!("the local control plane did not start:\n{log}"))
}
