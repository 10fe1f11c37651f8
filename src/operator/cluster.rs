//! The thin edge to the API server: which kinds exist and how they are scoped, which API
//! versions are served, server-side apply of one object, reading one object's metadata, and
//! deleting one object.

use super::inventory::ObjectId;
use super::objects::{
    ADOPTED_ANNOTATION, APPLICATION_LABEL, DesiredObject, FIELD_MANAGER, HASH_ANNOTATION,
    KFDEF_ANNOTATION, KFDEF_UID_LABEL,
};
use crate::upgrade::Served;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PartialObjectMeta, Patch,
    PatchParams,
};
use kube::discovery::Scope;
use kube::{Api, Client};
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A kind the API server serves.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Why an object could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server does not serve the kind (yet: its CRD may still be on its way).
    #[error("no matches for kind {kind} in version {api_version}")]
    NoKind { kind: String, api_version: String },
    /// The API server refused the object or could not be reached.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

impl ApplyError {
    /// Whether trying again later may succeed (a kind not served yet, a webhook not ready, a
    /// conflict, the server busy) rather than the object being wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            ApplyError::NoKind { .. } => true,
            ApplyError::Api(kube::Error::Api(status)) => !matches!(status.code, 400 | 403 | 422),
            ApplyError::Api(_) => true,
        }
    }
}

/// A 404 of any form (a missing object, or a kind no longer served because its CRD was deleted)
/// means the object is not there.
fn not_found_is_none<T>(result: Result<Option<T>, kube::Error>) -> Result<Option<T>, kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        other => other,
    }
}

/// The kinds (not subresources) of a discovery resource list.
fn kinds_of(
    list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) -> BTreeSet<String> {
    list.resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| r.kind)
        .collect()
}

/// Object requests in flight at once, across every KfDef. Each holds an HTTP/1.1 connection with
/// its TLS and read buffers (about 200 connections, 8 MiB, at one per request), and the API
/// server gains nothing from more: what it cannot serve at once, it queues.
const REQUESTS_IN_FLIGHT: usize = 32;

/// Kinds resolved so far, by (group, version, kind).
type KindCache = HashMap<(String, String, String), Kind>;

/// Discovery with a cache, and object operations by kind.
#[derive(Clone)]
pub struct Cluster {
    /// Reads and discovery.
    client: Client,
    /// Writes (applies, deletes, releases): `client`, or one impersonating a service account.
    writer: Client,
    /// Bounds the object requests in flight (and so the connections kfop holds).
    requests: Arc<tokio::sync::Semaphore>,
    kinds: Arc<Mutex<KindCache>>,
    /// The served API versions, until a CRD or APIService is applied.
    served: Arc<Mutex<Option<Arc<Served>>>>,
}

impl Cluster {
    /// A cluster reached through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            writer: client.clone(),
            client,
            requests: Arc::new(tokio::sync::Semaphore::new(REQUESTS_IN_FLIGHT)),
            kinds: Arc::default(),
            served: Arc::default(),
        }
    }

    /// The same cluster (caches and request limit shared) writing through `writer`.
    pub fn writing_as(&self, writer: Client) -> Self {
        Self {
            writer,
            ..self.clone()
        }
    }

    /// The API versions the server serves, with the kinds of those kfop may upgrade from
    /// (cached; read again after kfop applies a CRD or an APIService).
    pub async fn served(&self) -> Result<Arc<Served>, kube::Error> {
        if let Ok(served) = self.served.lock()
            && let Some(served) = served.as_ref()
        {
            return Ok(served.clone());
        }
        let mut versions: Vec<(String, Option<BTreeSet<String>>)> = Vec::new();
        for version in self.client.list_core_api_versions().await?.versions {
            let kinds = if crate::upgrade::has_rules(&version) {
                let list = self.client.list_core_api_resources(&version).await?;
                Some(kinds_of(list))
            } else {
                None
            };
            versions.push((version, kinds));
        }
        for group in self.client.list_api_groups().await?.groups {
            for version in group.versions {
                let kinds = if crate::upgrade::has_rules(&version.group_version) {
                    let list = self
                        .client
                        .list_api_group_resources(&version.group_version)
                        .await?;
                    Some(kinds_of(list))
                } else {
                    None
                };
                versions.push((version.group_version, kinds));
            }
        }
        let served = Arc::new(Served::discovered(versions));
        if let Ok(mut cached) = self.served.lock() {
            *cached = Some(served.clone());
        }
        Ok(served)
    }

    /// Forgets the served versions (a CRD or APIService may have added some).
    fn refresh_served(&self) {
        if let Ok(mut cached) = self.served.lock() {
            *cached = None;
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Resolves a kind; `Ok(None)` when the API server does not serve it.
    pub async fn kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Option<Kind>, kube::Error> {
        let cache_key = (group.to_string(), version.to_string(), kind.to_string());
        if let Ok(kinds) = self.kinds.lock()
            && let Some(found) = kinds.get(&cache_key)
        {
            return Ok(Some(found.clone()));
        }
        let gvk = GroupVersionKind::gvk(group, version, kind);
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((resource, capabilities)) => {
                let found = Kind {
                    resource,
                    namespaced: capabilities.scope == Scope::Namespaced,
                };
                if let Ok(mut kinds) = self.kinds.lock() {
                    kinds.insert(cache_key, found.clone());
                }
                Ok(Some(found))
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        api_with(&self.client, kind, namespace)
    }

    fn writes(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        api_with(&self.writer, kind, namespace)
    }

    /// Applies an object with server-side apply, taking over the fields kfop sets; returns the
    /// object's resource version after the write.
    pub async fn apply(&self, desired: &DesiredObject) -> Result<Option<String>, ApplyError> {
        let key = &desired.id;
        let kind = self
            .kind(&key.group, &desired.version, &key.kind)
            .await?
            .ok_or_else(|| ApplyError::NoKind {
                kind: key.kind.clone(),
                api_version: crate::render::resource::Gvk {
                    group: key.group.clone(),
                    version: desired.version.clone(),
                    kind: String::new(),
                }
                .api_version(),
            })?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let _permit = self.requests.acquire().await;
        let written = self
            .writes(&kind, key.namespace.as_deref())
            .patch(&key.name, &params, &Patch::Apply(&desired.object))
            .await?;
        if matches!(
            (key.group.as_str(), key.kind.as_str()),
            ("apiextensions.k8s.io", "CustomResourceDefinition")
                | ("apiregistration.k8s.io", "APIService")
        ) {
            self.refresh_served();
        }
        Ok(written.metadata.resource_version)
    }

    /// The object's metadata, `None` if it does not exist (or its kind is not served).
    pub async fn metadata(
        &self,
        key: &ObjectId,
        version: &str,
    ) -> Result<Option<PartialObjectMeta<DynamicObject>>, kube::Error> {
        let Some(kind) = self.kind(&key.group, version, &key.kind).await? else {
            return Ok(None);
        };
        let _permit = self.requests.acquire().await;
        not_found_is_none(
            self.api(&kind, key.namespace.as_deref())
                .get_metadata_opt(&key.name)
                .await,
        )
    }

    /// The whole object, `None` if it does not exist.
    pub async fn get(
        &self,
        key: &ObjectId,
        version: &str,
    ) -> Result<Option<DynamicObject>, kube::Error> {
        let Some(kind) = self.kind(&key.group, version, &key.kind).await? else {
            return Ok(None);
        };
        let _permit = self.requests.acquire().await;
        not_found_is_none(
            self.api(&kind, key.namespace.as_deref())
                .get_opt(&key.name)
                .await,
        )
    }

    /// Lets go of an adopted object: removes kfop's labels and annotations and leaves the rest.
    pub async fn release(&self, key: &ObjectId, version: &str) -> Result<(), kube::Error> {
        let Some(kind) = self.kind(&key.group, version, &key.kind).await? else {
            return Ok(());
        };
        let patch = serde_json::json!({"metadata": {
            "labels": {KFDEF_UID_LABEL: null, APPLICATION_LABEL: null},
            "annotations": {KFDEF_ANNOTATION: null, HASH_ANNOTATION: null, ADOPTED_ANNOTATION: null},
        }});
        let _permit = self.requests.acquire().await;
        match self
            .writes(&kind, key.namespace.as_deref())
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object (background propagation); `Ok(true)` once it is gone.
    pub async fn delete(&self, key: &ObjectId, version: &str) -> Result<bool, kube::Error> {
        let Some(kind) = self.kind(&key.group, version, &key.kind).await? else {
            return Ok(true);
        };
        let _permit = self.requests.acquire().await;
        match self
            .writes(&kind, key.namespace.as_deref())
            .delete(&key.name, &DeleteParams::background())
            .await
        {
            Ok(either) => Ok(either.is_right()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(true),
            Err(e) => Err(e),
        }
    }
}

fn api_with(client: &Client, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &kind.resource),
        _ => Api::all_with(client.clone(), &kind.resource),
    }
}
