//! Completion codes and failure classification, as FrameworkController defines them: predefined
//! codes, the configurable `podFailureSpec` pattern list (first match wins), and the retry
//! decision of a retry policy.

use super::api::{
    CompletionStatus, CompletionType, CompletionTypeAttribute, CompletionTypeName,
    ContainerCompletionStatus, EXTENDED_UNLIMITED, PodCompletionStatus, RetryPolicySpec,
    RetryPolicyStatus, UNLIMITED,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Deserialize;

/// Exit code 200: a transient failure (retried without counting under the fancy policy).
pub const CONTAINER_TRANSIENT_FAILED: i32 = 200;
/// Exit code 201: a transient failure from contention (the framework retry waits a random delay).
pub const CONTAINER_TRANSIENT_CONFLICT_FAILED: i32 = 201;
/// Exit code 210: a permanent failure (never retried under the fancy policy).
pub const CONTAINER_PERMANENT_FAILED: i32 = 210;
/// Succeeded.
pub const SUCCEEDED: i32 = 0;
/// The attempt's ConfigMap was deleted by someone else.
pub const CONFIG_MAP_EXTERNAL_DELETED: i32 = -100;
/// The task's pod was deleted by someone else (eviction, preemption, a user).
pub const POD_EXTERNAL_DELETED: i32 = -101;
/// The created ConfigMap never showed up in the watch cache.
pub const CONFIG_MAP_LOCAL_CACHE_CREATION_TIMEOUT: i32 = -110;
/// The created pod never showed up in the watch cache.
pub const POD_LOCAL_CACHE_CREATION_TIMEOUT: i32 = -111;
/// Creating the pod failed transiently (retried in place, never recorded).
pub const POD_CREATION_TRANSIENT_ERROR: i32 = -120;
/// The API server rejected the pod as invalid.
pub const POD_CREATION_PERMANENT_ERROR: i32 = -200;
/// `executionType: Stop`.
pub const STOP_FRAMEWORK_REQUESTED: i32 = -210;
/// The framework attempt completed while the task still ran.
pub const FRAMEWORK_ATTEMPT_COMPLETION: i32 = -220;
/// The task was scaled away.
pub const DELETE_TASK_REQUESTED: i32 = -230;
/// The pod failed but no container did.
pub const POD_FAILED_WITHOUT_FAILED_CONTAINER: i32 = -300;
/// Creating the pod failed for a reason that may or may not pass.
pub const POD_CREATION_UNKNOWN_ERROR: i32 = -310;

/// Codes users' `podFailureSpec` may not use.
const RESERVED: [(i32, i32); 2] = [(-999, 0), (200, 219)];

/// The phrase and type of a predefined code.
pub fn predefined(code: i32) -> Option<(&'static str, CompletionType)> {
    use CompletionTypeAttribute::{Conflict, Permanent, Transient};
    let (phrase, name, attributes): (_, _, &[CompletionTypeAttribute]) = match code {
        CONTAINER_TRANSIENT_FAILED => ("ContainerTransientFailed", Failed, &[Transient]),
        CONTAINER_TRANSIENT_CONFLICT_FAILED => (
            "ContainerTransientConflictFailed",
            Failed,
            &[Transient, Conflict],
        ),
        CONTAINER_PERMANENT_FAILED => ("ContainerPermanentFailed", Failed, &[Permanent]),
        SUCCEEDED => ("Succeeded", CompletionTypeName::Succeeded, &[]),
        CONFIG_MAP_EXTERNAL_DELETED => ("ConfigMapExternalDeleted", Failed, &[Transient]),
        POD_EXTERNAL_DELETED => ("PodExternalDeleted", Failed, &[Transient]),
        CONFIG_MAP_LOCAL_CACHE_CREATION_TIMEOUT => {
            ("ConfigMapLocalCacheCreationTimeout", Failed, &[Transient])
        }
        POD_LOCAL_CACHE_CREATION_TIMEOUT => ("PodLocalCacheCreationTimeout", Failed, &[Transient]),
        POD_CREATION_TRANSIENT_ERROR => ("PodCreationTransientError", Failed, &[Transient]),
        POD_CREATION_PERMANENT_ERROR => ("PodCreationPermanentError", Failed, &[Permanent]),
        STOP_FRAMEWORK_REQUESTED => ("StopFrameworkRequested", Failed, &[Permanent]),
        FRAMEWORK_ATTEMPT_COMPLETION => ("FrameworkAttemptCompletion", Failed, &[Permanent]),
        DELETE_TASK_REQUESTED => ("DeleteTaskRequested", Failed, &[Permanent]),
        POD_FAILED_WITHOUT_FAILED_CONTAINER => ("PodFailedWithoutFailedContainer", Failed, &[]),
        POD_CREATION_UNKNOWN_ERROR => ("PodCreationUnknownError", Failed, &[]),
        _ => return None,
    };
    Some((
        phrase,
        CompletionType {
            name,
            attributes: attributes.to_vec(),
        },
    ))
}

use CompletionTypeName::Failed;

/// A completion status of a predefined code.
pub fn status(code: i32, diagnostics: impl Into<String>) -> CompletionStatus {
    let (phrase, type_) = predefined(code).unwrap_or(("Unknown", CompletionType::default()));
    CompletionStatus {
        code,
        phrase: phrase.to_string(),
        type_,
        diagnostics: diagnostics.into(),
    }
}

/// Why a failure classification could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid YAML of the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An entry breaks a rule (reserved code, duplicate, bad regex, no pattern).
    #[error("{path}: podFailureSpec code {code}: {message}")]
    Invalid {
        /// The config file.
        path: String,
        /// The entry's code.
        code: i32,
        /// What is wrong.
        message: String,
    },
}

/// FrameworkController's config file (`frameworkcontroller.yaml`); kfop reads the keys that shape
/// the controller's decisions and ignores the rest (client and logging settings).
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    pod_failure_spec: Vec<CodeInfoFile>,
    object_local_cache_creation_timeout_sec: Option<i64>,
    framework_min_retry_delay_sec_for_transient_conflict_failed: Option<i64>,
    framework_max_retry_delay_sec_for_transient_conflict_failed: Option<i64>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct CodeInfoFile {
    code: Option<i32>,
    #[serde(default)]
    phrase: String,
    #[serde(default, rename = "type")]
    type_: TypeFile,
    #[serde(default)]
    pod_patterns: Vec<PodPatternFile>,
}

#[derive(Deserialize, Debug, Default)]
struct TypeFile {
    name: Option<CompletionTypeName>,
    #[serde(default)]
    attributes: Vec<CompletionTypeAttribute>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct PodPatternFile {
    name_regex: Option<String>,
    reason_regex: Option<String>,
    message_regex: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerPatternFile>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct ContainerPatternFile {
    name_regex: Option<String>,
    reason_regex: Option<String>,
    message_regex: Option<String>,
    signal_range: Option<RangeFile>,
    code_range: Option<RangeFile>,
}

#[derive(Deserialize, Debug, Default, Clone, Copy)]
struct RangeFile {
    min: Option<i32>,
    max: Option<i32>,
}

/// An inclusive range; an open end is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    /// The lowest value, if bounded.
    pub min: Option<i32>,
    /// The highest value, if bounded.
    pub max: Option<i32>,
}

impl Range {
    fn contains(&self, value: i32) -> bool {
        self.min.is_none_or(|m| m <= value) && self.max.is_none_or(|m| value <= m)
    }
}

/// A pattern over a pod (all given parts must match).
#[derive(Debug, Clone, Default)]
pub struct PodPattern {
    name: Option<regex::Regex>,
    reason: Option<regex::Regex>,
    message: Option<regex::Regex>,
    containers: Vec<ContainerPattern>,
}

/// A pattern one of the pod's containers must match.
#[derive(Debug, Clone, Default)]
pub struct ContainerPattern {
    name: Option<regex::Regex>,
    reason: Option<regex::Regex>,
    message: Option<regex::Regex>,
    signal: Option<Range>,
    code: Option<Range>,
}

/// A code users define for pods matching any of its patterns.
#[derive(Debug, Clone)]
pub struct CodeInfo {
    /// The code.
    pub code: i32,
    /// Its phrase.
    pub phrase: String,
    /// Its type.
    pub type_: CompletionType,
    /// Pods it applies to.
    pub patterns: Vec<PodPattern>,
}

/// How failed pods are classified and framework conflict retries delayed.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// Predefined container codes first, then users' `podFailureSpec`, in order.
    pub codes: Vec<CodeInfo>,
    /// Seconds a created object may take to show up in the watch cache.
    pub creation_timeout_sec: i64,
    /// The bounds of the random framework retry delay after a transient conflict failure.
    pub conflict_retry_delay_sec: (i64, i64),
}

impl Default for Classifier {
    fn default() -> Self {
        Self {
            codes: predefined_container_codes(),
            creation_timeout_sec: 300,
            conflict_retry_delay_sec: (60, 900),
        }
    }
}

fn any_container_with_code(code: i32) -> PodPattern {
    PodPattern {
        containers: vec![ContainerPattern {
            code: Some(Range {
                min: Some(code),
                max: Some(code),
            }),
            ..ContainerPattern::default()
        }],
        ..PodPattern::default()
    }
}

fn predefined_container_codes() -> Vec<CodeInfo> {
    [
        CONTAINER_TRANSIENT_FAILED,
        CONTAINER_TRANSIENT_CONFLICT_FAILED,
        CONTAINER_PERMANENT_FAILED,
    ]
    .into_iter()
    .filter_map(|code| {
        let (phrase, type_) = predefined(code)?;
        Some(CodeInfo {
            code,
            phrase: phrase.to_string(),
            type_,
            patterns: vec![any_container_with_code(code)],
        })
    })
    .collect()
}

impl Classifier {
    /// Reads FrameworkController's config YAML (e.g. its default `frameworkcontroller.yaml`);
    /// `path` names it in errors.
    pub fn from_config_yaml(path: &str, yaml: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = if yaml.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_saphyr::from_str(yaml).map_err(|e| ConfigError::Parse {
                path: path.to_string(),
                message: e.to_string(),
            })?
        };
        let mut classifier = Self::default();
        if let Some(timeout) = file.object_local_cache_creation_timeout_sec {
            classifier.creation_timeout_sec = timeout;
        }
        let (min, max) = classifier.conflict_retry_delay_sec;
        let min = file
            .framework_min_retry_delay_sec_for_transient_conflict_failed
            .unwrap_or(min);
        let max = file
            .framework_max_retry_delay_sec_for_transient_conflict_failed
            .unwrap_or(max);
        if min < 0 || max < min {
            return Err(ConfigError::Parse {
                path: path.to_string(),
                message: format!("conflict retry delay bounds [{min}, {max}] are not ordered"),
            });
        }
        classifier.conflict_retry_delay_sec = (min, max);
        for info in file.pod_failure_spec {
            let invalid = |code: i32, message: String| ConfigError::Invalid {
                path: path.to_string(),
                code,
                message,
            };
            let Some(code) = info.code else {
                return Err(ConfigError::Parse {
                    path: path.to_string(),
                    message: "a podFailureSpec entry has no code".into(),
                });
            };
            if RESERVED.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code)) {
                return Err(invalid(
                    code,
                    "codes -999..0 and 200..219 are reserved".into(),
                ));
            }
            if classifier.codes.iter().any(|c| c.code == code) {
                return Err(invalid(code, "duplicate code".into()));
            }
            if info.type_.name.is_some_and(|n| n != Failed) {
                return Err(invalid(code, "type.name must be Failed".into()));
            }
            if info.pod_patterns.is_empty() {
                return Err(invalid(code, "podPatterns is empty".into()));
            }
            let compile = |re: &Option<String>| -> Result<Option<regex::Regex>, ConfigError> {
                re.as_deref()
                    .map(regex::Regex::new)
                    .transpose()
                    .map_err(|e| invalid(code, e.to_string()))
            };
            let range = |r: Option<RangeFile>| {
                r.map(|r| Range {
                    min: r.min,
                    max: r.max,
                })
            };
            let mut patterns = Vec::new();
            for pod in &info.pod_patterns {
                let mut containers = Vec::new();
                for c in &pod.containers {
                    containers.push(ContainerPattern {
                        name: compile(&c.name_regex)?,
                        reason: compile(&c.reason_regex)?,
                        message: compile(&c.message_regex)?,
                        signal: range(c.signal_range),
                        code: range(c.code_range),
                    });
                }
                patterns.push(PodPattern {
                    name: compile(&pod.name_regex)?,
                    reason: compile(&pod.reason_regex)?,
                    message: compile(&pod.message_regex)?,
                    containers,
                });
            }
            classifier.codes.push(CodeInfo {
                code,
                phrase: info.phrase,
                type_: CompletionType {
                    name: Failed,
                    attributes: info.type_.attributes,
                },
                patterns,
            });
        }
        Ok(classifier)
    }

    /// The completion status of a Failed pod: the first code whose pattern matches, else the
    /// last failed container's exit code (`ContainerUnrecognizedFailed`, no attributes), else
    /// -300.
    pub fn classify_failed_pod(&self, pod: &Pod) -> CompletionStatus {
        let containers = all_container_statuses(pod);
        for info in &self.codes {
            if info
                .patterns
                .iter()
                .any(|p| matches_pod(pod, &containers, p))
            {
                return CompletionStatus {
                    code: info.code,
                    phrase: info.phrase.clone(),
                    type_: info.type_.clone(),
                    diagnostics: format!("Pod failed: PodPattern matched: {}", info.phrase),
                };
            }
        }
        let last_failed = containers
            .iter()
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
            .filter(|t| t.exit_code != 0)
            .max_by_key(|t| t.finished_at.as_ref().map(|f| f.0));
        let summary = serde_json::to_string(&pod_completion(pod)).unwrap_or_default();
        match last_failed {
            Some(terminated) => CompletionStatus {
                code: terminated.exit_code,
                phrase: "ContainerUnrecognizedFailed".into(),
                type_: CompletionType {
                    name: Failed,
                    attributes: Vec::new(),
                },
                diagnostics: format!("Pod failed: PodPattern unmatched: {summary}"),
            },
            None => status(
                POD_FAILED_WITHOUT_FAILED_CONTAINER,
                format!("Pod failed: PodPattern unmatched: {summary}"),
            ),
        }
    }
}

fn all_container_statuses(pod: &Pod) -> Vec<&ContainerStatus> {
    pod.status
        .iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .collect()
}

fn found(re: &Option<regex::Regex>, text: &str) -> bool {
    re.as_ref().is_none_or(|re| re.is_match(text))
}

fn matches_pod(pod: &Pod, containers: &[&ContainerStatus], pattern: &PodPattern) -> bool {
    let status = pod.status.as_ref();
    found(&pattern.name, pod.metadata.name.as_deref().unwrap_or(""))
        && found(
            &pattern.reason,
            status.and_then(|s| s.reason.as_deref()).unwrap_or(""),
        )
        && found(
            &pattern.message,
            status.and_then(|s| s.message.as_deref()).unwrap_or(""),
        )
        && pattern
            .containers
            .iter()
            .all(|c| containers.iter().any(|s| matches_container(s, c)))
}

fn matches_container(status: &ContainerStatus, pattern: &ContainerPattern) -> bool {
    if !found(&pattern.name, &status.name) {
        return false;
    }
    let needs_termination = pattern.reason.is_some()
        || pattern.message.is_some()
        || pattern.signal.is_some()
        || pattern.code.is_some();
    if !needs_termination {
        return true;
    }
    let Some(t) = status.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
        return false;
    };
    found(&pattern.reason, t.reason.as_deref().unwrap_or(""))
        && found(&pattern.message, t.message.as_deref().unwrap_or(""))
        && pattern
            .signal
            .is_none_or(|r| r.contains(t.signal.unwrap_or(0)))
        && pattern.code.is_none_or(|r| r.contains(t.exit_code))
}

/// What a finished pod showed, for the task's completion status.
pub fn pod_completion(pod: &Pod) -> PodCompletionStatus {
    let status = pod.status.as_ref();
    PodCompletionStatus {
        reason: status.and_then(|s| s.reason.clone()).unwrap_or_default(),
        message: status.and_then(|s| s.message.clone()).unwrap_or_default(),
        containers: all_container_statuses(pod)
            .into_iter()
            .map(|c| {
                let t = c.state.as_ref().and_then(|s| s.terminated.as_ref());
                ContainerCompletionStatus {
                    name: c.name.clone(),
                    reason: t.and_then(|t| t.reason.clone()).unwrap_or_default(),
                    message: t.and_then(|t| t.message.clone()).unwrap_or_default(),
                    signal: t.and_then(|t| t.signal).unwrap_or(0),
                    code: t.map_or(0, |t| t.exit_code),
                }
            })
            .collect(),
    }
}

/// How a pod create error is treated: `-120` transient (retried in place), `-310` unknown,
/// `-200` permanent.
pub fn classify_pod_creation_error(http_code: Option<u16>, reason: &str, message: &str) -> i32 {
    if message.contains("object provided is unrecognized") || message.contains("exceeded quota") {
        return POD_CREATION_TRANSIENT_ERROR;
    }
    match (http_code, reason) {
        (Some(400), _) | (Some(403), _) | (_, "BadRequest") | (_, "Forbidden") => {
            POD_CREATION_UNKNOWN_ERROR
        }
        (Some(422), _) | (Some(413), _) | (_, "Invalid") | (_, "RequestEntityTooLarge") => {
            POD_CREATION_PERMANENT_ERROR
        }
        _ => POD_CREATION_TRANSIENT_ERROR,
    }
}

/// Whether, and how, an attempt is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDecision {
    /// Retry with a new attempt.
    pub retry: bool,
    /// Count the retry against `maxRetryCount`.
    pub accountable: bool,
    /// Wait this long first.
    pub delay_sec: i64,
    /// Why, for logs and events.
    pub reason: String,
}

/// The retry decision of `policy` after an attempt completed with `completion`, given the retries
/// so far; a transient conflict failure waits `conflict_delay_sec`.
pub fn should_retry(
    policy: &RetryPolicySpec,
    retries: &RetryPolicyStatus,
    completion: &CompletionStatus,
    conflict_delay_sec: i64,
) -> RetryDecision {
    let decision = |retry, accountable, delay_sec, reason: String| RetryDecision {
        retry,
        accountable,
        delay_sec,
        reason,
    };
    if matches!(
        completion.code,
        STOP_FRAMEWORK_REQUESTED | FRAMEWORK_ATTEMPT_COMPLETION | DELETE_TASK_REQUESTED
    ) {
        return decision(
            false,
            true,
            0,
            format!(
                "CompletionCode is {}, {}",
                completion.code, completion.phrase
            ),
        );
    }
    let type_ = &completion.type_;
    let failed = type_.name == Failed;
    let has = |a| type_.attributes.contains(&a);
    if policy.fancy_retry_policy && failed {
        let reason = format!(
            "FancyRetryPolicy is true and CompletionType is {:?} {:?}",
            type_.name, type_.attributes
        );
        if has(CompletionTypeAttribute::Transient) {
            let delay = if has(CompletionTypeAttribute::Conflict) {
                conflict_delay_sec
            } else {
                0
            };
            return decision(true, false, delay, reason);
        }
        if has(CompletionTypeAttribute::Permanent) {
            return decision(false, true, 0, reason);
        }
    }
    let max = policy.max_retry_count;
    let count = retries.accountable_retried_count;
    if max == EXTENDED_UNLIMITED || (failed && (max == UNLIMITED || count < max)) {
        decision(
            true,
            true,
            0,
            format!("AccountableRetriedCount {count} has not reached MaxRetryCount {max}"),
        )
    } else if !failed {
        decision(false, true, 0, "CompletionType is Succeeded".into())
    } else {
        decision(
            false,
            true,
            0,
            format!("AccountableRetriedCount {count} has reached MaxRetryCount {max}"),
        )
    }
}

#[cfg(test)]
mod tests;
