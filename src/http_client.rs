//! The HTTP client kfop uses outside the Kubernetes API: rustls with the same crypto provider as kube.

use std::time::Duration;

/// Builds a reqwest client with the given overall request timeout.
pub fn build(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    // kube and reqwest share rustls; both use ring. Installing twice is harmless (the first wins).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout).build()
}
