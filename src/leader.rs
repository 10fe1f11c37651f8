//! Leader election on a `coordination.k8s.io/v1` Lease: of several replicas, only the holder of
//! the lease works; a standby takes over when the leader's lease expires (at most one lease
//! duration after it died) or at once when the leader lets it go on shutdown.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The shortest lease kfop accepts, in seconds (the lease is renewed a third of it before it
/// expires).
pub const MIN_LEASE_SECONDS: u64 = 2;

/// Where and how to elect a leader.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Lease's name.
    pub lease: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (the pod's name).
    pub identity: String,
    /// How long a lease lasts unless renewed, in seconds.
    pub lease_seconds: u64,
}

/// Why leading ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lease could not be read or created.
    #[error("leader election on Lease {namespace}/{lease}: {source}")]
    Lease {
        namespace: String,
        lease: String,
        source: LeaseManagerError,
    },
    /// The lease duration is too short.
    #[error("the lease duration must be at least {MIN_LEASE_SECONDS} seconds (got {0})")]
    TooShort(u64),
    /// Another replica took the lease (this one could not renew it in time).
    #[error("lost the lease {namespace}/{lease}: another replica leads now")]
    Lost { namespace: String, lease: String },
    /// The election stopped before this replica led.
    #[error("leader election on Lease {namespace}/{lease} stopped")]
    Stopped { namespace: String, lease: String },
}

/// How long before its expiry the leader renews a lease of `seconds`.
fn grace(seconds: u64) -> u64 {
    (seconds / 3).max(1)
}

/// Waits until this replica holds the lease (calling `standing_by` once the election is under
/// way) or `stop` (a shutdown signal) comes, then runs `work` while it does. Returns when `work`
/// ends (it must end on a shutdown signal itself), releasing the lease for a fast hand-over, or
/// fails with [`Error::Lost`] when the lease is lost (`work` is dropped).
pub async fn lead<W: Future<Output = ()>, S: Future<Output = ()>>(
    client: Client,
    config: &Config,
    standing_by: impl FnOnce(),
    work: W,
    stop: S,
) -> Result<(), Error> {
    if config.lease_seconds < MIN_LEASE_SECONDS {
        return Err(Error::TooShort(config.lease_seconds));
    }
    let mut stop = std::pin::pin!(stop);
    let mut standing_by = Some(standing_by);
    let waited = std::time::Instant::now();
    // The lease manager looks at a held lease again only when it expires; a lease its holder
    // released (on shutdown) starts the election again at once.
    let (mut leading, task) = loop {
        let (mut leading, task) = elect(&client, config).await?;
        if let Some(standing_by) = standing_by.take() {
            standing_by();
            tracing::info!(lease = %config.lease, identity = %config.identity, "waiting to lead");
        }
        tokio::select! {
            became = wait_for(&mut leading, true) => {
                if became {
                    break (leading, task);
                }
                return Err(Error::Stopped {
                    namespace: config.namespace.clone(),
                    lease: config.lease.clone(),
                });
            }
            () = released(&client, config) => {
                tracing::info!(lease = %config.lease, "the lease was released; electing again");
                finish(leading, task, config).await;
            }
            () = &mut stop => {
                finish(leading, task, config).await;
                return Ok(());
            }
        }
    };
    tracing::info!(lease = %config.lease, identity = %config.identity, waited_ms = waited.elapsed().as_millis() as u64, "leading");
    crate::metrics::global().leader.set(1);
    let outcome = tokio::select! {
        () = work => Ok(()),
        _ = wait_for(&mut leading, false) => Err(Error::Lost {
            namespace: config.namespace.clone(),
            lease: config.lease.clone(),
        }),
    };
    crate::metrics::global().leader.set(0);
    finish(leading, task, config).await;
    outcome
}

/// A lease manager taking part in the election: its lease state, and its task.
async fn elect(
    client: &Client,
    config: &Config,
) -> Result<
    (
        watch::Receiver<bool>,
        JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    ),
    Error,
> {
    let manager = LeaseManagerBuilder::new(client.clone(), &config.lease)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.lease_seconds)
        .with_grace(grace(config.lease_seconds))
        .with_field_manager(format!("kfop-leader-{}", config.identity))
        .build()
        .await
        .map_err(|source| Error::Lease {
            namespace: config.namespace.clone(),
            lease: config.lease.clone(),
            source,
        })?;
    Ok(manager.watch().await)
}

/// Stops a lease manager: closing its channel makes it release the lease if it holds it.
async fn finish(
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    config: &Config,
) {
    drop(leading);
    if tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .is_err()
    {
        tracing::warn!(lease = %config.lease, "the lease was not released in time; a standby takes over when it expires");
    }
}

/// Resolves when the lease, seen held, is seen with no holder (its holder released it).
async fn released(client: &Client, config: &Config) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let selector = watcher::Config::default().fields(&format!("metadata.name={}", config.lease));
    let mut leases = std::pin::pin!(watcher(api, selector).default_backoff().applied_objects());
    let mut seen_held = false;
    while let Some(event) = leases.next().await {
        let Ok(lease) = event else {
            continue;
        };
        let held = lease
            .spec
            .as_ref()
            .and_then(|spec| spec.holder_identity.as_deref())
            .is_some_and(|holder| !holder.is_empty());
        if held {
            seen_held = true;
        } else if seen_held {
            return;
        }
    }
    std::future::pending().await
}

/// Waits until the lease state is `state`; false if the election stopped first.
async fn wait_for(leading: &mut watch::Receiver<bool>, state: bool) -> bool {
    leading.wait_for(|now| *now == state).await.is_ok()
}

/// This replica's identity: `$POD_NAME`, else the host name and process ID.
pub fn identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME")
        && !name.is_empty()
    {
        return name;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "kfop".to_string());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_renewed_a_third_of_its_duration_before_it_expires() {
        assert_eq!(grace(15), 5);
        assert_eq!(grace(2), 1);
        assert!(grace(MIN_LEASE_SECONDS) < MIN_LEASE_SECONDS);
    }
}
