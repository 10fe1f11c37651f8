//! Conformance against real-world kustomize trees, object by object:
//! - every directory of the kubeflow/manifests v1.0 corpus against what `kubectl kustomize`
//!   printed for it (stored in the corpus);
//! - every directory of the v1.9.1 corpus against `kubectl kustomize` run now (its output is
//!   cached outside the repo), except the directories `docs/rendering.md` lists with a reason.

mod inputs;

use kfop::render::{Renderer, yaml};
use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn renders_the_v1_0_corpus_like_kubectl_kustomize() {
    let Some(corpus) = inputs::corpus("kubeflow-manifests-v1.0", "dirs.txt") else {
        return;
    };
    let dirs = inputs::corpus_dirs(&corpus);
    assert_eq!(dirs.len(), 146, "the v1.0 corpus lists 146 directories");
    let renderer = Renderer::new(None).expect("renderer");
    let mut failures = Vec::new();
    for dir in &dirs {
        let expected_path = corpus
            .join("expected")
            .join(format!("{}.yaml", dir.replace('/', "_")));
        let expected_text = std::fs::read_to_string(&expected_path).expect("expected output");
        let expected = yaml::parse_documents(&expected_text).expect("expected output parses");
        match renderer.render(&corpus.join("tree").join(dir)) {
            Err(e) => failures.push(format!("{dir}: {e}")),
            Ok(actual) => {
                if let Some(difference) = inputs::first_difference(&expected, &actual) {
                    failures.push(format!("{dir}: {difference}"));
                }
            }
        }
    }
    println!(
        "v1.0 corpus: {} of {} directories match kubectl kustomize",
        dirs.len() - failures.len(),
        dirs.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn renders_the_v1_9_1_corpus_like_kubectl_kustomize() {
    let Some(corpus) = inputs::corpus("kubeflow-manifests-v1.9.1", "dirs.txt") else {
        return;
    };
    let Some(kubectl) = inputs::Kubectl::find() else {
        return;
    };
    let tree = corpus.join("tree");
    let dirs = inputs::corpus_dirs(&corpus);
    assert!(dirs.len() > 300, "the v1.9.1 corpus lists every directory");
    let expected_outputs = kubectl.kustomize_all_json(&tree, &dirs);
    let exceptions = documented_exceptions();
    let renderer = Renderer::new(None).expect("renderer");
    let mut differing = BTreeMap::new();
    for (dir, expected) in dirs.iter().zip(expected_outputs) {
        let expected = match expected {
            Ok(lines) => lines,
            Err(e) => panic!("kubectl kustomize {dir} failed, yet dirs.txt lists it: {e}"),
        };
        let outcome = match renderer.render(&tree.join(dir)) {
            Err(e) => Some(format!("kfop fails: {e}")),
            Ok(actual) => {
                let same = actual.len() == expected.len()
                    && actual
                        .iter()
                        .zip(&expected)
                        .all(|(a, e)| serde_json::to_string(a).is_ok_and(|a| a == *e));
                if same {
                    None
                } else {
                    let expected: Vec<serde_json::Value> = expected
                        .iter()
                        .map(|line| serde_json::from_str(line).expect("cached JSON"))
                        .collect();
                    inputs::first_difference(&expected, &actual)
                        .or_else(|| Some("differs in number formatting".into()))
                }
            }
        };
        if let Some(problem) = outcome {
            differing.insert(dir.clone(), problem);
        }
    }
    println!(
        "v1.9.1 corpus: {} of {} directories match kubectl kustomize; {} differ as docs/rendering.md explains",
        dirs.len() - differing.len(),
        dirs.len(),
        differing
            .keys()
            .filter(|d| exceptions.contains_key(*d))
            .count()
    );
    let unexplained: Vec<String> = differing
        .iter()
        .filter(|(dir, _)| !exceptions.contains_key(*dir))
        .map(|(dir, problem)| format!("{dir}: {problem}"))
        .collect();
    let stale: Vec<&String> = exceptions
        .keys()
        .filter(|dir| !differing.contains_key(*dir))
        .collect();
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "{} directories differ from kubectl kustomize without a reason in docs/rendering.md:\n{}\n\
         listed in docs/rendering.md but now identical (remove them): {stale:?}",
        unexplained.len(),
        unexplained.join("\n"),
    );
}

/// The v1.9.1 directories docs/rendering.md lists as differing on purpose, with the reason:
/// lines "- `dir`: reason" under the heading that names the v1.9.1 corpus.
fn documented_exceptions() -> BTreeMap<String, String> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rendering.md");
    let text = std::fs::read_to_string(&docs).expect("docs/rendering.md");
    let mut exceptions = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with('#') {
            inside = line.contains("v1.9.1 corpus");
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(rest) = line.strip_prefix("- `")
            && let Some((dir, reason)) = rest.split_once("`: ")
        {
            exceptions.insert(dir.to_string(), reason.to_string());
        }
    }
    exceptions
}
