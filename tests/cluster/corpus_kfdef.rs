//! A real KfDef (kfctl_k8s_istio.v1.0.2 from the kubeflow/manifests v1.0 corpus), trimmed to
//! applications that need no external controllers, applied by the operator from the corpus tree
//! and checked resource by resource. Kubeflow v1.0 predates Kubernetes 1.22: its objects of API
//! versions the API server no longer serves (rbac v1beta1) are upgraded and applied; its
//! `app.k8s.io` Applications, whose CRD the trimmed KfDef leaves out, are reported as pending.

use crate::operator_support as op;
use crate::support::{self, eventually};
use kfop::kfdef::KfDef;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::Value;

const KEEP: &[&str] = &[
    "kubeflow-roles",
    "minio",
    "mysql",
    "pipeline-visualization-service",
    "spartakus",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_corpus_kfdef_is_applied_resource_by_resource() {
    let Some(corpus) = crate::inputs::corpus("kubeflow-manifests-v1.0", "tree") else {
        return;
    };
    let corpus = corpus.join("tree");
    let Some(ns) = support::namespace("corpus-kfdef").await else {
        return;
    };
    let _operator = op::start(&ns.client, &ns.name).await;
    let mut kfdef = kfop::kfdef::read_file(&corpus.join("kfdef/kfctl_k8s_istio.v1.0.2.yaml"))
        .expect("corpus KfDef")
        .kfdef;
    kfdef
        .spec
        .applications
        .retain(|a| KEEP.contains(&a.name.as_str()));
    assert_eq!(kfdef.spec.applications.len(), KEEP.len());
    let tree = corpus.canonicalize().expect("tree");
    for repo in &mut kfdef.spec.repos {
        repo.uri = format!("file://{}", tree.display());
    }
    kfdef.metadata.name = Some("kubeflow".into());
    kfdef.metadata.namespace = Some(ns.name.clone());

    // What kfop renders for it, object by object.
    let cache = tempfile::tempdir().expect("cache");
    let repos = kfop::repos::RepoCache::new(cache.path()).expect("repo cache");
    let mut apps = kfop::applications::render(&kfdef, &repos).await;
    let rendered: usize = apps
        .iter()
        .map(|a| a.result.as_ref().map_or(0, Vec::len))
        .sum();
    let served = kfop::operator::cluster::Cluster::new(ns.client.clone())
        .served()
        .await
        .expect("discovery");
    let report = kfop::upgrade::applications(&mut apps, &served);
    assert!(
        report.upgraded_count() > 0,
        "the v1.0 manifests have objects of API versions Kubernetes 1.37 removed"
    );
    assert_eq!(report.skipped, Vec::new());
    let mut expected: Vec<(String, Value)> = Vec::new();
    for app in apps {
        for object in app.result.expect("renders") {
            expected.push((app.name.clone(), object));
        }
    }
    assert!(expected.len() > 20, "{} objects", expected.len());
    assert_eq!(expected.len(), rendered);

    let api: Api<KfDef> = Api::namespaced(ns.client.clone(), &ns.name);
    let mut document = serde_json::to_value(&kfdef).expect("json");
    document["apiVersion"] = "kfdef.apps.kubeflow.org/v1".into();
    document["kind"] = "KfDef".into();
    api.patch(
        "kubeflow",
        &PatchParams::apply("kfop-test").force(),
        &Patch::Apply(&document),
    )
    .await
    .expect("apply");

    let mut served = Vec::new();
    let mut unserved = Vec::new();
    for (app, object) in &expected {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        match kube::discovery::pinned_kind(&ns.client, &gvk).await {
            Ok((resource, capabilities)) => {
                served.push((app.clone(), object.clone(), resource, capabilities.scope))
            }
            Err(_) => unserved.push(format!("{kind}.{api_version}")),
        }
    }
    assert!(
        unserved.iter().all(|u| u.ends_with("app.k8s.io/v1beta1")),
        "only custom kinds without their CRD stay unserved: {unserved:?}"
    );
    let kfdef = eventually(
        op::TIMEOUT,
        "every served object applied and the rest reported",
        || async {
            op::make_pods_ready(&ns.client, &ns.name).await;
            let kfdef = api.get("kubeflow").await.ok()?;
            let progressing = op::condition_message(&kfdef, "Progressing");
            let status = kfdef.status.as_ref()?;
            let upgraded = status.upgrades.as_ref().map(|u| u.upgraded as usize);
            (status.inventory.len() == served.len()
                && upgraded == Some(report.upgraded_count())
                && (unserved.is_empty() || progressing.contains("no matches for kind")))
            .then_some(kfdef)
        },
    )
    .await;
    let uid = kfdef.uid().expect("uid");
    for (app, object, resource, scope) in &served {
        let name = object["metadata"]["name"].as_str().expect("name");
        let objects: Api<DynamicObject> = match (scope, object["metadata"]["namespace"].as_str()) {
            (kube::discovery::Scope::Namespaced, Some(namespace)) => {
                Api::namespaced_with(ns.client.clone(), namespace, resource)
            }
            (kube::discovery::Scope::Namespaced, None) => {
                Api::namespaced_with(ns.client.clone(), &ns.name, resource)
            }
            _ => Api::all_with(ns.client.clone(), resource),
        };
        let live = objects
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{app}: {} {name} missing: {e}", resource.kind));
        assert_eq!(
            live.labels().get("kfop.dev/kfdef-uid"),
            Some(&uid),
            "{app}: {} {name}",
            resource.kind
        );
        assert_eq!(
            live.labels().get("kfop.dev/application"),
            Some(app),
            "{app}: {} {name}",
            resource.kind
        );
        for (key, value) in object["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
        {
            assert_eq!(
                live.labels().get(key).map(String::as_str),
                value.as_str(),
                "{app}: {} {name} label {key}",
                resource.kind
            );
        }
        if let Some(data) = object.get("data") {
            assert_eq!(
                &live.data["data"], data,
                "{app}: {} {name} data",
                resource.kind
            );
        }
        if let Some(spec) = object.get("spec").and_then(|s| s.get("template")) {
            assert_eq!(
                live.data["spec"]["template"]["spec"]["containers"][0]["image"],
                spec["spec"]["containers"][0]["image"],
                "{app}: {} {name} image",
                resource.kind
            );
        }
    }
}
