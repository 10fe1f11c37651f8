//! Leader election on a `coordination.k8s.io/v1` Lease: of several replicas, only the holder of
//! the lease works; a standby takes over when the leader's lease expires (at most one lease
//! duration after it died) or at once when the leader lets it go on shutdown.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use std::future::Future;
use std::time::Duration;

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
/// way), then runs `work` while it does. Returns when `work` ends or `stop` (a shutdown signal)
/// comes, releasing the lease for a fast hand-over, or fails with [`Error::Lost`] when the lease
/// is lost (`work` is dropped).
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
    let lease_error = |source| Error::Lease {
        namespace: config.namespace.clone(),
        lease: config.lease.clone(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client, &config.lease)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.lease_seconds)
        .with_grace(grace(config.lease_seconds))
        .with_field_manager(format!("kfop-leader-{}", config.identity))
        .build()
        .await
        .map_err(lease_error)?;
    let (mut leading, task) = manager.watch().await;
    standing_by();
    tracing::info!(lease = %config.lease, identity = %config.identity, "waiting to lead");
    let waited = std::time::Instant::now();
    let mut stop = std::pin::pin!(stop);
    let became_leader = tokio::select! {
        became = wait_for(&mut leading, true) => became,
        () = &mut stop => false,
    };
    let outcome = if became_leader {
        tracing::info!(lease = %config.lease, identity = %config.identity, waited_ms = waited.elapsed().as_millis() as u64, "leading");
        crate::metrics::global().leader.set(1);
        let outcome = tokio::select! {
            () = work => Ok(()),
            () = &mut stop => Ok(()),
            _ = wait_for(&mut leading, false) => Err(Error::Lost {
                namespace: config.namespace.clone(),
                lease: config.lease.clone(),
            }),
        };
        crate::metrics::global().leader.set(0);
        outcome
    } else if leading.has_changed().is_err() {
        Err(Error::Stopped {
            namespace: config.namespace.clone(),
            lease: config.lease.clone(),
        })
    } else {
        Ok(())
    };
    // Closing the channel makes the lease manager release the lease (if it holds it).
    drop(leading);
    if tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .is_err()
    {
        tracing::warn!(lease = %config.lease, "the lease was not released in time; a standby takes over when it expires");
    }
    outcome
}

/// Waits until the lease state is `state`; false if the election stopped first.
async fn wait_for(leading: &mut tokio::sync::watch::Receiver<bool>, state: bool) -> bool {
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
