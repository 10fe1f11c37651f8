//! The HTTP endpoints of a long-running kfop process: `/metrics` (Prometheus), `/healthz` (the
//! process answers) and `/readyz` (its caches are synced, or it is a standby waiting to lead).

use futures::{Stream, StreamExt};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kube::runtime::watcher;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Whether the process (or one part of it) is ready to serve.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<watch::Sender<bool>>);

impl Default for Readiness {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Readiness {
    /// Marks it ready.
    pub fn set(&self) {
        self.0.send_replace(true);
    }

    /// Marks it not ready (again).
    pub fn clear(&self) {
        self.0.send_replace(false);
    }

    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until it is ready.
    pub async fn wait(&self) {
        let _ = self.0.subscribe().wait_for(|ready| *ready).await;
    }

    /// Sets `self` once every one of `parts` is ready.
    pub fn when_all(&self, parts: Vec<Readiness>) {
        let whole = self.clone();
        tokio::spawn(async move {
            for part in &parts {
                part.wait().await;
            }
            whole.set();
        });
    }
}

/// Passes a watch's events through, marking `synced` ready at the end of its first list.
///
/// Several tasks cannot wait on one reflector store's `wait_until_ready`: it wakes only the
/// last of them. A [`Readiness`] wakes every waiter.
pub fn mark_synced<K, S>(events: S, synced: Readiness) -> impl Stream<Item = S::Item> + Send
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    events.inspect(move |event| {
        if matches!(event, Ok(watcher::Event::InitDone)) {
            synced.set();
        }
    })
}

/// Why the endpoints could not be served.
#[derive(Debug, thiserror::Error)]
#[error("listening on {addr}: {source}")]
pub struct Error {
    addr: SocketAddr,
    source: std::io::Error,
}

/// What `path` answers: status, content type and body.
fn answer(method: &Method, path: &str, ready: &Readiness) -> (StatusCode, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n".into());
    }
    match path {
        "/healthz" | "/livez" => (StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" if ready.is_ready() => (StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "caches not synced yet\n".into(),
        ),
        "/metrics" => match crate::metrics::global().encode() {
            Ok(text) => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
        },
        _ => (StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
    }
}

/// Binds `addr` and serves the endpoints on it in a background task; returns the bound address
/// (port 0 picks a free one).
pub async fn serve(addr: SocketAddr, ready: Readiness) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error { addr, source })?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection to the metrics and probes endpoints");
                    continue;
                }
            };
            let ready = ready.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let (status, content_type, body) =
                        answer(request.method(), request.uri().path(), &ready);
                    let response = Response::builder()
                        .status(status)
                        .header(hyper::header::CONTENT_TYPE, content_type)
                        .body(Full::new(Bytes::from(body)));
                    std::future::ready(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_fails_until_ready_and_healthz_always_answers() {
        let ready = Readiness::default();
        assert_eq!(
            answer(&Method::GET, "/readyz", &ready).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(answer(&Method::GET, "/healthz", &ready).0, StatusCode::OK);
        ready.set();
        assert_eq!(answer(&Method::GET, "/readyz", &ready).0, StatusCode::OK);
        assert_eq!(
            answer(&Method::GET, "/nope", &ready).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            answer(&Method::POST, "/readyz", &ready).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        let (status, content_type, body) = answer(&Method::GET, "/metrics", &ready);
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("application/openmetrics-text"));
        assert!(body.contains("kfop_heal_latency_seconds"), "{body}");
    }
}
