//! Which apiVersions and kinds a cluster serves: as its discovery reported them, or as a
//! Kubernetes release serves them (for rendering offline).

use std::collections::{BTreeMap, BTreeSet};

/// What a cluster serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// As an API server's discovery reported: each served `apiVersion`, with its kinds when they
    /// were listed (`None`: every kind of that version counts as served).
    Discovered(BTreeMap<String, Option<BTreeSet<String>>>),
    /// As Kubernetes `major.minor` serves built-in kinds: everything except what that release no
    /// longer serves. Custom kinds count as served.
    Release { major: u32, minor: u32 },
}

/// Why a `--kube-version` value was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a Kubernetes version of the form 1.X (e.g. 1.31)")]
pub struct ServedParseError(String);

impl Served {
    /// What discovery reported: `(apiVersion, kinds)` pairs.
    pub fn discovered(
        versions: impl IntoIterator<Item = (String, Option<BTreeSet<String>>)>,
    ) -> Self {
        Served::Discovered(versions.into_iter().collect())
    }

    /// What Kubernetes `major.minor` serves.
    pub fn release(major: u32, minor: u32) -> Self {
        Served::Release { major, minor }
    }

    /// Parses `1.31` (or `v1.31`, or `1.31.2`: the patch release does not matter).
    pub fn parse_release(text: &str) -> Result<Self, ServedParseError> {
        let error = || ServedParseError(text.to_string());
        let mut parts = text.trim().trim_start_matches('v').split('.');
        let major: u32 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(error)?;
        let minor: u32 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(error)?;
        if major != 1 || parts.count() > 1 {
            return Err(error());
        }
        Ok(Self::release(major, minor))
    }

    /// Whether `kind` is served at `api_version`.
    pub fn serves(&self, api_version: &str, kind: &str) -> bool {
        match self {
            Served::Discovered(versions) => match versions.get(api_version) {
                None => false,
                Some(None) => true,
                Some(Some(kinds)) => kinds.contains(kind),
            },
            Served::Release { major, minor } => {
                *major != 1
                    || super::RULES
                        .iter()
                        .filter(|r| r.from == api_version && r.kinds.contains(&kind))
                        .all(|r| *minor < r.removed_in)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_versions_parse() {
        assert_eq!(
            Served::parse_release("1.31").ok(),
            Some(Served::release(1, 31))
        );
        assert_eq!(
            Served::parse_release("v1.21.4").ok(),
            Some(Served::release(1, 21))
        );
        for bad in ["", "1", "2.0", "1.x", "1.2.3.4", "one.two"] {
            assert!(Served::parse_release(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_release_serves_what_it_had_not_removed_yet() {
        let crd = "apiextensions.k8s.io/v1beta1";
        assert!(Served::release(1, 21).serves(crd, "CustomResourceDefinition"));
        assert!(!Served::release(1, 22).serves(crd, "CustomResourceDefinition"));
        // extensions/v1beta1 lost its workloads in 1.16 and Ingress in 1.22.
        let extensions = "extensions/v1beta1";
        assert!(!Served::release(1, 16).serves(extensions, "Deployment"));
        assert!(Served::release(1, 16).serves(extensions, "Ingress"));
        assert!(!Served::release(1, 22).serves(extensions, "Ingress"));
        assert!(Served::release(1, 37).serves("kubeflow.org/v1", "TFJob"));
    }

    #[test]
    fn discovery_answers_by_version_and_listed_kinds() {
        let served = Served::discovered([
            ("v1".to_string(), None),
            (
                "extensions/v1beta1".to_string(),
                Some(["Ingress".to_string()].into()),
            ),
        ]);
        assert!(served.serves("v1", "ConfigMap"));
        assert!(served.serves("extensions/v1beta1", "Ingress"));
        assert!(!served.serves("extensions/v1beta1", "Deployment"));
        assert!(!served.serves("apps/v1beta1", "Deployment"));
    }
}
