//! The CustomResourceDefinitions of TFJob and PyTorchJob: the schema generated from the Rust
//! types, plus CEL rules so the API server rejects, at create time, jobs whose pod and service
//! names could never exist (over 63 characters, not a DNS-1035 label) or that ask for what kfop
//! does not do.

use super::api::MANAGED_BY_ACCEPTED;
use super::framework::{Framework, MAX_NAME_LENGTH};
use super::pytorch::PyTorchJob;
use super::tensorflow::TFJob;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use kube::CustomResourceExt;

/// The TFJob and PyTorchJob CRDs.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        with_rules(
            PyTorchJob::crd(),
            rules::<PyTorchJob>(&[
                (
                    ".spec.pytorchReplicaSpecs",
                    "!has(self.spec.elasticPolicy) || self.spec.pytorchReplicaSpecs.exists(t, t.lowerAscii() == 'worker')",
                    "spec.pytorchReplicaSpecs[Worker]: Required value: must be configured if elastic policy is used",
                ),
                (
                    ".spec.elasticPolicy.nProcPerNode",
                    "!has(self.spec.elasticPolicy) || !has(self.spec.elasticPolicy.nProcPerNode) || !has(self.spec.nprocPerNode)",
                    "spec.elasticPolicy.nProcPerNode: Forbidden: must not be used with spec.nprocPerNode",
                ),
                (
                    ".spec.elasticPolicy.minReplicas",
                    "!has(self.spec.elasticPolicy) || !has(self.spec.elasticPolicy.minReplicas) || !has(self.spec.elasticPolicy.maxReplicas) || self.spec.elasticPolicy.minReplicas <= self.spec.elasticPolicy.maxReplicas",
                    "spec.elasticPolicy.minReplicas must not exceed maxReplicas",
                ),
            ]),
        ),
        with_rules(TFJob::crd(), rules::<TFJob>(&[])),
    ]
}

/// The rules every kind shares, then `extra` (field path, rule, message).
fn rules<F: Framework>(extra: &[(&str, &str, &str)]) -> Vec<ValidationRule> {
    let specs = format!("self.spec.{}", F::SPECS_FIELD);
    let replicas = |t: &str| format!("(has({specs}[{t}].replicas) ? {specs}[{t}].replicas : 1)");
    let types = F::REPLICA_TYPES
        .iter()
        .map(|t| format!("'{}'", t.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rules = vec![
        rule(
            "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
            "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter): it names the job's services",
        ),
        rule_at(
            &format!(".spec.{}", F::SPECS_FIELD),
            &format!("{specs}.all(t, t.lowerAscii() in [{types}])"),
            &format!(
                "spec.{} keys must be replica types of this kind: {}",
                F::SPECS_FIELD,
                F::REPLICA_TYPES.join(", ")
            ),
        ),
        rule_at(
            &format!(".spec.{}", F::SPECS_FIELD),
            &format!(
                "{specs}.all(t, {r} < 1 || size(self.metadata.name) + size(t) + 2 + size(string({r} - 1)) <= {MAX_NAME_LENGTH})",
                r = replicas("t")
            ),
            &format!(
                "pod and service names <job>-<replica type>-<index> must fit in {MAX_NAME_LENGTH} characters: shorten metadata.name"
            ),
        ),
    ];
    // training-operator's admission rules on runPolicy (its webhook and CRD).
    let policy = |field: &str| {
        let mut path = String::new();
        let mut present = Vec::new();
        for part in std::iter::once("runPolicy").chain(field.split('.')) {
            path.push('.');
            path.push_str(part);
            present.push(format!("has(SELF.spec{path})"));
        }
        (present.join(" && "), format!("SELF.spec{path}"))
    };
    let (has_managed_by, managed_by) = policy("managedBy");
    let managers = MANAGED_BY_ACCEPTED
        .iter()
        .map(|m| format!("'{m}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let (has_queue, queue) = policy("schedulingPolicy.queue");
    let now = |s: &str| s.replace("SELF", "self");
    let before = |s: &str| s.replace("SELF", "oldSelf");
    rules.extend([
        rule_at(
            ".spec.runPolicy.managedBy",
            &format!(
                "!({}) || {} in [{managers}]",
                now(&has_managed_by),
                now(&managed_by)
            ),
            &format!(
                "spec.runPolicy.managedBy: Unsupported value: supported values: {}",
                MANAGED_BY_ACCEPTED.join(", ")
            ),
        ),
        rule_at(
            ".spec.runPolicy.managedBy",
            &format!(
                "({}) == ({}) && (!({}) || {} == {})",
                now(&has_managed_by),
                before(&has_managed_by),
                now(&has_managed_by),
                now(&managed_by),
                before(&managed_by)
            ),
            "spec.runPolicy.managedBy: field is immutable",
        ),
        rule_at(
            ".spec.runPolicy.schedulingPolicy.queue",
            &format!(
                "!({}) || !({}) || {} == {}",
                now(&has_queue),
                before(&has_queue),
                now(&queue),
                before(&queue)
            ),
            "spec.runPolicy.schedulingPolicy.queue is immutable",
        ),
    ]);
    rules.extend(extra.iter().map(|(path, r, m)| rule_at(path, r, m)));
    rules
}

fn rule(rule: &str, message: &str) -> ValidationRule {
    ValidationRule {
        rule: rule.to_string(),
        message: Some(message.to_string()),
        ..Default::default()
    }
}

/// A rule whose error points at `field_path` (relative to the object, e.g. `.spec.tfReplicaSpecs`).
fn rule_at(field_path: &str, rule: &str, message: &str) -> ValidationRule {
    ValidationRule {
        field_path: Some(field_path.to_string()),
        ..self::rule(rule, message)
    }
}

fn with_rules(
    mut crd: CustomResourceDefinition,
    rules: Vec<ValidationRule>,
) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.x_kubernetes_validations = Some(rules.clone());
        }
    }
    crd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_crds_carry_the_name_rules() {
        let crds = all();
        let names: Vec<_> = crds
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["pytorchjobs.kubeflow.org", "tfjobs.kubeflow.org"]);
        for crd in &crds {
            let schema = crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema");
            let rules = schema.x_kubernetes_validations.as_ref().expect("rules");
            assert!(rules.iter().any(|r| r.rule.contains("<= 63")), "{rules:?}");
        }
    }
}
