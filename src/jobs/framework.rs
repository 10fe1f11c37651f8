//! What a job kind (TFJob, PyTorchJob) plugs into the common engine: its replica types, default
//! container and port, cluster-spec environment, and success rules; and the defaulting and
//! validation every kind shares.

use super::api::{JobStatus, ReplicaSpec, RestartPolicy, RunPolicy};
use super::engine::Config;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, PodTemplateSpec};
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// The longest a pod or service name (a DNS label) may be.
pub const MAX_NAME_LENGTH: usize = 63;

/// One replica type after defaulting: canonical type name, replica count and restart policy filled in,
/// the default port added to the default container.
#[derive(Clone, Debug, PartialEq)]
pub struct Replica {
    /// The canonical type name (`Worker`, `PS`, `Master`, …), as in `replicaStatuses`.
    pub type_: &'static str,
    /// How many replicas.
    pub replicas: u32,
    /// The pod template.
    pub template: PodTemplateSpec,
    /// The restart policy.
    pub restart_policy: RestartPolicy,
}

impl Replica {
    /// The type as it appears in names and labels (`worker`).
    pub fn lower(&self) -> String {
        self.type_.to_ascii_lowercase()
    }
}

/// Per replica type counts the success rules look at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Desired replicas.
    pub replicas: u32,
    /// Pods Running now.
    pub active: u32,
    /// Indexes that succeeded.
    pub succeeded: u32,
    /// Indexes that failed for good.
    pub failed: u32,
    /// Whether index 0 succeeded.
    pub index0_succeeded: bool,
}

/// What the success rules of a kind conclude.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The job runs (its deciding replicas are Running).
    pub running: bool,
    /// The job succeeded.
    pub succeeded: bool,
}

/// A condition message whose wording differs between kinds (training-operator's own strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMessage<'a> {
    /// The job runs.
    Running,
    /// The job succeeded.
    Succeeded,
    /// `count` replicas of `type_` failed for good.
    ReplicasFailed { count: usize, type_: &'a str },
}

/// A job kind the engine runs.
pub trait Framework:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The controller name, the value of the operator-name label (`tfjob-controller`).
    const CONTROLLER_NAME: &'static str;
    /// The container that gets the cluster spec and whose exit code counts (`tensorflow`).
    const DEFAULT_CONTAINER: &'static str;
    /// The name of the port replicas talk on (`tfjob-port`).
    const PORT_NAME: &'static str;
    /// The port used when the default container declares none by that name.
    const DEFAULT_PORT: i32;
    /// The restart policy of replica types that set none.
    const DEFAULT_RESTART_POLICY: RestartPolicy;
    /// The replica types, canonical spelling, in the order the kind treats them.
    const REPLICA_TYPES: &'static [&'static str];
    /// The spec field holding the replica specs (`tfReplicaSpecs`), for messages.
    const SPECS_FIELD: &'static str;

    /// The replica specs as the user wrote them.
    fn replica_specs(&self) -> &std::collections::BTreeMap<String, ReplicaSpec>;
    /// The run policy.
    fn run_policy(&self) -> &RunPolicy;
    /// The status, if any.
    fn job_status(&self) -> Option<&JobStatus>;
    /// Kind-specific validation errors, given the defaulted replicas.
    fn validate_kind(&self, replicas: &[Replica]) -> Vec<String>;
    /// Whether replica `index` of `type_` plays the master role (gets `job-role: master`).
    fn is_master_role(&self, replicas: &[Replica], type_: &str, index: u32) -> bool;
    /// What the kind computes once per pass to write every pod's cluster spec.
    type Cluster;
    /// Computes what every pod of this pass needs (cluster spec, init containers) under `config`.
    fn cluster(&self, replicas: &[Replica], config: &Config) -> Self::Cluster;
    /// Adds the cluster spec (environment) to the pod of replica `index` of `replica`.
    fn set_cluster_spec(
        &self,
        cluster: &Self::Cluster,
        replicas: &[Replica],
        replica: &Replica,
        index: u32,
        spec: &mut PodSpec,
    );
    /// Whether the job runs or succeeded, given counts per replica type.
    fn progress(&self, counts: &[(&'static str, Counts)]) -> Progress;
    /// Whether a replica of `type_` may fail for good without failing the job.
    fn tolerates_failure(&self, _type_: &str) -> bool {
        false
    }
    /// The HorizontalPodAutoscaler the job wants while it runs, if any (an elastic PyTorchJob
    /// with metrics).
    fn autoscaler(&self, _replicas: &[Replica]) -> Option<serde_json::Value> {
        None
    }
    /// The condition message for `message`, worded as training-operator words it for this kind
    /// (TFJob's wording by default).
    fn status_message(&self, _replicas: &[Replica], message: StatusMessage<'_>) -> String {
        let kind = Self::kind(&());
        let name = format!(
            "{}/{}",
            self.meta().namespace.as_deref().unwrap_or_default(),
            self.meta().name.as_deref().unwrap_or_default()
        );
        match message {
            StatusMessage::Running => format!("{kind} {name} is running."),
            StatusMessage::Succeeded => format!("{kind} {name} successfully completed."),
            StatusMessage::ReplicasFailed { count, type_ } => {
                format!("{kind} {name} has failed because {count} {type_} replica(s) failed.")
            }
        }
    }
}

/// The job's replicas after defaulting, in the kind's type order, or every validation error.
pub fn replicas<F: Framework>(job: &F) -> Result<Vec<Replica>, Vec<String>> {
    let mut errors = Vec::new();
    let mut replicas: Vec<Replica> = Vec::new();
    let specs = job.replica_specs();
    if specs.is_empty() {
        errors.push(format!(
            "spec.{} must name at least one replica type",
            F::SPECS_FIELD
        ));
    }
    for (key, spec) in specs {
        let path = format!("spec.{}.{key}", F::SPECS_FIELD);
        let Some(type_) = F::REPLICA_TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(key))
        else {
            errors.push(format!(
                "{path}: unknown replica type, expected one of {}",
                F::REPLICA_TYPES.join(", ")
            ));
            continue;
        };
        if replicas.iter().any(|r| r.type_ == *type_) {
            errors.push(format!("{path}: replica type {type_} is given twice"));
            continue;
        }
        let count = spec.replicas.unwrap_or(1);
        let Ok(count) = u32::try_from(count) else {
            errors.push(format!(
                "{path}.replicas must not be negative (got {count})"
            ));
            continue;
        };
        let mut template = spec.template.clone();
        let pod_spec = template.spec.get_or_insert_with(Default::default);
        if pod_spec.containers.is_empty() {
            errors.push(format!("{path}.template.spec.containers must not be empty"));
        }
        for (i, container) in pod_spec.containers.iter().enumerate() {
            if container.image.as_deref().unwrap_or_default().is_empty() {
                errors.push(format!(
                    "{path}.template.spec.containers[{i}].image is required"
                ));
            }
        }
        let has_containers = !pod_spec.containers.is_empty();
        match pod_spec
            .containers
            .iter_mut()
            .find(|c| c.name == F::DEFAULT_CONTAINER)
        {
            Some(container) => add_default_port(container, F::PORT_NAME, F::DEFAULT_PORT),
            None if has_containers => errors.push(format!(
                "{path}.template.spec.containers must have a container named {}",
                F::DEFAULT_CONTAINER
            )),
            None => {}
        }
        replicas.push(Replica {
            type_,
            replicas: count,
            template,
            restart_policy: spec.restart_policy.unwrap_or(F::DEFAULT_RESTART_POLICY),
        });
    }
    replicas.sort_by_key(|r| F::REPLICA_TYPES.iter().position(|t| *t == r.type_));
    errors.extend(name_errors(job, &replicas));
    errors.extend(job.validate_kind(&replicas));
    if errors.is_empty() {
        Ok(replicas)
    } else {
        Err(errors)
    }
}

fn add_default_port(container: &mut k8s_openapi::api::core::v1::Container, name: &str, port: i32) {
    let ports = container.ports.get_or_insert_with(Vec::new);
    if !ports.iter().any(|p| p.name.as_deref() == Some(name)) {
        ports.push(ContainerPort {
            name: Some(name.to_string()),
            container_port: port,
            ..Default::default()
        });
    }
}

/// The port replicas of `replica` listen on: the default container's port named `port_name`.
pub fn port(replica: &Replica, container: &str, port_name: &str, default: i32) -> i32 {
    replica
        .template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| c.name == container)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(port_name))
        .map_or(default, |p| p.container_port)
}

/// The job name must be a DNS-1035 label, and `{job}-{type}-{index}` must fit in 63 characters.
fn name_errors<F: Framework>(job: &F, replicas: &[Replica]) -> Vec<String> {
    let name = job.meta().name.as_deref().unwrap_or_default();
    let mut errors = Vec::new();
    if !is_dns1035_label(name) {
        errors.push(format!(
            "metadata.name {name:?} must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter)"
        ));
    }
    for replica in replicas {
        if replica.replicas == 0 {
            continue;
        }
        let longest = object_name(name, &replica.lower(), replica.replicas - 1);
        if longest.len() > MAX_NAME_LENGTH {
            errors.push(format!(
                "pod and service name {longest:?} would be {} characters, more than {MAX_NAME_LENGTH}: shorten the job name",
                longest.len()
            ));
        }
    }
    errors
}

fn is_dns1035_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LENGTH
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The name of a replica's pod and service: `{job}-{type}-{index}`.
pub fn object_name(job: &str, lower_type: &str, index: u32) -> String {
    format!("{job}-{lower_type}-{index}").replace('/', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1035_labels() {
        assert!(is_dns1035_label("dist-mnist"));
        assert!(is_dns1035_label("a1"));
        for bad in ["", "1abc", "Abc", "abc-", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1035_label(bad), "{bad}");
        }
    }

    #[test]
    fn object_names_join_job_type_and_index() {
        assert_eq!(object_name("dist", "worker", 3), "dist-worker-3");
    }
}
