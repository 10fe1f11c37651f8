//! A kustomize engine in Rust: builds a kustomization directory into the objects
//! `kubectl kustomize` (kustomize v5.5) would print, over `serde_json::Value` documents.

mod build;
pub mod config;
pub mod field_path;
pub mod fieldspec;
pub mod generators;
pub mod hash;
pub mod kfctl;
pub mod kustomization;
pub mod loader;
pub mod openapi_crds;
pub mod resource;
pub mod selector;
pub mod transformers;
pub mod yaml;

pub use build::Renderer;

use std::path::PathBuf;

/// Why a render failed. Every variant names the file (or object) at fault.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{path}: {source}")]
    Yaml {
        path: PathBuf,
        source: yaml::YamlError,
    },
    /// A kustomization file is malformed or uses an unknown field.
    #[error("{path}: {source}")]
    Kustomization {
        path: PathBuf,
        source: kustomization::KustomizationError,
    },
    /// A directory has no kustomization file.
    #[error("no kustomization.yaml, kustomization.yml or Kustomization in {0}")]
    NoKustomization(PathBuf),
    /// A path leads outside the render's root (a manifest repo).
    #[error("{path} is outside {root}, the root files may be read from")]
    OutsideRoot { path: PathBuf, root: PathBuf },
    /// Kustomizations include each other in a cycle.
    #[error("kustomizations form a cycle: {0}")]
    Cycle(String),
    /// A kustomize feature kfop does not implement.
    #[error("{file}: unsupported {what}")]
    Unsupported { file: PathBuf, what: String },
    /// Input that is well-formed but wrong.
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    /// A var cannot be bound or resolved.
    #[error("{file}{}var {var:?}: {message}", if file.is_empty() { "" } else { ": " })]
    Var {
        file: String,
        var: String,
        message: String,
    },
    /// A transformer failed on an object.
    #[error("{transformer} on {resource}: {message}")]
    Transform {
        transformer: &'static str,
        resource: String,
        message: String,
    },
}
