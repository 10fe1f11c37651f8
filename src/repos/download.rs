//! Downloading an archive over HTTP(S) into a file: size limit, SHA-256, and retries with exponential
//! backoff on transient failures (connection errors, timeouts, 5xx, 408 and 429).

use super::FetchOptions;
use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use url::Url;

/// Why a download failed, after the retries it was worth.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server answered with an error status.
    #[error("HTTP {status} (after {attempts} attempt(s))")]
    Status {
        /// The last status.
        status: StatusCode,
        /// How many requests were made.
        attempts: usize,
    },
    /// The request failed before or while reading the response.
    #[error("{message} (after {attempts} attempt(s))")]
    Transport {
        /// The error and its causes.
        message: String,
        /// How many requests were made.
        attempts: usize,
    },
    /// The archive is larger than the limit.
    #[error("the archive exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The downloaded file could not be written.
    #[error("writing {}: {error}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// One attempt's failure, and whether another attempt may succeed.
struct Failure {
    error: DownloadError,
    transient: bool,
    retry_after: Option<Duration>,
}

/// Downloads `url` into `dest` (replacing it) and returns the lowercase hex SHA-256 of its bytes.
pub async fn download(
    client: &reqwest::Client,
    url: &Url,
    dest: &Path,
    options: &FetchOptions,
) -> Result<String, DownloadError> {
    let attempts = AtomicUsize::new(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(options.min_backoff)
        .with_max_delay(options.max_backoff)
        .with_max_times(options.retries)
        .with_jitter();
    let result = (|| async {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        attempt_once(client, url, dest, options.max_archive_bytes, attempt).await
    })
    .retry(backoff)
    .when(|failure: &Failure| failure.transient)
    .adjust(|failure, delay| {
        // A server's Retry-After wins over the computed delay, within the configured maximum.
        delay.map(|delay| {
            failure
                .retry_after
                .map_or(delay, |after| after.min(options.max_backoff))
        })
    })
    .notify(|failure, delay| {
        tracing::warn!(%url, error = %failure.error, ?delay, "download failed; retrying");
    })
    .await;
    result.map_err(|failure| failure.error)
}

async fn attempt_once(
    client: &reqwest::Client,
    url: &Url,
    dest: &Path,
    limit: u64,
    attempt: usize,
) -> Result<String, Failure> {
    let transport = |error: reqwest::Error| Failure {
        transient: error.is_connect()
            || error.is_timeout()
            || error.is_request()
            || error.is_body()
            || error.is_decode(),
        error: DownloadError::Transport {
            // The URL is in the repo error already.
            message: error_chain(&error.without_url()),
            attempts: attempt,
        },
        retry_after: None,
    };
    let permanent = |error| Failure {
        error,
        transient: false,
        retry_after: None,
    };
    let mut response = client.get(url.clone()).send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure {
            transient: status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT,
            retry_after: retry_after(&response),
            error: DownloadError::Status {
                status,
                attempts: attempt,
            },
        });
    }
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(permanent(DownloadError::TooLarge { limit }));
    }
    let write_error = |error| {
        permanent(DownloadError::Write {
            path: dest.to_path_buf(),
            error,
        })
    };
    let mut file = tokio::fs::File::create(dest).await.map_err(write_error)?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        received += chunk.len() as u64;
        if received > limit {
            return Err(permanent(DownloadError::TooLarge { limit }));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write_error)?;
    }
    file.sync_all().await.map_err(write_error)?;
    Ok(super::hex(&hasher.finalize()))
}

/// The delay a `Retry-After: <seconds>` header asks for.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// An error with its causes, e.g. `error sending request: client error (Connect): Connection refused`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
