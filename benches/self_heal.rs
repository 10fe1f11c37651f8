//! Self-heal benchmark on the local control plane: several KfDefs manage ≥ 1000 objects of mixed
//! kinds (ConfigMaps, Services, ServiceAccounts, Roles, ClusterRoles, a CRD per KfDef with custom
//! objects); then, several times, 100 of them are deleted at once (a CRD among them, which takes
//! its custom objects along). For each storm: the time from the deletions to every object being
//! back (last healed) and each object's delete → re-created latency (p50/p99). In the same run,
//! with kfop stopped, one client deletes and re-creates the same 100 objects at full concurrency:
//! the API server's own ceiling for that work. kfop's heals and the ceiling's writes are timed by
//! the same observer (the benchmark's watches; list polls for custom objects). Also when the
//! deleted CRD was gone (the API server deletes its custom objects first), the CPU the control
//! plane spent per storm in both, the operator's CPU and peak RSS, the write requests of the
//! storms and of an idle window.
//!
//! Run with `hack/bench-self-heal.sh` (or `cargo bench --bench self_heal`). `KFDEFS`,
//! `OBJECTS_PER_KFDEF` (≥ 80), `STORMS` and `IDLE_SECONDS` override the sizes; `KFOP_BIN` runs
//! another build of `kfop run` (e.g. an older commit's, to compare); `KFOP_LOG` sets its log
//! filter and `KFOP_LOG_COPY` where its log is copied. Needs the binaries `make control-plane`
//! builds.

use futures::StreamExt;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PartialObjectMeta, Patch,
    PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start_cluster() -> (Child, String) {
    let dir = kfop::control_plane::Binaries::default_dir();
    if let Err(e) = kfop::control_plane::Binaries::in_dir(&dir) {
        panic!("no control plane: {e} (run make control-plane)");
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
            return (child, path.to_string());
        }
    }
    let _ = child.wait();
    panic!("the local control plane did not start");
}

async fn writes(client: &Client) -> BTreeMap<String, f64> {
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

/// CPU time (user and system) the process has used, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// The pid of the process named `name` (the local control plane's, e.g. `kube-apiserver`).
fn pid_of(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        // The command line's first word (`comm` is cut at 15 characters).
        let command = std::fs::read(entry.path().join("cmdline")).ok()?;
        let program = command.split(|b| *b == 0).next()?;
        let program = std::path::Path::new(std::str::from_utf8(program).ok()?).file_name()?;
        (program == name).then_some(pid)
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One managed object: where it lives and its manifest.
#[derive(Clone)]
struct Object {
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
    body: Value,
}

impl Object {
    fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.resource.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }

    fn api(&self, client: &Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// What one KfDef manages: a CRD, its custom objects, and core/RBAC objects.
struct Install {
    namespace: String,
    crd: Object,
    custom: Vec<Object>,
    others: Vec<Object>,
}

fn install(index: usize, size: usize) -> Install {
    let namespace = format!("heal-{index}");
    let group = format!("k{index}.bench.kfop.dev");
    let crd = Object {
        resource: resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
        namespace: None,
        name: format!("widgets.{group}"),
        body: json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("widgets.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]},
        }),
    };
    let widget = resource(&group, "v1", "Widget", "widgets");
    let custom = (0..10)
        .map(|j| Object {
            resource: widget.clone(),
            namespace: Some(namespace.clone()),
            name: format!("w-{j}"),
            body: json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                "metadata": {"name": format!("w-{j}"), "namespace": namespace}, "spec": {"size": j}}),
        })
        .collect();
    // The rest: 30 Services, 30 Roles, 20 ClusterRoles, ServiceAccounts and ConfigMaps.
    let rest = size.saturating_sub(11);
    let mut others = Vec::new();
    let ns = Some(namespace.clone());
    let object =
        |resource: ApiResource, namespace: Option<String>, name: String, body: Value| Object {
            resource,
            namespace,
            name,
            body,
        };
    for j in 0..rest {
        let slot = j % 8;
        others.push(match slot {
            0 if j / 8 < 30 => object(
                resource("", "v1", "Service", "services"),
                ns.clone(),
                format!("svc-{j}"),
                json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("svc-{j}"), "namespace": namespace},
                    "spec": {"selector": {"app": format!("a{j}")}, "ports": [{"port": 80}]}}),
            ),
            1 if j / 8 < 30 => object(
                resource("rbac.authorization.k8s.io", "v1", "Role", "roles"),
                ns.clone(),
                format!("role-{j}"),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": format!("role-{j}"), "namespace": namespace},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            ),
            2 if j / 8 < 20 => object(
                resource(
                    "rbac.authorization.k8s.io",
                    "v1",
                    "ClusterRole",
                    "clusterroles",
                ),
                None,
                format!("{namespace}-cr-{j}"),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": format!("{namespace}-cr-{j}")},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            ),
            3 | 4 => object(
                resource("", "v1", "ServiceAccount", "serviceaccounts"),
                ns.clone(),
                format!("sa-{j}"),
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": format!("sa-{j}"), "namespace": namespace}}),
            ),
            _ => object(
                resource("", "v1", "ConfigMap", "configmaps"),
                ns.clone(),
                format!("cm-{j}"),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{j}"), "namespace": namespace},
                    "data": {"index": j.to_string(), "payload": "x".repeat(200)}}),
            ),
        });
    }
    Install {
        namespace,
        crd,
        custom,
        others,
    }
}

/// The 100 objects of a storm: the first KfDef's CRD with its 10 custom objects, and 89 others
/// taken from every KfDef in turn, mixing kinds.
fn storm_set(installs: &[Install]) -> (Object, Vec<Object>, Vec<Object>) {
    let mut by_kind: BTreeMap<String, Vec<Object>> = BTreeMap::new();
    for install in installs {
        for object in &install.others {
            by_kind
                .entry(object.resource.kind.clone())
                .or_default()
                .push(object.clone());
        }
    }
    // Interleave kinds so that the 89 are spread over kinds and KfDefs.
    let mut lists: Vec<std::vec::IntoIter<Object>> = by_kind
        .into_values()
        .map(|mut v| {
            // Spread over KfDefs: sort by name index, then namespace.
            v.sort_by_key(|o| (o.name.clone(), o.namespace.clone()));
            v.into_iter()
        })
        .collect();
    let mut others = Vec::new();
    while others.len() < 89 {
        let mut any = false;
        for list in &mut lists {
            if others.len() < 89
                && let Some(object) = list.next()
            {
                others.push(object);
                any = true;
            }
        }
        assert!(any, "not enough objects for a storm of 100");
    }
    (installs[0].crd.clone(), installs[0].custom.clone(), others)
}

/// Every (re)creation the watches see: key → (uid, when).
type Seen = Arc<Mutex<HashMap<String, (String, Instant)>>>;
/// When the watches last saw each object deleted: key → when.
type Gone = Arc<Mutex<HashMap<String, Instant>>>;

/// Metadata watches on every kind of the storm (custom objects are polled: their watch breaks
/// while their CRD is gone).
fn watch_kinds(client: &Client, kinds: Vec<ApiResource>, seen: Seen, gone: Gone) {
    for resource in kinds {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client.clone(), &resource);
        let (seen, gone) = (seen.clone(), gone.clone());
        let kind = resource.kind.clone();
        let namespaced = kind != "ClusterRole" && kind != "CustomResourceDefinition";
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = stream.next().await {
                let (meta, deleted) = match event {
                    Ok(watcher::Event::Apply(meta) | watcher::Event::InitApply(meta)) => {
                        (meta, false)
                    }
                    Ok(watcher::Event::Delete(meta)) => (meta, true),
                    _ => continue,
                };
                let key = format!(
                    "{kind}/{}/{}",
                    if namespaced {
                        meta.metadata.namespace.clone().unwrap_or_default()
                    } else {
                        String::new()
                    },
                    meta.name_any()
                );
                if deleted {
                    if let Ok(mut gone) = gone.lock() {
                        gone.insert(key, Instant::now());
                    }
                    continue;
                }
                let uid = meta.uid().unwrap_or_default();
                if let Ok(mut seen) = seen.lock() {
                    let entry = seen.entry(key).or_insert((uid.clone(), Instant::now()));
                    if entry.0 != uid {
                        *entry = (uid, Instant::now());
                    }
                }
            }
        });
    }
}

async fn uid_of(client: &Client, object: &Object) -> Option<String> {
    object
        .api(client)
        .get_metadata_opt(&object.name)
        .await
        .ok()
        .flatten()
        .and_then(|m| m.uid())
}

/// Every object of a storm as it is before it: key → uid.
async fn uids_before(client: &Client, everything: &[&Object]) -> Vec<(String, String)> {
    futures::future::join_all(
        everything
            .iter()
            .map(|o| async move { (o.key(), uid_of(client, o).await.unwrap_or_default()) }),
    )
    .await
}

/// Waits until every object of `before` is back (another uid), as the benchmark sees it: its
/// watches, and for custom objects (whose watch breaks while their CRD is gone) list polls.
/// Returns each object's time from `started` to the moment it was seen back. kfop's heals and
/// the ceiling's writes are both timed this way.
async fn observe_back(
    client: &Client,
    seen: &Seen,
    custom: &[Object],
    before: &[(String, String)],
    started: Instant,
) -> Vec<Duration> {
    // A list sent while the CRD is being re-created can be held by the API server for a second,
    // so polls overlap (one sent every tick, each answered on its own): an object counts as back
    // when the first answer that shows it arrives.
    let custom_before: HashMap<String, String> = before
        .iter()
        .filter(|(k, _)| k.starts_with("Widget/"))
        .cloned()
        .collect();
    let custom_back: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut polls = tokio::task::JoinSet::new();
    let deadline = started + Duration::from_secs(180);
    loop {
        let done = custom_back.lock().expect("custom").len() == custom.len();
        if !done && polls.len() < 32 {
            let (api, custom_before, custom_back) = (
                custom[0].api(client),
                custom_before.clone(),
                custom_back.clone(),
            );
            polls.spawn(async move {
                let Ok(list) = api.list_metadata(&Default::default()).await else {
                    return;
                };
                let arrived = Instant::now();
                let mut back = custom_back.lock().expect("custom");
                for item in list.items {
                    let key = format!(
                        "Widget/{}/{}",
                        item.namespace().unwrap_or_default(),
                        item.name_any()
                    );
                    if custom_before.get(&key) != item.uid().as_ref()
                        && item.metadata.deletion_timestamp.is_none()
                    {
                        back.entry(key).or_insert(arrived);
                    }
                }
            });
        }
        while polls.try_join_next().is_some() {}
        let watched_back = {
            let seen = seen.lock().expect("seen");
            before
                .iter()
                .filter(|(k, _)| !k.starts_with("Widget/"))
                .filter(|(k, uid)| seen.get(k).is_some_and(|(now, _)| now != uid))
                .count()
        };
        if done && watched_back == before.len() - custom.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "objects did not come back within 180 s ({} custom, {watched_back} others)",
            custom_back.lock().expect("custom").len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    polls.abort_all();
    let custom_back = custom_back.lock().expect("custom").clone();
    let seen = seen.lock().expect("seen");
    let mut latencies: Vec<Duration> = before
        .iter()
        .filter(|(k, _)| !k.starts_with("Widget/"))
        .map(|(k, _)| seen[k].1 - started)
        .collect();
    latencies.extend(custom_back.values().map(|at| *at - started));
    latencies.sort();
    latencies
}

/// One storm against kfop: deletes the 100 objects at once, returns each object's time from the
/// deletions to its re-creation (sorted), and when the deletions started.
async fn storm(
    client: &Client,
    seen: &Seen,
    crd: &Object,
    custom: &[Object],
    others: &[Object],
) -> (Vec<Duration>, Instant) {
    let everything: Vec<&Object> = std::iter::once(crd).chain(custom).chain(others).collect();
    let before = uids_before(client, &everything).await;
    let started = Instant::now();
    let deletions = std::iter::once(crd).chain(others).map(|o| async move {
        let _ = o
            .api(client)
            .delete(&o.name, &DeleteParams::default())
            .await;
    });
    futures::future::join_all(deletions).await;
    let latencies = observe_back(client, seen, custom, &before, started).await;
    (latencies, started)
}

/// How the ceiling re-creates the objects other than the CRD and its custom objects (those are
/// always applied).
#[derive(Clone, Copy, PartialEq)]
enum Recreate {
    /// `POST`: the cheapest write there is.
    Create,
    /// Server-side apply, the write kfop makes.
    Apply,
}

/// The API server's ceiling for one storm, with kfop stopped.
struct Ceiling {
    /// Each object's time from the deletions to being seen back, as [`observe_back`] sees
    /// kfop's heals (sorted).
    seen: Vec<Duration>,
    /// The time from the deletions to the answer of the client's last write.
    last_written: Duration,
    started: Instant,
}

/// The API server's ceiling for one storm: one client deletes the same objects and re-creates
/// them at full concurrency (the CRD: deleted, gone, created, established, then its custom
/// objects), timed by the same observer as kfop's heals.
async fn ceiling(
    client: &Client,
    seen: &Seen,
    crd: &Object,
    custom: &[Object],
    others: &[Object],
    mode: Recreate,
) -> Ceiling {
    let everything: Vec<&Object> = std::iter::once(crd).chain(custom).chain(others).collect();
    let before = uids_before(client, &everything).await;
    let apply = PatchParams::apply("ceiling").force();
    let started = Instant::now();
    let recreate = |object: &Object| {
        let (api, apply, object) = (object.api(client), apply.clone(), object.clone());
        async move {
            let _ = api.delete(&object.name, &DeleteParams::default()).await;
            loop {
                let written = match mode {
                    Recreate::Create => api
                        .create(
                            &PostParams::default(),
                            &serde_json::from_value::<DynamicObject>(object.body.clone())
                                .expect("object"),
                        )
                        .await
                        .map(|_| ()),
                    Recreate::Apply => api
                        .patch(&object.name, &apply, &Patch::Apply(&object.body))
                        .await
                        .map(|_| ()),
                };
                match written {
                    Ok(()) => break,
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        // Still terminating: try again.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => panic!("ceiling: creating {}: {e}", object.key()),
                }
            }
            started.elapsed()
        }
    };
    let crd_chain = async {
        let api = crd.api(client);
        let _ = api.delete(&crd.name, &DeleteParams::default()).await;
        while api
            .get_metadata_opt(&crd.name)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        api.patch(&crd.name, &apply, &Patch::Apply(&crd.body))
            .await
            .expect("ceiling: CRD");
        let crd_back = started.elapsed();
        loop {
            let established = api.get(&crd.name).await.ok().is_some_and(|c| {
                c.data["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
            });
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        futures::future::join_all(custom.iter().map(|o| {
            let (api, apply, o) = (o.api(client), apply.clone(), o.clone());
            async move {
                // Discovery of the new CRD may lag a little: retry 404s.
                loop {
                    match api.patch(&o.name, &apply, &Patch::Apply(&o.body)).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                            tokio::time::sleep(Duration::from_millis(5)).await
                        }
                        Err(e) => panic!("ceiling: creating {}: {e}", o.key()),
                    }
                }
                started.elapsed()
            }
        }))
        .await
        .into_iter()
        .chain([crd_back])
        .collect::<Vec<Duration>>()
    };
    let written = async {
        let (crd_chain, others) = futures::join!(
            crd_chain,
            futures::future::join_all(others.iter().map(recreate))
        );
        crd_chain
            .into_iter()
            .chain(others)
            .max()
            .unwrap_or_default()
    };
    let (last_written, seen) = futures::join!(
        written,
        observe_back(client, seen, custom, &before, started)
    );
    Ceiling {
        seen,
        last_written,
        started,
    }
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let kfdefs = env_number("KFDEFS", 4).max(1);
    let per_kfdef = env_number("OBJECTS_PER_KFDEF", 260).max(80);
    let storms = env_number("STORMS", 3).max(1);
    let idle_seconds = env_number("IDLE_SECONDS", 20);
    let (_cluster, kubeconfig) = start_cluster();
    let client = kfop::control_plane::client_for_kubeconfig(std::path::Path::new(&kubeconfig))
        .await
        .expect("client");

    let installs: Vec<Install> = (0..kfdefs).map(|i| install(i, per_kfdef)).collect();
    let total: usize = installs
        .iter()
        .map(|i| 1 + i.custom.len() + i.others.len())
        .sum();
    let repo = tempfile::tempdir().expect("repo");
    for install in &installs {
        let app = repo.path().join(&install.namespace);
        std::fs::create_dir_all(&app).expect("app dir");
        let documents: Vec<Value> = std::iter::once(&install.crd)
            .chain(&install.custom)
            .chain(&install.others)
            .map(|o| o.body.clone())
            .collect();
        std::fs::write(
            app.join("objects.yaml"),
            kfop::render::yaml::to_yaml_stream(&documents).expect("yaml"),
        )
        .expect("manifest");
        std::fs::write(
            app.join("kustomization.yaml"),
            "resources:\n- objects.yaml\n",
        )
        .expect("kustomization");
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": install.namespace}}))
                    .expect("namespace"),
            )
            .await
            .expect("namespace");
    }

    let log_path = repo.path().join("kfop.log");
    let kfop = std::env::var("KFOP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_kfop").into());
    let operator = Command::new(kfop)
        .args(["run", "--install-crds"])
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("KFOP_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log"))
        .spawn()
        .expect("kfop run");
    let pid = operator.id();
    let mut operator = KillOnDrop(operator);

    let started = Instant::now();
    for install in &installs {
        let kfdefs: Api<kfop::kfdef::KfDef> = Api::namespaced(client.clone(), &install.namespace);
        let kfdef = json!({
            "apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef",
            "metadata": {"name": "bench", "namespace": install.namespace},
            "spec": {"repos": [{"name": "r", "uri": repo.path().display().to_string()}],
                     "applications": [{"name": "bulk", "kustomizeConfig": {"repoRef": {"name": "r", "path": install.namespace}}}]},
        });
        // The CRD may still be installing.
        while kfdefs
            .patch(
                "bench",
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&kfdef),
            )
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "could not create a KfDef"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for install in &installs {
        let kfdefs: Api<kfop::kfdef::KfDef> = Api::namespaced(client.clone(), &install.namespace);
        loop {
            let available = kfdefs
                .get("bench")
                .await
                .ok()
                .and_then(|k| k.status)
                .is_some_and(|s| {
                    s.inventory.len() == per_kfdef.max(11)
                        && s.condition("Available")
                            .is_some_and(|c| c.status == kfop::kfdef::ConditionStatus::True)
                });
            if available {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the install did not converge"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let converge = started.elapsed();
    let rss_installed = peak_rss_kib(pid);

    let (crd, custom, others) = storm_set(&installs);
    let seen: Seen = Arc::default();
    let mut kinds: BTreeMap<String, ApiResource> = BTreeMap::new();
    for object in std::iter::once(&crd).chain(&others) {
        kinds
            .entry(object.resource.kind.clone())
            .or_insert_with(|| object.resource.clone());
    }
    let gone: Gone = Arc::default();
    watch_kinds(
        &client,
        kinds.into_values().collect(),
        seen.clone(),
        gone.clone(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut all = Vec::new();
    let mut noticed = Vec::new();
    let mut lasts = Vec::new();
    let writes_before = writes(&client).await;
    let cpu_before = cpu_ticks(pid);
    let mut crd_gone = Vec::new();
    // When the benchmark's watch saw the CRD deleted (the API server deletes its custom objects
    // first): the part of a storm no healer can shorten.
    let crd_gone_after = |started: Instant| {
        gone.lock()
            .ok()
            .and_then(|gone| gone.get(&crd.key()).copied())
            .filter(|at| *at >= started)
            .map(|at| at - started)
    };
    let control_plane: Vec<u32> = ["kube-apiserver", "etcd", "kube-controller-manager"]
        .into_iter()
        .filter_map(pid_of)
        .collect();
    let control_plane_ticks = || control_plane.iter().map(|pid| cpu_ticks(*pid)).sum::<u64>();
    let mut storm_control_plane_ticks = 0;
    for _ in 0..storms {
        let ticks = control_plane_ticks();
        let (latencies, started) = storm(&client, &seen, &crd, &custom, &others).await;
        storm_control_plane_ticks += control_plane_ticks() - ticks;
        // When a watch (the benchmark's own) learned of each deletion: what any healer that
        // watches cannot do better than.
        if let Ok(gone) = gone.lock() {
            noticed.extend(
                std::iter::once(&crd)
                    .chain(&others)
                    .filter_map(|o| gone.get(&o.key()))
                    .filter(|at| **at >= started)
                    .map(|at| *at - started),
            );
        }
        crd_gone.extend(crd_gone_after(started));
        lasts.push(*latencies.last().expect("latencies"));
        all.extend(latencies);
        // Let the KfDefs settle (Available again) before the next storm.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // Ticks are 1/100 s on Linux; the settling pauses between storms add little.
    let cpu_per_storm_ms = (cpu_ticks(pid) - cpu_before) as f64 * 10.0 / storms as f64;
    let storm_writes = kfop::control_plane::metrics::growth(&writes_before, &writes(&client).await);
    let before = writes(&client).await;
    tokio::time::sleep(Duration::from_secs(idle_seconds as u64)).await;
    let idle = kfop::control_plane::metrics::growth(&before, &writes(&client).await);
    let idle_writes = idle.values().sum::<f64>().max(0.0);
    let rss = peak_rss_kib(pid);
    let failed_heals = std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("apply failed"))
        .count();
    let _ = operator.0.kill();
    let _ = operator.0.wait();
    if let Some(keep) = std::env::var_os("KFOP_LOG_COPY") {
        let _ = std::fs::copy(&log_path, keep);
    }

    // The ceiling, with kfop stopped: the same work done by one client at full concurrency.
    // Once re-creating with POST, once with server-side apply (the write kfop makes).
    let mut ceilings = Vec::new();
    let mut ceiling_all = Vec::new();
    let mut apply_ceilings = Vec::new();
    let mut apply_ceiling_all = Vec::new();
    let mut ceiling_written = Vec::new();
    let mut ceiling_crd_gone = Vec::new();
    let mut ceiling_control_plane_ticks = 0;

    for _ in 0..storms {
        for (mode, lasts, all) in [
            (Recreate::Create, &mut ceilings, &mut ceiling_all),
            (Recreate::Apply, &mut apply_ceilings, &mut apply_ceiling_all),
        ] {
            let ticks = control_plane_ticks();
            let run = ceiling(&client, &seen, &crd, &custom, &others, mode).await;
            ceiling_control_plane_ticks += control_plane_ticks() - ticks;
            lasts.push(*run.seen.last().expect("times"));
            all.extend(run.seen);
            ceiling_written.push(run.last_written);
            ceiling_crd_gone.extend(crd_gone_after(run.started));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    ceiling_all.sort();
    apply_ceiling_all.sort();

    all.sort();
    println!("KfDefs x objects:               {kfdefs} x {per_kfdef} = {total} managed");
    println!(
        "install converged in:           {:.1} s",
        converge.as_secs_f64()
    );
    println!(
        "storms:                         {storms} x 100 objects deleted at once (a CRD and its 10 custom objects among them)"
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "ceiling: one client re-creating the same objects at full concurrency, others by POST (create) or server-side apply (apply)"
    );
    println!(
        "every time below is from the deletions to the object seen back by the benchmark's watches (custom objects: list polls)"
    );
    for (i, last) in lasts.iter().enumerate() {
        println!(
            "storm {i}: last healed {:7.1} ms   ceiling create {:7.1} ms (ratio {:.2})   apply {:7.1} ms (ratio {:.2})",
            ms(*last),
            ms(ceilings[i]),
            ratio(*last, ceilings[i]),
            ms(apply_ceilings[i]),
            ratio(*last, apply_ceilings[i]),
        );
    }
    for (name, q) in [("p50", 0.50), ("p99", 0.99)] {
        println!(
            "delete -> re-created {name}:       {:.1} ms   (ceiling create {:.1} ms, apply {:.1} ms)",
            ms(percentile(&all, q)),
            ms(percentile(&ceiling_all, q)),
            ms(percentile(&apply_ceiling_all, q))
        );
    }
    noticed.sort();
    if !noticed.is_empty() {
        println!(
            "delete -> a watch sees it p50:  {:.1} ms   p99 {:.1} ms   (the benchmark's own watch, {} objects)",
            ms(percentile(&noticed, 0.50)),
            ms(percentile(&noticed, 0.99)),
            noticed.len()
        );
    }
    let median = |times: &[Duration]| {
        let mut sorted = times.to_vec();
        sorted.sort();
        sorted[sorted.len() / 2]
    };
    for (name, ceilings) in [("create", &ceilings), ("apply", &apply_ceilings)] {
        println!(
            "last healed median / ceiling ({name}) median: {:.1} / {:.1} ms = {:.2}x",
            ms(median(&lasts)),
            ms(median(ceilings)),
            ratio(median(&lasts), median(ceilings))
        );
    }
    if !crd_gone.is_empty() && !ceiling_crd_gone.is_empty() {
        println!(
            "deleted CRD gone (median):      {:.1} ms in kfop's storms, {:.1} ms in the ceilings' (the API server deletes its custom objects first)",
            ms(median(&crd_gone)),
            ms(median(&ceiling_crd_gone))
        );
    }
    println!(
        "ceiling's last write answered:  {:.1} ms (median, as its client timed it)",
        ms(median(&ceiling_written))
    );
    println!("failed heal attempts (retried):  {failed_heals}");
    println!("operator CPU per storm:          {cpu_per_storm_ms:.0} ms (storm and settling)");
    println!(
        "control plane CPU per storm:    {:.0} ms in kfop's storms, {:.0} ms in the ceilings' (API server, etcd, controller manager; from the deletions to all seen back)",
        storm_control_plane_ticks as f64 * 10.0 / storms as f64,
        ceiling_control_plane_ticks as f64 * 10.0 / (2 * storms) as f64
    );
    println!(
        "writes during the storms:       {} {storm_writes:?}",
        storm_writes.values().sum::<f64>()
    );
    println!(
        "operator peak RSS:              {:.1} MiB after install, {:.1} MiB at the end",
        rss_installed as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    println!("writes over {idle_seconds} s idle:          {idle_writes} {idle:?}");
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
