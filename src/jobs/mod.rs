//! kfop's bundled distributed-training job controllers: TFJob and PyTorchJob (`kubeflow.org/v1`,
//! compatible with training-operator's YAML), on one engine.
//!
//! [`api`] holds the shared types, [`tensorflow`] and [`pytorch`] the kinds, each plugging into
//! [`framework::Framework`]; [`engine`] is the pure decision logic (job + observed pods → status and
//! actions); [`controller`] is the thin kube-rs edge that watches, executes and records.

pub mod api;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod expectations;
pub mod failure;
pub mod framework;
pub mod gang;
pub mod indexes;
pub mod pytorch;
pub mod pytorch_init;
pub mod rate_limit;
pub mod template;
pub mod tensorflow;
