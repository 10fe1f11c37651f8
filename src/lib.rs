//! kfop: a Kubernetes operator for KfDef installs of Kubeflow, with its own job controllers.
//!
//! The library holds every piece the `kfop` binary runs; `docs/architecture.md` shows how they fit.

pub mod applications;
pub mod bundle;
pub mod cache;
pub mod control_plane;
pub mod crds;
pub mod framework;
pub mod http_client;
pub mod jobs;
pub mod kfdef;
pub mod operator;
pub mod patch;
pub mod render;
pub mod repos;
