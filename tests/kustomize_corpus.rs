//! Conformance against real-world kustomize trees: every directory of the kubeflow/manifests v1.0
//! corpus is rendered and compared, object by object, with what `kubectl kustomize` printed.

use kfop::render::{Renderer, yaml};
use std::path::Path;

const CORPUS: &str = "../shared/corpus/kubeflow-manifests-v1.0";

#[test]
fn renders_the_kubeflow_corpus_like_kubectl_kustomize() {
    let corpus = Path::new(CORPUS);
    let Ok(list) = std::fs::read_to_string(corpus.join("dirs.txt")) else {
        eprintln!("skipping: corpus not found at {CORPUS}");
        return;
    };
    let dirs: Vec<&str> = list.lines().filter(|l| !l.trim().is_empty()).collect();
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
                if let Some(difference) = first_difference(&expected, &actual) {
                    failures.push(format!("{dir}: {difference}"));
                }
            }
        }
    }
    println!(
        "kustomize corpus: {} of {} directories match kubectl kustomize",
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

fn describe(object: &serde_json::Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn first_difference(
    expected: &[serde_json::Value],
    actual: &[serde_json::Value],
) -> Option<String> {
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if e != a {
            let detail = match (e.as_object(), a.as_object()) {
                (Some(e), Some(a)) => e
                    .keys()
                    .chain(a.keys())
                    .find(|k| e.get(*k) != a.get(*k))
                    .map(|k| {
                        format!(
                            "field {k}: expected {} got {}",
                            e.get(k).map_or("none".into(), |v| v.to_string()),
                            a.get(k).map_or("none".into(), |v| v.to_string())
                        )
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            return Some(format!(
                "object {i}: expected {} got {} ({detail})",
                describe(e),
                describe(a)
            ));
        }
    }
    if expected.len() != actual.len() {
        return Some(format!(
            "expected {} objects, got {}",
            expected.len(),
            actual.len()
        ));
    }
    None
}
