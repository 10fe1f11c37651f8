//! Integration tests on a real control plane: one module per behaviour.

mod adoption;
mod bad_input;
mod conflict;
mod control_plane;
mod corpus_kfdef;
mod deploy_manifests;
mod finalizer;
mod framework;
mod framework_examples;
mod framework_support;
mod heal_retry;
mod impersonation;
#[path = "../inputs/mod.rs"]
mod inputs;
mod job_controllers_kfdef;
mod job_support;
mod kfdef;
mod operator_apply;
mod operator_support;
mod prune;
mod pytorchjob;
mod self_heal;
mod support;
mod tfjob;
mod training_operator_examples;
mod upgrade;
