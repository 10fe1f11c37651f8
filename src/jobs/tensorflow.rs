//! TFJob (`kubeflow.org/v1`): PS, Worker, Chief/Master and Evaluator replicas, with `TF_CONFIG`
//! byte for byte as training-operator writes it.

use super::api::{JobStatus, ReplicaSpec, RestartPolicy, RunPolicy};
use super::engine::Config;
use super::framework::{Counts, Framework, Progress, Replica, object_name, port};
use k8s_openapi::api::core::v1::{EnvVar, PodSpec};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The environment variable holding the cluster spec.
pub const TF_CONFIG: &str = "TF_CONFIG";

/// The desired state of a TFJob.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kubeflow.org",
    version = "v1",
    kind = "TFJob",
    plural = "tfjobs",
    singular = "tfjob",
    namespaced,
    status = "JobStatus",
    doc = "A distributed TensorFlow training job.",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[-1:].type"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TFJobSpec {
    /// Clean-up, limits, scheduling and suspension.
    #[serde(default)]
    pub run_policy: RunPolicy,
    /// `AllWorkers` waits for every worker; by default worker 0 finishing is enough (when there is
    /// no chief or master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_policy: Option<SuccessPolicy>,
    /// The replica types (`PS`, `Worker`, `Chief`, `Master`, `Evaluator`) and their specs.
    #[schemars(extend("maxProperties" = 5))]
    pub tf_replica_specs: BTreeMap<String, ReplicaSpec>,
    /// Each worker's `TF_CONFIG` names only itself and the parameter servers, so workers can come
    /// and go; a failed worker does not fail the job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_dynamic_worker: bool,
}

/// When a TFJob without chief or master succeeds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SuccessPolicy {
    /// Worker 0 succeeding is enough.
    #[default]
    #[serde(rename = "")]
    Default,
    /// Every worker must succeed.
    AllWorkers,
}

impl TFJob {
    fn has_chief_or_master(replicas: &[Replica]) -> bool {
        replicas
            .iter()
            .any(|r| r.type_ == "Chief" || r.type_ == "Master")
    }

    fn addresses(
        &self,
        replicas: &[Replica],
        cluster_domain: Option<&str>,
    ) -> BTreeMap<String, Vec<String>> {
        let name = self.metadata.name.as_deref().unwrap_or_default();
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        replicas
            .iter()
            .map(|replica| {
                let lower = replica.lower();
                let port = port(
                    replica,
                    Self::DEFAULT_CONTAINER,
                    Self::PORT_NAME,
                    Self::DEFAULT_PORT,
                );
                let hosts = (0..replica.replicas)
                    .map(|i| {
                        let mut host = format!("{}.{namespace}.svc", object_name(name, &lower, i));
                        if let Some(domain) = cluster_domain.filter(|d| !d.is_empty()) {
                            host.push('.');
                            host.push_str(domain);
                        }
                        format!("{host}:{port}")
                    })
                    .collect();
                (lower, hosts)
            })
            .collect()
    }

    /// The `TF_CONFIG` of replica `index` of `replica`, or `None` for a single-replica job.
    pub fn tf_config(&self, cluster: &TfCluster, replica: &Replica, index: u32) -> Option<String> {
        let shared = cluster.json.as_ref()?;
        let lower = replica.lower();
        let task = TaskSpec {
            type_: lower.clone(),
            index,
        };
        if !self.spec.enable_dynamic_worker {
            let task = serde_json::to_string(&task).ok()?;
            return Some(format!(
                r#"{{"cluster":{shared},"task":{task},"environment":"cloud"}}"#
            ));
        }
        let hosts = &cluster.hosts;
        let own = || {
            hosts
                .get(&lower)
                .and_then(|hosts| hosts.get(index as usize))
                .cloned()
        };
        let mut sparse = SparseClusterSpec {
            worker: BTreeMap::new(),
            ps: Some(Vec::new()),
        };
        match lower.as_str() {
            "ps" => sparse.ps = Some(own().into_iter().collect()),
            "worker" => {
                sparse.ps = hosts.get("ps").cloned();
                if let Some(host) = own() {
                    sparse.worker.insert(index, host);
                }
            }
            _ => {}
        }
        serde_json::to_string(&SparseTfConfig {
            cluster: sparse,
            task,
        })
        .ok()
    }
}

/// A TFJob's cluster, computed once per engine pass: every replica's address by type, and that
/// map serialized once, since a 1000-worker `TF_CONFIG` is 40 kB and every pod carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct TfCluster {
    hosts: BTreeMap<String, Vec<String>>,
    /// The serialized `cluster` object; `None` when the job has a single replica (no `TF_CONFIG`).
    json: Option<String>,
}

#[derive(Serialize)]
struct TaskSpec {
    #[serde(rename = "type")]
    type_: String,
    index: u32,
}

/// The dynamic-worker `TF_CONFIG`: a worker knows itself and the parameter servers only.
#[derive(Serialize)]
struct SparseTfConfig {
    cluster: SparseClusterSpec,
    task: TaskSpec,
}

#[derive(Serialize)]
struct SparseClusterSpec {
    worker: BTreeMap<u32, String>,
    ps: Option<Vec<String>>,
}

impl Framework for TFJob {
    const CONTROLLER_NAME: &'static str = "tfjob-controller";
    const DEFAULT_CONTAINER: &'static str = "tensorflow";
    const PORT_NAME: &'static str = "tfjob-port";
    const DEFAULT_PORT: i32 = 2222;
    const DEFAULT_RESTART_POLICY: RestartPolicy = RestartPolicy::Never;
    const REPLICA_TYPES: &'static [&'static str] =
        &["Chief", "Master", "PS", "Worker", "Evaluator"];
    const SPECS_FIELD: &'static str = "tfReplicaSpecs";

    fn replica_specs(&self) -> &BTreeMap<String, ReplicaSpec> {
        &self.spec.tf_replica_specs
    }

    fn run_policy(&self) -> &RunPolicy {
        &self.spec.run_policy
    }

    fn job_status(&self) -> Option<&JobStatus> {
        self.status.as_ref()
    }

    fn validate_kind(&self, replicas: &[Replica]) -> Vec<String> {
        let chiefs = replicas
            .iter()
            .filter(|r| r.type_ == "Chief" || r.type_ == "Master")
            .count();
        if chiefs > 1 {
            return vec!["spec.tfReplicaSpecs must not have both Chief and Master".to_string()];
        }
        Vec::new()
    }

    fn is_master_role(&self, replicas: &[Replica], type_: &str, index: u32) -> bool {
        if Self::has_chief_or_master(replicas) {
            type_ == "Chief" || type_ == "Master"
        } else {
            type_ == "Worker" && index == 0
        }
    }

    type Cluster = TfCluster;

    fn cluster(&self, replicas: &[Replica], config: &Config) -> TfCluster {
        let hosts = self.addresses(replicas, config.cluster_domain.as_deref());
        let total: u32 = replicas.iter().map(|r| r.replicas).sum();
        let json = (total != 1)
            .then(|| serde_json::to_string(&hosts).ok())
            .flatten();
        TfCluster { hosts, json }
    }

    fn set_cluster_spec(
        &self,
        cluster: &TfCluster,
        _replicas: &[Replica],
        replica: &Replica,
        index: u32,
        spec: &mut PodSpec,
    ) {
        let Some(config) = self.tf_config(cluster, replica, index) else {
            return;
        };
        if let Some(container) = spec
            .containers
            .iter_mut()
            .find(|c| c.name == Self::DEFAULT_CONTAINER)
        {
            container.env.get_or_insert_with(Vec::new).push(EnvVar {
                name: TF_CONFIG.to_string(),
                value: Some(config),
                value_from: None,
            });
        }
    }

    fn progress(&self, counts: &[(&'static str, Counts)]) -> Progress {
        let chief = counts.iter().find(|(t, _)| *t == "Chief" || *t == "Master");
        if let Some((_, chief)) = chief {
            return Progress {
                running: chief.active > 0,
                succeeded: chief.replicas > 0 && chief.succeeded >= chief.replicas,
            };
        }
        let Some((_, worker)) = counts.iter().find(|(t, _)| *t == "Worker") else {
            return Progress::default();
        };
        let all = worker.replicas > 0 && worker.succeeded >= worker.replicas;
        let first = worker.index0_succeeded
            && self.spec.success_policy.unwrap_or_default() != SuccessPolicy::AllWorkers;
        Progress {
            running: worker.active > 0,
            succeeded: all || first,
        }
    }

    fn tolerates_failure(&self, type_: &str) -> bool {
        self.spec.enable_dynamic_worker && type_ == "Worker"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::framework::replicas;
    use serde_json::json;

    fn job(specs: serde_json::Value, extra: serde_json::Value) -> TFJob {
        let mut spec = json!({"tfReplicaSpecs": specs});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "kubeflow.org/v1", "kind": "TFJob",
            "metadata": {"name": "dist", "namespace": "ml", "uid": "u1"},
            "spec": spec,
        }))
        .expect("TFJob")
    }

    fn container(port: Option<i32>) -> serde_json::Value {
        let mut c = json!({"name": "tensorflow", "image": "tf:2"});
        if let Some(port) = port {
            c["ports"] = json!([{"name": "tfjob-port", "containerPort": port}]);
        }
        json!({"template": {"spec": {"containers": [c]}}})
    }

    fn spec(n: u32, port: Option<i32>) -> serde_json::Value {
        let mut s = container(port);
        s["replicas"] = json!(n);
        s
    }

    #[test]
    fn tf_config_matches_training_operator_bytes() {
        let job = job(
            json!({"PS": spec(1, Some(2223)), "Worker": spec(2, None), "chief": spec(1, None)}),
            json!({}),
        );
        let replicas = replicas(&job).expect("valid");
        let worker = replicas
            .iter()
            .find(|r| r.type_ == "Worker")
            .expect("worker");
        assert_eq!(
            job.tf_config(&job.cluster(&replicas, &Config::default()), worker, 1)
                .as_deref(),
            Some(concat!(
                r#"{"cluster":{"chief":["dist-chief-0.ml.svc:2222"],"ps":["dist-ps-0.ml.svc:2223"],"#,
                r#""worker":["dist-worker-0.ml.svc:2222","dist-worker-1.ml.svc:2222"]},"#,
                r#""task":{"type":"worker","index":1},"environment":"cloud"}"#
            ))
        );
        let ps = replicas.iter().find(|r| r.type_ == "PS").expect("ps");
        let with_domain = job
            .tf_config(
                &job.cluster(
                    &replicas,
                    &Config {
                        cluster_domain: Some("cluster.local".into()),
                        ..Config::default()
                    },
                ),
                ps,
                0,
            )
            .expect("config");
        assert!(
            with_domain.contains(r#""ps":["dist-ps-0.ml.svc.cluster.local:2223"]"#),
            "{with_domain}"
        );
        assert!(with_domain.ends_with(r#""task":{"type":"ps","index":0},"environment":"cloud"}"#));
    }

    #[test]
    fn single_replica_jobs_get_no_tf_config() {
        let job = job(json!({"Worker": spec(1, None)}), json!({}));
        let replicas = replicas(&job).expect("valid");
        let mut pod_spec = replicas[0].template.spec.clone().expect("spec");
        job.set_cluster_spec(
            &job.cluster(&replicas, &Config::default()),
            &replicas,
            &replicas[0],
            0,
            &mut pod_spec,
        );
        assert_eq!(pod_spec.containers[0].env, None);
    }

    #[test]
    fn tf_config_goes_to_the_tensorflow_container_only() {
        let mut two = spec(2, None);
        two["template"]["spec"]["containers"] = json!([{"name": "sidecar", "image": "s"}, {"name": "tensorflow", "image": "tf", "env": [{"name": "A", "value": "1"}]}]);
        let job = job(json!({"Worker": two}), json!({}));
        let replicas = replicas(&job).expect("valid");
        let mut pod_spec = replicas[0].template.spec.clone().expect("spec");
        job.set_cluster_spec(
            &job.cluster(&replicas, &Config::default()),
            &replicas,
            &replicas[0],
            0,
            &mut pod_spec,
        );
        assert_eq!(pod_spec.containers[0].env, None);
        let env = pod_spec.containers[1].env.clone().expect("env");
        assert_eq!(env[0].name, "A");
        assert_eq!(env[1].name, TF_CONFIG);
    }

    #[test]
    fn dynamic_worker_config_is_sparse() {
        let job = job(
            json!({"PS": spec(2, None), "Worker": spec(2, None)}),
            json!({"enableDynamicWorker": true}),
        );
        let replicas = replicas(&job).expect("valid");
        let worker = &replicas[1];
        assert_eq!(
            job.tf_config(&job.cluster(&replicas, &Config::default()), worker, 1)
                .as_deref(),
            Some(concat!(
                r#"{"cluster":{"worker":{"1":"dist-worker-1.ml.svc:2222"},"#,
                r#""ps":["dist-ps-0.ml.svc:2222","dist-ps-1.ml.svc:2222"]},"task":{"type":"worker","index":1}}"#
            ))
        );
        assert_eq!(
            job.tf_config(&job.cluster(&replicas, &Config::default()), &replicas[0], 1)
                .as_deref(),
            Some(
                r#"{"cluster":{"worker":{},"ps":["dist-ps-1.ml.svc:2222"]},"task":{"type":"ps","index":1}}"#
            )
        );
        assert!(job.tolerates_failure("Worker"));
        let no_ps = self::job(
            json!({"Worker": spec(2, None)}),
            json!({"enableDynamicWorker": true}),
        );
        let replicas = super::super::framework::replicas(&no_ps).expect("valid");
        assert_eq!(
            no_ps
                .tf_config(
                    &no_ps.cluster(&replicas, &Config::default()),
                    &replicas[0],
                    0
                )
                .as_deref(),
            Some(
                r#"{"cluster":{"worker":{"0":"dist-worker-0.ml.svc:2222"},"ps":null},"task":{"type":"worker","index":0}}"#
            )
        );
    }

    #[test]
    fn master_role_is_the_chief_or_worker_zero() {
        let with_chief = job(
            json!({"Chief": spec(1, None), "Worker": spec(2, None)}),
            json!({}),
        );
        let replicas = replicas(&with_chief).expect("valid");
        assert!(with_chief.is_master_role(&replicas, "Chief", 0));
        assert!(!with_chief.is_master_role(&replicas, "Worker", 0));
        let workers = job(json!({"Worker": spec(2, None)}), json!({}));
        let replicas = super::super::framework::replicas(&workers).expect("valid");
        assert!(workers.is_master_role(&replicas, "Worker", 0));
        assert!(!workers.is_master_role(&replicas, "Worker", 1));
    }

    fn counts(replicas: u32, active: u32, succeeded: u32, index0: bool) -> Counts {
        Counts {
            replicas,
            active,
            succeeded,
            failed: 0,
            index0_succeeded: index0,
        }
    }

    #[test]
    fn success_rules() {
        let default = job(json!({"Worker": spec(3, None)}), json!({}));
        let worker0 = [
            ("PS", counts(1, 1, 0, false)),
            ("Worker", counts(3, 2, 1, true)),
        ];
        assert_eq!(
            default.progress(&worker0),
            Progress {
                running: true,
                succeeded: true
            }
        );
        let all = job(
            json!({"Worker": spec(3, None)}),
            json!({"successPolicy": "AllWorkers"}),
        );
        assert_eq!(
            all.progress(&worker0),
            Progress {
                running: true,
                succeeded: false
            }
        );
        let done = [("Worker", counts(3, 0, 3, true))];
        assert!(all.progress(&done).succeeded);
        let chief = [
            ("Chief", counts(1, 0, 1, true)),
            ("Worker", counts(3, 3, 0, false)),
        ];
        assert!(all.progress(&chief).succeeded);
        let chief_running = [
            ("Master", counts(1, 1, 0, false)),
            ("Worker", counts(3, 0, 3, true)),
        ];
        assert_eq!(
            default.progress(&chief_running),
            Progress {
                running: true,
                succeeded: false
            }
        );
        let no_workers = [("Worker", counts(0, 0, 0, false))];
        assert_eq!(default.progress(&no_workers), Progress::default());
        assert_eq!(
            default.progress(&[("PS", counts(1, 1, 0, false))]),
            Progress::default()
        );
    }

    #[test]
    fn validation_rejects_chief_and_master_together_and_unknown_types() {
        let both = job(
            json!({"Chief": spec(1, None), "Master": spec(1, None)}),
            json!({}),
        );
        let errors = replicas(&both).expect_err("invalid");
        assert!(errors[0].contains("both Chief and Master"), "{errors:?}");
        let unknown = job(json!({"Driver": spec(1, None)}), json!({}));
        let errors = replicas(&unknown).expect_err("invalid");
        assert!(errors[0].contains("unknown replica type"), "{errors:?}");
    }

    #[test]
    fn defaults_fill_replicas_restart_policy_and_port() {
        let job = job(json!({"worker": container(None)}), json!({}));
        let replicas = replicas(&job).expect("valid");
        assert_eq!(replicas[0].type_, "Worker");
        assert_eq!(replicas[0].replicas, 1);
        assert_eq!(replicas[0].restart_policy, RestartPolicy::Never);
        let ports = replicas[0].template.spec.as_ref().expect("spec").containers[0]
            .ports
            .clone();
        assert_eq!(ports.expect("ports")[0].container_port, 2222);
    }
}
