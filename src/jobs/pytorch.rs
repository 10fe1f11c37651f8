//! PyTorchJob (`kubeflow.org/v1`): a Master and Workers, with the `MASTER_ADDR`, `MASTER_PORT`,
//! `WORLD_SIZE`, `RANK` and torchrun `PET_*` environment training-operator sets.

use super::api::{JobStatus, ReplicaSpec, RestartPolicy, RunPolicy};
use super::engine::Config;
use super::framework::{Counts, Framework, Progress, Replica, StatusMessage, object_name, port};
use k8s_openapi::api::autoscaling::v2::MetricSpec;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The desired state of a PyTorchJob.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kubeflow.org",
    version = "v1",
    kind = "PyTorchJob",
    plural = "pytorchjobs",
    singular = "pytorchjob",
    namespaced,
    status = "JobStatus",
    doc = "A distributed PyTorch training job.",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[-1:].type"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    scale(
        spec_replicas_path = ".spec.pytorchReplicaSpecs.Worker.replicas",
        status_replicas_path = ".status.replicaStatuses.Worker.active",
        label_selector_path = ".status.replicaStatuses.Worker.selector"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PyTorchJobSpec {
    /// Clean-up, limits, scheduling and suspension.
    #[serde(default)]
    pub run_policy: RunPolicy,
    /// Elastic training with torchrun's rendezvous: a variable number of Workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic_policy: Option<ElasticPolicy>,
    /// The replica types (`Master`, `Worker`) and their specs.
    #[schemars(extend("maxProperties" = 2))]
    pub pytorch_replica_specs: BTreeMap<String, ReplicaSpec>,
    /// Processes per node for torchrun (`auto`, `cpu`, `gpu` or a number); defaults to `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nproc_per_node: Option<String>,
}

/// Elastic training (training-operator's `elasticPolicy`): Workers join and leave a torchrun
/// rendezvous; with `metrics`, a HorizontalPodAutoscaler scales them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElasticPolicy {
    /// The fewest Workers; defaults to `maxReplicas`, or else to the Workers' `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// The most Workers; defaults to `minReplicas`, or else to the Workers' `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
    /// The rendezvous backend (`c10d`, `etcd`, `etcd-v2`); defaults to `c10d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdzv_backend: Option<String>,
    /// The rendezvous port; defaults to the Workers' `pytorchjob-port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdzv_port: Option<i32>,
    /// The rendezvous host; defaults to worker 0 (`<job>-worker-0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdzv_host: Option<String>,
    /// The rendezvous id (`PET_RDZV_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdzv_id: Option<String>,
    /// Extra rendezvous settings (`PET_RDZV_CONF`, `key=value` joined with `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdzv_conf: Option<Vec<RdzvConf>>,
    /// torchrun's standalone mode (`PET_STANDALONE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone: Option<bool>,
    /// Deprecated: processes per node; use `spec.nprocPerNode` (not both).
    #[serde(
        default,
        rename = "nProcPerNode",
        skip_serializing_if = "Option::is_none"
    )]
    pub n_proc_per_node: Option<i32>,
    /// How many times torchrun restarts the worker group (`PET_MAX_RESTARTS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<i32>,
    /// What the HorizontalPodAutoscaler of the Workers scales on; none, no autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricSpec>>,
}

/// One rendezvous setting.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RdzvConf {
    /// The setting's name.
    #[serde(default)]
    pub key: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// The default rendezvous backend.
const DEFAULT_RDZV_BACKEND: &str = "c10d";

/// The default `nprocPerNode`.
const DEFAULT_NPROC_PER_NODE: &str = "auto";

impl PyTorchJob {
    /// The environment every container of replica `index` of `replica` gets, in order.
    pub fn env(&self, replicas: &[Replica], replica: &Replica, index: u32) -> Vec<EnvVar> {
        let var = |name: &str, value: String| EnvVar {
            name: name.to_string(),
            value: Some(value),
            value_from: None,
        };
        let total: u32 = replicas.iter().map(|r| r.replicas).sum();
        let elastic = self.spec.elastic_policy.as_ref();
        // `nprocPerNode` defaults to `auto` unless the deprecated elastic one is set.
        let nproc = self.spec.nproc_per_node.clone().or_else(|| {
            elastic
                .is_none_or(|e| e.n_proc_per_node.is_none())
                .then(|| DEFAULT_NPROC_PER_NODE.to_string())
        });
        let per_node: u64 = nproc.as_deref().and_then(|n| n.parse().ok()).unwrap_or(1);
        let mut env = vec![var("PYTHONUNBUFFERED", "1".into())];
        if let Some(master) = replicas.iter().find(|r| r.type_ == "Master") {
            let name = self.metadata.name.as_deref().unwrap_or_default();
            let port = port(
                master,
                Self::DEFAULT_CONTAINER,
                Self::PORT_NAME,
                Self::DEFAULT_PORT,
            )
            .to_string();
            let address = object_name(name, "master", 0);
            let rank = if replica.type_ == "Worker" {
                index + 1
            } else {
                index
            }
            .to_string();
            env.extend([
                var("MASTER_PORT", port.clone()),
                var("PET_MASTER_PORT", port),
                var("MASTER_ADDR", address.clone()),
                var("PET_MASTER_ADDR", address),
                var("WORLD_SIZE", (u64::from(total) * per_node).to_string()),
                var("RANK", rank.clone()),
                var("PET_NODE_RANK", rank),
            ]);
        }
        if let Some(nproc) = nproc {
            env.push(var("PET_NPROC_PER_NODE", nproc));
        }
        match elastic {
            Some(elastic) => env.extend(self.elastic_env(elastic, replicas)),
            None => env.push(var("PET_NNODES", total.to_string())),
        }
        env
    }

    /// The Workers' bounds after training-operator's defaulting: each copies the other, and
    /// both default to the Workers' `replicas`.
    pub fn elastic_bounds(elastic: &ElasticPolicy, replicas: &[Replica]) -> (i32, i32) {
        let workers = replicas
            .iter()
            .find(|r| r.type_ == "Worker")
            .map_or(1, |r| i32::try_from(r.replicas).unwrap_or(i32::MAX));
        match (elastic.min_replicas, elastic.max_replicas) {
            (Some(min), Some(max)) => (min, max),
            (Some(only), None) | (None, Some(only)) => (only, only),
            (None, None) => (workers, workers),
        }
    }

    /// torchrun's rendezvous environment, in training-operator's order.
    fn elastic_env(&self, elastic: &ElasticPolicy, replicas: &[Replica]) -> Vec<EnvVar> {
        let var = |name: &str, value: String| EnvVar {
            name: name.to_string(),
            value: Some(value),
            value_from: None,
        };
        let name = self.metadata.name.as_deref().unwrap_or_default();
        let host = elastic
            .rdzv_host
            .clone()
            .unwrap_or_else(|| object_name(name, "worker", 0));
        let port = elastic.rdzv_port.unwrap_or_else(|| {
            replicas
                .iter()
                .find(|r| r.type_ == "Worker")
                .map_or(Self::DEFAULT_PORT, |worker| {
                    port(
                        worker,
                        Self::DEFAULT_CONTAINER,
                        Self::PORT_NAME,
                        Self::DEFAULT_PORT,
                    )
                })
        });
        let (min, max) = Self::elastic_bounds(elastic, replicas);
        let mut env = vec![
            var("PET_RDZV_ENDPOINT", format!("{host}:{port}")),
            var(
                "PET_RDZV_BACKEND",
                elastic
                    .rdzv_backend
                    .clone()
                    .unwrap_or_else(|| DEFAULT_RDZV_BACKEND.to_string()),
            ),
            var("PET_NNODES", format!("{min}:{max}")),
        ];
        if let Some(restarts) = elastic.max_restarts {
            env.push(var("PET_MAX_RESTARTS", restarts.to_string()));
        }
        if let Some(nproc) = elastic.n_proc_per_node {
            env.push(var("PET_NPROC_PER_NODE", nproc.to_string()));
        }
        if let Some(id) = &elastic.rdzv_id {
            env.push(var("PET_RDZV_ID", id.clone()));
        }
        if let Some(conf) = elastic.rdzv_conf.as_ref().filter(|c| !c.is_empty()) {
            let joined = conf
                .iter()
                .map(|c| format!("{}={}", c.key, c.value))
                .collect::<Vec<_>>()
                .join(",");
            env.push(var("PET_RDZV_CONF", joined));
        }
        if elastic.standalone == Some(true) {
            env.push(var("PET_STANDALONE", String::new()));
        }
        env
    }
}

impl Framework for PyTorchJob {
    const CONTROLLER_NAME: &'static str = "pytorchjob-controller";
    const DEFAULT_CONTAINER: &'static str = "pytorch";
    const PORT_NAME: &'static str = "pytorchjob-port";
    const DEFAULT_PORT: i32 = 23456;
    const DEFAULT_RESTART_POLICY: RestartPolicy = RestartPolicy::OnFailure;
    const REPLICA_TYPES: &'static [&'static str] = &["Master", "Worker"];
    const SPECS_FIELD: &'static str = "pytorchReplicaSpecs";

    fn replica_specs(&self) -> &BTreeMap<String, ReplicaSpec> {
        &self.spec.pytorch_replica_specs
    }

    fn run_policy(&self) -> &RunPolicy {
        &self.spec.run_policy
    }

    fn job_status(&self) -> Option<&JobStatus> {
        self.status.as_ref()
    }

    fn validate_kind(&self, replicas: &[Replica]) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(elastic) = &self.spec.elastic_policy {
            if !replicas.iter().any(|r| r.type_ == "Worker") {
                errors.push(
                    "spec.pytorchReplicaSpecs[Worker]: Required value: must be configured if elastic policy is used"
                        .to_string(),
                );
            }
            if elastic.n_proc_per_node.is_some() && self.spec.nproc_per_node.is_some() {
                errors.push(
                    "spec.elasticPolicy.nProcPerNode: Forbidden: must not be used with spec.nprocPerNode"
                        .to_string(),
                );
            }
            let (min, max) = Self::elastic_bounds(elastic, replicas);
            if min > max {
                errors.push(format!(
                    "spec.elasticPolicy.minReplicas ({min}) must not exceed maxReplicas ({max})"
                ));
            }
        }
        if let Some(master) = replicas.iter().find(|r| r.type_ == "Master")
            && master.replicas != 1
        {
            errors.push(format!(
                "spec.pytorchReplicaSpecs.Master.replicas must be 1 (got {})",
                master.replicas
            ));
        }
        errors
    }

    fn is_master_role(&self, replicas: &[Replica], type_: &str, index: u32) -> bool {
        if replicas.iter().any(|r| r.type_ == "Master") {
            type_ == "Master"
        } else {
            type_ == "Worker" && index == 0
        }
    }

    /// The init containers workers get (none without a Master, or when turned off).
    type Cluster = Vec<Container>;

    fn cluster(&self, replicas: &[Replica], config: &Config) -> Vec<Container> {
        let Some(init) = &config.pytorch_init else {
            return Vec::new();
        };
        if !replicas.iter().any(|r| r.type_ == "Master") {
            return Vec::new();
        }
        let name = self.metadata.name.as_deref().unwrap_or_default();
        // Checked when the controller starts: a template that fails now is a bug.
        init.containers(&object_name(name, "master", 0))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "PyTorch init container template");
                Vec::new()
            })
    }

    /// Every container gets the environment; every worker of a job with a Master gets the init
    /// containers after its own, as training-operator does.
    fn set_cluster_spec(
        &self,
        init: &Vec<Container>,
        replicas: &[Replica],
        replica: &Replica,
        index: u32,
        spec: &mut PodSpec,
    ) {
        let env = self.env(replicas, replica, index);
        for container in &mut spec.containers {
            container
                .env
                .get_or_insert_with(Vec::new)
                .extend(env.iter().cloned());
        }
        if replica.type_ == "Worker" && !init.is_empty() {
            spec.init_containers
                .get_or_insert_with(Vec::new)
                .extend(init.iter().cloned());
        }
    }

    /// The HorizontalPodAutoscaler of an elastic job with metrics (training-operator's: named
    /// after the job, scaling it through its `scale` subresource), owned by the job.
    fn autoscaler(&self, replicas: &[Replica]) -> Option<serde_json::Value> {
        let elastic = self.spec.elastic_policy.as_ref()?;
        let metrics = elastic.metrics.as_ref()?;
        let (min, max) = Self::elastic_bounds(elastic, replicas);
        let name = self.metadata.name.as_deref().unwrap_or_default();
        Some(serde_json::json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {
                "name": name,
                "namespace": self.metadata.namespace,
                "ownerReferences": super::template::owned_by(self),
            },
            "spec": {
                "scaleTargetRef": {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": name},
                "minReplicas": min,
                "maxReplicas": max,
                "metrics": metrics,
            },
        }))
    }

    /// training-operator names a PyTorchJob with a Master without its namespace, and says "is
    /// failed".
    fn status_message(&self, replicas: &[Replica], message: StatusMessage<'_>) -> String {
        let name = self.metadata.name.as_deref().unwrap_or_default();
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        let with_master = replicas.iter().any(|r| r.type_ == "Master");
        match message {
            StatusMessage::Running if with_master => format!("PyTorchJob {name} is running."),
            StatusMessage::Running => format!("PyTorchJob {namespace}/{name} is running."),
            StatusMessage::Succeeded if with_master => {
                format!("PyTorchJob {name} is successfully completed.")
            }
            StatusMessage::Succeeded => {
                format!("PyTorchJob {namespace}/{name} successfully completed.")
            }
            StatusMessage::ReplicasFailed { count, type_ } => {
                format!("PyTorchJob {name} is failed because {count} {type_} replica(s) failed.")
            }
        }
    }

    fn progress(&self, counts: &[(&'static str, Counts)]) -> Progress {
        let decider = counts
            .iter()
            .find(|(t, _)| *t == "Master")
            .or_else(|| counts.iter().find(|(t, _)| *t == "Worker"));
        // An elastic job without a Master succeeds with its first Worker (training-operator).
        let elastic_workers =
            self.spec.elastic_policy.is_some() && decider.is_some_and(|(t, _)| *t == "Worker");
        match decider {
            Some((_, c)) => Progress {
                running: c.active > 0,
                succeeded: c.replicas > 0
                    && (c.succeeded >= c.replicas || (elastic_workers && c.succeeded > 0)),
            },
            None => Progress::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::framework::replicas;
    use serde_json::json;

    fn job(spec: serde_json::Value) -> PyTorchJob {
        serde_json::from_value(json!({
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"name": "ddp", "namespace": "ml", "uid": "u1"},
            "spec": spec,
        }))
        .expect("PyTorchJob")
    }

    fn replica_spec(n: u32) -> serde_json::Value {
        json!({"replicas": n, "template": {"spec": {"containers": [{"name": "pytorch", "image": "pt:2"}]}}})
    }

    fn pairs(env: &[EnvVar]) -> Vec<(String, String)> {
        env.iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn status_messages_are_worded_as_training_operator_words_them() {
        let with_master = job(
            json!({"pytorchReplicaSpecs": {"Master": replica_spec(1), "Worker": replica_spec(1)}}),
        );
        let replicas_of = |job: &PyTorchJob| replicas(job).expect("valid");
        let r = replicas_of(&with_master);
        let failed = StatusMessage::ReplicasFailed {
            count: 1,
            type_: "Worker",
        };
        assert_eq!(
            [
                with_master.status_message(&r, StatusMessage::Running),
                with_master.status_message(&r, StatusMessage::Succeeded),
                with_master.status_message(&r, failed),
            ],
            [
                "PyTorchJob ddp is running.",
                "PyTorchJob ddp is successfully completed.",
                "PyTorchJob ddp is failed because 1 Worker replica(s) failed.",
            ]
        );
        let workers = job(json!({"pytorchReplicaSpecs": {"Worker": replica_spec(2)}}));
        let r = replicas_of(&workers);
        assert_eq!(
            [
                workers.status_message(&r, StatusMessage::Running),
                workers.status_message(&r, StatusMessage::Succeeded),
            ],
            [
                "PyTorchJob ml/ddp is running.",
                "PyTorchJob ml/ddp successfully completed.",
            ]
        );
    }

    #[test]
    fn workers_of_a_job_with_a_master_wait_for_it() {
        // training-operator's TestInitContainer: worker-only job 0, Worker 1, Master 0.
        let init_containers = |job: &PyTorchJob, type_: &str, config: &Config| {
            let replicas = replicas(job).expect("valid");
            let replica = replicas.iter().find(|r| r.type_ == type_).expect("type");
            let mut spec = replica.template.spec.clone().unwrap_or_default();
            job.set_cluster_spec(
                &job.cluster(&replicas, config),
                &replicas,
                replica,
                0,
                &mut spec,
            );
            spec.init_containers.unwrap_or_default()
        };
        let config = Config::default();
        let workers = job(json!({"pytorchReplicaSpecs": {"Worker": replica_spec(2)}}));
        assert!(init_containers(&workers, "Worker", &config).is_empty());
        let with_master = job(
            json!({"pytorchReplicaSpecs": {"Master": replica_spec(1), "Worker": replica_spec(2)}}),
        );
        let worker = init_containers(&with_master, "Worker", &config);
        assert_eq!(worker.len(), 1);
        assert_eq!(worker[0].name, "init-pytorch");
        assert!(
            worker[0].command.as_ref().expect("command")[2].contains("nslookup ddp-master-0"),
            "{worker:?}"
        );
        assert!(init_containers(&with_master, "Master", &config).is_empty());
        let off = Config {
            pytorch_init: None,
            ..Config::default()
        };
        assert!(init_containers(&with_master, "Worker", &off).is_empty());
    }

    #[test]
    fn worker_env_matches_training_operator() {
        let job = job(
            json!({"pytorchReplicaSpecs": {"Master": replica_spec(1), "Worker": replica_spec(3)}}),
        );
        let replicas = replicas(&job).expect("valid");
        let worker = &replicas[1];
        let expected: Vec<(String, String)> = [
            ("PYTHONUNBUFFERED", "1"),
            ("MASTER_PORT", "23456"),
            ("PET_MASTER_PORT", "23456"),
            ("MASTER_ADDR", "ddp-master-0"),
            ("PET_MASTER_ADDR", "ddp-master-0"),
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("PET_NODE_RANK", "3"),
            ("PET_NPROC_PER_NODE", "auto"),
            ("PET_NNODES", "4"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(pairs(&job.env(&replicas, worker, 2)), expected);
        let master_env = pairs(&job.env(&replicas, &replicas[0], 0));
        assert!(master_env.contains(&("RANK".into(), "0".into())));
    }

    #[test]
    fn numeric_nproc_multiplies_world_size_and_env_goes_to_every_container() {
        let mut master = replica_spec(1);
        master["template"]["spec"]["containers"] = json!([
            {"name": "pytorch", "image": "pt", "ports": [{"name": "pytorchjob-port", "containerPort": 29500}]},
            {"name": "sidecar", "image": "s"}
        ]);
        let job = job(
            json!({"nprocPerNode": "4", "pytorchReplicaSpecs": {"Master": master, "Worker": replica_spec(1)}}),
        );
        let replicas = replicas(&job).expect("valid");
        let mut spec = replicas[0].template.spec.clone().expect("spec");
        job.set_cluster_spec(&Vec::new(), &replicas, &replicas[0], 0, &mut spec);
        for container in &spec.containers {
            let env = pairs(container.env.as_deref().unwrap_or_default());
            assert!(env.contains(&("WORLD_SIZE".into(), "8".into())), "{env:?}");
            assert!(
                env.contains(&("MASTER_PORT".into(), "29500".into())),
                "{env:?}"
            );
            assert!(
                env.contains(&("PET_NPROC_PER_NODE".into(), "4".into())),
                "{env:?}"
            );
        }
    }

    #[test]
    fn without_master_there_is_no_rendezvous_env() {
        let job = job(json!({"pytorchReplicaSpecs": {"Worker": replica_spec(2)}}));
        let replicas = replicas(&job).expect("valid");
        let names: Vec<String> = job
            .env(&replicas, &replicas[0], 1)
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            ["PYTHONUNBUFFERED", "PET_NPROC_PER_NODE", "PET_NNODES"]
        );
        assert!(job.is_master_role(&replicas, "Worker", 0));
    }

    #[test]
    fn elastic_policies_are_checked_as_training_operators_webhook_checks_them() {
        let no_worker = job(json!({"elasticPolicy": {"maxReplicas": 3},
            "pytorchReplicaSpecs": {"Master": replica_spec(1)}}));
        let errors = replicas(&no_worker).expect_err("invalid");
        assert_eq!(
            errors,
            [
                "spec.pytorchReplicaSpecs[Worker]: Required value: must be configured if elastic policy is used"
            ]
        );
        let both_nprocs = job(
            json!({"elasticPolicy": {"nProcPerNode": 2}, "nprocPerNode": "2",
            "pytorchReplicaSpecs": {"Worker": replica_spec(2)}}),
        );
        let errors = replicas(&both_nprocs).expect_err("invalid");
        assert_eq!(
            errors,
            ["spec.elasticPolicy.nProcPerNode: Forbidden: must not be used with spec.nprocPerNode"]
        );
        let inverted = job(
            json!({"elasticPolicy": {"minReplicas": 4, "maxReplicas": 2},
            "pytorchReplicaSpecs": {"Worker": replica_spec(2)}}),
        );
        assert!(
            replicas(&inverted).is_err(),
            "upstream leaves it to the HPA to fail"
        );
        let with_master = job(json!({"elasticPolicy": {"maxReplicas": 3},
            "pytorchReplicaSpecs": {"Master": replica_spec(1), "Worker": replica_spec(2)}}));
        assert!(replicas(&with_master).is_ok(), "a Master is allowed");
        let masters = job(json!({"pytorchReplicaSpecs": {"Master": replica_spec(2)}}));
        let errors = replicas(&masters).expect_err("invalid");
        assert!(
            errors[0].contains("Master.replicas must be 1"),
            "{errors:?}"
        );
    }

    #[test]
    fn elastic_env_matches_training_operators_table() {
        // elastic_test.go TestElasticGenerate, "With ElasticPolicy" (its order is the code's).
        let job = job(json!({
            "elasticPolicy": {"minReplicas": 1, "maxReplicas": 3, "rdzvBackend": "c10d",
                "rdzvPort": 1234, "rdzvHost": "localhost", "rdzvId": "rdzv-id",
                "rdzvConf": [{"key": "rdzv-conf-name", "value": "rdzv-conf-value"},
                             {"key": "rdzv-conf-name-1", "value": "rdzv-conf-value-1"}],
                "maxRestarts": 3},
            "pytorchReplicaSpecs": {"Worker": replica_spec(1)}}));
        let replicas = replicas(&job).expect("valid");
        let env = pairs(&job.env(&replicas, &replicas[0], 0));
        let expected = [
            ("PYTHONUNBUFFERED", "1"),
            ("PET_NPROC_PER_NODE", "auto"),
            ("PET_RDZV_ENDPOINT", "localhost:1234"),
            ("PET_RDZV_BACKEND", "c10d"),
            ("PET_NNODES", "1:3"),
            ("PET_MAX_RESTARTS", "3"),
            ("PET_RDZV_ID", "rdzv-id"),
            (
                "PET_RDZV_CONF",
                "rdzv-conf-name=rdzv-conf-value,rdzv-conf-name-1=rdzv-conf-value-1",
            ),
        ];
        assert_eq!(env, expected.map(|(k, v)| (k.to_string(), v.to_string())),);
    }

    #[test]
    fn elastic_defaults_follow_training_operator() {
        // Its echo example: Worker replicas 2, min 1, max 2, no rendezvous settings; and
        // pytorch_defaults_test.go TestSetElasticPolicy (min and max copy each other or the
        // Workers' replicas).
        let echo = job(json!({
            "elasticPolicy": {"rdzvBackend": "c10d", "minReplicas": 1, "maxReplicas": 2, "maxRestarts": 100},
            "pytorchReplicaSpecs": {"Worker": replica_spec(2)}}));
        let replicas_of = |job: &PyTorchJob| replicas(job).expect("valid");
        let r = replicas_of(&echo);
        let worker = pairs(&echo.env(&r, &r[0], 1));
        assert_eq!(
            worker,
            [
                ("PYTHONUNBUFFERED", "1"),
                ("PET_NPROC_PER_NODE", "auto"),
                ("PET_RDZV_ENDPOINT", "ddp-worker-0:23456"),
                ("PET_RDZV_BACKEND", "c10d"),
                ("PET_NNODES", "1:2"),
                ("PET_MAX_RESTARTS", "100"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
            "no MASTER_*, WORLD_SIZE or RANK without a Master"
        );
        for (policy, bounds) in [
            (json!({}), (3, 3)),
            (json!({"maxReplicas": 5}), (5, 5)),
            (json!({"minReplicas": 2}), (2, 2)),
            (json!({"minReplicas": 1, "maxReplicas": 4}), (1, 4)),
        ] {
            let job = job(
                json!({"elasticPolicy": policy, "pytorchReplicaSpecs": {"Worker": replica_spec(3)}}),
            );
            let r = replicas_of(&job);
            let elastic = job.spec.elastic_policy.as_ref().expect("elastic");
            assert_eq!(PyTorchJob::elastic_bounds(elastic, &r), bounds, "{policy}");
        }
        let deprecated = job(
            json!({"elasticPolicy": {"nProcPerNode": 4, "standalone": true},
            "pytorchReplicaSpecs": {"Worker": replica_spec(1)}}),
        );
        let r = replicas_of(&deprecated);
        let env = pairs(&deprecated.env(&r, &r[0], 0));
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "PYTHONUNBUFFERED",
                "PET_RDZV_ENDPOINT",
                "PET_RDZV_BACKEND",
                "PET_NNODES",
                "PET_NPROC_PER_NODE",
                "PET_STANDALONE"
            ],
            "the deprecated nProcPerNode replaces the spec's default"
        );
        assert_eq!(env[4].1, "4");
    }

    #[test]
    fn an_elastic_job_with_metrics_gets_training_operators_autoscaler() {
        let job = job(json!({
            "elasticPolicy": {"minReplicas": 1, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]},
            "pytorchReplicaSpecs": {"Worker": replica_spec(2)}}));
        let r = replicas(&job).expect("valid");
        let hpa = job.autoscaler(&r).expect("autoscaler");
        assert_eq!(
            hpa["spec"],
            json!({"scaleTargetRef": {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "ddp"},
                "minReplicas": 1, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]})
        );
        assert_eq!(hpa["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(hpa["metadata"]["ownerReferences"][0]["controller"], true);
        let without_metrics = self::job(json!({"elasticPolicy": {"maxReplicas": 3},
            "pytorchReplicaSpecs": {"Worker": replica_spec(2)}}));
        assert!(without_metrics.autoscaler(&r).is_none());
    }

    #[test]
    fn success_follows_the_master_or_else_all_workers() {
        let job = job(json!({"pytorchReplicaSpecs": {"Worker": replica_spec(2)}}));
        let c = |replicas, active, succeeded| Counts {
            replicas,
            active,
            succeeded,
            ..Default::default()
        };
        assert_eq!(
            job.progress(&[("Master", c(1, 0, 1)), ("Worker", c(2, 2, 0))]),
            Progress {
                running: false,
                succeeded: true
            }
        );
        assert_eq!(
            job.progress(&[("Worker", c(2, 1, 1))]),
            Progress {
                running: true,
                succeeded: false
            }
        );
        assert!(job.progress(&[("Worker", c(2, 0, 2))]).succeeded);
        let elastic = self::job(json!({"elasticPolicy": {"maxReplicas": 4},
            "pytorchReplicaSpecs": {"Worker": replica_spec(2)}}));
        assert!(
            elastic.progress(&[("Worker", c(2, 1, 1))]).succeeded,
            "an elastic job succeeds with its first Worker"
        );
    }
}
