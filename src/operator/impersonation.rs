//! Per-KfDef service-account impersonation, the pattern Flux uses with `serviceAccountName`: a
//! KfDef annotated `kfop.dev/service-account: NAME` (or every KfDef without the annotation, when
//! kfop runs with `--default-service-account NAME`) has its objects written, pruned and deleted
//! as `system:serviceaccount:<the KfDef's namespace>:NAME`, so it can only do what that account
//! may. kfop's own identity still reads, watches and writes the KfDef's status.

use super::cluster::Cluster;
use crate::kfdef::KfDef;
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::sync::Mutex;

/// The annotation naming the service account a KfDef's objects are written as.
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "kfop.dev/service-account";

/// Why no writer could be made for a KfDef.
#[derive(Debug, thiserror::Error)]
pub enum ImpersonationError {
    /// kfop was started with a client only (no configuration to derive others from).
    #[error(
        "KfDef {kfdef} is to be applied as service account {account}, but this kfop cannot impersonate (started without a kube configuration)"
    )]
    NoConfig { kfdef: String, account: String },
    /// The annotation's value is not a service account name.
    #[error(
        "KfDef {kfdef}: annotation {SERVICE_ACCOUNT_ANNOTATION} is {account:?}, not a service account name"
    )]
    BadName { kfdef: String, account: String },
    /// The impersonating client could not be built.
    #[error("a client impersonating {user}: {source}")]
    Client { user: String, source: kube::Error },
}

/// The clients kfop writes through, per impersonated service account.
pub struct Impersonation {
    base: Option<kube::Config>,
    default_account: Option<String>,
    writers: Mutex<HashMap<String, Cluster>>,
}

/// The user name of service account `account` of `namespace`.
pub fn username(namespace: &str, account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{account}")
}

/// The service account a KfDef's objects are written as: its annotation, else `default`;
/// `None` for kfop's own identity.
pub fn account_of<'k>(kfdef: &'k KfDef, default: Option<&'k str>) -> Option<&'k str> {
    kfdef
        .annotations()
        .get(SERVICE_ACCOUNT_ANNOTATION)
        .map(String::as_str)
        .or(default)
}

/// Whether `name` can name a service account (a DNS subdomain).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

impl Impersonation {
    /// Impersonation from `base` (kfop's own configuration); `default_account` applies to
    /// KfDefs that name none.
    pub fn new(base: Option<kube::Config>, default_account: Option<String>) -> Self {
        Self {
            base,
            default_account,
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// What `kfdef`'s objects are written through: `cluster` itself, or `cluster` writing as the
    /// KfDef's service account.
    pub fn writer(&self, cluster: &Cluster, kfdef: &KfDef) -> Result<Cluster, ImpersonationError> {
        let Some(account) = account_of(kfdef, self.default_account.as_deref()) else {
            return Ok(cluster.clone());
        };
        let namespace = kfdef.namespace().unwrap_or_default();
        let label = format!("{namespace}/{}", kfdef.name_any());
        if !valid_name(account) {
            return Err(ImpersonationError::BadName {
                kfdef: label,
                account: account.to_string(),
            });
        }
        let user = username(&namespace, account);
        if let Ok(writers) = self.writers.lock()
            && let Some(writer) = writers.get(&user)
        {
            return Ok(writer.clone());
        }
        let Some(base) = &self.base else {
            return Err(ImpersonationError::NoConfig {
                kfdef: label,
                account: account.to_string(),
            });
        };
        let mut config = base.clone();
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups = Some(vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".to_string(),
        ]);
        let client = Client::try_from(config).map_err(|source| ImpersonationError::Client {
            user: user.clone(),
            source,
        })?;
        let writer = cluster.writing_as(client);
        if let Ok(mut writers) = self.writers.lock() {
            writers.insert(user, writer.clone());
        }
        Ok(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kfdef(annotation: Option<&str>) -> KfDef {
        let mut kfdef: KfDef = serde_json::from_value(serde_json::json!({
            "apiVersion": "kfdef.apps.kubeflow.org/v1", "kind": "KfDef",
            "metadata": {"name": "kf", "namespace": "team-a"},
            "spec": {},
        }))
        .expect("kfdef");
        if let Some(account) = annotation {
            kfdef
                .annotations_mut()
                .insert(SERVICE_ACCOUNT_ANNOTATION.into(), account.into());
        }
        kfdef
    }

    #[test]
    fn the_annotation_wins_over_the_default_and_none_means_kfops_own_identity() {
        assert_eq!(
            account_of(&kfdef(Some("deployer")), Some("locked")),
            Some("deployer")
        );
        assert_eq!(account_of(&kfdef(None), Some("locked")), Some("locked"));
        assert_eq!(account_of(&kfdef(None), None), None);
        assert_eq!(
            username("team-a", "deployer"),
            "system:serviceaccount:team-a:deployer"
        );
    }

    #[test]
    fn names_that_cannot_be_service_accounts_are_refused() {
        assert!(valid_name("deployer"));
        assert!(valid_name("kfop.deployer-1"));
        for bad in ["", "Deployer", "-a", "a-", "a..b", "a/b", "system:admin"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
