//! The real KfDefs of Kubeflow v1.0.2 and v1.2, rendered from their release tarballs and upgraded
//! for Kubernetes 1.37 (what `kfop render -f --kube-version 1.37` prints): no object is left at a
//! removed API version, every upgraded CRD has a structural schema, and the counts are pinned.

use kfop::applications::RenderedApplication;
use kfop::upgrade::{self, Served, UPGRADED_FROM_ANNOTATION};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod inputs;

/// One corpus release: its tarball and its KfDef file.
struct Era {
    tarball: &'static str,
    /// The KfDef file: relative to the corpus folder, or else inside the tarball.
    kfdef: &'static str,
    /// The repo URI the KfDef names (replaced by the tarball).
    uri: &'static str,
}

const V1_0_2: Era = Era {
    tarball: "kubeflow-manifests-v1.0/manifests-v1.0.2.tar.gz",
    // The tarball's own copy names the v1.0 branch; the released file names the v1.0.2 tarball.
    kfdef: "kubeflow-manifests-v1.0/tree/kfdef/kfctl_k8s_istio.v1.0.2.yaml",
    uri: "https://github.com/kubeflow/manifests/archive/v1.0.2.tar.gz",
};

const V1_2_0: Era = Era {
    tarball: "kubeflow-manifests-v1.2/manifests-v1.2-branch.tar.gz",
    kfdef: "kfdef/kfctl_k8s_istio.v1.2.0.yaml",
    uri: "https://github.com/kubeflow/manifests/archive/v1.2.0.tar.gz",
};

fn corpus() -> Option<PathBuf> {
    let dir = inputs::corpus_root();
    if dir.join(V1_0_2.tarball).is_file() && dir.join(V1_2_0.tarball).is_file() {
        Some(dir)
    } else {
        inputs::missing(format!(
            "the corpus tarballs are not under {} (set KFOP_CORPUS to the folder of corpora)",
            dir.display()
        ))
    }
}

/// Reads the KfDef out of the tarball, points its repo at the tarball, renders it.
async fn render(corpus: &Path, era: &Era) -> Vec<RenderedApplication> {
    let tarball = corpus.join(era.tarball).canonicalize().expect("tarball");
    let cache_dir = tempfile::tempdir().expect("cache dir");
    let cache = kfop::repos::RepoCache::new(cache_dir.path()).expect("cache");
    let repo = kfop::kfdef::Repo {
        name: "manifests".into(),
        uri: format!("file://{}", tarball.display()),
        sha256: None,
    };
    let local = cache.fetch(&repo).await.expect("tarball unpacks");
    let in_corpus = corpus.join(era.kfdef);
    let file = if in_corpus.is_file() {
        in_corpus
    } else {
        local.root.join(era.kfdef)
    };
    let text = std::fs::read_to_string(&file).expect("KfDef file");
    let mut kfdef = kfop::kfdef::parse(&text, era.kfdef).expect("KfDef").kfdef;
    kfdef.metadata.name = Some("kubeflow".into());
    for repo in &mut kfdef.spec.repos {
        assert_eq!(repo.uri, era.uri);
        repo.uri = format!("file://{}", tarball.display());
    }
    let apps = kfop::applications::render(&kfdef, &cache).await;
    for app in &apps {
        if let Err(e) = &app.result {
            panic!("{}: {e}", era.kfdef);
        }
    }
    apps
}

fn objects(apps: &[RenderedApplication]) -> impl Iterator<Item = &Value> {
    apps.iter().filter_map(|a| a.result.as_ref().ok()).flatten()
}

fn tally(apps: &[RenderedApplication]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for object in objects(apps) {
        *counts
            .entry(
                object["apiVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_default() += 1;
    }
    counts
}

/// Upgrades the render for 1.37 and checks what must hold for any era; returns
/// (rendered, upgraded, skipped, upgraded per old apiVersion).
fn upgrade_and_check(
    mut apps: Vec<RenderedApplication>,
) -> (usize, usize, usize, BTreeMap<String, usize>) {
    let rendered = objects(&apps).count();
    let served = Served::release(1, 37);
    let report = upgrade::applications(&mut apps, &served);
    let mut from: BTreeMap<String, usize> = BTreeMap::new();
    for ((api_version, _), count) in &report.upgraded {
        *from.entry(api_version.clone()).or_default() += count;
    }
    for object in objects(&apps) {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        assert!(
            served.serves(api_version, kind),
            "{kind}.{api_version} left at a removed version"
        );
        let upgraded = object["metadata"]["annotations"][UPGRADED_FROM_ANNOTATION].as_str();
        if kind == "CustomResourceDefinition" {
            assert_eq!(api_version, "apiextensions.k8s.io/v1");
            assert!(upgraded.is_some() || object["spec"].get("versions").is_some());
            for version in object["spec"]["versions"].as_array().expect("versions") {
                let schema = &version["schema"]["openAPIV3Schema"];
                assert_eq!(schema["type"], "object", "{}", upgrade::describe(object));
                assert_structural(schema, &upgrade::describe(object), "");
            }
        }
    }
    assert_eq!(
        objects(&apps).count() + report.skipped.len(),
        rendered,
        "every object is either kept, upgraded or skipped"
    );
    (
        rendered,
        report.upgraded_count(),
        report.skipped.len(),
        from,
    )
}

/// A structural schema: every node typed (or open, or int-or-string), junctors without types.
fn assert_structural(node: &Value, crd: &str, path: &str) {
    let map = node
        .as_object()
        .unwrap_or_else(|| panic!("{crd}{path}: not a schema"));
    let open = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    assert!(
        map.get("type").is_some_and(Value::is_string) || open || int_or_string,
        "{crd}{path}: no type"
    );
    for forbidden in ["$ref", "definitions", "id", "$schema", "patternProperties"] {
        assert!(!map.contains_key(forbidden), "{crd}{path}: {forbidden}");
    }
    assert!(
        !(map.contains_key("properties") && map.contains_key("additionalProperties")),
        "{crd}{path}: properties and additionalProperties"
    );
    for junctor in ["allOf", "anyOf", "oneOf", "not"] {
        if let Some(value) = map.get(junctor) {
            let text = value.to_string();
            assert!(
                !text.contains("\"type\"") && !text.contains("\"properties\""),
                "{crd}{path}.{junctor}: {text}"
            );
        }
    }
    if let Some(Value::Object(properties)) = map.get("properties") {
        for (name, property) in properties {
            assert_structural(property, crd, &format!("{path}.{name}"));
        }
    }
    if let Some(items) = map.get("items") {
        assert_structural(items, crd, &format!("{path}[]"));
    }
    if let Some(additional) = map.get("additionalProperties").filter(|a| a.is_object()) {
        assert_structural(additional, crd, &format!("{path}.*"));
    }
}

#[tokio::test]
async fn kubeflow_v1_0_2_is_upgraded_for_current_kubernetes() {
    let Some(corpus) = corpus() else { return };
    let apps = render(&corpus, &V1_0_2).await;
    let before = tally(&apps);
    let (rendered, upgraded, skipped, from) = upgrade_and_check(apps);
    eprintln!("v1.0.2: rendered {rendered}, upgraded {upgraded}, skipped {skipped}: {from:?}");
    // Every object of a removed version was upgraded; besides them, one Deployment (spark
    // operator) only lost its pod template's `metadata.initializers`.
    for (api_version, count) in &from {
        if api_version != "apps/v1" {
            assert_eq!(before.get(api_version), Some(count), "{api_version}");
        }
    }
    assert_eq!(from.get("apps/v1"), Some(&1));
    assert_eq!(from.get("apiextensions.k8s.io/v1beta1"), Some(&93));
    assert_eq!(from.get("rbac.authorization.k8s.io/v1beta1"), Some(&50));
    assert_eq!(from.get("admissionregistration.k8s.io/v1beta1"), Some(&9));
    assert_eq!(from.get("autoscaling/v2beta1"), Some(&8));
    assert_eq!(from.get("policy/v1beta1"), Some(&7));
    assert_eq!(from.get("apiregistration.k8s.io/v1beta1"), Some(&2));
    assert_eq!((rendered, upgraded, skipped), (594, 170, 0));
}

#[tokio::test]
async fn kubeflow_v1_2_is_upgraded_for_current_kubernetes() {
    let Some(corpus) = corpus() else { return };
    let apps = render(&corpus, &V1_2_0).await;
    let before = tally(&apps);
    let (rendered, upgraded, skipped, from) = upgrade_and_check(apps);
    eprintln!("v1.2.0: rendered {rendered}, upgraded {upgraded}, skipped {skipped}: {from:?}");
    for (api_version, count) in &from {
        assert_eq!(before.get(api_version), Some(count), "{api_version}");
    }
    assert_eq!(from.get("apiextensions.k8s.io/v1beta1"), Some(&65));
    assert_eq!(from.get("rbac.authorization.k8s.io/v1beta1"), Some(&40));
    assert_eq!(from.get("admissionregistration.k8s.io/v1beta1"), Some(&13));
    assert_eq!((rendered, upgraded, skipped), (565, 132, 0));
}
