//! The HTTP client kfop uses outside the Kubernetes API: rustls with the same crypto provider as kube.

use std::time::Duration;

/// A reqwest client builder with kfop's TLS set-up, for callers that need more than [`build`] sets.
pub fn builder() -> reqwest::ClientBuilder {
    // kube and reqwest share rustls; both use ring. Installing twice is harmless (the first wins).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().user_agent(concat!("kfop/", env!("CARGO_PKG_VERSION")))
}

/// Builds a reqwest client with the given overall request timeout.
pub fn build(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    builder().timeout(timeout).build()
}
