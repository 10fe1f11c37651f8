//! `admissionregistration.k8s.io/v1beta1` webhook configurations → `v1`: the defaults v1beta1
//! applied are written out, since v1 defaults differently or requires the field.

use serde_json::{Map, Value, json};

/// `name`, or when it is taken, `name` with `-2`, `-3`, … after its first label (v1 requires
/// unique webhook names; v1beta1 called every webhook of a duplicated name).
fn unique_name(name: &str, taken: &std::collections::BTreeSet<String>) -> String {
    if !taken.contains(name) {
        return name.to_string();
    }
    let (first, rest) = name.split_once('.').map_or((name, ""), |(f, r)| (f, r));
    (2..)
        .map(|n| {
            if rest.is_empty() {
                format!("{first}-{n}")
            } else {
                format!("{first}-{n}.{rest}")
            }
        })
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_default()
}

/// Converts a Mutating- or ValidatingWebhookConfiguration.
///
/// Webhooks of the same name (v1beta1 called each of them; v1 refuses the configuration) get
/// unique names: the second `a.example.com` becomes `a-2.example.com`.
///
/// Per webhook: `failurePolicy` (v1beta1 default `Ignore`, v1 `Fail`), `matchPolicy` (`Exact`
/// vs `Equivalent`), `timeoutSeconds` (30 vs 10) and `admissionReviewVersions` (`[v1beta1]`,
/// required in v1) become explicit. `sideEffects` is required in v1 and may only be `None` or
/// `NoneOnDryRun`: an unset or `Unknown` value becomes `None`, and `Some` becomes `NoneOnDryRun`
/// (admission of real requests is unchanged; only dry-run requests now reach the webhook).
pub fn to_v1(config: &mut Map<String, Value>) -> Result<(), String> {
    let Some(webhooks) = config.get_mut("webhooks") else {
        return Ok(());
    };
    let Value::Array(webhooks) = webhooks else {
        return Err("webhooks is not a list".into());
    };
    let mut names = std::collections::BTreeSet::new();
    for webhook in webhooks.iter_mut() {
        let Value::Object(webhook) = webhook else {
            return Err("a webhook is not an object".into());
        };
        let name = webhook
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let unique = unique_name(&name, &names);
        if unique != name {
            webhook.insert("name".into(), json!(unique));
        }
        names.insert(unique);
        let side_effects = match webhook.get("sideEffects").and_then(Value::as_str) {
            Some("NoneOnDryRun") | Some("Some") => "NoneOnDryRun",
            _ => "None",
        };
        webhook.insert("sideEffects".into(), json!(side_effects));
        webhook
            .entry("admissionReviewVersions")
            .or_insert_with(|| json!(["v1beta1"]));
        webhook
            .entry("failurePolicy")
            .or_insert_with(|| json!("Ignore"));
        webhook
            .entry("matchPolicy")
            .or_insert_with(|| json!("Exact"));
        webhook.entry("timeoutSeconds").or_insert_with(|| json!(30));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(value: Value) -> Value {
        let mut map = value.as_object().cloned().unwrap_or_default();
        to_v1(&mut map).expect("converts");
        Value::Object(map)
    }

    #[test]
    fn a_webhook_without_side_effects_gets_every_v1beta1_default() {
        let out = convert(json!({"webhooks": [{"name": "a.example.com",
            "clientConfig": {"service": {"name": "s", "namespace": "n"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}]}));
        let webhook = &out["webhooks"][0];
        assert_eq!(webhook["sideEffects"], "None");
        assert_eq!(webhook["admissionReviewVersions"], json!(["v1beta1"]));
        assert_eq!(webhook["failurePolicy"], "Ignore");
        assert_eq!(webhook["matchPolicy"], "Exact");
        assert_eq!(webhook["timeoutSeconds"], 30);
        assert_eq!(webhook["clientConfig"]["service"]["name"], "s");
    }

    #[test]
    fn explicit_settings_are_kept() {
        let out = convert(
            json!({"webhooks": [{"name": "a.example.com", "sideEffects": "NoneOnDryRun",
            "admissionReviewVersions": ["v1", "v1beta1"], "failurePolicy": "Fail",
            "matchPolicy": "Equivalent", "timeoutSeconds": 5}]}),
        );
        assert_eq!(
            out["webhooks"][0],
            json!({"name": "a.example.com", "sideEffects": "NoneOnDryRun",
                "admissionReviewVersions": ["v1", "v1beta1"], "failurePolicy": "Fail",
                "matchPolicy": "Equivalent", "timeoutSeconds": 5})
        );
    }

    #[test]
    fn side_effect_values_v1_refuses_are_mapped() {
        let out = convert(json!({"webhooks": [
            {"name": "a", "sideEffects": "Unknown"},
            {"name": "b", "sideEffects": "Some"},
            {"name": "c", "sideEffects": "None"}]}));
        let effects: Vec<&Value> = (0..3).map(|i| &out["webhooks"][i]["sideEffects"]).collect();
        assert_eq!(
            effects,
            [&json!("None"), &json!("NoneOnDryRun"), &json!("None")]
        );
    }

    #[test]
    fn webhooks_of_the_same_name_get_unique_names() {
        let out = convert(json!({"webhooks": [
            {"name": "m.kb.io", "clientConfig": {"service": {"path": "/v1"}}},
            {"name": "m.kb.io", "clientConfig": {"service": {"path": "/v1alpha2"}}},
            {"name": "m-2.kb.io"},
            {"name": "m.kb.io"}]}));
        let names: Vec<&str> = (0..4)
            .map(|i| out["webhooks"][i]["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["m.kb.io", "m-2.kb.io", "m-2-2.kb.io", "m-3.kb.io"]);
        assert_eq!(
            out["webhooks"][1]["clientConfig"]["service"]["path"],
            "/v1alpha2"
        );
    }

    #[test]
    fn a_configuration_without_webhooks_converts() {
        assert_eq!(
            convert(json!({"metadata": {"name": "x"}})),
            json!({"metadata": {"name": "x"}})
        );
    }
}
