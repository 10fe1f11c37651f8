//! Prometheus metrics of the operator and the job controllers, in one registry per process
//! (served on `/metrics` by [`crate::endpoints`]).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

/// A KfDef, `namespace/name`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KfDefLabel {
    pub kfdef: String,
}

/// A KfDef and how its reconcile ended (`success` or `error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kfdef: String,
    pub result: &'static str,
}

/// A KfDef and a state its objects are in (`managed`, `pending`, `conflicting`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub kfdef: String,
    pub state: &'static str,
}

/// What kind of heal: `missing` (re-created) or `changed` (set back).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealLabels {
    pub heal: &'static str,
}

/// The API request that failed: `apply`, `prune`, `release`, `read`, `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

/// A watched kind, `Kind.group`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// A job kind and a phase (its newest true condition, or the Framework's state).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    kind: String,
    phase: String,
}

/// Buckets from 5 ms to about 80 s, doubling.
#[derive(Clone)]
pub struct SecondsBuckets;

impl MetricConstructor<Histogram> for SecondsBuckets {
    fn new_metric(&self) -> Histogram {
        seconds_histogram()
    }
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// The phases of one job kind's jobs, read from its controller's cache when scraped.
type PhaseSource = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// Job phase counts, computed at scrape time from each job controller's cache.
#[derive(Clone, Default)]
struct JobPhases {
    sources: Arc<RwLock<Vec<(String, PhaseSource)>>>,
}

impl std::fmt::Debug for JobPhases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobPhases").finish_non_exhaustive()
    }
}

impl Collector for JobPhases {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<PhaseLabels, Gauge>::default();
        if let Ok(sources) = self.sources.read() {
            for (kind, phases) in sources.iter() {
                for phase in phases() {
                    family
                        .get_or_create(&PhaseLabels {
                            kind: kind.clone(),
                            phase,
                        })
                        .inc();
                }
            }
        }
        let metric = encoder.encode_descriptor(
            "kfop_jobs",
            "Jobs in the job controllers' caches, by kind and phase",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

/// Every metric kfop exports.
pub struct Metrics {
    registry: Registry,
    /// Reconcile duration per KfDef and result.
    pub reconcile_duration: Family<ReconcileLabels, Histogram, SecondsBuckets>,
    /// From a managed object's deletion seen by the watch to kfop's re-creation written.
    pub heal_latency: Histogram,
    /// Heals written, by kind of heal.
    pub heals: Family<HealLabels, Counter>,
    /// Objects per KfDef and state, as of its last reconcile.
    pub objects: Family<ObjectLabels, Gauge>,
    /// Objects written (created or changed) per KfDef.
    pub applied: Family<KfDefLabel, Counter>,
    /// Objects pruned per KfDef.
    pub pruned: Family<KfDefLabel, Counter>,
    /// Failed API requests by operation.
    pub api_errors: Family<OperationLabel, Counter>,
    /// Watches of managed kinds that failed and were started again.
    pub watch_restarts: Family<KindLabel, Counter>,
    /// 1 while this replica holds the leader lease (or runs without leader election).
    pub leader: Gauge,
    /// Pods the job controllers created, by job kind.
    pub job_pods_created: Family<KindLabel, Counter>,
    /// Job reconcile duration by job kind.
    pub job_reconcile_duration: Family<KindLabel, Histogram, SecondsBuckets>,
    job_phases: JobPhases,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let reconcile_duration = Family::new_with_constructor(SecondsBuckets);
        registry.register_with_unit(
            "kfop_reconcile_duration",
            "Duration of KfDef reconciles, by KfDef and result",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let heal_latency = seconds_histogram();
        registry.register_with_unit(
            "kfop_heal_latency",
            "From a managed object's deletion seen by kfop's watch to its re-creation written",
            Unit::Seconds,
            heal_latency.clone(),
        );
        let heals = Family::default();
        registry.register(
            "kfop_heals",
            "Objects put back, by kind of heal (missing: re-created; changed: set back)",
            heals.clone(),
        );
        let objects = Family::default();
        registry.register(
            "kfop_objects",
            "Objects of each KfDef by state, as of its last reconcile",
            objects.clone(),
        );
        let applied = Family::default();
        registry.register(
            "kfop_applied_objects",
            "Objects written (created or changed) per KfDef",
            applied.clone(),
        );
        let pruned = Family::default();
        registry.register(
            "kfop_pruned_objects",
            "Objects deleted because their KfDef no longer renders them",
            pruned.clone(),
        );
        let api_errors = Family::default();
        registry.register(
            "kfop_api_errors",
            "Failed API requests, by operation",
            api_errors.clone(),
        );
        let watch_restarts = Family::default();
        registry.register(
            "kfop_watch_restarts",
            "Watches of managed kinds that failed and were started again",
            watch_restarts.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "kfop_leader",
            "1 while this replica leads (or runs without leader election)",
            leader.clone(),
        );
        let job_pods_created = Family::default();
        registry.register(
            "kfop_job_pods_created",
            "Pods created by the job controllers, by job kind",
            job_pods_created.clone(),
        );
        let job_reconcile_duration = Family::new_with_constructor(SecondsBuckets);
        registry.register_with_unit(
            "kfop_job_reconcile_duration",
            "Duration of job reconciles, by job kind",
            Unit::Seconds,
            job_reconcile_duration.clone(),
        );
        let job_phases = JobPhases::default();
        registry.register_collector(Box::new(job_phases.clone()));
        Self {
            registry,
            reconcile_duration,
            heal_latency,
            heals,
            objects,
            applied,
            pruned,
            api_errors,
            watch_restarts,
            leader,
            job_pods_created,
            job_reconcile_duration,
            job_phases,
        }
    }

    /// Counts a failed API request.
    pub fn api_error(&self, operation: &'static str) {
        self.api_errors
            .get_or_create(&OperationLabel { operation })
            .inc();
    }

    /// Records a reconcile of `kfdef` that took `elapsed`.
    pub fn reconciled(&self, kfdef: &str, ok: bool, elapsed: Duration) {
        self.reconcile_duration
            .get_or_create(&ReconcileLabels {
                kfdef: kfdef.to_string(),
                result: if ok { "success" } else { "error" },
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets how many objects of `kfdef` are in each state.
    pub fn set_objects(&self, kfdef: &str, counts: [(&'static str, usize); 4]) {
        for (state, count) in counts {
            self.objects
                .get_or_create(&ObjectLabels {
                    kfdef: kfdef.to_string(),
                    state,
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Drops the series of a deleted KfDef.
    pub fn forget_kfdef(&self, kfdef: &str) {
        let label = KfDefLabel {
            kfdef: kfdef.to_string(),
        };
        self.applied.remove(&label);
        self.pruned.remove(&label);
        for state in OBJECT_STATES {
            self.objects.remove(&ObjectLabels {
                kfdef: kfdef.to_string(),
                state,
            });
        }
        for result in ["success", "error"] {
            self.reconcile_duration.remove(&ReconcileLabels {
                kfdef: kfdef.to_string(),
                result,
            });
        }
    }

    /// Adds job kind `kind`'s phase counts, read from `phases` at each scrape.
    pub fn count_job_phases(
        &self,
        kind: &str,
        phases: impl Fn() -> Vec<String> + Send + Sync + 'static,
    ) {
        if let Ok(mut sources) = self.job_phases.sources.write() {
            sources.push((kind.to_string(), Box::new(phases)));
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The states [`Metrics::set_objects`] counts.
pub const OBJECT_STATES: [&str; 4] = ["managed", "pending", "conflicting", "failed"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_their_units_and_drop_a_deleted_kfdefs_series() {
        let metrics = Metrics::new();
        metrics.heal_latency.observe(0.2);
        metrics.reconciled("ns/a", true, Duration::from_millis(30));
        metrics.set_objects(
            "ns/a",
            [
                ("managed", 3),
                ("pending", 1),
                ("conflicting", 0),
                ("failed", 0),
            ],
        );
        metrics.count_job_phases("TFJob", || {
            vec!["Running".into(), "Running".into(), "Succeeded".into()]
        });
        let text = metrics.encode().expect("encode");
        assert!(text.contains("kfop_heal_latency_seconds_count 1"), "{text}");
        assert!(
            text.contains("kfop_heal_latency_seconds_bucket{le=\"0.32\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "kfop_reconcile_duration_seconds_count{kfdef=\"ns/a\",result=\"success\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("kfop_objects{kfdef=\"ns/a\",state=\"managed\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("kfop_jobs{kind=\"TFJob\",phase=\"Running\"} 2"),
            "{text}"
        );
        metrics.forget_kfdef("ns/a");
        let text = metrics.encode().expect("encode");
        assert!(!text.contains("ns/a"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
