//! The install manifests (`crds/kfop.yaml`, `deploy/kfop.yaml`) are accepted by a real API server
//! (server-side dry run: nothing is created).

use crate::support;
use kfop::operator::cluster::Cluster;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use std::path::Path;

#[tokio::test]
async fn install_manifests_are_valid() {
    let Some(ns) = support::namespace("deploy").await else {
        return;
    };
    let cluster = Cluster::new(ns.client.clone());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for file in ["crds/kfop.yaml", "deploy/kfop.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).expect("manifest");
        for document in kfop::render::yaml::parse_documents(&text).expect("yaml") {
            let api_version = document["apiVersion"].as_str().expect("apiVersion");
            let kind = document["kind"].as_str().expect("kind");
            let name = document["metadata"]["name"].as_str().expect("name");
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let found = cluster
                .kind(group, version, kind)
                .await
                .expect("discovery")
                .expect("a served kind");
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            let api: Api<DynamicObject> = match document["metadata"]["namespace"].as_str() {
                Some(namespace) if found.namespaced => {
                    Api::namespaced_with(ns.client.clone(), namespace, &resource)
                }
                _ => Api::all_with(ns.client.clone(), &resource),
            };
            // The namespace kfop-system may not exist: namespaced objects are checked in the
            // test's namespace instead.
            let api = if found.namespaced {
                Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
            } else {
                api
            };
            let mut document = document.clone();
            if found.namespaced {
                document["metadata"]["namespace"] = ns.name.clone().into();
            }
            api.patch(
                name,
                &PatchParams::apply("kfop-test").dry_run(),
                &Patch::Apply(&document),
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: {kind} {name}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} documents");
}
