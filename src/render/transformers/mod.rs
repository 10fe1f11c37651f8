//! The built-in transformers, each a function over the resources of one kustomization layer.

pub mod images;
pub mod labels;
pub mod name_affix;
pub mod name_reference;
pub mod namespace;
pub mod patches;
pub mod replacements;
pub mod replicas;
pub mod sort;
pub mod vars;
