//! Strategic merge patch behaviour, each case checked against `kubectl kustomize` (kustomize
//! v5.5.0).

use serde_json::{Value, json};

use super::{NodeKind, PatchError, SmpOptions, apply_strategic_merge_patch, strategic_merge};

fn merge(target: Value, patch: Value) -> Value {
    strategic_merge(&target, &patch)
        .expect("merge succeeds")
        .expect("object kept")
}

fn deployment(pod_spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": pod_spec}},
    })
}

fn containers(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]["containers"]
}

#[test]
fn maps_merge_recursively_and_scalars_are_replaced() {
    let merged = merge(
        json!({"kind": "ConfigMap", "data": {"a": "1", "b": "2"}, "nested": {"x": {"y": 1}}}),
        json!({"data": {"b": "3", "c": "4"}, "nested": {"x": {"z": 2}}}),
    );
    assert_eq!(
        merged,
        json!({"kind": "ConfigMap", "data": {"a": "1", "b": "3", "c": "4"}, "nested": {"x": {"y": 1, "z": 2}}})
    );
}

#[test]
fn null_deletes_a_key_and_adds_nothing_where_there_was_none() {
    let merged = merge(
        json!({"data": {"a": "1", "b": {"c": 1}, "l": [1]}}),
        json!({"data": {"a": null, "b": null, "l": null, "missing": null}}),
    );
    assert_eq!(merged, json!({"data": {}}));
}

#[test]
fn nulls_inside_added_maps_are_dropped() {
    let merged = merge(json!({}), json!({"new": {"a": null, "b": 1}}));
    assert_eq!(merged, json!({"new": {"b": 1}}));
}

#[test]
fn a_null_the_target_had_is_kept() {
    let target = json!({"metadata": {"creationTimestamp": null, "name": "x"}});
    let merged = merge(target.clone(), json!({"metadata": {"labels": {"a": "b"}}}));
    assert_eq!(
        merged,
        json!({"metadata": {"creationTimestamp": null, "name": "x", "labels": {"a": "b"}}})
    );
}

#[test]
fn document_delete_removes_the_object() {
    let result = strategic_merge(
        &json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
        &json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "$patch": "delete"}),
    );
    assert_eq!(result, Ok(None));
}

#[test]
fn document_replace_leaves_the_target_unchanged() {
    // kustomize keeps the target's node and the replacement never reaches it.
    let target = json!({"kind": "Widget", "spec": {"a": 1}});
    let merged = merge(
        target.clone(),
        json!({"kind": "Widget", "spec": {"b": 2}, "$patch": "replace"}),
    );
    assert_eq!(merged, target);
}

#[test]
fn map_replace_and_delete_directives() {
    let merged = merge(
        json!({"spec": {"keep": 1, "swap": {"a": 1, "b": 2}, "drop": {"a": 1}}}),
        json!({"spec": {"swap": {"$patch": "replace", "c": 3}, "drop": {"$patch": "delete"}}}),
    );
    assert_eq!(merged, json!({"spec": {"keep": 1, "swap": {"c": 3}}}));
}

#[test]
fn merge_directive_is_removed_and_merges() {
    let merged = merge(
        json!({"spec": {"a": 1}}),
        json!({"spec": {"$patch": "merge", "b": 2}}),
    );
    assert_eq!(merged, json!({"spec": {"a": 1, "b": 2}}));
}

#[test]
fn directive_on_a_map_the_target_lacks() {
    let merged = merge(
        json!({"spec": {}}),
        json!({"spec": {"gone": {"$patch": "delete", "a": 1}, "new": {"$patch": "replace", "b": 2}}}),
    );
    assert_eq!(merged, json!({"spec": {"new": {"b": 2}}}));
}

#[test]
fn unknown_directive_is_an_error_naming_the_path() {
    let err = strategic_merge(
        &json!({"spec": {"a": {"b": 1}}}),
        &json!({"spec": {"a": {"$patch": "remove"}}}),
    );
    assert_eq!(
        err,
        Err(PatchError::UnknownDirective {
            path: "spec.a".to_owned(),
            value: "remove".to_owned()
        })
    );
}

#[test]
fn new_containers_are_prepended_and_matched_ones_follow_the_patch_order() {
    let target = deployment(json!({"containers": [
        {"name": "one", "image": "one:1"},
        {"name": "two", "image": "two:1"},
    ]}));
    let patch = deployment(json!({"containers": [
        {"name": "three", "image": "three:1"},
        {"name": "two", "image": "two:2"},
    ]}));
    let merged = merge(target, patch);
    assert_eq!(
        containers(&merged),
        &json!([
            {"name": "three", "image": "three:1"},
            {"name": "two", "image": "two:2"},
            {"name": "one", "image": "one:1"},
        ])
    );
}

#[test]
fn element_delete_directive_removes_the_element() {
    let target = deployment(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
    let patch = deployment(json!({"containers": [{"name": "a", "$patch": "delete"}]}));
    assert_eq!(containers(&merge(target, patch)), &json!([{"name": "b"}]));
}

#[test]
fn element_replace_directive_is_undone_by_kustomize() {
    // kyaml replaces the element in the list it builds, then lays the target's own element
    // (untouched) back over it: the target's element survives as it was.
    let target = deployment(json!({"containers": [{"name": "a", "image": "a:1", "args": ["x"]}]}));
    let patch =
        deployment(json!({"containers": [{"name": "a", "image": "a:2", "$patch": "replace"}]}));
    assert_eq!(
        containers(&merge(target, patch)),
        &json!([{"name": "a", "image": "a:1", "args": ["x"]}])
    );
}

#[test]
fn list_replace_directive_replaces_the_whole_list() {
    let target = deployment(json!({"containers": [{"name": "a"}, {"name": "b", "image": "b:1"}]}));
    let patch =
        deployment(json!({"containers": [{"$patch": "replace"}, {"name": "b"}, {"name": "c"}]}));
    assert_eq!(
        containers(&merge(target, patch)),
        &json!([{"name": "b"}, {"name": "c"}])
    );
}

#[test]
fn list_delete_directive_removes_the_list() {
    let target = deployment(json!({"containers": [{"name": "a"}], "volumes": [{"name": "v"}]}));
    let patch = deployment(json!({"volumes": [{"$patch": "delete"}]}));
    assert_eq!(
        merge(target, patch)["spec"]["template"]["spec"],
        json!({"containers": [{"name": "a"}]})
    );
}

#[test]
fn nested_lists_merge_by_their_own_keys() {
    let target = deployment(json!({"containers": [{
        "name": "app",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }]}));
    let patch = deployment(json!({"containers": [{
        "name": "app",
        "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}, {"name": "A", "$patch": "delete"}],
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
    }]}));
    assert_eq!(
        containers(&merge(target, patch)),
        &json!([{
            "name": "app",
            "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
            "volumeMounts": [
                {"name": "cache", "mountPath": "/cache"},
                {"name": "data", "mountPath": "/data"},
            ],
        }])
    );
}

#[test]
fn duplicate_keys_in_the_target_collapse_into_one_element() {
    // Any merge walks the whole target: two `env` entries named A become one, at the first's
    // place with the last's value.
    let target = deployment(json!({"containers": [{
        "name": "app",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "A", "value": "3"}],
    }]}));
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    assert_eq!(
        containers(&merge(target, patch))[0]["env"],
        json!([{"name": "A", "value": "3"}, {"name": "B", "value": "2"}])
    );
}

#[test]
fn container_ports_match_on_port_and_protocol() {
    let target = deployment(json!({"containers": [{"name": "dns", "ports": [
        {"containerPort": 53, "protocol": "UDP", "name": "udp"},
        {"containerPort": 53, "protocol": "TCP", "name": "tcp"},
    ]}]}));
    let patch = deployment(json!({"containers": [{"name": "dns", "ports": [
        {"containerPort": 53, "protocol": "TCP", "hostPort": 5353},
        {"containerPort": 9153},
    ]}]}));
    assert_eq!(
        containers(&merge(target, patch))[0]["ports"],
        json!([
            {"containerPort": 9153},
            {"containerPort": 53, "protocol": "UDP", "name": "udp"},
            {"containerPort": 53, "protocol": "TCP", "name": "tcp", "hostPort": 5353},
        ])
    );
}

#[test]
fn service_ports_merge_by_port_and_protocol() {
    let service = |ports: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": ports}});
    let merged = merge(
        service(json!([
            {"port": 80, "name": "http"},
            {"port": 53, "protocol": "UDP", "name": "dns-udp"},
            {"port": 53, "protocol": "TCP", "name": "dns-tcp"},
        ])),
        service(json!([
            {"port": 8080, "name": "alt"},
            {"port": 53, "protocol": "UDP", "targetPort": 5353},
            {"port": 80, "targetPort": 8081},
        ])),
    );
    assert_eq!(
        merged["spec"]["ports"],
        json!([
            {"port": 8080, "name": "alt"},
            {"port": 80, "name": "http", "targetPort": 8081},
            {"port": 53, "protocol": "UDP", "name": "dns-udp", "targetPort": 5353},
            {"port": 53, "protocol": "TCP", "name": "dns-tcp"},
        ])
    );
}

#[test]
fn finalizers_merge_as_a_set_of_scalars_patch_first() {
    let merged = merge(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["c", "a"]}}),
    );
    assert_eq!(merged["metadata"]["finalizers"], json!(["c", "a", "b"]));
}

#[test]
fn lists_without_a_merge_strategy_are_replaced() {
    let target = deployment(
        json!({"containers": [{"name": "a", "args": ["-x", "-y"]}], "tolerations": [{"key": "k1"}]}),
    );
    let patch = deployment(
        json!({"containers": [{"name": "a", "args": ["-z"]}], "tolerations": [{"key": "k2"}]}),
    );
    let merged = merge(target, patch);
    assert_eq!(containers(&merged)[0]["args"], json!(["-z"]));
    assert_eq!(
        merged["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "k2"}])
    );
}

#[test]
fn custom_resource_lists_are_replaced_verbatim_directives_included() {
    let widget = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
    let merged = merge(
        widget(json!({"items": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]})),
        widget(json!({"items": [{"name": "a", "$patch": "delete"}, {"name": "c", "v": null}]})),
    );
    assert_eq!(
        merged["spec"]["items"],
        json!([{"name": "a", "$patch": "delete"}, {"name": "c", "v": null}])
    );
}

#[test]
fn a_built_in_object_embedded_in_a_custom_resource_merges_by_its_schema() {
    let widget = |containers: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"template": {"apiVersion": "apps/v1", "kind": "Deployment",
                        "spec": {"template": {"spec": {"containers": containers}}}}}})
    };
    let merged = merge(
        widget(json!([{"name": "a", "image": "a:1"}])),
        widget(json!([{"name": "b", "image": "b:1"}])),
    );
    assert_eq!(
        merged["spec"]["template"]["spec"]["template"]["spec"]["containers"],
        json!([{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:1"}])
    );
}

#[test]
fn a_patch_list_the_target_lacks_is_added() {
    let target = deployment(json!({"containers": [{"name": "a"}]}));
    let patch = deployment(
        json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "gone", "$patch": "delete"}]}),
    );
    assert_eq!(
        merge(target, patch)["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "v", "emptyDir": {}}])
    );
}

#[test]
fn mismatched_node_kinds_are_an_error() {
    let err = strategic_merge(
        &json!({"spec": {"replicas": 1}}),
        &json!({"spec": {"replicas": {"value": 2}}}),
    );
    assert_eq!(
        err,
        Err(PatchError::NodeKindMismatch {
            path: "spec.replicas".to_owned(),
            target: NodeKind::Scalar,
            patch: NodeKind::Map
        })
    );
    let err = strategic_merge(&json!({"spec": {"a": [1]}}), &json!({"spec": {"a": "x"}}));
    assert!(matches!(err, Err(PatchError::NodeKindMismatch { .. })));
}

#[test]
fn a_null_target_field_takes_the_patch() {
    let merged = merge(
        json!({"spec": {"a": null}}),
        json!({"spec": {"a": {"b": 1}}}),
    );
    assert_eq!(merged, json!({"spec": {"a": {"b": 1}}}));
}

#[test]
fn apply_keeps_the_targets_name_kind_and_namespace() {
    let target = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web", "namespace": "prod"}});
    let patch = json!({"apiVersion": "apps/v1beta1", "kind": "StatefulSet",
                       "metadata": {"name": "other", "namespace": "dev", "labels": {"a": "b"}}});
    let result = apply_strategic_merge_patch(&target, &patch, SmpOptions::default());
    assert_eq!(
        result,
        Ok(Some(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "web", "namespace": "prod", "labels": {"a": "b"}}})))
    );
}

#[test]
fn apply_removes_a_namespace_the_target_did_not_have() {
    let target = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let patch = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}});
    let result = apply_strategic_merge_patch(&target, &patch, SmpOptions::default());
    assert_eq!(result, Ok(Some(target)));
}

#[test]
fn apply_with_name_and_kind_changes_allowed() {
    let target = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let patch = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "d"}});
    let options = SmpOptions {
        allow_name_change: true,
        allow_kind_change: true,
    };
    let result = apply_strategic_merge_patch(&target, &patch, options);
    assert_eq!(
        result,
        Ok(Some(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "d"}})
        ))
    );
}

#[test]
fn apply_delete_returns_none() {
    let target = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let patch = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "$patch": "delete"});
    assert_eq!(
        apply_strategic_merge_patch(&target, &patch, SmpOptions::default()),
        Ok(None)
    );
}

#[test]
fn merge_is_total_on_odd_values() {
    let values = [
        json!(null),
        json!(1),
        json!("s"),
        json!([1, null, {"$patch": "x"}]),
        json!({"$patch": 1}),
        json!({"a": [null, {}, [], "s", {"name": null}]}),
        deployment(json!({"containers": [null, 1, {"$patch": "replace"}, {"name": {"x": 1}}, []]})),
        deployment(json!({"containers": [{"$patch": "delete", "name": "a"}, {}]})),
        json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": null}, {"protocol": "UDP"}]}}),
        json!({"metadata": {"finalizers": [{"a": 1}, "b", null]}}),
    ];
    for target in &values {
        for patch in &values {
            // Any result is fine; a panic is not.
            let _ = strategic_merge(target, patch);
            let _ = apply_strategic_merge_patch(target, patch, SmpOptions::default());
        }
    }
}

#[test]
fn documents_nested_too_deep_are_an_error_not_a_crash() {
    let mut deep = json!(1);
    for _ in 0..100_000 {
        deep = Value::Array(vec![deep]);
    }
    let result = strategic_merge(&json!({}), &deep);
    assert_eq!(
        result,
        Err(PatchError::TooDeep {
            limit: super::MAX_DEPTH
        })
    );
    // serde_json drops nested values recursively; leak this one rather than overflow.
    std::mem::forget(result);
    std::mem::forget(deep);
}
