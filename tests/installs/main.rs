//! Real KfDefs of past Kubeflow releases installed by the operator on the current control
//! plane, in a test binary of their own: a full install is cluster-wide (CRDs, webhooks,
//! ClusterRoles, namespaces such as istio-system) and must not share a cluster with other tests.

#[allow(dead_code)]
#[path = "../cluster/operator_support.rs"]
mod operator_support;
#[allow(dead_code)]
#[path = "../cluster/support.rs"]
mod support;

mod real_kfdefs;
