//! JSON 6902 behaviour, each case checked against `kubectl kustomize` (kustomize v5.5.0, which
//! uses evanphx/json-patch v4).

use serde_json::{Value, json};

use super::{Json6902Failure, Json6902Patch, PatchError};

fn doc() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "1", "list": "x"},
        "spec": {"arr": [1, 2, 3]},
    })
}

fn apply(ops: Value) -> Result<Value, PatchError> {
    Json6902Patch::from_value(&ops)?.apply(&doc())
}

fn failure(result: Result<Value, PatchError>) -> (usize, Json6902Failure) {
    match result {
        Err(PatchError::Json6902 { index, failure, .. }) => (index, failure),
        other => panic!("expected an operation to fail, got {other:?}"),
    }
}

#[test]
fn add_remove_replace() {
    let result = apply(json!([
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "remove", "path": "/data/list"},
        {"op": "replace", "path": "/data/a", "value": "one"},
        {"op": "add", "path": "/spec/arr/1", "value": 9},
        {"op": "add", "path": "/spec/arr/-", "value": 4},
    ]))
    .expect("patch applies");
    assert_eq!(result["data"], json!({"a": "one", "b": "2"}));
    assert_eq!(result["spec"]["arr"], json!([1, 9, 2, 3, 4]));
}

#[test]
fn move_and_copy() {
    let result = apply(json!([
        {"op": "copy", "from": "/data/a", "path": "/data/copied"},
        {"op": "move", "from": "/spec/arr/0", "path": "/spec/first"},
        {"op": "move", "from": "/data/list", "path": "/data/moved"},
    ]))
    .expect("patch applies");
    assert_eq!(
        result["data"],
        json!({"a": "1", "copied": "1", "moved": "x"})
    );
    assert_eq!(result["spec"], json!({"arr": [2, 3], "first": 1}));
}

#[test]
fn test_operation_passes_and_fails() {
    assert!(apply(json!([{"op": "test", "path": "/data/a", "value": "1"}])).is_ok());
    assert!(apply(json!([{"op": "test", "path": "/spec/arr", "value": [1, 2, 3]}])).is_ok());
    assert_eq!(
        failure(apply(json!([
            {"op": "add", "path": "/x", "value": 1},
            {"op": "test", "path": "/data/a", "value": 1},
        ]))),
        (1, Json6902Failure::TestFailed)
    );
}

#[test]
fn replace_of_a_missing_key_adds_it() {
    let result = apply(json!([{"op": "replace", "path": "/data/missing", "value": "r"}]));
    assert_eq!(
        result.expect("patch applies")["data"]["missing"],
        json!("r")
    );
}

#[test]
fn copy_from_a_missing_key_adds_null() {
    let result = apply(json!([{"op": "copy", "from": "/data/missing", "path": "/data/cp"}]));
    assert_eq!(result.expect("patch applies")["data"]["cp"], Value::Null);
}

#[test]
fn add_without_value_adds_null() {
    let result = apply(json!([{"op": "add", "path": "/data/novalue"}]));
    assert_eq!(
        result.expect("patch applies")["data"]["novalue"],
        Value::Null
    );
}

#[test]
fn test_of_a_missing_key_against_null_passes() {
    assert!(apply(json!([{"op": "test", "path": "/data/missing", "value": null}])).is_ok());
}

#[test]
fn negative_and_lenient_indices() {
    let result = apply(json!([{"op": "add", "path": "/spec/arr/-1", "value": 9}]));
    assert_eq!(
        result.expect("patch applies")["spec"]["arr"],
        json!([1, 2, 3, 9])
    );
    let result = apply(json!([{"op": "remove", "path": "/spec/arr/-1"}]));
    assert_eq!(result.expect("patch applies")["spec"]["arr"], json!([1, 2]));
    let result = apply(json!([{"op": "add", "path": "/spec/arr/01", "value": 7}]));
    assert_eq!(
        result.expect("patch applies")["spec"]["arr"],
        json!([1, 7, 2, 3])
    );
    let result = apply(json!([{"op": "replace", "path": "/spec/arr/+0", "value": 0}]));
    assert_eq!(
        result.expect("patch applies")["spec"]["arr"],
        json!([0, 2, 3])
    );
}

#[test]
fn a_path_without_leading_slash_loses_its_first_segment() {
    let result = apply(json!([{"op": "add", "path": "data/rel", "value": "v"}]));
    assert_eq!(result.expect("patch applies")["rel"], json!("v"));
}

#[test]
fn escaped_keys() {
    let result = apply(json!([
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/example.com~1a~0b", "value": "v"},
    ]));
    assert_eq!(
        result.expect("patch applies")["metadata"]["annotations"],
        json!({"example.com/a~b": "v"})
    );
}

#[test]
fn replace_of_the_whole_document() {
    let result = apply(json!([{"op": "replace", "path": "", "value": {"x": 1}}]));
    assert_eq!(result, Ok(json!({"x": 1})));
    // Anything but a map or a list is silently ignored by evanphx v4.
    assert_eq!(
        apply(json!([{"op": "replace", "path": "", "value": "v"}])),
        Ok(doc())
    );
}

#[test]
fn failures_name_the_operation() {
    assert_eq!(
        failure(apply(json!([{"op": "add", "path": "", "value": {}}]))),
        (0, Json6902Failure::MissingPath("path \"\"".to_owned()))
    );
    assert_eq!(
        failure(apply(
            json!([{"op": "move", "from": "/data", "path": "/data/sub"}])
        )),
        (
            0,
            Json6902Failure::MissingPath("path \"/data/sub\"".to_owned())
        )
    );
    assert_eq!(
        failure(apply(json!([{"op": "bogus", "path": "/data"}]))),
        (0, Json6902Failure::UnknownOperation)
    );
    assert_eq!(
        failure(apply(json!([{"op": "remove", "path": "/data/nope"}]))),
        (0, Json6902Failure::MissingKey("nope".to_owned()))
    );
    assert_eq!(
        failure(apply(json!([{"op": "remove", "path": "/spec/arr/3"}]))),
        (0, Json6902Failure::IndexOutOfRange(3))
    );
    assert_eq!(
        failure(apply(
            json!([{"op": "add", "path": "/spec/arr/x", "value": 1}])
        )),
        (0, Json6902Failure::NotAnIndex("x".to_owned()))
    );
    assert_eq!(
        failure(apply(json!([{"op": "remove"}]))),
        (0, Json6902Failure::MissingField("path"))
    );
    assert_eq!(
        failure(apply(json!([null]))),
        (0, Json6902Failure::UnknownOperation)
    );
    let message = apply(json!([{"op": "remove", "path": "/data/nope"}]))
        .expect_err("fails")
        .to_string();
    assert!(
        message.contains("operation 0") && message.contains("/data/nope"),
        "{message}"
    );
}

#[test]
fn parses_yaml_and_json_text() {
    let yaml =
        "- op: add\n  path: /data/b\n  value: yes\n- op: add\n  path: /data/c\n  value: 0755\n";
    let result = Json6902Patch::parse(yaml)
        .expect("YAML parses")
        .apply(&doc())
        .expect("patch applies");
    // YAML 1.1, as kustomize reads JSON 6902 YAML.
    assert_eq!(result["data"]["b"], json!(true));
    assert_eq!(result["data"]["c"], json!(493));
    let json_text = r#"[{"op": "remove", "path": "/data/a"}]"#;
    let patch = Json6902Patch::parse(json_text).expect("JSON parses");
    assert_eq!(patch.len(), 1);
    assert!(
        patch.apply(&doc()).expect("applies")["data"]
            .get("a")
            .is_none()
    );
}

#[test]
fn text_starting_with_a_bracket_must_be_json() {
    assert!(matches!(
        Json6902Patch::parse("[{op: add, path: /a, value: 1}]"),
        Err(PatchError::InvalidJson6902(_))
    ));
}

#[test]
fn rejects_what_is_not_an_operation_list() {
    for bad in [json!({"op": "add"}), json!("x"), json!([1]), json!([[]])] {
        assert!(
            matches!(
                Json6902Patch::from_value(&bad),
                Err(PatchError::InvalidJson6902(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        Json6902Patch::parse(""),
        Err(PatchError::InvalidJson6902(_))
    ));
    assert!(
        Json6902Patch::from_value(&Value::Null)
            .expect("null is empty")
            .is_empty()
    );
}

#[test]
fn apply_is_total_on_odd_values() {
    let ops = json!([
        {"op": "add", "path": "/a/b/c", "value": 1},
        {"op": "copy", "from": "", "path": "/x"},
        {"op": "move", "from": "/", "path": "/"},
        {"op": "replace", "path": "/0", "value": null},
        {"op": "test", "path": "/"},
        {"op": 1, "path": 2},
        {"op": "add", "path": "/-9223372036854775808", "value": 1},
        {"op": "remove", "path": "/99999999999999999999"},
    ]);
    let patch = Json6902Patch::from_value(&ops).expect("a list of maps");
    for document in [
        json!(null),
        json!(1),
        json!([]),
        json!([1, [2]]),
        json!({}),
        doc(),
    ] {
        for op in 0..patch.len() {
            let single = Json6902Patch::from_value(&json!([ops[op].clone()])).expect("one op");
            let _ = single.apply(&document);
        }
        let _ = patch.apply(&document);
    }
}
