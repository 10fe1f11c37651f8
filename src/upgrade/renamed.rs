//! Kinds whose newer version has the same fields (only the apiVersion changes), and the few
//! whose fields barely moved: PodDisruptionBudget, CertificateSigningRequest, EndpointSlice.

use serde_json::{Map, Value, json};

/// Nothing but the apiVersion changes.
pub fn unchanged(_: &mut Map<String, Value>) -> Result<(), String> {
    Ok(())
}

/// `policy/v1beta1` → `policy/v1`. An empty selector selects no pod in v1beta1 but every pod of
/// the namespace in v1, so such a budget cannot keep its meaning.
pub fn pod_disruption_budget(pdb: &mut Map<String, Value>) -> Result<(), String> {
    let selector = pdb.get("spec").and_then(|s| s.get("selector"));
    let selects = |field: &str| {
        selector
            .and_then(|s| s.get(field))
            .is_some_and(|v| match v {
                Value::Object(m) => !m.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => false,
            })
    };
    if !selects("matchLabels") && !selects("matchExpressions") {
        return Err(
            "its empty selector selects no pod in policy/v1beta1 but every pod of the namespace \
             in policy/v1"
                .into(),
        );
    }
    Ok(())
}

/// `certificates.k8s.io/v1beta1` → `v1`: v1 requires a signer; v1beta1's default usages are
/// made explicit.
pub fn certificate_signing_request(csr: &mut Map<String, Value>) -> Result<(), String> {
    let spec = super::object_at(csr, "spec").ok_or("spec is not an object")?;
    let signer = spec.get("signerName").and_then(Value::as_str).unwrap_or("");
    if signer.is_empty() || signer == "kubernetes.io/legacy-unknown" {
        return Err(
            "certificates.k8s.io/v1 requires a spec.signerName other than \
                    kubernetes.io/legacy-unknown"
                .into(),
        );
    }
    spec.entry("usages")
        .or_insert_with(|| json!(["digital signature", "key encipherment"]));
    Ok(())
}

/// `discovery.k8s.io/v1beta1` → `v1`: an endpoint's `topology` becomes `deprecatedTopology`,
/// its `kubernetes.io/hostname` entry `nodeName`.
pub fn endpoint_slice(slice: &mut Map<String, Value>) -> Result<(), String> {
    let Some(Value::Array(endpoints)) = slice.get_mut("endpoints") else {
        return Ok(());
    };
    for endpoint in endpoints.iter_mut().filter_map(Value::as_object_mut) {
        let Some(Value::Object(mut topology)) = endpoint.remove("topology") else {
            continue;
        };
        if let Some(host) = topology.remove("kubernetes.io/hostname") {
            endpoint.entry("nodeName").or_insert(host);
        }
        if !topology.is_empty() {
            endpoint.insert("deprecatedTopology".into(), Value::Object(topology));
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

    #[test]
    fn a_budget_with_a_selector_keeps_it() {
        let mut pdb =
            map(json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "a"}}}}));
        let before = pdb.clone();
        assert!(pod_disruption_budget(&mut pdb).is_ok());
        assert_eq!(pdb, before);
    }

    #[test]
    fn a_budget_with_an_empty_selector_cannot_keep_its_meaning() {
        for spec in [
            json!({"minAvailable": 1}),
            json!({"minAvailable": 1, "selector": {}}),
            json!({"minAvailable": 1, "selector": {"matchLabels": {}}}),
        ] {
            let mut pdb = map(json!({ "spec": spec }));
            assert!(pod_disruption_budget(&mut pdb).is_err(), "{spec}");
        }
    }

    #[test]
    fn a_signing_request_needs_a_signer_and_gets_the_old_default_usages() {
        let mut csr = map(json!({"spec": {"request": "Zm9v", "signerName": "example.com/signer"}}));
        assert!(certificate_signing_request(&mut csr).is_ok());
        assert_eq!(
            csr["spec"]["usages"],
            json!(["digital signature", "key encipherment"])
        );
        let mut legacy = map(json!({"spec": {"request": "Zm9v"}}));
        assert!(certificate_signing_request(&mut legacy).is_err());
    }

    #[test]
    fn endpoint_topology_moves_to_node_name_and_deprecated_topology() {
        let mut slice = map(
            json!({"endpoints": [{"addresses": ["10.0.0.1"], "topology": {
            "kubernetes.io/hostname": "node-1", "topology.kubernetes.io/zone": "a"}}]}),
        );
        endpoint_slice(&mut slice).expect("converts");
        assert_eq!(
            Value::Object(slice)["endpoints"][0],
            json!({"addresses": ["10.0.0.1"], "nodeName": "node-1",
                "deprecatedTopology": {"topology.kubernetes.io/zone": "a"}})
        );
    }
}
