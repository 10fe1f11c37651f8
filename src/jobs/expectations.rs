//! Expectations: the creates and deletes a controller made that its watch cache has not shown yet.
//! A job is not reconciled while any are outstanding, so a stale cache never makes the engine
//! create a pod twice or count a deletion twice. An expectation left unmet for too long (a lost
//! watch event) is dropped, as in Kubernetes' own controllers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long an expectation may stay unmet before it is dropped.
pub const EXPIRY: Duration = Duration::from_secs(300);

/// The kinds of children a job controller writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// A pod.
    Pod,
    /// A service.
    Service,
}

/// What the cache shows of a child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Its UID.
    pub uid: String,
    /// Whether it is being deleted.
    pub deleting: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    /// The object with this UID must appear.
    Created(String),
    /// The object with this UID must be gone or terminating.
    Deleted(String),
}

#[derive(Debug, Default)]
struct Pending {
    changes: HashMap<(ChildKind, String), Change>,
    since: Option<Instant>,
}

/// Outstanding expectations of every job, keyed by `namespace/name`.
#[derive(Debug, Default)]
pub struct Expectations {
    jobs: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    /// Records that `kind` `name` was created with `uid`.
    pub fn created(&self, job: &str, kind: ChildKind, name: &str, uid: String, now: Instant) {
        self.record(job, kind, name, Change::Created(uid), now);
    }

    /// Records that `kind` `name` with `uid` was deleted.
    pub fn deleted(&self, job: &str, kind: ChildKind, name: &str, uid: String, now: Instant) {
        self.record(job, kind, name, Change::Deleted(uid), now);
    }

    fn record(&self, job: &str, kind: ChildKind, name: &str, change: Change, now: Instant) {
        let mut jobs = self.lock();
        let pending = jobs.entry(job.to_string()).or_default();
        pending.changes.insert((kind, name.to_string()), change);
        pending.since = Some(now);
    }

    /// Whether the cache (`seen`) shows every change made for `job`. Met expectations are
    /// forgotten, and so are those of any job older than [`EXPIRY`].
    pub fn satisfied(
        &self,
        job: &str,
        now: Instant,
        seen: impl Fn(ChildKind, &str) -> Option<Seen>,
    ) -> bool {
        let mut jobs = self.lock();
        jobs.retain(|_, p| {
            p.since
                .is_some_and(|since| now.saturating_duration_since(since) < EXPIRY)
        });
        let Some(pending) = jobs.get_mut(job) else {
            return true;
        };
        pending.changes.retain(|(kind, name), change| {
            let current = seen(*kind, name);
            match change {
                Change::Created(uid) => current.is_none_or(|s| s.uid != *uid),
                Change::Deleted(uid) => current.is_some_and(|s| s.uid == *uid && !s.deleting),
            }
        });
        if pending.changes.is_empty() {
            jobs.remove(job);
            true
        } else {
            false
        }
    }

    /// Forgets `job`'s expectations (its actions failed, or it is gone).
    pub fn forget(&self, job: &str) {
        self.lock().remove(job);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        match self.jobs.lock() {
            Ok(jobs) => jobs,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(uid: &str, deleting: bool) -> Option<Seen> {
        Some(Seen {
            uid: uid.to_string(),
            deleting,
        })
    }

    #[test]
    fn a_create_is_met_when_the_cache_shows_the_new_uid() {
        let e = Expectations::default();
        let now = Instant::now();
        e.created("ns/job", ChildKind::Pod, "job-worker-0", "u2".into(), now);
        assert!(!e.satisfied("ns/job", now, |_, _| None));
        assert!(
            !e.satisfied("ns/job", now, |_, _| seen("u1", false)),
            "an older pod of that name"
        );
        assert!(e.satisfied("ns/job", now, |_, _| seen("u2", false)));
        assert!(
            e.satisfied("ns/job", now, |_, _| None),
            "met expectations are forgotten"
        );
    }

    #[test]
    fn a_delete_is_met_when_the_pod_is_gone_or_terminating() {
        let e = Expectations::default();
        let now = Instant::now();
        e.deleted("ns/job", ChildKind::Pod, "p", "u1".into(), now);
        e.deleted("ns/job", ChildKind::Service, "s", "v1".into(), now);
        let cache = |kind: ChildKind, _: &str| match kind {
            ChildKind::Pod => seen("u1", true),
            ChildKind::Service => seen("v1", false),
        };
        assert!(!e.satisfied("ns/job", now, cache));
        assert!(e.satisfied("ns/job", now, |kind, _| match kind {
            ChildKind::Pod => seen("u1", true),
            ChildKind::Service => None,
        }));
    }

    #[test]
    fn unmet_expectations_expire_and_jobs_are_independent() {
        let e = Expectations::default();
        let now = Instant::now();
        e.created("ns/a", ChildKind::Pod, "p", "u".into(), now);
        assert!(e.satisfied("ns/b", now, |_, _| None));
        assert!(!e.satisfied("ns/a", now + EXPIRY / 2, |_, _| None));
        assert!(e.satisfied("ns/a", now + EXPIRY, |_, _| None));
        e.created("ns/a", ChildKind::Pod, "p", "u".into(), now);
        e.forget("ns/a");
        assert!(e.satisfied("ns/a", now, |_, _| None));
    }
}
