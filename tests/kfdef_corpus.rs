//! Every real KfDef file of the kubeflow/manifests v1.0 corpus parses and round-trips without losing a field.

mod inputs;

use kfop::kfdef::{self, KfDef};
use serde_json::Value;
use std::path::PathBuf;

/// The v1.0 corpus's KfDef folder (see `inputs` for where corpora are looked for).
fn kfdef_dir() -> Option<PathBuf> {
    inputs::corpus("kubeflow-manifests-v1.0", "tree/kfdef").map(|c| c.join("tree/kfdef"))
}

fn corpus_files() -> Option<Vec<PathBuf>> {
    let dir = kfdef_dir()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read the corpus folder")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("kfctl_") && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    Some(files)
}

/// The JSON path of the first place where `a` and `b` differ, with both values there.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            let (l, r) = (
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
            );
            if x.contains_key(k) != y.contains_key(k) {
                return Some(format!("{path}.{k}: {l} vs {r} (missing on one side)"));
            }
            first_difference(l, r, &format!("{path}.{k}"))
        }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| first_difference(l, r, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

#[test]
fn every_corpus_kfdef_parses_and_round_trips() {
    let Some(files) = corpus_files() else {
        return;
    };
    assert_eq!(files.len(), 32, "the corpus has 32 kfctl_*.yaml files");
    for path in &files {
        let name = path.display();
        let text = std::fs::read_to_string(path).expect("read");
        let original: serde_json::Value = serde_saphyr::from_str(&text).expect("plain YAML");
        let parsed = kfdef::read_file(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            parsed.unknown_fields.is_empty(),
            "{name}: unknown fields {:?}",
            parsed.unknown_fields
        );
        let kfdef = parsed.kfdef;
        assert!(
            !kfdef.spec.applications.is_empty(),
            "{name}: no applications"
        );
        assert!(
            kfdef.metadata.name.is_none(),
            "{name}: the corpus has no names"
        );

        let serialized = serde_json::to_value(&kfdef).expect("serialize");
        if let Some(difference) = first_difference(&serialized, &original, "") {
            panic!("{name}: a field was lost or changed at {difference}");
        }

        let yaml = serde_saphyr::to_string(&kfdef).expect("to YAML");
        let again: KfDef = kfdef::parse(&yaml, "re-serialized")
            .expect("parse again")
            .kfdef;
        assert_eq!(again, kfdef, "{name}: YAML round trip");
    }
    eprintln!("{} corpus KfDefs round-trip", files.len());
}

#[test]
fn the_istio_kfdef_has_44_applications_over_one_repo() {
    let Some(dir) = kfdef_dir() else {
        return;
    };
    let kfdef = kfdef::read_file(&dir.join("kfctl_k8s_istio.v1.0.2.yaml"))
        .expect("parse")
        .kfdef;
    assert_eq!(kfdef.spec.applications.len(), 44);
    assert_eq!(kfdef.spec.repos.len(), 1);
    assert_eq!(kfdef.spec.repos[0].name, "manifests");
    assert_eq!(
        kfdef.spec.repos[0].uri,
        "https://github.com/kubeflow/manifests/archive/v1.0.2.tar.gz"
    );
    assert_eq!(kfdef.spec.version.as_deref(), Some("v1.0.2"));
    let metadata = kfdef
        .spec
        .applications
        .iter()
        .find(|app| app.name == "metadata")
        .and_then(|app| app.kustomize_config.as_ref())
        .expect("the metadata application");
    assert!(!metadata.overlays.is_empty());
}
