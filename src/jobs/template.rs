//! The Pod and headless Service of one replica, built from the replica's template.

use super::api::{
    JOB_ATTEMPT_LABEL, JOB_NAME_LABEL, JOB_ROLE_LABEL, OPERATOR_NAME_LABEL, REPLICA_ATTEMPT_LABEL,
    REPLICA_INDEX_LABEL, REPLICA_TYPE_LABEL,
};
use super::framework::{Framework, Replica, object_name};
use super::gang::GangScheduler;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use std::collections::BTreeMap;

/// The ownerReferences of what a job creates: the job as controller, blocking its foreground
/// deletion until they are gone (as `metav1.NewControllerRef`, which training-operator uses).
pub fn owned_by<R: Resource<DynamicType = ()>>(job: &R) -> Option<Vec<OwnerReference>> {
    job.controller_owner_ref(&()).map(|owner| {
        vec![OwnerReference {
            block_owner_deletion: Some(true),
            ..owner
        }]
    })
}

/// Where a pod sits in its job: type, index, and the attempts it was created for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slot<'a> {
    /// The replica.
    pub replica: &'a Replica,
    /// The replica index.
    pub index: u32,
    /// The whole-job attempt.
    pub job_attempt: i32,
    /// The replica index's attempt within the job attempt.
    pub replica_attempt: i32,
}

/// The labels every pod and service of `job` carries (selects them all).
pub fn job_labels<F: Framework>(job_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            OPERATOR_NAME_LABEL.to_string(),
            F::CONTROLLER_NAME.to_string(),
        ),
        (JOB_NAME_LABEL.to_string(), job_name.to_string()),
    ])
}

/// The labels selecting the pod of one replica index (also its service's selector).
pub fn replica_labels<F: Framework>(
    job_name: &str,
    lower_type: &str,
    index: u32,
) -> BTreeMap<String, String> {
    let mut labels = job_labels::<F>(job_name);
    labels.insert(REPLICA_TYPE_LABEL.into(), lower_type.into());
    labels.insert(REPLICA_INDEX_LABEL.into(), index.to_string());
    labels
}

/// The pod of `slot`: the template with the replica's labels, restart policy, cluster spec (from
/// `cluster`, computed once per pass by the kind) and gang-scheduling marks, controlled by the job.
pub fn pod<F: Framework>(
    job: &F,
    replicas: &[Replica],
    slot: Slot<'_>,
    cluster: &F::Cluster,
    gang: Option<&GangScheduler>,
) -> Pod {
    let job_name = job.meta().name.clone().unwrap_or_default();
    let lower = slot.replica.lower();
    let mut template = slot.replica.template.clone();
    if let Some(gang) = gang {
        gang.decorate(&mut template, &job_name, &lower);
    }
    let mut meta = template.metadata.unwrap_or_default();
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(replica_labels::<F>(&job_name, &lower, slot.index));
    if job.is_master_role(replicas, slot.replica.type_, slot.index) {
        labels.insert(JOB_ROLE_LABEL.into(), "master".into());
    }
    labels.insert(JOB_ATTEMPT_LABEL.into(), slot.job_attempt.to_string());
    labels.insert(
        REPLICA_ATTEMPT_LABEL.into(),
        slot.replica_attempt.to_string(),
    );
    let mut spec = template.spec.unwrap_or_default();
    spec.restart_policy = Some(slot.replica.restart_policy.pod_restart_policy().to_string());
    job.set_cluster_spec(cluster, replicas, slot.replica, slot.index, &mut spec);
    Pod {
        metadata: ObjectMeta {
            name: Some(object_name(&job_name, &lower, slot.index)),
            namespace: job.meta().namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: owned_by(job),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The headless service of replica `index`: same name as its pod, selecting it, with every named
/// port of the default container.
pub fn service<F: Framework>(job: &F, replica: &Replica, index: u32) -> Service {
    let job_name = job.meta().name.clone().unwrap_or_default();
    let lower = replica.lower();
    let labels = replica_labels::<F>(&job_name, &lower, index);
    let mut ports: Vec<ServicePort> = replica
        .template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| c.name == F::DEFAULT_CONTAINER)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(ServicePort {
                name: Some(p.name.clone()?),
                port: p.container_port,
                ..Default::default()
            })
        })
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    Service {
        metadata: ObjectMeta {
            name: Some(object_name(&job_name, &lower, index)),
            namespace: job.meta().namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: owned_by(job),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}
