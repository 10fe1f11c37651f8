//! Where a repo `uri` points: a local path or a remote archive.

use std::path::PathBuf;
use url::Url;

/// The location a repo `uri` names.
#[derive(Debug, PartialEq)]
pub enum Location {
    /// A local directory or archive file (a plain path or a `file://` URI).
    Local(PathBuf),
    /// An `http(s)://` archive.
    Remote(Url),
}

/// Why a `uri` names no location kfop can read.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum LocationError {
    /// The URI is empty or malformed.
    #[error("invalid URI: {0}")]
    Invalid(String),
    /// The URI uses a scheme or go-getter form kfop does not fetch.
    #[error(
        "unsupported URI: kfop reads local directories, file:// paths and http(s):// .tar.gz archives"
    )]
    Unsupported,
}

impl Location {
    /// Classifies a repo `uri`: `http(s)://` is remote, `file://` and plain paths are local.
    pub fn parse(uri: &str) -> Result<Location, LocationError> {
        if uri.trim().is_empty() {
            return Err(LocationError::Invalid("the URI is empty".into()));
        }
        let scheme = uri
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("http" | "https") => Url::parse(uri)
                .map(Location::Remote)
                .map_err(|e| LocationError::Invalid(e.to_string())),
            Some("file") => {
                let url = Url::parse(uri).map_err(|e| LocationError::Invalid(e.to_string()))?;
                url.to_file_path().map(Location::Local).map_err(|()| {
                    LocationError::Invalid(
                        "a file:// URI needs an absolute path and no host (file:///path)".into(),
                    )
                })
            }
            // `scheme://…` and go-getter's forced getters (`git::https://…`).
            _ if uri.contains("://") || uri.contains("::") => Err(LocationError::Unsupported),
            _ => Ok(Location::Local(PathBuf::from(uri))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_uris() {
        let remote = "https://github.com/kubeflow/manifests/archive/v1.0.2.tar.gz";
        assert_eq!(
            Location::parse(remote),
            Ok(Location::Remote(Url::parse(remote).expect("url")))
        );
        assert!(matches!(
            Location::parse("HTTP://example.com/a.tar.gz"),
            Ok(Location::Remote(_))
        ));
        assert_eq!(
            Location::parse("file:///srv/manifests%20v1"),
            Ok(Location::Local(PathBuf::from("/srv/manifests v1")))
        );
        assert_eq!(
            Location::parse("/srv/manifests"),
            Ok(Location::Local(PathBuf::from("/srv/manifests")))
        );
        assert_eq!(
            Location::parse("../manifests"),
            Ok(Location::Local(PathBuf::from("../manifests")))
        );
    }

    #[test]
    fn refuses_what_it_cannot_fetch() {
        for uri in [
            "git::https://github.com/kubeflow/manifests",
            "s3://bucket/manifests.tar.gz",
            "ssh://git@github.com/kubeflow/manifests",
        ] {
            assert_eq!(
                Location::parse(uri),
                Err(LocationError::Unsupported),
                "{uri}"
            );
        }
        assert!(matches!(
            Location::parse("file://host/srv/m"),
            Err(LocationError::Invalid(_))
        ));
        assert!(matches!(
            Location::parse(""),
            Err(LocationError::Invalid(_))
        ));
        assert!(matches!(
            Location::parse("https://"),
            Err(LocationError::Invalid(_))
        ));
    }
}
