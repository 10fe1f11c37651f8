//! Fetching manifest repos from a real HTTP server on loopback, from `file://` archives and from local
//! directories: success, cache reuse, checksum pins, error statuses, retries, size limits, unreachable
//! hosts.

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kfop::kfdef::Repo;
use kfop::repos::{
    DownloadError, FetchOptions, LocalRepo, RepoCache, RepoError, RepoErrorReason, UnpackError,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Body = BoxBody<Bytes, Infallible>;

/// What the test server answers on one path.
#[derive(Clone)]
enum Route {
    /// 200 with these bytes.
    Ok(Vec<u8>),
    /// 200 with these bytes, sent chunked (no Content-Length).
    Chunked(Vec<u8>),
    /// This status, with an optional `Retry-After`.
    Status(u16, Option<u64>),
    /// These statuses for the first requests, then 200 with the bytes.
    FailFirst(Vec<u16>, Vec<u8>),
}

/// An HTTP/1.1 server on 127.0.0.1 that counts the requests to each path.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(routes: Vec<(&str, Route)>) -> Server {
        let routes: Arc<HashMap<String, Route>> = Arc::new(
            routes
                .into_iter()
                .map(|(path, route)| (path.to_string(), route))
                .collect(),
        );
        let requests = Arc::new(Mutex::new(HashMap::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let counts = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (routes, counts) = (routes.clone(), counts.clone());
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let response = respond(&routes, &counts, request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            requests,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self, path: &str) -> usize {
        self.requests
            .lock()
            .expect("counts")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(
    routes: &HashMap<String, Route>,
    counts: &Mutex<HashMap<String, usize>>,
    path: &str,
) -> Response<Body> {
    let seen = {
        let mut counts = counts.lock().expect("counts");
        let count = counts.entry(path.to_string()).or_insert(0);
        *count += 1;
        *count
    };
    let full = |bytes: Vec<u8>| Full::new(Bytes::from(bytes)).boxed();
    let status = |code: u16, retry_after: Option<u64>| {
        let mut response = Response::new(full(format!("status {code}").into_bytes()));
        *response.status_mut() = StatusCode::from_u16(code).expect("status");
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().expect("header"));
        }
        response
    };
    match routes.get(path) {
        None => status(404, None),
        Some(Route::Ok(bytes)) => Response::new(full(bytes.clone())),
        Some(Route::Chunked(bytes)) => {
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> = bytes
                .chunks(64 * 1024)
                .map(|chunk| Ok(Frame::data(Bytes::copy_from_slice(chunk))))
                .collect();
            Response::new(BodyExt::boxed(StreamBody::new(futures::stream::iter(
                chunks,
            ))))
        }
        Some(Route::Status(code, retry_after)) => status(*code, *retry_after),
        Some(Route::FailFirst(codes, bytes)) => match codes.get(seen - 1) {
            Some(code) => status(*code, None),
            None => Response::new(full(bytes.clone())),
        },
    }
}

/// A GitHub-style archive: one top-level folder holding a small kustomize tree.
fn github_archive(top: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let files = [
        ("app/base/kustomization.yaml", "resources:\n- cm.yaml\n"),
        (
            "app/base/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        ),
        ("README.md", "manifests\n"),
    ];
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("{top}/{path}"), contents.as_bytes())
            .expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gzip")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn repo(uri: &str, sha256: Option<&str>) -> Repo {
    Repo {
        name: "manifests".into(),
        uri: uri.into(),
        sha256: sha256.map(str::to_string),
    }
}

/// Fast retries, so that the retry tests take milliseconds.
fn fast_options() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        retries: 3,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..FetchOptions::default()
    }
}

fn cache(dir: &tempfile::TempDir) -> RepoCache {
    RepoCache::with_options(dir.path(), fast_options()).expect("client")
}

fn assert_is_the_archive(local: &LocalRepo, bytes: &[u8]) {
    assert_eq!(local.digest.as_deref(), Some(sha256(bytes).as_str()));
    let kustomization = std::fs::read_to_string(local.root.join("app/base/kustomization.yaml"))
        .expect("the top-level folder is stripped");
    assert_eq!(kustomization, "resources:\n- cm.yaml\n");
}

#[tokio::test]
async fn fetches_and_unpacks_an_archive() {
    let bytes = github_archive("manifests-1.0.2");
    let server = Server::start(vec![("/v1.0.2.tar.gz", Route::Ok(bytes.clone()))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let local = cache(&dir)
        .fetch(&repo(&server.url("/v1.0.2.tar.gz"), None))
        .await
        .expect("fetch");
    assert_is_the_archive(&local, &bytes);
    assert_eq!(local.root, dir.path().join(sha256(&bytes)));
    let staged: Vec<_> = std::fs::read_dir(dir.path().join(".tmp"))
        .expect(".tmp")
        .collect();
    assert!(staged.is_empty(), "staging left behind: {staged:?}");
}

#[tokio::test]
async fn a_second_fetch_uses_the_cache() {
    let bytes = github_archive("m");
    let server = Server::start(vec![
        ("/a.tar.gz", Route::Ok(bytes.clone())),
        ("/pinned.tar.gz", Route::Ok(bytes.clone())),
    ])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let unpinned = repo(&server.url("/a.tar.gz"), None);
    let first = cache(&dir).fetch(&unpinned).await.expect("first fetch");
    // A new cache object on the same directory, as after a restart.
    let second = cache(&dir).fetch(&unpinned).await.expect("second fetch");
    assert_eq!(first, second);
    assert_eq!(server.requests("/a.tar.gz"), 1);

    // A pin already in the cache needs no request, even for a URI never fetched.
    let pinned = repo(&server.url("/pinned.tar.gz"), Some(&sha256(&bytes)));
    let third = cache(&dir).fetch(&pinned).await.expect("pinned fetch");
    assert_eq!(third, first);
    assert_eq!(server.requests("/pinned.tar.gz"), 0);
}

#[tokio::test]
async fn a_matching_pin_is_accepted() {
    let bytes = github_archive("m");
    let server = Server::start(vec![("/a.tar.gz", Route::Ok(bytes.clone()))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let local = cache(&dir)
        .fetch(&repo(&server.url("/a.tar.gz"), Some(&sha256(&bytes))))
        .await
        .expect("fetch");
    assert_is_the_archive(&local, &bytes);
}

#[tokio::test]
async fn a_checksum_mismatch_is_refused_and_not_cached() {
    let bytes = github_archive("m");
    let server = Server::start(vec![("/a.tar.gz", Route::Ok(bytes.clone()))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = "0".repeat(64);
    let uri = server.url("/a.tar.gz");
    let error = cache(&dir)
        .fetch(&repo(&uri, Some(&wrong)))
        .await
        .expect_err("mismatch");
    match &error.reason {
        RepoErrorReason::ChecksumMismatch { expected, actual } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &sha256(&bytes));
        }
        other => panic!("{other:?}"),
    }
    assert_names_repo_and_uri(&error, &uri);
    assert!(!dir.path().join(sha256(&bytes)).exists());
    assert!(!dir.path().join(&wrong).exists());
    assert_eq!(server.requests("/a.tar.gz"), 1, "a mismatch is not retried");
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let server = Server::start(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = server.url("/missing.tar.gz");
    let error = cache(&dir).fetch(&repo(&uri, None)).await.expect_err("404");
    assert!(
        matches!(
            error.reason,
            RepoErrorReason::Download(DownloadError::Status { status, attempts: 1 }) if status == 404
        ),
        "{error}"
    );
    assert_names_repo_and_uri(&error, &uri);
    assert!(error.to_string().contains("404"), "{error}");
    assert_eq!(server.requests("/missing.tar.gz"), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let bytes = github_archive("m");
    let server = Server::start(vec![(
        "/flaky.tar.gz",
        Route::FailFirst(vec![500, 503, 429], bytes.clone()),
    )])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let local = cache(&dir)
        .fetch(&repo(&server.url("/flaky.tar.gz"), None))
        .await
        .expect("succeeds on the fourth attempt");
    assert_is_the_archive(&local, &bytes);
    assert_eq!(server.requests("/flaky.tar.gz"), 4);
}

#[tokio::test]
async fn retries_stop_after_the_configured_count() {
    let server = Server::start(vec![("/down.tar.gz", Route::Status(502, Some(0)))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let error = cache(&dir)
        .fetch(&repo(&server.url("/down.tar.gz"), None))
        .await
        .expect_err("always 502");
    assert!(
        matches!(
            error.reason,
            RepoErrorReason::Download(DownloadError::Status { status, attempts: 4 }) if status == 502
        ),
        "{error}"
    );
    assert_eq!(
        server.requests("/down.tar.gz"),
        4,
        "one attempt and 3 retries"
    );
}

#[tokio::test]
async fn oversize_archives_are_refused() {
    let bytes = github_archive("m");
    let server = Server::start(vec![
        ("/big.tar.gz", Route::Ok(bytes.clone())),
        ("/big-chunked.tar.gz", Route::Chunked(bytes.clone())),
    ])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = bytes.len() as u64 - 1;
    let options = FetchOptions {
        max_archive_bytes: limit,
        ..fast_options()
    };
    let cache = RepoCache::with_options(dir.path(), options).expect("client");
    // Refused on Content-Length, and while streaming when the server sends none.
    for path in ["/big.tar.gz", "/big-chunked.tar.gz"] {
        let error = cache
            .fetch(&repo(&server.url(path), None))
            .await
            .expect_err("too large");
        assert!(
            matches!(error.reason, RepoErrorReason::Download(DownloadError::TooLarge { limit: l }) if l == limit),
            "{path}: {error}"
        );
        assert_eq!(server.requests(path), 1, "{path}: not retried");
    }
    let staged = std::fs::read_dir(dir.path().join(".tmp"))
        .expect(".tmp")
        .count();
    assert_eq!(staged, 0, "partial downloads are removed");
}

#[tokio::test]
async fn an_unreachable_port_is_a_clear_error() {
    // A port that was free a moment ago: nothing listens on it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = format!("http://{addr}/manifests.tar.gz");
    let error = cache(&dir)
        .fetch(&repo(&uri, None))
        .await
        .expect_err("refused");
    match &error.reason {
        RepoErrorReason::Download(DownloadError::Transport { message, attempts }) => {
            assert_eq!(*attempts, 4, "connection errors are retried");
            assert!(message.to_lowercase().contains("connect"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_names_repo_and_uri(&error, &uri);
}

#[tokio::test]
async fn a_response_that_is_not_an_archive_is_refused() {
    let server = Server::start(vec![(
        "/page.tar.gz",
        Route::Ok(b"<html>sign in</html>".to_vec()),
    )])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let error = cache(&dir)
        .fetch(&repo(&server.url("/page.tar.gz"), None))
        .await
        .expect_err("not gzip");
    assert!(
        matches!(error.reason, RepoErrorReason::Archive(UnpackError::NotGzip)),
        "{error}"
    );
    assert!(error.to_string().contains("not a gzip"), "{error}");
}

#[tokio::test]
async fn local_directories_and_file_uris() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("manifests");
    std::fs::create_dir_all(tree.join("app")).expect("mkdir");
    let cache = cache(&tempfile::tempdir().expect("cache dir"));

    let plain = cache
        .fetch(&repo(tree.to_str().expect("utf-8"), None))
        .await
        .expect("directory");
    let canonical = std::fs::canonicalize(&tree).expect("canonical");
    assert_eq!(
        plain,
        LocalRepo {
            root: canonical.clone(),
            digest: None
        }
    );
    let file_uri = url::Url::from_directory_path(&tree).expect("file URI");
    let via_uri = cache
        .fetch(&repo(file_uri.as_str(), None))
        .await
        .expect("file://");
    assert_eq!(via_uri.root, canonical);

    // A file:// archive is unpacked into the cache like a download.
    let bytes = github_archive("m");
    let archive = dir.path().join("m.tar.gz");
    std::fs::write(&archive, &bytes).expect("write archive");
    let archive_uri = url::Url::from_file_path(&archive).expect("file URI");
    let local = cache
        .fetch(&repo(archive_uri.as_str(), Some(&sha256(&bytes))))
        .await
        .expect("file:// archive");
    assert_is_the_archive(&local, &bytes);
    assert!(local.root.starts_with(cache.dir()));

    let error = cache
        .fetch(&repo(tree.to_str().expect("utf-8"), Some(&sha256(&bytes))))
        .await
        .expect_err("a pin on a directory");
    assert!(
        matches!(error.reason, RepoErrorReason::PinnedDirectory(_)),
        "{error}"
    );
    let missing = dir.path().join("nope");
    let error = cache
        .fetch(&repo(missing.to_str().expect("utf-8"), None))
        .await
        .expect_err("missing");
    assert!(
        matches!(error.reason, RepoErrorReason::NotFound(_)),
        "{error}"
    );
}

#[tokio::test]
async fn unsupported_uris_and_bad_pins_are_named() {
    let cache = cache(&tempfile::tempdir().expect("cache dir"));
    let uri = "git::https://github.com/kubeflow/manifests";
    let error = cache.fetch(&repo(uri, None)).await.expect_err("git");
    assert!(error.to_string().contains("unsupported URI"), "{error}");
    assert_names_repo_and_uri(&error, uri);
    let error = cache
        .fetch(&repo("/srv/m.tar.gz", Some("ABC")))
        .await
        .expect_err("pin");
    assert!(
        matches!(error.reason, RepoErrorReason::InvalidPin(_)),
        "{error}"
    );
}

fn assert_names_repo_and_uri(error: &RepoError, uri: &str) {
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("repo \"manifests\" ({uri}): ")),
        "{message}"
    );
}
