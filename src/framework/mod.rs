//! kfop's Framework controller: FrameworkController's `Framework` kind
//! (`frameworkcontroller.microsoft.com/v1`), compatible with its YAML and its guarantees.
//!
//! [`api`] holds the types; [`completion`] the completion codes, failure classification and
//! retry decisions; [`objects`] builds the attempt ConfigMap and the task pods; [`engine`] is the
//! pure state machine (framework + last written status + cached objects → next status and
//! actions); [`crd`] generates the CRD; [`controller`] is the thin kube-rs edge that watches,
//! writes the status ahead of every action, and executes.

pub mod api;
pub mod completion;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod objects;
