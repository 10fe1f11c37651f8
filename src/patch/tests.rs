//! Recognising patch text as kustomize's `patches:` does, each case checked against
//! `kubectl kustomize` (kustomize v5.5.0).

use serde_json::json;

use super::{Json6902Patch, ParsedPatch, PatchError, parse_patch, parse_strategic_merge_patches};

const SMP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  b: yes\n";

#[test]
fn a_resource_document_is_a_strategic_merge_patch() {
    let parsed = parse_patch(SMP).expect("recognised");
    // YAML 1.2 booleans, as kyaml reads patches: `yes` stays a string.
    assert_eq!(
        parsed,
        ParsedPatch::StrategicMerge(vec![json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "yes"}
        })])
    );
}

#[test]
fn several_documents_and_empty_ones() {
    let text = format!("---\n{SMP}---\n\n---\n{SMP}");
    match parse_patch(&text) {
        Ok(ParsedPatch::StrategicMerge(documents)) => assert_eq!(documents.len(), 2),
        other => panic!("expected two documents, got {other:?}"),
    }
}

#[test]
fn an_operation_list_is_a_json6902_patch() {
    let yaml = "- op: add\n  path: /data/b\n  value: x\n";
    let json_text = r#"[{"op": "add", "path": "/data/b", "value": "x"}]"#;
    let expected =
        Json6902Patch::from_value(&json!([{"op": "add", "path": "/data/b", "value": "x"}]))
            .expect("valid");
    for text in [yaml, json_text] {
        assert_eq!(
            parse_patch(text),
            Ok(ParsedPatch::Json6902(expected.clone())),
            "{text}"
        );
    }
}

#[test]
fn text_that_is_both_is_ambiguous() {
    // No document and an empty operation list, or null as the first YAML document.
    for text in [
        "[]",
        "# just a comment",
        format!("---\n---\n{SMP}---").as_str(),
    ] {
        assert_eq!(parse_patch(text), Err(PatchError::Ambiguous), "{text}");
    }
}

#[test]
fn text_that_is_neither_is_an_error_with_both_reasons() {
    let err = parse_patch("kind: ConfigMap\ndata: {x: \"1\"}\n").expect_err("neither");
    assert!(matches!(err, PatchError::Unrecognized { .. }), "{err:?}");
    assert!(err.to_string().contains("metadata.name"), "{err}");
    assert!(matches!(
        parse_patch("[{op: add, path: /a, value: 1}]"),
        Err(PatchError::Unrecognized { .. })
    ));
    assert!(matches!(
        parse_patch("a: [unclosed"),
        Err(PatchError::Unrecognized { .. })
    ));
}

#[test]
fn a_list_is_unwrapped_into_its_items() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n";
    assert_eq!(
        parse_strategic_merge_patches(text),
        Ok(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        ])
    );
}

#[test]
fn documents_need_a_kind_and_a_name() {
    for text in [
        "metadata: {name: c}\n",
        "kind: ConfigMap\n",
        "kind: ConfigMap\nmetadata: {name: \"\"}\n",
        "- a\n",
        "just a string\n",
    ] {
        assert!(
            matches!(
                parse_strategic_merge_patches(text),
                Err(PatchError::InvalidStrategicMerge { .. })
            ),
            "{text}"
        );
    }
    assert_eq!(
        parse_strategic_merge_patches("kind: ConfigMapList\n"),
        Ok(vec![json!({"kind": "ConfigMapList"})])
    );
}

#[test]
fn numbers_read_as_kustomize_reads_them() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nc: [yes, 0755, 1_000, 0x1F, 0o17, ~]\n";
    let documents = parse_strategic_merge_patches(text).expect("parses");
    assert_eq!(documents[0]["c"], json!(["yes", 493, 1000, 31, 15, null]));
    let ops = "- op: add\n  path: /b\n  value: [yes, y, on, 0755, 1_000, 0x1F, ~]\n";
    let result = Json6902Patch::parse(ops)
        .expect("parses")
        .apply(&json!({}))
        .expect("applies");
    assert_eq!(result["b"], json!([true, true, true, 493, 1000, 31, null]));
}

#[test]
fn nesting_beyond_the_yaml_budget_is_an_error() {
    // serde-saphyr's default budget stops at 64 levels (deeper input overflows its parser's
    // stack in debug builds).
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndeep: ");
    text.push_str(&"[".repeat(80));
    text.push_str(&"]".repeat(80));
    assert!(matches!(
        parse_strategic_merge_patches(&text),
        Err(PatchError::Yaml(_))
    ));
    assert!(matches!(
        parse_patch(&text),
        Err(PatchError::Unrecognized { .. })
    ));
}

#[test]
fn parsing_is_total_on_odd_text() {
    for text in [
        "",
        "\0",
        "---",
        "- - -",
        "{",
        "[",
        "a: &x [*x]",
        "? [a]\n: b",
        "- op: 1\n---\n- 2",
    ] {
        let _ = parse_patch(text);
        let _ = parse_strategic_merge_patches(text);
        let _ = Json6902Patch::parse(text);
    }
}
