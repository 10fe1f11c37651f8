//! `extensions/v1beta1` and `networking.k8s.io/v1beta1` Ingress → `networking.k8s.io/v1`: the
//! default backend is `defaultBackend`, a backend names its service as
//! `service: {name, port: {number | name}}`, and each path says its `pathType` (v1beta1's
//! default, `ImplementationSpecific`, written out).

use serde_json::{Map, Value, json};

/// Converts an Ingress.
pub fn ingress(ingress: &mut Map<String, Value>) -> Result<(), String> {
    let Some(spec) = ingress.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(backend) = spec.remove("backend") {
        spec.insert("defaultBackend".into(), convert_backend(backend)?);
    }
    if let Some(Value::Array(rules)) = spec.get_mut("rules") {
        for rule in rules.iter_mut() {
            let Some(Value::Array(paths)) = rule.pointer_mut("/http/paths") else {
                continue;
            };
            for path in paths.iter_mut().filter_map(Value::as_object_mut) {
                path.entry("pathType")
                    .or_insert(json!("ImplementationSpecific"));
                if let Some(backend) = path.remove("backend") {
                    path.insert("backend".into(), convert_backend(backend)?);
                }
            }
        }
    }
    Ok(())
}

/// `{serviceName, servicePort}` → `{service: {name, port}}`; a `resource` backend is unchanged.
fn convert_backend(backend: Value) -> Result<Value, String> {
    let Value::Object(mut backend) = backend else {
        return Err("a backend is not an object".into());
    };
    let Some(name) = backend.remove("serviceName") else {
        return Ok(Value::Object(backend));
    };
    let port = match backend.remove("servicePort") {
        Some(Value::Number(n)) => json!({"number": n}),
        Some(Value::String(s)) => match s.parse::<u16>() {
            Ok(n) => json!({"number": n}),
            Err(_) => json!({"name": s}),
        },
        _ => return Err(format!("the backend for service {name} has no servicePort")),
    };
    backend.insert("service".into(), json!({"name": name, "port": port}));
    Ok(Value::Object(backend))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_take_the_v1_shape() {
        let mut ing = json!({"spec": {"backend": {"serviceName": "default", "servicePort": 80},
            "rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/", "backend": {"serviceName": "web", "servicePort": "http"}},
                {"path": "/api", "pathType": "Prefix", "backend": {"serviceName": "api", "servicePort": "8080"}},
                {"path": "/static", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}}}
            ]}}]}})
        .as_object()
        .cloned()
        .unwrap_or_default();
        ingress(&mut ing).expect("converts");
        assert_eq!(
            Value::Object(ing),
            json!({"spec": {"defaultBackend": {"service": {"name": "default", "port": {"number": 80}}},
            "rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/", "pathType": "ImplementationSpecific",
                    "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                {"path": "/api", "pathType": "Prefix",
                    "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
                {"path": "/static", "pathType": "ImplementationSpecific",
                    "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}}}
            ]}}]}})
        );
    }

    #[test]
    fn a_service_backend_without_port_is_refused() {
        let mut ing = json!({"spec": {"backend": {"serviceName": "x"}}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(ingress(&mut ing).is_err());
    }
}
