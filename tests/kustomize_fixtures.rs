//! Table-driven conformance: every case under tests/fixtures/kustomize/ is a kustomization tree and
//! either the output `kubectl kustomize` printed for it (expected.yaml, refreshed by
//! hack/update-kustomize-fixtures.sh) or the error kfop must give (expected-error.txt).

use kfop::render::{Renderer, yaml};
use std::path::Path;

#[test]
fn fixtures_render_like_kubectl_kustomize() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kustomize");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no fixtures found");
    let renderer = Renderer::new(Some(&root)).expect("renderer");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = renderer.render(case);
        if let Ok(expected_error) = std::fs::read_to_string(case.join("expected-error.txt")) {
            match result {
                Ok(_) => failures.push(format!(
                    "{name}: rendered, but should fail with {expected_error:?}"
                )),
                Err(e) if e.to_string().contains(expected_error.trim()) => {}
                Err(e) => failures.push(format!(
                    "{name}: wrong error {e}, expected {expected_error:?}"
                )),
            }
            continue;
        }
        let expected_text =
            std::fs::read_to_string(case.join("expected.yaml")).expect("expected.yaml");
        let expected = yaml::parse_documents(&expected_text).expect("expected.yaml parses");
        match result {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(actual) if actual != expected => failures.push(format!(
                "{name}: output differs\n--- expected\n{expected_text}\n--- actual\n{}",
                yaml::to_yaml_stream(&actual).unwrap_or_default()
            )),
            Ok(_) => {}
        }
    }
    println!(
        "kustomize fixtures: {} of {} cases pass",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
