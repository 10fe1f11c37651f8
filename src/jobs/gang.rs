//! Gang scheduling: the PodGroup a job's pods are scheduled as, for Volcano
//! (`scheduling.volcano.sh/v1beta1`) or the scheduler-plugins coscheduling plugin
//! (`scheduling.x-k8s.io/v1alpha1`), and how each one's pods are marked.

use super::api::SchedulingPolicy;
use super::framework::Replica;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Volcano's pod annotation naming the PodGroup.
pub const VOLCANO_GROUP_ANNOTATION: &str = "scheduling.k8s.io/group-name";
/// Volcano's pod annotation naming the task (the lowercase replica type).
pub const VOLCANO_TASK_ANNOTATION: &str = "volcano.sh/task-spec";
/// scheduler-plugins' pod label naming the PodGroup.
pub const SCHEDULER_PLUGINS_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";

/// The gang scheduler pods are handed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GangScheduler {
    /// Volcano (`--gang-scheduler volcano`).
    Volcano,
    /// The scheduler-plugins coscheduling plugin, run as the scheduler with this name.
    SchedulerPlugins(String),
}

impl GangScheduler {
    /// `volcano` selects Volcano; any other name a scheduler-plugins scheduler of that name.
    pub fn from_name(name: &str) -> Self {
        if name.eq_ignore_ascii_case("volcano") {
            GangScheduler::Volcano
        } else {
            GangScheduler::SchedulerPlugins(name.to_string())
        }
    }

    /// The scheduler name pods get when their template names none.
    pub fn scheduler_name(&self) -> &str {
        match self {
            GangScheduler::Volcano => "volcano",
            GangScheduler::SchedulerPlugins(name) => name,
        }
    }

    /// The PodGroup API group.
    pub fn group(&self) -> &'static str {
        match self {
            GangScheduler::Volcano => "scheduling.volcano.sh",
            GangScheduler::SchedulerPlugins(_) => "scheduling.x-k8s.io",
        }
    }

    /// The PodGroup API version.
    pub fn version(&self) -> &'static str {
        match self {
            GangScheduler::Volcano => "v1beta1",
            GangScheduler::SchedulerPlugins(_) => "v1alpha1",
        }
    }

    /// Marks a pod template as a member of the job's PodGroup (named like the job).
    pub fn decorate(&self, template: &mut PodTemplateSpec, job: &str, lower_type: &str) {
        let spec = template.spec.get_or_insert_with(Default::default);
        if spec
            .scheduler_name
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            spec.scheduler_name = Some(self.scheduler_name().to_string());
        }
        let meta = template.metadata.get_or_insert_with(Default::default);
        match self {
            GangScheduler::Volcano => {
                let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
                annotations.insert(VOLCANO_GROUP_ANNOTATION.into(), job.into());
                annotations.insert(VOLCANO_TASK_ANNOTATION.into(), lower_type.into());
            }
            GangScheduler::SchedulerPlugins(_) => {
                let labels = meta.labels.get_or_insert_with(BTreeMap::new);
                labels.insert(SCHEDULER_PLUGINS_GROUP_LABEL.into(), job.into());
            }
        }
    }

    /// The PodGroup `spec` for a job with these replicas and scheduling policy.
    pub fn pod_group_spec(&self, replicas: &[Replica], policy: Option<&SchedulingPolicy>) -> Value {
        let total: u32 = replicas.iter().map(|r| r.replicas).sum();
        let min_member = policy
            .and_then(|p| p.min_available)
            .map_or(i64::from(total), i64::from);
        let min_resources = match policy.and_then(|p| p.min_resources.clone()) {
            Some(resources) => resources,
            None => min_resources(replicas, u32::try_from(min_member).unwrap_or(0)),
        };
        match self {
            GangScheduler::Volcano => {
                let mut spec = json!({
                    "minMember": min_member,
                    "queue": policy.and_then(|p| p.queue.clone()).unwrap_or_else(|| "default".into()),
                });
                if let Some(class) = policy.and_then(|p| p.priority_class.clone()) {
                    spec["priorityClassName"] = json!(class);
                }
                if !min_resources.is_empty() {
                    spec["minResources"] = json!(min_resources);
                }
                spec
            }
            GangScheduler::SchedulerPlugins(_) => {
                let mut spec = json!({"minMember": min_member});
                if !min_resources.is_empty() {
                    spec["minResources"] = json!(min_resources);
                }
                if let Some(timeout) = policy.and_then(|p| p.schedule_timeout_seconds) {
                    spec["scheduleTimeoutSeconds"] = json!(timeout);
                }
                spec
            }
        }
    }

    /// Whether pods must wait for the PodGroup: Volcano admits a gang by moving its PodGroup out of
    /// `Pending` (an absent phase means Volcano has not seen it yet).
    pub fn holds_pods(&self, phase: Option<&str>) -> bool {
        match self {
            GangScheduler::Volcano => matches!(phase, None | Some("") | Some("Pending")),
            GangScheduler::SchedulerPlugins(_) => false,
        }
    }
}

/// The sum of the container requests of the first `min_member` replicas (types in the kind's
/// order), for resources whose quantities parse as plain numbers with a known suffix.
fn min_resources(replicas: &[Replica], min_member: u32) -> BTreeMap<String, Quantity> {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut remaining = min_member;
    for replica in replicas {
        let take = remaining.min(replica.replicas);
        remaining -= take;
        let requests = replica
            .template
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref());
        for request in requests {
            for (name, quantity) in request {
                if let Some(value) = parse_quantity(&quantity.0) {
                    *sums.entry(name.clone()).or_default() += value * f64::from(take);
                }
            }
        }
    }
    sums.into_iter()
        .map(|(name, value)| (name, Quantity(format_quantity(value))))
        .collect()
}

/// Parses a Kubernetes quantity into base units (`500m` → 0.5, `2Gi` → 2·2³⁰).
pub fn parse_quantity(text: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let text = text.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse::<f64>().ok()
}

fn format_quantity(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{:.0}m", (value * 1000.0).ceil())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::api::RestartPolicy;
    use serde_json::json;

    fn replica(type_: &'static str, replicas: u32, cpu: &str, memory: &str) -> Replica {
        Replica {
            type_,
            replicas,
            restart_policy: RestartPolicy::Never,
            template: serde_json::from_value(json!({"spec": {"containers": [{"name": "c",
                "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}))
            .expect("template"),
        }
    }

    #[test]
    fn volcano_pods_get_annotations_and_the_scheduler() {
        let mut template = PodTemplateSpec::default();
        GangScheduler::from_name("Volcano").decorate(&mut template, "dist", "worker");
        let annotations = template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .expect("annotations");
        assert_eq!(annotations[VOLCANO_GROUP_ANNOTATION], "dist");
        assert_eq!(annotations[VOLCANO_TASK_ANNOTATION], "worker");
        assert_eq!(
            template.spec.and_then(|s| s.scheduler_name).as_deref(),
            Some("volcano")
        );
    }

    #[test]
    fn scheduler_plugins_pods_get_the_label_and_keep_their_own_scheduler() {
        let mut template: PodTemplateSpec =
            serde_json::from_value(json!({"spec": {"schedulerName": "mine", "containers": []}}))
                .expect("template");
        GangScheduler::from_name("scheduler-plugins-scheduler").decorate(
            &mut template,
            "dist",
            "worker",
        );
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .expect("labels");
        assert_eq!(labels[SCHEDULER_PLUGINS_GROUP_LABEL], "dist");
        assert_eq!(
            template.spec.and_then(|s| s.scheduler_name).as_deref(),
            Some("mine")
        );
    }

    #[test]
    fn pod_group_spec_defaults_min_member_and_sums_requests() {
        let replicas = [
            replica("PS", 1, "500m", "1Gi"),
            replica("Worker", 3, "2", "2Gi"),
        ];
        let spec = GangScheduler::Volcano.pod_group_spec(&replicas, None);
        assert_eq!(
            spec,
            json!({"minMember": 4, "queue": "default",
                   "minResources": {"cpu": "6500m", "memory": "7516192768"}})
        );
        let policy = SchedulingPolicy {
            min_available: Some(2),
            queue: Some("gpu".into()),
            priority_class: Some("high".into()),
            schedule_timeout_seconds: Some(30),
            ..Default::default()
        };
        let spec = GangScheduler::Volcano.pod_group_spec(&replicas, Some(&policy));
        assert_eq!(spec["minMember"], 2);
        assert_eq!(spec["queue"], "gpu");
        assert_eq!(spec["priorityClassName"], "high");
        assert_eq!(spec["minResources"]["cpu"], "2500m");
        let spec =
            GangScheduler::SchedulerPlugins("sp".into()).pod_group_spec(&replicas, Some(&policy));
        assert_eq!(spec["scheduleTimeoutSeconds"], 30);
        assert!(spec.get("queue").is_none());
    }

    #[test]
    fn only_volcano_holds_pods_until_the_group_is_admitted() {
        assert!(GangScheduler::Volcano.holds_pods(None));
        assert!(GangScheduler::Volcano.holds_pods(Some("Pending")));
        assert!(!GangScheduler::Volcano.holds_pods(Some("Inqueue")));
        assert!(!GangScheduler::SchedulerPlugins("sp".into()).holds_pods(None));
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("x"), None);
    }
}
