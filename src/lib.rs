//! kfop: a Kubernetes operator for KfDef installs of Kubeflow, with its own job controllers.
//!
//! The library holds every piece the `kfop` binary runs; `docs/architecture.md` shows how they fit.

pub mod applications;
pub mod bundle;
pub mod cache;
#[cfg(feature = "testbed")]
pub mod control_plane;
pub mod crds;
pub mod endpoints;
pub mod framework;
pub mod http_client;
pub mod jobs;
pub mod kfdef;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod patch;
pub mod render;
pub mod repos;
pub mod upgrade;

/// The Kubernetes version kfop is built and tested against (the single source is
/// `hack/control-plane/VERSION`, which `make control-plane` builds).
pub fn kubernetes_version() -> &'static str {
    include_str!("../hack/control-plane/VERSION").trim()
}
