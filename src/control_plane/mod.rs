//! A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) built from
//! source by `make control-plane`, started on free loopback ports in a temporary directory.
//!
//! `kfop local-cluster` runs one for demos; the integration tests run their cluster tests on one.

pub mod kubelet;
pub mod metrics;
mod pki;
mod process;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use kube::{Api, Client, Config};
use pki::Pki;
use process::Component;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub use crate::kubernetes_version;

/// Controllers the local controller-manager runs: enough for garbage collection, namespace
/// deletion, Deployments, StatefulSets and Jobs to behave as on a real cluster.
const CONTROLLERS: &[&str] = &[
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "job-controller",
    // Removes the `kubernetes.io/pvc-protection` finalizer once no pod uses a claim: without it
    // a deleted PersistentVolumeClaim never goes away.
    "persistentvolumeclaim-protection-controller",
];

/// How long each component may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Why a local control plane could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary is missing from the directory `make control-plane` fills.
    #[error(
        "control-plane binary {binary} not found in {dir}; build it with `make control-plane` (needs Go) or set KFOP_CONTROL_PLANE_BIN"
    )]
    BinaryMissing { binary: &'static str, dir: PathBuf },
    /// A file of the control plane could not be written.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The temporary directory could not be created.
    #[error("creating a temporary directory: {0}")]
    TempDir(std::io::Error),
    /// No free loopback port could be found.
    #[error("finding a free loopback port: {0}")]
    Port(std::io::Error),
    /// Key or certificate generation failed.
    #[error("generating keys and certificates: {0}")]
    Pki(#[from] rcgen::Error),
    /// The kubeconfig could not be serialized.
    #[error("serializing the kubeconfig: {0}")]
    Kubeconfig(#[from] serde_saphyr::SerializeError),
    /// A client for the new control plane could not be built.
    #[error("building a client for the local control plane: {0}")]
    Client(String),
    /// A component could not be started.
    #[error("starting {component}: {source}")]
    Spawn {
        component: &'static str,
        source: std::io::Error,
    },
    /// A component exited or did not become ready in time.
    #[error("{component} did not become ready: {reason}\n--- last lines of its log ---\n{log}")]
    NotReady {
        component: &'static str,
        reason: String,
        log: String,
    },
}

/// Where the control-plane binaries live.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    const NAMES: [&'static str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

    /// `KFOP_CONTROL_PLANE_BIN`, else `${KFOP_CACHE:-$HOME/.cache/kfop}/control-plane/v<version>`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("KFOP_CONTROL_PLANE_BIN") {
            return PathBuf::from(dir);
        }
        let cache = crate::cache::dir();
        cache
            .join("control-plane")
            .join(format!("v{}", kubernetes_version()))
    }

    /// The binaries in `dir`, all three of which must exist.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        for binary in Self::NAMES {
            if !dir.join(binary).is_file() {
                return Err(Error::BinaryMissing { binary, dir });
            }
        }
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A running local control plane. Stop it with [`ControlPlane::stop`]; dropping it kills it.
pub struct ControlPlane {
    components: Vec<Component>,
    kubeconfig_path: PathBuf,
    api_server_url: String,
    // Dropped last: the components' data and logs live here.
    dir: TempDir,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until each is really ready:
    /// etcd healthy, the apiserver `/readyz` and its `default` namespace, the controller-manager acting
    /// (it has created the `default` ServiceAccount).
    pub async fn start(binaries: &Binaries) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("kfop-control-plane-")
            .tempdir()
            .map_err(Error::TempDir)?;
        let root = dir.path().to_path_buf();
        let files = write_files(&root, &Pki::generate()?)?;
        let [etcd_client, etcd_peer, api_port, kcm_port] = free_ports()?;
        let api_server_url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig_path = root.join("kubeconfig");
        write(
            &kubeconfig_path,
            serde_saphyr::to_string(&kubeconfig(&api_server_url, &files))?,
        )?;
        let mut plane = Self {
            components: Vec::new(),
            kubeconfig_path,
            api_server_url,
            dir,
        };

        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        plane.spawn(
            binaries,
            "etcd",
            vec![
                "--name=default".into(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;
        let http = crate::http_client::build(Duration::from_secs(2))
            .map_err(|e| Error::Client(e.to_string()))?;
        let health = format!("{etcd_url}/health");
        plane
            .wait_ready("etcd", || async {
                let response = http.get(&health).send().await.map_err(|e| e.to_string())?;
                let body = response.text().await.map_err(|e| e.to_string())?;
                if body.contains(r#""health":"true""#) {
                    Ok(())
                } else {
                    Err(format!("/health says {body}"))
                }
            })
            .await?;

        plane.spawn(
            binaries,
            "kube-apiserver",
            vec![
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", root.join("apiserver-certs").display()),
                format!("--tls-cert-file={}", files.serving_cert.display()),
                format!("--tls-private-key-file={}", files.serving_key.display()),
                format!("--client-ca-file={}", files.ca_cert.display()),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!(
                    "--service-account-key-file={}",
                    files.service_account_public_key.display()
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    files.service_account_key.display()
                ),
                "--authorization-mode=RBAC".into(),
                "--disable-admission-plugins=ServiceAccount".into(),
                "--allow-privileged=true".into(),
                "--endpoint-reconciler-type=none".into(),
                "--profiling=false".into(),
                "--v=1".into(),
            ],
        )?;
        let client = plane.client().await?;
        plane
            .wait_ready("kube-apiserver", || async {
                let request = http_get("/readyz")?;
                let body = client
                    .request_text(request)
                    .await
                    .map_err(|e| e.to_string())?;
                if body.trim() != "ok" {
                    return Err(format!("/readyz says {body}"));
                }
                Api::<Namespace>::all(client.clone())
                    .get("default")
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("namespace default: {e}"))
            })
            .await?;

        plane.spawn(
            binaries,
            "kube-controller-manager",
            vec![
                format!("--kubeconfig={}", plane.kubeconfig_path.display()),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=false".into(),
                format!("--controllers={}", CONTROLLERS.join(",")),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={kcm_port}"),
                "--v=1".into(),
            ],
        )?;
        plane
            .wait_ready("kube-controller-manager", || async {
                Api::<ServiceAccount>::namespaced(client.clone(), "default")
                    .get("default")
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("no ServiceAccount default/default yet: {e}"))
            })
            .await?;
        Ok(plane)
    }

    /// The kubeconfig (admin, `system:masters`) that reaches this control plane.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The apiserver's URL.
    pub fn api_server_url(&self) -> &str {
        &self.api_server_url
    }

    /// The directory holding the control plane's data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client for this control plane, authenticated as its admin.
    pub async fn client(&self) -> Result<Client, Error> {
        client_for_kubeconfig(&self.kubeconfig_path)
            .await
            .map_err(Error::Client)
    }

    /// The first component that has exited, with its status and log tail.
    pub fn exited_component(&mut self) -> Option<Error> {
        self.components.iter_mut().find_map(|component| {
            component.exited().map(|status| Error::NotReady {
                component: component.name(),
                reason: format!("exited with {status}"),
                log: component.log_tail(30),
            })
        })
    }

    /// Stops the components in reverse order of start and removes their data.
    pub async fn stop(mut self) {
        while let Some(component) = self.components.pop() {
            component.stop().await;
        }
    }

    fn spawn(
        &mut self,
        binaries: &Binaries,
        component: &'static str,
        args: Vec<String>,
    ) -> Result<(), Error> {
        let log = self.dir.path().join(format!("{component}.log"));
        let spawned = Component::spawn(component, &binaries.path(component), &args, log)
            .map_err(|source| Error::Spawn { component, source })?;
        self.components.push(spawned);
        Ok(())
    }

    /// Polls `probe` until it succeeds, the last-started component exits, or the deadline passes.
    async fn wait_ready<F, Fut>(&mut self, component: &'static str, probe: F) -> Result<(), Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let last_error = match probe().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if let Some(exited) = self.exited_component() {
                return Err(exited);
            }
            if Instant::now() >= deadline {
                let log = self
                    .components
                    .iter()
                    .find(|c| c.name() == component)
                    .map(|c| c.log_tail(30))
                    .unwrap_or_default();
                return Err(Error::NotReady {
                    component,
                    reason: format!("not ready after {READY_TIMEOUT:?}: {last_error}"),
                    log,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// A kube client for the kubeconfig at `path`, using its current context.
pub async fn client_for_kubeconfig(path: &Path) -> Result<Client, String> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Client::try_from(config).map_err(|e| e.to_string())
}

fn http_get(path: &str) -> Result<http::Request<Vec<u8>>, String> {
    http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())
}

/// Paths of the PEM files written for a control plane.
struct PkiFiles {
    ca_cert: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    service_account_key: PathBuf,
    service_account_public_key: PathBuf,
}

fn write_files(root: &Path, pki: &Pki) -> Result<PkiFiles, Error> {
    let pki_dir = root.join("pki");
    std::fs::create_dir_all(&pki_dir).map_err(|source| Error::Write {
        path: pki_dir.clone(),
        source,
    })?;
    let file = |name: &str, content: &str| -> Result<PathBuf, Error> {
        let path = pki_dir.join(name);
        write(&path, content)?;
        Ok(path)
    };
    Ok(PkiFiles {
        ca_cert: file("ca.crt", &pki.ca_cert)?,
        serving_cert: file("apiserver.crt", &pki.serving_cert)?,
        serving_key: file("apiserver.key", &pki.serving_key)?,
        admin_cert: file("admin.crt", &pki.admin_cert)?,
        admin_key: file("admin.key", &pki.admin_key)?,
        service_account_key: file("service-account.key", &pki.service_account_key)?,
        service_account_public_key: file("service-account.pub", &pki.service_account_public_key)?,
    })
}

fn write(path: &Path, content: impl AsRef<[u8]>) -> Result<(), Error> {
    std::fs::write(path, content).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn kubeconfig(server: &str, files: &PkiFiles) -> Kubeconfig {
    const NAME: &str = "kfop-local";
    let path = |p: &Path| Some(p.display().to_string());
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: NAME.into(),
            cluster: Some(Cluster {
                server: Some(server.into()),
                certificate_authority: path(&files.ca_cert),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "kfop-admin".into(),
            auth_info: Some(AuthInfo {
                client_certificate: path(&files.admin_cert),
                client_key: path(&files.admin_key),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.into(),
            context: Some(Context {
                cluster: NAME.into(),
                user: Some("kfop-admin".into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(NAME.into()),
        ..Default::default()
    }
}

/// Four distinct free loopback ports, found by binding port 0 (the ports are released before use).
fn free_ports() -> Result<[u16; 4], Error> {
    let listeners = (0..4)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Port)?;
    let mut ports = [0; 4];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().map_err(Error::Port)?.port();
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: &Path) -> PkiFiles {
        PkiFiles {
            ca_cert: root.join("ca.crt"),
            serving_cert: root.join("apiserver.crt"),
            serving_key: root.join("apiserver.key"),
            admin_cert: root.join("admin.crt"),
            admin_key: root.join("admin.key"),
            service_account_key: root.join("sa.key"),
            service_account_public_key: root.join("sa.pub"),
        }
    }

    #[test]
    fn kubeconfig_round_trips_and_points_at_the_server() {
        let files = files(Path::new("/pki"));
        let yaml = serde_saphyr::to_string(&kubeconfig("https://127.0.0.1:6443", &files))
            .expect("serialize");
        let parsed = Kubeconfig::from_yaml(&yaml).expect("parse back");
        let context = parsed.current_context.expect("current context");
        let named = parsed
            .contexts
            .iter()
            .find(|c| c.name == context)
            .expect("context");
        let cluster_name = &named.context.as_ref().expect("context body").cluster;
        let cluster = parsed
            .clusters
            .iter()
            .find(|c| &c.name == cluster_name)
            .expect("cluster");
        let cluster = cluster.cluster.as_ref().expect("cluster body");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/pki/ca.crt")
        );
        let user = parsed.auth_infos[0].auth_info.as_ref().expect("user");
        assert_eq!(user.client_certificate.as_deref(), Some("/pki/admin.crt"));
        assert_eq!(user.client_key.as_deref(), Some("/pki/admin.key"));
    }

    #[test]
    fn missing_binaries_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("etcd"), "").expect("write");
        match Binaries::in_dir(dir.path()) {
            Err(Error::BinaryMissing { binary, .. }) => assert_eq!(binary, "kube-apiserver"),
            other => panic!("expected a missing kube-apiserver, got {other:?}"),
        }
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports().expect("ports");
        let unique: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|&p| p != 0));
    }

    #[test]
    fn kubernetes_version_is_a_release() {
        let version = kubernetes_version();
        let parts: Vec<_> = version.split('.').collect();
        assert_eq!(parts.len(), 3, "{version}");
        assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{version}");
    }
}
