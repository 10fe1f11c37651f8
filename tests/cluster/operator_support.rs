//! Running the operator in a test: CRDs installed, `kfop run` scoped to the test's namespace, a
//! copy of the fixture repo, KfDefs built from it, and waits on their status.

use crate::support::eventually;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kfop::kfdef::KfDef;
use kube::api::{Patch, PatchParams};
use kube::runtime::{conditions, wait::await_condition};
use kube::{Api, Client};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// How long a test waits for work that involves rendering, applying and workloads.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// How long a heal may take, from a deletion or edit to the object being back: loose (a
/// loaded machine runs these tests) but real — a heal that waits for a resync fails.
pub const HEAL: Duration = Duration::from_secs(2);

/// The operator running on the test's runtime; stopped when dropped.
pub struct Operator {
    task: tokio::task::JoinHandle<()>,
    _cache: tempfile::TempDir,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs kfop's CRDs (idempotent) and waits until they are served.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kfop::crds::all() {
        let name = crd.metadata.name.clone().expect("CRD name");
        api.patch(
            &name,
            &PatchParams::apply("kfop-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply CRD");
        tokio::time::timeout(
            TIMEOUT,
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD established in time")
        .expect("watch CRD");
    }
}

/// Starts `kfop run --namespace <namespace>` in-process (its logs go to the test's output).
pub async fn start(client: &Client, namespace: &str) -> Operator {
    start_with(
        client,
        kfop::operator::Options {
            namespace: Some(namespace.to_string()),
            concurrency: 4,
            resync: None,
            ..Default::default()
        },
    )
    .await
}

/// Starts the operator in-process with `options`.
pub async fn start_with(client: &Client, options: kfop::operator::Options) -> Operator {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
            }),
        )
        .with_test_writer()
        .try_init();
    install_crds(client).await;
    let cache = tempfile::tempdir().expect("repo cache dir");
    let repos = kfop::repos::RepoCache::new(cache.path()).expect("repo cache");
    let client = client.clone();
    let task = tokio::spawn(kfop::operator::run(client, repos, options));
    Operator {
        task,
        _cache: cache,
    }
}

/// A test's namespace, operator and fixture repo.
pub struct Setup {
    pub ns: crate::support::TestNamespace,
    /// `file://` URI of the fixture repo copy.
    pub uri: String,
    pub repo: tempfile::TempDir,
    pub operator: Operator,
}

/// A namespace with an operator watching it and a fixture repo to point KfDefs at; `None`
/// when there is no cluster (the test then skips).
pub async fn setup(test: &str) -> Option<Setup> {
    let ns = crate::support::namespace(test).await?;
    let operator = start(&ns.client, &ns.name).await;
    let repo = fixture_repo(&ns.name);
    let uri = format!("file://{}", repo.path().display());
    Some(Setup {
        ns,
        uri,
        repo,
        operator,
    })
}

/// `setup`, then a KfDef `kf` with the one application `app` (the fixture directory of that name).
pub async fn setup_with_app(test: &str, app: &str) -> Option<Setup> {
    let setup = setup(test).await?;
    let apps = [App::plain(app)];
    let document = kfdef("kf", &setup.ns.name, &setup.uri, &apps);
    apply_kfdef(&setup.ns.client, &setup.ns.name, &document).await;
    Some(setup)
}

/// A copy of tests/fixtures/repos/basic with `NAME_PREFIX` replaced by `prefix`, so that the
/// cluster-scoped objects of parallel tests do not collide.
pub fn fixture_repo(prefix: &str) -> tempfile::TempDir {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/basic");
    let target = tempfile::tempdir().expect("repo dir");
    copy(&source, target.path(), prefix);
    target
}

fn copy(from: &Path, to: &Path, prefix: &str) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from)
        .expect("read dir")
        .filter_map(Result::ok)
    {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy(&entry.path(), &target, prefix);
        } else {
            let text = std::fs::read_to_string(entry.path()).expect("read fixture");
            std::fs::write(&target, text.replace("NAME_PREFIX", prefix)).expect("write fixture");
        }
    }
}

/// One application of a test KfDef.
pub struct App<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub overlays: &'a [&'a str],
    pub parameters: &'a [(&'a str, &'a str)],
}

impl<'a> App<'a> {
    /// The fixture directory `name` as an application of that name, with no overlays or
    /// parameters.
    pub fn plain(name: &'a str) -> Self {
        Self {
            name,
            path: name,
            overlays: &[],
            parameters: &[],
        }
    }
}

/// A KfDef over one repo at `uri`.
pub fn kfdef(name: &str, namespace: &str, uri: &str, apps: &[App<'_>]) -> Value {
    let applications: Vec<Value> = apps
        .iter()
        .map(|app| {
            json!({
                "name": app.name,
                "kustomizeConfig": {
                    "repoRef": {"name": "fixtures", "path": app.path},
                    "overlays": app.overlays,
                    "parameters": app.parameters.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
                },
            })
        })
        .collect();
    json!({
        "apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"repos": [{"name": "fixtures", "uri": uri}], "applications": applications},
    })
}

/// Applies a KfDef document.
pub async fn apply_kfdef(client: &Client, namespace: &str, document: &Value) -> KfDef {
    let api: Api<KfDef> = Api::namespaced(client.clone(), namespace);
    let name = document["metadata"]["name"].as_str().expect("name");
    api.patch(
        name,
        &PatchParams::apply("kfop-test").force(),
        &Patch::Apply(document),
    )
    .await
    .expect("apply KfDef")
}

/// Waits until the KfDef has observed its latest generation and `check` holds on it.
pub async fn wait_for(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&KfDef) -> bool,
) -> KfDef {
    let api: Api<KfDef> = Api::namespaced(client.clone(), namespace);
    eventually(TIMEOUT, what, || async {
        let kfdef = api.get(name).await.ok()?;
        let status = kfdef.status.as_ref()?;
        (status.observed_generation == kfdef.metadata.generation && check(&kfdef)).then_some(kfdef)
    })
    .await
}

/// Whether condition `type_` is True.
pub fn condition_true(kfdef: &KfDef, type_: &str) -> bool {
    kfdef
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .is_some_and(|c| c.status == kfop::kfdef::ConditionStatus::True)
}

/// The message of condition `type_`.
pub fn condition_message(kfdef: &KfDef, type_: &str) -> String {
    kfdef
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// Marks every pod of the namespace Running and Ready, so Deployments become available.
pub async fn make_pods_ready(client: &Client, namespace: &str) {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = pods.list(&Default::default()).await {
        for pod in list.items {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Running");
            if let (false, Some(name)) = (ready, pod.metadata.name.as_deref()) {
                let _ = kfop::control_plane::kubelet::mark_running(&pods, name, true).await;
            }
        }
    }
}

/// Serves `body` to every HTTP request on a loopback port until dropped; returns the base URL.
pub async fn serve_bytes(body: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let body = std::sync::Arc::new(body);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    (format!("http://{address}"), task)
}

/// A GitHub-style `.tar.gz` of `dir` (one top-level folder).
pub fn tarball(dir: &Path) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    builder.append_dir_all("manifests-1.0", dir).expect("tar");
    builder
        .into_inner()
        .expect("tar finish")
        .finish()
        .expect("gzip")
}
