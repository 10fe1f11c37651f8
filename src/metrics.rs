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
struct KfDefLabel {
    kfdef: String,
}

/// A KfDef and how its reconcile ended (`success` or `error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kfdef: String,
    result: &'static str,
}

/// A KfDef and a state its objects are in (`managed`, `pending`, `conflicting`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kfdef: String,
    state: &'static str,
}

/// What kind of heal: `missing` (re-created) or `changed` (set back).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealLabels {
    heal: &'static str,
}

/// The API request that failed: `apply`, `prune`, `release`, `read`, `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

/// A watched kind, `Kind.group`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// A job kind and a phase (its newest true condition, or the Framework's state).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    kind: String,
    phase: String,
}

/// Buckets from 5 ms to about 80 s, doubling.
#[derive(Clone)]
struct SecondsBuckets;

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
    reconcile_duration: Family<ReconcileLabels, Histogram, SecondsBuckets>,
    /// From a managed object's deletion seen by the watch to kfop's re-creation written.
    heal_latency: Histogram,
    /// Heals written, by kind of heal.
    heals: Family<HealLabels, Counter>,
    /// Objects per KfDef and state, as of its last reconcile.
    objects: Family<ObjectLabels, Gauge>,
    /// Objects written (created or changed) per KfDef.
    applied: Family<KfDefLabel, Counter>,
    /// Objects pruned per KfDef.
    pruned: Family<KfDefLabel, Counter>,
    /// Failed API requests by operation.
    api_errors: Family<OperationLabel, Counter>,
    /// Watches of managed kinds that failed and were started again.
    watch_restarts: Family<KindLabel, Counter>,
    /// 1 while this replica holds the leader lease (or runs without leader election).
    pub leader: Gauge,
    /// Pods the job controllers created, by job kind.
    job_pods_created: Family<KindLabel, Counter>,
    /// Job reconcile duration by job kind.
    job_reconcile_duration: Family<KindLabel, Histogram, SecondsBuckets>,
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
                result: result(ok),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an object put back (`missing`: re-created, `changed`: set back) and, for a
    /// re-creation, how long it was gone.
    pub fn healed(&self, heal: &'static str, gone_for: Option<Duration>) {
        self.heals.get_or_create(&HealLabels { heal }).inc();
        if let Some(gone_for) = gone_for {
            self.heal_latency.observe(gone_for.as_secs_f64());
        }
    }

    /// Counts the objects a reconcile of `kfdef` wrote and pruned.
    pub fn wrote(&self, kfdef: &str, applied: usize, pruned: usize) {
        let label = KfDefLabel {
            kfdef: kfdef.to_string(),
        };
        self.applied.get_or_create(&label).inc_by(applied as u64);
        self.pruned.get_or_create(&label).inc_by(pruned as u64);
    }

    /// Counts a watch of a managed kind (`Kind.group`) that failed and starts again.
    pub fn watch_restarted(&self, kind: String) {
        self.watch_restarts.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts a pod a job controller of `kind` created.
    pub fn job_pod_created(&self, kind: &str) {
        self.job_pods_created
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Records a job reconcile of `kind` that took `elapsed`.
    pub fn job_reconciled(&self, kind: &str, elapsed: Duration) {
        self.job_reconcile_duration
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets how many objects of `kfdef` are in each state.
    pub fn set_objects(&self, kfdef: &str, counts: ObjectCounts) {
        let ObjectCounts {
            managed,
            pending,
            conflicting,
            failed,
        } = counts;
        for (state, count) in OBJECT_STATES
            .into_iter()
            .zip([managed, pending, conflicting, failed])
        {
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
        for ok in [true, false] {
            self.reconcile_duration.remove(&ReconcileLabels {
                kfdef: kfdef.to_string(),
                result: result(ok),
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

/// The states [`Metrics::set_objects`] counts, in [`ObjectCounts`]' order.
const OBJECT_STATES: [&str; 4] = ["managed", "pending", "conflicting", "failed"];

/// How many objects of a KfDef are in each state, as of its last reconcile.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObjectCounts {
    /// In its inventory.
    pub managed: usize,
    /// Waiting to be written (a kind not served yet, a transient error).
    pub pending: usize,
    /// Owned by another KfDef or manager.
    pub conflicting: usize,
    /// Refused by the API server.
    pub failed: usize,
}

/// A reconcile result's label value.
fn result(ok: bool) -> &'static str {
    if ok { "success" } else { "error" }
}

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
            ObjectCounts {
                managed: 3,
                pending: 1,
                ..Default::default()
            },
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
