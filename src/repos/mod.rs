//! Manifest repos: local directories, `file://` paths and `http(s)://` `.tar.gz` archives, fetched into
//! a content-addressed cache.
//!
//! The cache directory holds one unpacked tree per archive, named by the archive's SHA-256
//! (`<dir>/<sha256>/`), an index from each remote URI to the digest it last gave (`<dir>/uris/`), and
//! `<dir>/.tmp/`, where downloads and unpacks are staged before an atomic rename. A pinned archive
//! already in the cache, or an unpinned URI fetched before, is served without the network.

mod download;
mod source;
mod unpack;

pub use download::DownloadError;
pub use source::{Location, LocationError};
pub use unpack::UnpackError;

use crate::kfdef::Repo;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use unpack::unpack;
use url::Url;

/// Limits, timeouts and retries for fetching archives.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// The largest archive accepted, in bytes, checked while it streams in.
    pub max_archive_bytes: u64,
    /// The most bytes an archive may unpack to.
    pub max_unpacked_bytes: u64,
    /// How long connecting to a server may take.
    pub connect_timeout: Duration,
    /// How long a download may go without receiving data.
    pub read_timeout: Duration,
    /// How long one request may take in all.
    pub timeout: Duration,
    /// How many times a transient failure is retried.
    pub retries: usize,
    /// The first delay between attempts; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_archive_bytes: 512 << 20,
            max_unpacked_bytes: 2 << 30,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            timeout: Duration::from_secs(15 * 60),
            retries: 4,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// A repo ready to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalRepo {
    /// The repo's root directory.
    pub root: PathBuf,
    /// The SHA-256 of the archive it was unpacked from; `None` for a local directory.
    pub digest: Option<String>,
}

/// Why a repo could not be fetched: the repo, its URI and the reason.
#[derive(Debug, thiserror::Error)]
#[error("repo {repo:?} ({uri}): {reason}")]
pub struct RepoError {
    /// The repo's name.
    pub repo: String,
    /// The repo's URI.
    pub uri: String,
    /// What went wrong.
    pub reason: RepoErrorReason,
}

/// What went wrong while fetching a repo.
#[derive(Debug, thiserror::Error)]
pub enum RepoErrorReason {
    /// The URI names nothing kfop can fetch.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// A local path does not exist.
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    /// The `sha256` field is malformed.
    #[error("sha256 {0:?} is not 64 lowercase hexadecimal digits")]
    InvalidPin(String),
    /// A `sha256` pin was given for a directory, which has no single checksum.
    #[error("sha256 is set, but {} is a directory; a pin applies to archives only", .0.display())]
    PinnedDirectory(PathBuf),
    /// The download failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The archive's SHA-256 is not the pinned one.
    #[error("checksum mismatch: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch {
        /// The pin.
        expected: String,
        /// The archive's digest.
        actual: String,
    },
    /// The archive is malformed or unsafe.
    #[error("bad archive: {0}")]
    Archive(#[from] UnpackError),
    /// A local file could not be read.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The runtime shut down while the repo was being unpacked.
    #[error("interrupted: the process is shutting down")]
    Interrupted,
    /// The cache could not be written.
    #[error("cache {}: {error}", path.display())]
    Cache {
        /// The path in the cache.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// Fetches repos into a content-addressed cache directory.
#[derive(Clone, Debug)]
pub struct RepoCache {
    dir: PathBuf,
    client: reqwest::Client,
    options: FetchOptions,
}

impl RepoCache {
    /// A cache in `dir` with the default limits.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, reqwest::Error> {
        Self::with_options(dir, FetchOptions::default())
    }

    /// A cache in `dir` with the given limits, timeouts and retries.
    pub fn with_options(
        dir: impl Into<PathBuf>,
        options: FetchOptions,
    ) -> Result<Self, reqwest::Error> {
        let client = crate::http_client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .timeout(options.timeout)
            .build()?;
        Ok(RepoCache {
            dir: dir.into(),
            client,
            options,
        })
    }

    /// `${KFOP_CACHE:-$HOME/.cache/kfop}/repos`.
    pub fn default_dir() -> PathBuf {
        let cache = crate::cache::dir();
        cache.join("repos")
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes `repo` available locally: a directory is used in place, an archive is unpacked into the
    /// cache (or found there).
    pub async fn fetch(&self, repo: &Repo) -> Result<LocalRepo, RepoError> {
        self.fetch_location(repo).await.map_err(|reason| RepoError {
            repo: repo.name.clone(),
            uri: repo.uri.clone(),
            reason,
        })
    }

    async fn fetch_location(&self, repo: &Repo) -> Result<LocalRepo, RepoErrorReason> {
        let pin = repo.sha256.as_deref().map(parse_pin).transpose()?;
        match Location::parse(&repo.uri)? {
            Location::Remote(url) => self.fetch_remote(&url, &repo.uri, pin).await,
            Location::Local(path) => self.fetch_local(&path, pin).await,
        }
    }

    async fn fetch_local(
        &self,
        path: &Path,
        pin: Option<String>,
    ) -> Result<LocalRepo, RepoErrorReason> {
        let read_error = |error: std::io::Error| match error.kind() {
            std::io::ErrorKind::NotFound => RepoErrorReason::NotFound(path.to_path_buf()),
            _ => RepoErrorReason::Read {
                path: path.to_path_buf(),
                error,
            },
        };
        let metadata = tokio::fs::metadata(path).await.map_err(read_error)?;
        if metadata.is_dir() {
            if pin.is_some() {
                return Err(RepoErrorReason::PinnedDirectory(path.to_path_buf()));
            }
            let root = tokio::fs::canonicalize(path).await.map_err(read_error)?;
            return Ok(LocalRepo { root, digest: None });
        }
        let file = path.to_path_buf();
        let digest = blocking(move || hash_file(&file)).await?;
        verify(pin.as_deref(), &digest)?;
        let root = self.install(&digest, path.to_path_buf()).await?;
        Ok(LocalRepo {
            root,
            digest: Some(digest),
        })
    }

    async fn fetch_remote(
        &self,
        url: &Url,
        uri: &str,
        pin: Option<String>,
    ) -> Result<LocalRepo, RepoErrorReason> {
        let known = match &pin {
            Some(pin) => Some(pin.clone()),
            None => self.indexed_digest(uri).await,
        };
        if let Some(digest) = known {
            let root = self.dir.join(&digest);
            if tokio::fs::metadata(&root).await.is_ok_and(|m| m.is_dir()) {
                tracing::debug!(%uri, %digest, "repo found in the cache");
                return Ok(LocalRepo {
                    root,
                    digest: Some(digest),
                });
            }
        }
        let staging = self.staging_dir().await?;
        let archive = tempfile::Builder::new()
            .prefix("download-")
            .suffix(".tar.gz")
            .tempfile_in(&staging)
            .map_err(|error| RepoErrorReason::Cache {
                path: staging.clone(),
                error,
            })?;
        let digest = download::download(&self.client, url, archive.path(), &self.options).await?;
        verify(pin.as_deref(), &digest)?;
        let root = self.install(&digest, archive.path().to_path_buf()).await?;
        if pin.is_none() {
            self.index(uri, &digest).await?;
        }
        tracing::info!(%uri, %digest, root = %root.display(), "repo fetched");
        Ok(LocalRepo {
            root,
            digest: Some(digest),
        })
    }

    /// Unpacks `archive` into `<dir>/<digest>/` unless it is there already, and returns the repo root.
    async fn install(&self, digest: &str, archive: PathBuf) -> Result<PathBuf, RepoErrorReason> {
        let target = self.dir.join(digest);
        let staging = self.staging_dir().await?;
        let max_bytes = self.options.max_unpacked_bytes;
        blocking(move || {
            if target.is_dir() {
                return Ok(target);
            }
            let cache_error = |path: &Path| {
                let path = path.to_path_buf();
                move |error| RepoErrorReason::Cache { path, error }
            };
            let scratch = tempfile::Builder::new()
                .prefix("unpack-")
                .tempdir_in(&staging)
                .map_err(cache_error(&staging))?;
            let tree = scratch.path().join("tree");
            std::fs::create_dir(&tree).map_err(cache_error(&tree))?;
            let file = std::fs::File::open(&archive).map_err(|error| RepoErrorReason::Read {
                path: archive.clone(),
                error,
            })?;
            let root = unpack(file, &tree, max_bytes)?;
            match std::fs::rename(&root, &target) {
                Ok(()) => Ok(target),
                // Another fetch of the same archive finished first; its tree is identical.
                Err(_) if target.is_dir() => Ok(target),
                Err(error) => Err(RepoErrorReason::Cache {
                    path: target,
                    error,
                }),
            }
        })
        .await
    }

    /// `<dir>/.tmp/`, created if needed.
    async fn staging_dir(&self) -> Result<PathBuf, RepoErrorReason> {
        let staging = self.dir.join(".tmp");
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|error| RepoErrorReason::Cache {
                path: staging.clone(),
                error,
            })?;
        Ok(staging)
    }

    /// The index file of a remote URI.
    fn index_path(&self, uri: &str) -> PathBuf {
        self.dir
            .join("uris")
            .join(hex(&Sha256::digest(uri.as_bytes())))
    }

    /// The digest `uri` gave when it was last fetched, if the index has it.
    async fn indexed_digest(&self, uri: &str) -> Option<String> {
        let text = tokio::fs::read_to_string(self.index_path(uri)).await.ok()?;
        parse_pin(text.trim()).ok()
    }

    /// Records that `uri` gave `digest`, atomically.
    async fn index(&self, uri: &str, digest: &str) -> Result<(), RepoErrorReason> {
        let path = self.index_path(uri);
        let staging = self.staging_dir().await?;
        let contents = format!("{digest}\n");
        blocking(move || {
            let cache_error = |error| RepoErrorReason::Cache {
                path: path.clone(),
                error,
            };
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).map_err(cache_error)?;
            }
            let mut file = tempfile::NamedTempFile::new_in(&staging).map_err(cache_error)?;
            std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(cache_error)?;
            file.persist(&path).map_err(|e| cache_error(e.error))?;
            Ok(())
        })
        .await
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RepoErrorReason> + Send + 'static,
) -> Result<T, RepoErrorReason> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join_error) if join_error.is_panic() => {
            std::panic::resume_unwind(join_error.into_panic())
        }
        Err(_) => Err(RepoErrorReason::Interrupted),
    }
}

/// Checks a `sha256` pin's form and returns it.
fn parse_pin(pin: &str) -> Result<String, RepoErrorReason> {
    if pin.len() == 64 && pin.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(pin.to_string())
    } else {
        Err(RepoErrorReason::InvalidPin(pin.to_string()))
    }
}

fn verify(pin: Option<&str>, digest: &str) -> Result<(), RepoErrorReason> {
    match pin {
        Some(expected) if expected != digest => Err(RepoErrorReason::ChecksumMismatch {
            expected: expected.to_string(),
            actual: digest.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The lowercase hex SHA-256 of a file.
fn hash_file(path: &Path) -> Result<String, RepoErrorReason> {
    let read_error = |error| RepoErrorReason::Read {
        path: path.to_path_buf(),
        error,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer).map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hexadecimal.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_64_lowercase_hex_digits() {
        let good = "0123456789abcdef".repeat(4);
        assert_eq!(parse_pin(&good).expect("valid"), good);
        for bad in [&good.to_uppercase(), &good[1..], "sha256:abc", ""] {
            assert!(
                matches!(parse_pin(bad), Err(RepoErrorReason::InvalidPin(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
