//! `autoscaling/v2beta1` HorizontalPodAutoscaler → `autoscaling/v2`: each metric's target moves
//! into a `target` object (`type` plus `averageUtilization`, `averageValue` or `value`), and its
//! name and selector into a `metric` object.

use serde_json::{Map, Value, json};

/// Converts every entry of `spec.metrics` (v2beta2 already has the v2 shape).
pub fn from_v2beta1(hpa: &mut Map<String, Value>) -> Result<(), String> {
    let Some(Value::Array(metrics)) = hpa.get_mut("spec").and_then(|s| s.get_mut("metrics")) else {
        return Ok(());
    };
    for metric in metrics.iter_mut() {
        let Value::Object(metric) = metric else {
            return Err("a metric is not an object".into());
        };
        let type_ = metric
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let field = match type_.as_str() {
            "Resource" => "resource",
            "Pods" => "pods",
            "Object" => "object",
            "External" => "external",
            "ContainerResource" => "containerResource",
            other => return Err(format!("unknown metric type {other:?}")),
        };
        let Some(Value::Object(source)) = metric.get_mut(field) else {
            return Err(format!("a {type_} metric has no {field}"));
        };
        let converted = match type_.as_str() {
            "Resource" | "ContainerResource" => resource(source),
            "Pods" => pods(source),
            "Object" => object(source),
            _ => external(source),
        }
        .map_err(|e| format!("{type_} metric: {e}"))?;
        *source = converted;
    }
    Ok(())
}

fn take(source: &mut Map<String, Value>, key: &str) -> Option<Value> {
    source.remove(key)
}

/// `{name, targetAverageUtilization | targetAverageValue}` → `{name, target}`.
fn resource(source: &mut Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for key in ["name", "container"] {
        if let Some(v) = take(source, key) {
            out.insert(key.into(), v);
        }
    }
    let target = if let Some(u) = take(source, "targetAverageUtilization") {
        json!({"type": "Utilization", "averageUtilization": u})
    } else if let Some(v) = take(source, "targetAverageValue") {
        json!({"type": "AverageValue", "averageValue": v})
    } else {
        return Err("no targetAverageUtilization or targetAverageValue".into());
    };
    out.insert("target".into(), target);
    Ok(out)
}

/// `{metricName, selector, targetAverageValue}` → `{metric: {name, selector}, target}`.
fn pods(source: &mut Map<String, Value>) -> Result<Map<String, Value>, String> {
    let value = take(source, "targetAverageValue").ok_or("no targetAverageValue")?;
    Ok(Map::from_iter([
        ("metric".to_string(), metric_id(source, "selector")?),
        (
            "target".to_string(),
            json!({"type": "AverageValue", "averageValue": value}),
        ),
    ]))
}

/// `{target: {kind, name, apiVersion}, metricName, selector, targetValue, averageValue}` →
/// `{describedObject, metric: {name, selector}, target}`.
fn object(source: &mut Map<String, Value>) -> Result<Map<String, Value>, String> {
    let described = take(source, "target").ok_or("no target object")?;
    let target = if let Some(v) = take(source, "averageValue") {
        json!({"type": "AverageValue", "averageValue": v})
    } else if let Some(v) = take(source, "targetValue") {
        json!({"type": "Value", "value": v})
    } else {
        return Err("no targetValue or averageValue".into());
    };
    Ok(Map::from_iter([
        ("describedObject".to_string(), described),
        ("metric".to_string(), metric_id(source, "selector")?),
        ("target".to_string(), target),
    ]))
}

/// `{metricName, metricSelector, targetValue | targetAverageValue}` → `{metric, target}`.
fn external(source: &mut Map<String, Value>) -> Result<Map<String, Value>, String> {
    let target = if let Some(v) = take(source, "targetAverageValue") {
        json!({"type": "AverageValue", "averageValue": v})
    } else if let Some(v) = take(source, "targetValue") {
        json!({"type": "Value", "value": v})
    } else {
        return Err("no targetValue or targetAverageValue".into());
    };
    Ok(Map::from_iter([
        ("metric".to_string(), metric_id(source, "metricSelector")?),
        ("target".to_string(), target),
    ]))
}

/// `{name: metricName, selector}`.
fn metric_id(source: &mut Map<String, Value>, selector: &str) -> Result<Value, String> {
    let name = take(source, "metricName").ok_or("no metricName")?;
    let mut id = Map::from_iter([("name".to_string(), name)]);
    if let Some(s) = take(source, selector) {
        id.insert("selector".into(), s);
    }
    Ok(Value::Object(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(metric: Value) -> Result<Value, String> {
        let mut hpa = json!({"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
            "minReplicas": 1, "maxReplicas": 3, "metrics": [metric]}})
        .as_object()
        .cloned()
        .unwrap_or_default();
        from_v2beta1(&mut hpa)?;
        Ok(Value::Object(hpa)["spec"]["metrics"][0].clone())
    }

    #[test]
    fn each_metric_type_gets_the_v2_shape() {
        let table = [
            (
                json!({"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 80}}),
                json!({"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}),
            ),
            (
                json!({"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "1Gi"}}),
                json!({"type": "Resource", "resource": {"name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "1Gi"}}}),
            ),
            (
                json!({"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10",
                    "selector": {"matchLabels": {"a": "b"}}}}),
                json!({"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchLabels": {"a": "b"}}},
                    "target": {"type": "AverageValue", "averageValue": "10"}}}),
            ),
            (
                json!({"type": "Object", "object": {"target": {"apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress", "name": "main"}, "metricName": "requests", "targetValue": "2k"}}),
                json!({"type": "Object", "object": {"describedObject": {"apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress", "name": "main"}, "metric": {"name": "requests"},
                    "target": {"type": "Value", "value": "2k"}}}),
            ),
            (
                json!({"type": "Object", "object": {"target": {"kind": "Service", "name": "s"},
                    "metricName": "rps", "targetValue": "1", "averageValue": "100m"}}),
                json!({"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"},
                    "metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "100m"}}}),
            ),
            (
                json!({"type": "External", "external": {"metricName": "queue", "metricSelector":
                    {"matchLabels": {"q": "jobs"}}, "targetValue": "30"}}),
                json!({"type": "External", "external": {"metric": {"name": "queue",
                    "selector": {"matchLabels": {"q": "jobs"}}}, "target": {"type": "Value", "value": "30"}}}),
            ),
            (
                json!({"type": "External", "external": {"metricName": "queue", "targetAverageValue": "5"}}),
                json!({"type": "External", "external": {"metric": {"name": "queue"},
                    "target": {"type": "AverageValue", "averageValue": "5"}}}),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(convert(input.clone()), Ok(expected), "{input}");
        }
    }

    #[test]
    fn a_metric_without_a_target_is_refused() {
        assert!(convert(json!({"type": "Resource", "resource": {"name": "cpu"}})).is_err());
        assert!(convert(json!({"type": "Magic", "magic": {}})).is_err());
    }

    #[test]
    fn an_autoscaler_without_metrics_is_unchanged() {
        let mut hpa = json!({"spec": {"maxReplicas": 2}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let before = hpa.clone();
        assert!(from_v2beta1(&mut hpa).is_ok());
        assert_eq!(hpa, before);
    }
}
