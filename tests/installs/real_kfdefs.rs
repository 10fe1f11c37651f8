//! kfctl_k8s_istio v1.0.2 and v1.2.0, exactly as released (their repo pointed at the release
//! tarball), applied with `kfop apply -f` (which names the unnamed KfDef) and installed by the
//! operator on Kubernetes 1.37: objects of removed API versions are upgraded, every rendered
//! object is in the inventory (none is skipped by rule in these releases), the KfDef becomes
//! Available with the kubelet stand-in marking pods ready, a deleted upgraded object comes back
//! at the served version, and deleting the KfDef removes everything, upgraded CRDs included.

use crate::operator_support as op;
use crate::support::{self, eventually};
use kfop::kfdef::{InventoryEntry, KfDef};
use kfop::operator::cluster::Cluster;
use kfop::operator::inventory::ObjectId as ObjectKey;
use kfop::upgrade::UPGRADED_FROM_ANNOTATION;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A full install is cluster-wide: the two releases run one after the other.
static CLUSTER_WIDE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long an install may take to converge, and a deletion to finish.
const INSTALL_DEADLINE: Duration = Duration::from_secs(300);
/// How long a deleted object may take to come back.
const HEAL_DEADLINE: Duration = Duration::from_secs(10);

struct Era {
    name: &'static str,
    tarball: &'static str,
    kfdef: &'static str,
    uri: &'static str,
}

const V1_0_2: Era = Era {
    name: "v1.0.2",
    tarball: "kubeflow-manifests-v1.0/manifests-v1.0.2.tar.gz",
    // The tarball's own copy names the v1.0 branch; the released file names the v1.0.2 tarball.
    kfdef: "kubeflow-manifests-v1.0/tree/kfdef/kfctl_k8s_istio.v1.0.2.yaml",
    uri: "https://github.com/kubeflow/manifests/archive/v1.0.2.tar.gz",
};

const V1_2_0: Era = Era {
    name: "v1.2.0",
    tarball: "kubeflow-manifests-v1.2/manifests-v1.2-branch.tar.gz",
    kfdef: "kfdef/kfctl_k8s_istio.v1.2.0.yaml",
    uri: "https://github.com/kubeflow/manifests/archive/v1.2.0.tar.gz",
};

fn corpus() -> PathBuf {
    std::env::var_os("KFOP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

fn tarball(era: &Era) -> PathBuf {
    let path = corpus().join(era.tarball);
    assert!(
        path.is_file(),
        "the corpus tarball {} is missing",
        path.display()
    );
    path.canonicalize().expect("tarball path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeflow_v1_0_2_installs_on_current_kubernetes() {
    install(&V1_0_2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeflow_v1_2_0_installs_on_current_kubernetes() {
    install(&V1_2_0).await;
}

async fn install(era: &Era) {
    let Some(ns) = support::namespace("installs").await else {
        return;
    };
    let _cluster_wide = CLUSTER_WIDE.lock().await;
    let client = ns.client.clone();
    let tarball = tarball(era);
    let kfdef_file = unpacked_kfdef(&tarball, era).await;
    let namespace = "kubeflow";
    ensure_namespace(&client, namespace).await;
    let _operator = op::start(&client, namespace).await;
    let kubelet = tokio::spawn(kfop::control_plane::kubelet::run_all_ready(client.clone()));

    // The KfDef file as released, but for its repo: kfctl's files have no metadata.name, and
    // `kfop apply -f` names it from the file name.
    let original = std::fs::read_to_string(&kfdef_file.0).expect("KfDef file");
    assert!(
        original.contains(era.uri),
        "{} names {}",
        era.kfdef,
        era.uri
    );
    let local = kfdef_file
        .1
        .path()
        .join(Path::new(era.kfdef).file_name().expect("KfDef file name"));
    std::fs::write(
        &local,
        original.replace(era.uri, &format!("file://{}", tarball.display())),
    )
    .expect("write KfDef");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args(["apply", "-f"])
        .arg(&local)
        .env("KUBECONFIG", support::kubeconfig().expect("kubeconfig"))
        .output()
        .expect("kfop apply");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kfop apply failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let name = kfop::kfdef::name_unnamed(
        &mut serde_json::json!({"apiVersion": kfop::kfdef::API_VERSION, "kind": "KfDef"}),
        None,
        &local,
    )
    .expect("a name")
    .expect("named");
    assert!(stdout.contains(&format!("naming it {name:?}")), "{stdout}");

    // What the operator should apply: the render, upgraded for what the cluster serves.
    let started = Instant::now();
    let kfdefs: Api<KfDef> = Api::namespaced(client.clone(), namespace);
    let stored = kfdefs.get(&name).await.expect("the KfDef is stored");
    let cache = tempfile::tempdir().expect("cache");
    let repos = kfop::repos::RepoCache::new(cache.path()).expect("repo cache");
    let mut apps = kfop::applications::render(&stored, &repos).await;
    let rendered: usize = apps
        .iter()
        .map(|a| a.result.as_ref().map_or(0, Vec::len))
        .sum();
    for app in &apps {
        assert!(
            app.result.is_ok(),
            "{}: {:?}",
            app.name,
            app.result.as_ref().err()
        );
    }
    let cluster = Cluster::new(client.clone());
    let served = cluster.served().await.expect("discovery");
    let report = kfop::upgrade::applications(&mut apps, &served);
    // Custom kinds' scope comes from their CRDs in the render (they are not installed yet).
    let crd_scopes: BTreeMap<(String, String), bool> = apps
        .iter()
        .filter_map(|a| a.result.as_ref().ok())
        .flatten()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|crd| {
            (
                (
                    crd["spec"]["group"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    crd["spec"]["names"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
                crd["spec"]["scope"] == "Namespaced",
            )
        })
        .collect();
    let mut expected: BTreeMap<ObjectKey, (String, Value)> = BTreeMap::new();
    for app in &apps {
        for object in app.result.as_ref().into_iter().flatten() {
            let key = key_of(object, namespace, &cluster, &crd_scopes).await;
            expected.insert(key, (app.name.clone(), object.clone()));
        }
    }
    assert!(report.upgraded_count() > 100, "{}", report.upgraded_count());

    // Every object in the inventory, and the KfDef Available (or each exception explained).
    let deadline = Instant::now() + INSTALL_DEADLINE;
    let kfdef = loop {
        let kfdef = kfdefs.get(&name).await.expect("get KfDef");
        let inventory: BTreeSet<ObjectKey> = kfdef
            .status
            .iter()
            .flat_map(|s| s.inventory.iter())
            .map(|e| e.id.clone())
            .collect();
        let missing: Vec<String> = expected
            .keys()
            .filter(|k| !inventory.contains(*k))
            .map(ToString::to_string)
            .collect();
        if missing.is_empty() {
            break kfdef;
        }
        if Instant::now() > deadline {
            let problems: Vec<String> = kfdef
                .status
                .iter()
                .flat_map(|s| s.applications.iter())
                .filter(|a| a.ready != kfop::kfdef::ConditionStatus::True)
                .map(|a| format!("{}: {}", a.name, a.message.clone().unwrap_or_default()))
                .collect();
            panic!(
                "{} objects not in the inventory after {INSTALL_DEADLINE:?}, e.g. {:?}; applications: {problems:#?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let applied = kfdef.status.as_ref().map_or(0, |s| s.inventory.len());
    // Available, or every object that is not ready explained by the cluster itself: on this
    // test bed no webhook server runs (there are no real pods), so what a webhook with
    // `failurePolicy: Fail` must admit is refused.
    let deadline = Instant::now() + INSTALL_DEADLINE;
    let (kfdef, explained) = loop {
        let kfdef = kfdefs.get(&name).await.expect("get KfDef");
        let observed = kfdef
            .status
            .as_ref()
            .is_some_and(|s| s.observed_generation == kfdef.metadata.generation);
        if observed && op::condition_true(&kfdef, "Available") {
            break (kfdef, Vec::new());
        }
        let (explained, unexplained) = not_ready(&client, &cluster, &expected).await;
        // Degraded is accepted only for applies the cluster refused, each explained above.
        let degraded_unexplained = op::condition_true(&kfdef, "Degraded")
            && (explained.is_empty() || degraded_reason(&kfdef).as_deref() != Some("ApplyFailed"));
        if observed && unexplained.is_empty() && !degraded_unexplained {
            break (kfdef, explained);
        }
        assert!(
            Instant::now() < deadline,
            "not Available after {INSTALL_DEADLINE:?}; unexplained: {unexplained:#?}; status: {:#?}",
            kfdef.status.as_ref().map(|s| &s.conditions)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let status = kfdef.status.clone().unwrap_or_default();
    eprintln!(
        "{}: rendered {rendered}, upgraded {}, skipped {}, applied {applied}, {:.1} s to converge; Available: {}; not ready, explained: {explained:#?}",
        era.name,
        report.upgraded_count(),
        report.skipped.len(),
        started.elapsed().as_secs_f64(),
        op::condition_true(&kfdef, "Available"),
    );
    let refused: BTreeSet<String> = explained
        .iter()
        .filter(|e| e.contains("refused"))
        .map(|e| e.split(':').next().unwrap_or_default().to_string())
        .collect();
    let upgrades = status.upgrades.clone().expect("status.upgrades");
    assert_eq!(upgrades.upgraded as usize, report.upgraded_count());
    assert_eq!(upgrades.skipped.len(), report.skipped.len());
    assert_eq!(applied, expected.len());

    // Each object is live, at the served version, and an upgraded one says where it came from.
    let uid = kfdef.uid().expect("uid");
    let mut upgraded_live = 0;
    for (key, (app, object)) in &expected {
        let version = version_of(object);
        if refused.contains(&key.to_string()) {
            continue;
        }
        let live = cluster
            .get(key, &version)
            .await
            .unwrap_or_else(|e| panic!("{app}: {key}: {e}"))
            .unwrap_or_else(|| panic!("{app}: {key} is missing"));
        assert_eq!(live.labels().get("kfop.dev/kfdef-uid"), Some(&uid), "{key}");
        let from = object["metadata"]["annotations"][UPGRADED_FROM_ANNOTATION].as_str();
        assert_eq!(
            live.annotations()
                .get(UPGRADED_FROM_ANNOTATION)
                .map(String::as_str),
            from,
            "{key}"
        );
        upgraded_live += usize::from(from.is_some());
    }
    let upgraded_expected = expected
        .iter()
        .filter(|(k, (_, o))| {
            !refused.contains(&k.to_string())
                && o["metadata"]["annotations"][UPGRADED_FROM_ANNOTATION].is_string()
        })
        .count();
    assert_eq!(upgraded_live, upgraded_expected);

    // A deleted upgraded object comes back at the served version.
    for kind in ["ClusterRole", "CustomResourceDefinition"] {
        let (key, (_, object)) = expected
            .iter()
            .find(|(k, (_, o))| {
                k.kind == kind
                    && o["metadata"]["annotations"][UPGRADED_FROM_ANNOTATION].is_string()
                    && (kind != "CustomResourceDefinition" || !has_custom_objects(o, &expected))
            })
            .unwrap_or_else(|| panic!("an upgraded {kind}"));
        let version = version_of(object);
        let before = cluster
            .get(key, &version)
            .await
            .expect("get")
            .expect("live");
        assert!(cluster.delete(key, &version).await.is_ok());
        let healed = Instant::now();
        let back = eventually(HEAL_DEADLINE, &format!("{key} back"), || async {
            let live = cluster.get(key, &version).await.ok()??;
            (live.uid() != before.uid() && live.metadata.deletion_timestamp.is_none())
                .then_some(live)
        })
        .await;
        assert_eq!(
            back.types.as_ref().map(|t| t.api_version.as_str()),
            object["apiVersion"].as_str(),
            "{key}"
        );
        assert!(
            back.annotations().contains_key(UPGRADED_FROM_ANNOTATION),
            "{key}"
        );
        eprintln!(
            "{}: {key} healed in {} ms",
            era.name,
            healed.elapsed().as_millis()
        );
    }

    // Deleting the KfDef removes everything it applied, upgraded CRDs included.
    let inventory: Vec<InventoryEntry> = status.inventory.clone();
    let deleting = Instant::now();
    kfdefs
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete KfDef");
    eventually(INSTALL_DEADLINE, "the KfDef gone", || async {
        matches!(kfdefs.get_opt(&name).await, Ok(None)).then_some(())
    })
    .await;
    let mut remaining = Vec::new();
    for entry in inventory.iter().filter(|e| e.adopted != Some(true)) {
        let key = entry.id.clone();
        if let Ok(Some(live)) = cluster.metadata(&key, &entry.version).await
            && live.metadata.deletion_timestamp.is_none()
        {
            remaining.push(key.to_string());
        }
    }
    assert!(remaining.is_empty(), "left behind: {remaining:?}");
    let crds_gone = inventory
        .iter()
        .filter(|e| e.id.kind == "CustomResourceDefinition")
        .count();
    eprintln!(
        "{}: deleted {} objects ({crds_gone} CRDs) in {:.1} s",
        era.name,
        inventory.len(),
        deleting.elapsed().as_secs_f64()
    );
    kubelet.abort();
}

/// The KfDef file: in the corpus folder, or else inside the release tarball (unpacked into a
/// temporary directory that the caller keeps).
async fn unpacked_kfdef(tarball: &Path, era: &Era) -> (PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    if corpus().join(era.kfdef).is_file() {
        return (corpus().join(era.kfdef), dir);
    }
    let cache = kfop::repos::RepoCache::new(dir.path().join("cache")).expect("cache");
    let repo = kfop::kfdef::Repo {
        name: "manifests".into(),
        uri: format!("file://{}", tarball.display()),
        sha256: None,
    };
    let local = cache.fetch(&repo).await.expect("tarball unpacks");
    (local.root.join(era.kfdef), dir)
}

/// Creates the namespace, after waiting for an earlier one of that name to finish terminating.
async fn ensure_namespace(client: &Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    eventually(
        INSTALL_DEADLINE,
        &format!("namespace {name} not terminating"),
        || async {
            match api.get_opt(name).await {
                Ok(Some(ns)) if ns.metadata.deletion_timestamp.is_some() => None,
                Ok(_) => Some(()),
                Err(_) => None,
            }
        },
    )
    .await;
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("ns");
    match api.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

fn version_of(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    api_version
        .split_once('/')
        .map_or(api_version, |(_, v)| v)
        .to_string()
}

/// The object's key as the operator records it (namespace defaulted for namespaced kinds).
async fn key_of(
    object: &Value,
    namespace: &str,
    cluster: &Cluster,
    crd_scopes: &BTreeMap<(String, String), bool>,
) -> ObjectKey {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let namespaced = match crd_scopes.get(&(group.to_string(), kind.clone())) {
        Some(namespaced) => *namespaced,
        None => match cluster.kind(group, version, &kind).await {
            Ok(Some(k)) => k.namespaced,
            other => panic!(
                "{kind}.{api_version} is neither served nor defined by a rendered CRD: {other:?}"
            ),
        },
    };
    ObjectKey {
        group: group.to_string(),
        kind,
        namespace: namespaced.then(|| {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(namespace)
                .to_string()
        }),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Whether the render has objects of the CRD's kind.
fn has_custom_objects(crd: &Value, expected: &BTreeMap<ObjectKey, (String, Value)>) -> bool {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
    expected.keys().any(|k| k.group == group && k.kind == kind)
}

/// The expected objects that are not there or not ready: those the cluster explains (a
/// webhook refused the object, or the pods of a workload), and the rest.
async fn not_ready(
    client: &Client,
    cluster: &Cluster,
    expected: &BTreeMap<ObjectKey, (String, Value)>,
) -> (Vec<String>, Vec<String>) {
    const WEBHOOK: &str = "failed calling webhook";
    let mut explained = Vec::new();
    let mut unexplained = Vec::new();
    for (key, (_, object)) in expected {
        let version = version_of(object);
        let live = match cluster.get(key, &version).await {
            Ok(Some(live)) => live,
            Ok(None) | Err(_) => {
                // Not there: does the API server refuse it because of a webhook?
                match dry_run(cluster, key, object).await {
                    Err(e) if e.contains(WEBHOOK) => {
                        explained.push(format!("{key}: refused: {}", first_quote(&e)))
                    }
                    other => unexplained.push(format!("{key}: missing ({other:?})")),
                }
                continue;
            }
        };
        let value = serde_json::to_value(&live).unwrap_or_default();
        if kfop::operator::status::readiness(&value) != Some(false) {
            continue;
        }
        let failure = value["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "ReplicaFailure")
            .and_then(|c| c["message"].as_str())
            .map(str::to_string);
        let failure = match failure {
            Some(f) => Some(f),
            None => failed_create_event(client, key).await,
        };
        match failure {
            Some(f) if f.contains(WEBHOOK) => {
                explained.push(format!("{key}: pods refused: {}", first_quote(&f)))
            }
            other => unexplained.push(format!("{key}: not ready ({other:?})")),
        }
    }
    (explained, unexplained)
}

/// The reason of the KfDef's Degraded condition.
fn degraded_reason(kfdef: &KfDef) -> Option<String> {
    kfdef
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")?
        .reason
        .clone()
}

/// The webhook named in an error (`failed calling webhook "x"` → `webhook "x"`).
fn first_quote(error: &str) -> String {
    error
        .split_once("webhook \"")
        .or_else(|| error.split_once("webhook \\\""))
        .and_then(|(_, rest)| rest.split(['"', '\\']).next())
        .map_or_else(
            || error.chars().take(200).collect(),
            |w| format!("webhook {w:?}"),
        )
}

/// A server-side dry-run apply of the object as the operator would send it.
async fn dry_run(cluster: &Cluster, key: &ObjectKey, object: &Value) -> Result<(), String> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
    let version = version_of(object);
    let kind = cluster
        .kind(&key.group, &version, &key.kind)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("kind not served")?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&key.group, &version, &key.kind));
    let api: Api<DynamicObject> = match (&key.namespace, kind.namespaced) {
        (Some(ns), true) => Api::namespaced_with(cluster.client().clone(), ns, &resource),
        _ => Api::all_with(cluster.client().clone(), &resource),
    };
    let mut object = object.clone();
    if let (Some(ns), true) = (&key.namespace, kind.namespaced) {
        object["metadata"]["namespace"] = Value::String(ns.clone());
    }
    api.patch(
        &key.name,
        &PatchParams::apply("kfop-test").dry_run().force(),
        &Patch::Apply(&object),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The message of the latest FailedCreate event of a workload.
async fn failed_create_event(client: &Client, key: &ObjectKey) -> Option<String> {
    use k8s_openapi::api::core::v1::Event;
    let events: Api<Event> = Api::namespaced(client.clone(), key.namespace.as_deref()?);
    let list = events
        .list(&kube::api::ListParams::default().fields(&format!(
            "involvedObject.name={},reason=FailedCreate",
            key.name
        )))
        .await
        .ok()?;
    list.items.into_iter().filter_map(|e| e.message).next_back()
}
