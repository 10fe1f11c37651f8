//! `extensions/v1beta1`, `apps/v1beta1` and `apps/v1beta2` workloads → `apps/v1`.
//!
//! The old versions defaulted fields that `apps/v1` requires or defaults differently; those
//! defaults are written out so the workload behaves as its manifest meant: a missing selector
//! (and missing object labels) taken from the pod template's labels, the old rollout strategy,
//! revision history limit and progress deadline.

use serde_json::{Map, Value, json};

/// The largest int32: the old versions' "unlimited".
const UNLIMITED: i64 = i32::MAX as i64;

/// `extensions/v1beta1` Deployment, DaemonSet or ReplicaSet.
pub fn from_extensions_v1beta1(object: &mut Map<String, Value>) -> Result<(), String> {
    selector_from_template(object)?;
    let kind = kind(object);
    let spec = super::object_at(object, "spec").ok_or("spec is not an object")?;
    match kind.as_str() {
        "Deployment" => {
            spec.remove("rollbackTo");
            rolling_update(spec, "strategy", json!(1), Some(json!(1)));
            spec.entry("revisionHistoryLimit")
                .or_insert(json!(UNLIMITED));
            spec.entry("progressDeadlineSeconds")
                .or_insert(json!(UNLIMITED));
        }
        "DaemonSet" => {
            spec.remove("templateGeneration");
            let strategy = super::object_at(spec, "updateStrategy").ok_or("bad updateStrategy")?;
            strategy.entry("type").or_insert(json!("OnDelete"));
            rolling_update(spec, "updateStrategy", json!(1), None);
        }
        _ => {}
    }
    Ok(())
}

/// `apps/v1beta1` Deployment or StatefulSet.
pub fn from_apps_v1beta1(object: &mut Map<String, Value>) -> Result<(), String> {
    selector_from_template(object)?;
    let kind = kind(object);
    let spec = super::object_at(object, "spec").ok_or("spec is not an object")?;
    match kind.as_str() {
        "Deployment" => {
            spec.entry("revisionHistoryLimit").or_insert(json!(2));
        }
        "StatefulSet" => {
            let strategy = super::object_at(spec, "updateStrategy").ok_or("bad updateStrategy")?;
            strategy.entry("type").or_insert(json!("OnDelete"));
        }
        _ => {}
    }
    Ok(())
}

/// `apps/v1beta2` kinds: the same defaults as `apps/v1`; only a missing selector is filled in.
pub fn from_apps_v1beta2(object: &mut Map<String, Value>) -> Result<(), String> {
    selector_from_template(object)
}

fn kind(object: &Map<String, Value>) -> String {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Sets `spec.<field>.rollingUpdate` defaults when the strategy is (or defaults to) a rolling
/// update.
fn rolling_update(
    spec: &mut Map<String, Value>,
    field: &str,
    max_unavailable: Value,
    max_surge: Option<Value>,
) {
    let Some(strategy) = super::object_at(spec, field) else {
        return;
    };
    let type_ = strategy
        .entry("type")
        .or_insert(json!("RollingUpdate"))
        .clone();
    if type_ != "RollingUpdate" {
        return;
    }
    if let Some(rolling) = super::object_at(strategy, "rollingUpdate") {
        rolling.entry("maxUnavailable").or_insert(max_unavailable);
        if let Some(surge) = max_surge {
            rolling.entry("maxSurge").or_insert(surge);
        }
    }
}

/// The old versions' defaulting: no selector means the template's labels, and an object without
/// labels takes them too.
fn selector_from_template(object: &mut Map<String, Value>) -> Result<(), String> {
    let template_labels = object
        .get("spec")
        .and_then(|s| s.pointer("/template/metadata/labels"))
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned();
    let spec = super::object_at(object, "spec").ok_or("spec is not an object")?;
    let has_selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_some_and(|s| !s.is_empty());
    if !has_selector {
        let labels = template_labels
            .clone()
            .ok_or("it has no selector and no pod template labels to derive one from")?;
        spec.insert("selector".into(), json!({"matchLabels": labels}));
    }
    if let Some(labels) = template_labels {
        let metadata = super::object_at(object, "metadata").ok_or("bad metadata")?;
        let empty = metadata
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(|l| l.is_empty());
        if empty {
            metadata.insert("labels".into(), Value::Object(labels));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    #[test]
    fn a_deployment_without_selector_gets_its_template_labels() {
        let mut d = map(json!({"kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "template": template()}}));
        from_extensions_v1beta1(&mut d).expect("converts");
        let d = Value::Object(d);
        assert_eq!(
            d["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
        // extensions/v1beta1's rollout defaults, written out.
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], UNLIMITED);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], UNLIMITED);
    }

    #[test]
    fn an_explicit_selector_labels_and_strategy_are_kept() {
        let mut d = map(
            json!({"kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "x"}},
            "spec": {"selector": {"matchLabels": {"app": "web", "tier": "f"}},
                "strategy": {"type": "Recreate"}, "rollbackTo": {"revision": 3}, "template": template()}}),
        );
        from_extensions_v1beta1(&mut d).expect("converts");
        let d = Value::Object(d);
        assert_eq!(
            d["spec"]["selector"],
            json!({"matchLabels": {"app": "web", "tier": "f"}})
        );
        assert_eq!(d["metadata"]["labels"], json!({"team": "x"}));
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(d["spec"].get("rollbackTo"), None);
    }

    #[test]
    fn an_extensions_daemon_set_keeps_on_delete_updates() {
        let mut ds = map(json!({"kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"templateGeneration": 4, "template": template()}}));
        from_extensions_v1beta1(&mut ds).expect("converts");
        let ds = Value::Object(ds);
        assert_eq!(ds["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        assert_eq!(ds["spec"].get("templateGeneration"), None);
        assert_eq!(
            ds["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
    }

    #[test]
    fn apps_v1beta1_defaults_are_written_out() {
        let mut sts = map(json!({"kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "template": template()}}));
        from_apps_v1beta1(&mut sts).expect("converts");
        let sts = Value::Object(sts);
        assert_eq!(sts["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        assert_eq!(
            sts["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        let mut d = map(
            json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": template()}}),
        );
        from_apps_v1beta1(&mut d).expect("converts");
        assert_eq!(Value::Object(d)["spec"]["revisionHistoryLimit"], 2);
    }

    #[test]
    fn apps_v1beta2_changes_nothing_but_a_missing_selector() {
        let original = json!({"kind": "ReplicaSet", "metadata": {"name": "r", "labels": {"app": "web"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}});
        let mut rs = map(original.clone());
        from_apps_v1beta2(&mut rs).expect("converts");
        assert_eq!(Value::Object(rs), original);
    }

    #[test]
    fn no_selector_and_no_template_labels_cannot_be_upgraded() {
        let mut d = map(json!({"kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": []}}}}));
        assert!(from_extensions_v1beta1(&mut d).is_err());
    }
}
