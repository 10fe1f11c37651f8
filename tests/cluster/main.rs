//! Integration tests on a real control plane: one module per behaviour.

mod control_plane;
mod job_support;
mod pytorchjob;
mod support;
mod tfjob;
