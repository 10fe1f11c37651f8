//! Integration tests on a real control plane: one module per behaviour.

mod control_plane;
mod kfdef;
mod support;
