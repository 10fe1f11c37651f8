//! KfDef applications rendered end to end against real manifests: every application of the 32
//! KfDef files of the kubeflow/manifests v1.0 corpus renders; each distinct application of the
//! main ones matches `kubectl kustomize` run on the kustomization kfctl would have generated; the
//! merge of several overlays with parameters is pinned for a few applications; and every KfDef of
//! the kfctl v1.1/v1.2 era (the `kfdef/` folder of the v1.2-branch archive) renders every
//! application from that archive, as do the trimmed copies kept in `tests/fixtures/kfdef/`.

mod inputs;

use kfop::kfdef::KfDef;
use kfop::render::kfctl::{self, ApplicationSource, KfDefContext};
use kfop::render::loader::Loader;
use kfop::render::yaml;
use kfop::repos::RepoCache;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    inputs::corpus("kubeflow-manifests-v1.0", "tree/kfdef")
}

/// A corpus KfDef with a name and its repos pointed at the corpus tree.
fn load(corpus: &Path, file: &str) -> KfDef {
    let mut kfdef = kfop::kfdef::read_file(&corpus.join("tree/kfdef").join(file))
        .expect("corpus KfDef parses")
        .kfdef;
    kfdef.metadata.name = Some("kubeflow".into());
    if kfdef.metadata.namespace.is_none() {
        kfdef.metadata.namespace = Some("kubeflow".into());
    }
    let tree = corpus.join("tree").canonicalize().expect("corpus tree");
    for repo in &mut kfdef.spec.repos {
        repo.uri = format!("file://{}", tree.display());
    }
    kfdef
}

fn kfdef_files(corpus: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(corpus.join("tree/kfdef"))
        .expect("kfdef dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kfctl_") && n.ends_with(".yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_application_of_the_corpus_kfdefs_renders() {
    let Some(corpus) = corpus() else { return };
    let cache_dir = tempfile::tempdir().expect("cache dir");
    let cache = RepoCache::new(cache_dir.path()).expect("cache");
    let (mut rendered, mut absent, mut failures) = (0, BTreeSet::new(), Vec::new());
    let files = kfdef_files(&corpus);
    assert_eq!(files.len(), 32, "the corpus has 32 KfDef files");
    for file in &files {
        let kfdef = load(&corpus, file);
        for app in kfop::applications::render(&kfdef, &cache).await {
            match app.result {
                Ok(objects) => {
                    assert!(
                        !objects.is_empty(),
                        "{file}: {} rendered no objects",
                        app.name
                    );
                    rendered += 1;
                }
                // The corpus leaves out a few directories of the real repo.
                Err(kfop::applications::ApplicationError::Path { path, .. }) => {
                    absent.insert(path);
                }
                Err(e) => failures.push(format!("{file}: {e}")),
            }
        }
    }
    println!(
        "corpus KfDefs: {rendered} applications rendered, {} directories absent from the corpus: {absent:?}",
        absent.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        absent.len() <= 3,
        "too many applications point outside the corpus: {absent:?}"
    );
}

/// How one comparison went.
enum Comparison {
    Same,
    /// kubectl (kustomize v5.5) refuses the kustomization (kfctl's older kustomize took it); kfop
    /// renders it.
    KubectlRefused(String),
}

/// Renders `source` with kfop, and with `kubectl kustomize` on a copy of the corpus tree into which
/// the files kfctl would have written are written.
fn compare_with_kubectl(
    tree: &Path,
    scratch: &Path,
    source: &ApplicationSource,
    context: &KfDefContext,
) -> Result<Comparison, String> {
    let mut loader = Loader::new(Some(tree)).map_err(|e| e.to_string())?;
    kfctl::prepare(&mut loader, source, context).map_err(|e| e.to_string())?;
    let overrides: Vec<(PathBuf, Vec<u8>)> = loader
        .overrides()
        .map(|(p, c)| (p.to_path_buf(), c.to_vec()))
        .collect();
    let ours = kfop::render::Renderer::with_loader(loader)
        .render(&source.dir)
        .map_err(|e| e.to_string())?;
    let tree_root = tree.canonicalize().map_err(|e| e.to_string())?;
    let mut written = Vec::new();
    for (path, content) in &overrides {
        let relative = path.strip_prefix(&tree_root).map_err(|e| e.to_string())?;
        let target = scratch.join(relative);
        let original = std::fs::read(&target).ok();
        std::fs::write(&target, content).map_err(|e| e.to_string())?;
        written.push((target, original));
    }
    let relative_dir = source.dir.strip_prefix(tree).map_err(|e| e.to_string())?;
    let output = std::process::Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(scratch.join(relative_dir))
        .output()
        .map_err(|e| format!("running kubectl: {e}"))?;
    for (target, original) in written {
        match original {
            Some(content) => std::fs::write(&target, content),
            None => std::fs::remove_file(&target),
        }
        .map_err(|e| e.to_string())?;
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .filter(|l| !l.starts_with("# Warning"))
            .collect::<Vec<_>>()
            .join(" ");
        return Ok(Comparison::KubectlRefused(
            reason.chars().take(200).collect(),
        ));
    }
    let theirs = yaml::parse_documents(&String::from_utf8_lossy(&output.stdout))
        .map_err(|e| e.to_string())?;
    if ours != theirs {
        let first = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        return Err(format!(
            "differs from kubectl ({} vs {} objects, first difference at {first:?})",
            ours.len(),
            theirs.len()
        ));
    }
    Ok(Comparison::Same)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from)
        .expect("read dir")
        .filter_map(Result::ok)
    {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn applications_match_kubectl_kustomize_of_kfctls_generated_kustomization() {
    let Some(corpus) = corpus() else { return };
    let Some(_kubectl) = inputs::Kubectl::find() else {
        return;
    };
    let tree = corpus.join("tree").canonicalize().expect("tree");
    let scratch = tempfile::tempdir().expect("scratch");
    copy_tree(&tree, scratch.path());
    let mut seen = BTreeSet::new();
    let (mut compared, mut failures, mut refused) = (0, Vec::new(), Vec::new());
    for file in [
        "kfctl_k8s_istio.v1.0.2.yaml",
        "kfctl_istio_dex.v1.0.2.yaml",
        "kfctl_aws.v1.0.2.yaml",
        "kfctl_gcp_iap.v1.0.2.yaml",
    ] {
        let kfdef = load(&corpus, file);
        let context = KfDefContext {
            uid: String::new(),
            name: "kubeflow".into(),
            namespace: "kubeflow".into(),
            project: String::new(),
        };
        for app in &kfdef.spec.applications {
            let config = app.kustomize_config.clone().unwrap_or_default();
            let path = config.repo_ref.and_then(|r| r.path).unwrap_or_default();
            let source = ApplicationSource {
                dir: tree.join(&path),
                overlays: config.overlays.clone(),
                parameters: config
                    .parameters
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone().unwrap_or_default()))
                    .collect(),
            };
            if !source.dir.is_dir()
                || !seen.insert(format!(
                    "{path} {:?} {:?}",
                    source.overlays, source.parameters
                ))
            {
                continue;
            }
            compared += 1;
            match compare_with_kubectl(&tree, scratch.path(), &source, &context) {
                Ok(Comparison::Same) => {}
                Ok(Comparison::KubectlRefused(reason)) => refused.push(format!("{path}: {reason}")),
                Err(e) => failures.push(format!("{file} {}: {e}", app.name)),
            }
        }
    }
    println!(
        "kfctl merges: {} of {compared} distinct applications match kubectl kustomize; kubectl refuses {} that kfop renders:\n{}",
        compared - failures.len() - refused.len(),
        refused.len(),
        refused.join("\n")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // kustomize v5 refuses the index paths (`containers/0/env/0/value`) that some v1.0
    // configurations use; kfop reads them as indexes, like the kustomize kfctl shipped with.
    let refused_dirs: BTreeSet<&str> = refused.iter().filter_map(|r| r.split(':').next()).collect();
    assert!(
        refused_dirs.len() <= 4,
        "kubectl refuses too many: {refused:?}"
    );
}

fn generated_kustomization(
    tree: &Path,
    path: &str,
    overlays: &[&str],
    parameters: &[(&str, &str)],
) -> (Value, Loader) {
    let source = ApplicationSource {
        dir: tree.join(path),
        overlays: overlays.iter().map(|s| s.to_string()).collect(),
        parameters: parameters
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    let context = KfDefContext {
        uid: String::new(),
        name: "kf-test".into(),
        namespace: "kubeflow".into(),
        project: "my-project".into(),
    };
    let mut loader = Loader::new(Some(tree)).expect("loader");
    kfctl::prepare(&mut loader, &source, &context).expect("prepare");
    let text = loader
        .read_text(&source.dir.join("kustomization.yaml"))
        .expect("generated kustomization");
    (yaml::parse_document(&text).expect("yaml"), loader)
}

#[test]
fn metadata_with_istio_application_and_db_overlays_merges_like_kfctl() {
    let Some(corpus) = corpus() else { return };
    let tree = corpus.join("tree");
    let (k, loader) = generated_kustomization(
        &tree,
        "metadata",
        &["istio", "application", "db"],
        &[("namespace", "ml")],
    );
    assert_eq!(k["bases"], serde_json::json!(["base"]));
    assert_eq!(k["namespace"], "ml");
    assert_eq!(
        k["resources"],
        serde_json::json!([
            "overlays/istio/virtual-service.yaml",
            "overlays/istio/virtual-service-metadata-grpc.yaml",
            "overlays/application/application.yaml",
            "overlays/db/metadata-db-pvc.yaml",
            "overlays/db/metadata-db-deployment.yaml",
            "overlays/db/metadata-db-service.yaml"
        ])
    );
    assert_eq!(
        k["configurations"],
        serde_json::json!(["overlays/istio/params.yaml"])
    );
    assert_eq!(k["commonLabels"]["app.kubernetes.io/name"], "metadata");
    assert_eq!(k["commonLabels"]["kustomize.component"], "metadata");
    assert_eq!(
        k["patchesStrategicMerge"],
        serde_json::json!(["overlays/db/metadata-deployment.yaml"])
    );
    assert_eq!(k["images"][0]["newTag"], "8.0.3");
    assert_eq!(k["generatorOptions"]["disableNameSuffixHash"], true);
    assert_eq!(k["configMapGenerator"][0]["env"], "overlays/db/params.env");
    assert_eq!(k["vars"][0]["name"], "metadata-db-service");
    // The repo itself is untouched: kfctl's files live only in the loader.
    let on_disk =
        std::fs::read_to_string(tree.join("metadata/kustomization.yaml")).unwrap_or_default();
    assert!(!on_disk.contains("overlays/db"), "the repo was written to");
    let objects = kfop::render::Renderer::with_loader(loader)
        .render(&tree.join("metadata"))
        .expect("render");
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "metadata-db")
        .expect("the db overlay's Deployment");
    assert_eq!(deployment["metadata"]["namespace"], "ml");
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "kubeflow"
    );
}

#[test]
fn parameters_fill_params_env_like_kfctl() {
    let Some(corpus) = corpus() else { return };
    let tree = corpus.join("tree");
    let dir = tree.join("jupyter/jupyter-web-app");
    let original = std::fs::read_to_string(dir.join("base/params.env")).expect("params.env");
    let first_key = original
        .lines()
        .next()
        .and_then(|l| l.split('=').next())
        .expect("a parameter")
        .to_string();
    let (_, loader) = generated_kustomization(
        &tree,
        "jupyter/jupyter-web-app",
        &["istio"],
        &[(first_key.as_str(), "custom-value")],
    );
    let params = loader
        .read_text(&dir.join("base/params.env"))
        .expect("params");
    assert!(
        params
            .lines()
            .any(|l| l == format!("{first_key}=custom-value")),
        "{params}"
    );
    for line in params.lines() {
        if let Some(value) = line.strip_prefix("namespace=") {
            assert_eq!(value, "kubeflow");
        }
    }
}

/// The kfctl v1.1/v1.2 archive of kubeflow/manifests (v1.2-branch), as a repo `uri`.
fn v1_2_archive() -> Option<String> {
    let corpus = inputs::corpus("kubeflow-manifests-v1.2", "manifests-v1.2-branch.tar.gz")?;
    let archive = corpus
        .join("manifests-v1.2-branch.tar.gz")
        .canonicalize()
        .expect("archive path");
    Some(format!("file://{}", archive.display()))
}

/// Renders every application of `kfdef` with every repo pointed at `uri`; returns the object
/// count per application, the failures, and the application paths the archive lacks.
async fn render_all(
    kfdef: &mut KfDef,
    uri: &str,
    cache: &RepoCache,
) -> (Vec<(String, usize)>, Vec<String>, Vec<String>) {
    kfdef.metadata.name = Some("kubeflow".into());
    if kfdef.metadata.namespace.is_none() {
        kfdef.metadata.namespace = Some("kubeflow".into());
    }
    for repo in &mut kfdef.spec.repos {
        repo.uri = uri.to_string();
    }
    let (mut counts, mut failures, mut absent) = (Vec::new(), Vec::new(), Vec::new());
    for app in kfop::applications::render(kfdef, cache).await {
        match app.result {
            Ok(objects) if objects.is_empty() => {
                failures.push(format!("{}: no objects", app.name));
            }
            Ok(objects) => counts.push((app.name, objects.len())),
            Err(kfop::applications::ApplicationError::Path { path, .. }) => absent.push(path),
            Err(e) => failures.push(e.to_string()),
        }
    }
    (counts, failures, absent)
}

/// The KfDef files of the kfctl v1.1/v1.2 era in the archive's `kfdef/` folder: those released
/// with v1.1.0 and v1.2.0, and the unversioned ones the branch kept current. (The v1.0.x files
/// name the v1.0 archives; the v1.0 corpus tests them.)
fn v1_2_era_kfdefs(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("kfdef"))
        .expect("the archive's kfdef folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("kfctl_") && name.ends_with(".yaml") && !name.contains(".v1.0.")
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_application_of_the_v1_2_branch_kfdefs_renders() {
    let Some(uri) = v1_2_archive() else { return };
    let cache_dir = tempfile::tempdir().expect("cache dir");
    let cache = RepoCache::new(cache_dir.path()).expect("cache");
    let repo = kfop::kfdef::Repo {
        name: "manifests".into(),
        uri: uri.clone(),
        sha256: None,
    };
    let root = cache.fetch(&repo).await.expect("the archive unpacks").root;
    let files = v1_2_era_kfdefs(&root);
    assert_eq!(
        files.len(),
        25,
        "18 v1.1.0/v1.2.0 KfDefs and 7 unversioned ones"
    );
    let (mut applications, mut failures, mut absent) = (0, Vec::new(), BTreeSet::new());
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let mut kfdef = kfop::kfdef::read_file(file)
            .unwrap_or_else(|e| panic!("{e}"))
            .kfdef;
        let (counts, failed, missing) = render_all(&mut kfdef, &uri, &cache).await;
        absent.extend(missing);
        applications += counts.len();
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        println!(
            "{name}: {} applications, {total} objects: {}",
            counts.len(),
            counts
                .iter()
                .map(|(app, n)| format!("{app} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        failures.extend(failed.into_iter().map(|f| format!("{name}: {f}")));
    }
    println!(
        "v1.2-branch KfDefs: {applications} applications rendered, {} failed; directories the \
         archive lacks (the v1.1-branch and master archives those KfDefs name have them): {absent:?}",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let expected_absent: BTreeSet<String> = [
        "stacks/azure/application/add-anonymous-user-filter-istio-1.6",
        "stacks/ibm/application/tensorboard",
        "tensorboard",
        "tensorboard/overlays/istio",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    assert_eq!(
        absent, expected_absent,
        "application directories the archive lacks"
    );
}

#[tokio::test]
async fn trimmed_kfctl_era_kfdef_fixtures_render() {
    let Some(uri) = v1_2_archive() else { return };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kfdef");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("tests/fixtures/kfdef")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "a few trimmed KfDefs are kept");
    let cache_dir = tempfile::tempdir().expect("cache dir");
    let cache = RepoCache::new(cache_dir.path()).expect("cache");
    for file in &files {
        let parsed = kfop::kfdef::read_file(file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            parsed.unknown_fields.is_empty(),
            "{}: {:?}",
            file.display(),
            parsed.unknown_fields
        );
        let mut kfdef = parsed.kfdef;
        let (counts, failures, absent) = render_all(&mut kfdef, &uri, &cache).await;
        assert!(
            failures.is_empty() && absent.is_empty(),
            "{}: {failures:?} {absent:?}",
            file.display()
        );
        assert_eq!(counts.len(), kfdef.spec.applications.len());
    }
}
