//! Name references: after prefixes, suffixes, namespaces and hashes have renamed objects, every
//! field that refers to one by name (volumes, env sources, roleRefs, subjects, services, …) is
//! rewritten to the referred object's final name (and namespace, for map-valued references).

use crate::render::RenderError;
use crate::render::config::NameBackReference;
use crate::render::fieldspec::{FieldSpec, PathError};
use crate::render::resource::{Gvk, ResId, Resource};
use serde_json::{Map, Value};

/// Rewrites every name reference in `resources`.
pub fn apply(
    resources: &mut [Resource],
    references: &[NameBackReference],
) -> Result<(), RenderError> {
    let snapshot: Vec<Resource> = resources.iter().map(identity_copy).collect();
    let ids: Vec<ResId> = snapshot.iter().map(Resource::id).collect();
    let scopes: Vec<Scope> = ids.iter().map(Scope::of).collect();
    let specs: Vec<(&NameBackReference, &FieldSpec, String)> = references
        .iter()
        .flat_map(|reference| {
            reference
                .referrers
                .iter()
                .map(move |spec| (reference, spec, spec.path_string()))
        })
        .collect();
    for index in 0..resources.len() {
        let referrer = &snapshot[index];
        let original_gvk = referrer.original_id().gvk;
        let candidates = candidates_for(referrer, &snapshot, &scopes)?;
        for (reference, spec, path) in specs.iter().filter(|(_, s, _)| s.applies_to(&original_gvk))
        {
            let context = Context {
                referrer,
                target: &reference.target,
                candidates: &candidates,
                path,
            };
            spec.visit(&mut resources[index].object, &mut |value: &mut Value| {
                context.update(value)
            })
            .map_err(|e| RenderError::Transform {
                transformer: "name references",
                resource: format!("{} (from {})", referrer.id(), referrer.origin),
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// A copy of `resource` with only what the rewrite reads of the objects it compares (their ids
/// and history, a binding's `roleRef` and `subjects`), not their whole content.
fn identity_copy(resource: &Resource) -> Resource {
    let mut object = Map::new();
    for key in ["apiVersion", "kind", "roleRef", "subjects"] {
        if let Some(value) = resource.object.get(key) {
            object.insert(key.into(), value.clone());
        }
    }
    if let Some(Value::Object(metadata)) = resource.object.get("metadata") {
        let identity: Map<String, Value> = ["name", "namespace"]
            .iter()
            .filter_map(|key| Some((key.to_string(), metadata.get(*key)?.clone())))
            .collect();
        object.insert("metadata".into(), Value::Object(identity));
    }
    Resource {
        object: Value::Object(object),
        origin: resource.origin.clone(),
        previous_ids: resource.previous_ids.clone(),
        prefixes: resource.prefixes.clone(),
        suffixes: resource.suffixes.clone(),
        needs_hash_suffix: resource.needs_hash_suffix,
        var_names: Vec::new(),
        written_empty: Vec::new(),
    }
}

/// Where an object lives, worked out once per render.
struct Scope {
    cluster_scoped: bool,
    /// The namespace it names (empty for none).
    namespace: String,
    /// The namespace used for comparisons (see [`ResId::effective_namespace`]).
    effective_namespace: String,
}

impl Scope {
    fn of(id: &ResId) -> Self {
        Self {
            cluster_scoped: id.gvk.is_cluster_scoped(),
            namespace: id.namespace.clone(),
            effective_namespace: id.effective_namespace().to_string(),
        }
    }
}

/// The objects `referrer` could refer to: same namespace, cluster-scoped, or (for RoleBindings)
/// the namespaces of its ServiceAccount subjects.
fn candidates_for<'a>(
    referrer: &Resource,
    all: &'a [Resource],
    scopes: &[Scope],
) -> Result<Vec<&'a Resource>, RenderError> {
    let referrer_id = referrer.id();
    if referrer_id.gvk.is_cluster_scoped() {
        return Ok(all.iter().collect());
    }
    let mut binding_namespaces = Vec::new();
    if referrer_id.gvk.kind == "RoleBinding"
        && let Some(Value::Array(subjects)) = referrer.object.get("subjects")
    {
        for subject in subjects {
            if subject.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                && let Some(namespace) = subject.get("namespace")
            {
                match namespace.as_str() {
                    Some(namespace) => binding_namespaces.push(namespace.to_string()),
                    None => {
                        return Err(RenderError::Transform {
                            transformer: "name references",
                            resource: referrer_id.to_string(),
                            message:
                                "a ServiceAccount subject has a namespace that is not a string"
                                    .into(),
                        });
                    }
                }
            }
        }
    }
    let referrer_namespace = referrer_id.effective_namespace();
    Ok(all
        .iter()
        .zip(scopes)
        .filter(|(_, scope)| {
            scope.cluster_scoped
                || scope.effective_namespace == referrer_namespace
                || binding_namespaces.contains(&scope.namespace)
        })
        .map(|(candidate, _)| candidate)
        .collect())
}

struct Context<'a> {
    referrer: &'a Resource,
    target: &'a Gvk,
    candidates: &'a [&'a Resource],
    path: &'a str,
}

impl Context<'_> {
    fn update(&self, value: &mut Value) -> Result<(), PathError> {
        match value {
            Value::String(_) => self.update_scalar(value),
            Value::Object(map) => self.update_map(map),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(map) => self.update_map(map)?,
                        Value::String(_) => self.update_scalar(item)?,
                        _ => {}
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn update_scalar(&self, value: &mut Value) -> Result<(), PathError> {
        let Some(old) = value.as_str() else {
            return Ok(());
        };
        let chosen = self.select(old, self.candidates.iter().copied(), |c| {
            c.iter().all(|r| r.name() == c[0].name())
        })?;
        if let Some(referral) = chosen {
            *value = Value::String(referral.name().to_string());
        }
        Ok(())
    }

    fn update_map(&self, map: &mut Map<String, Value>) -> Result<(), PathError> {
        let Some(old) = map.get("name").and_then(Value::as_str).map(str::to_string) else {
            return Ok(());
        };
        let candidates: Vec<&Resource> = match map.get("namespace").and_then(Value::as_str) {
            None => self.candidates.to_vec(),
            Some(namespace) => {
                let by_original: Vec<&Resource> = self
                    .candidates
                    .iter()
                    .copied()
                    .filter(|r| r.original_id().namespace == namespace)
                    .collect();
                if by_original.is_empty() {
                    self.candidates
                        .iter()
                        .copied()
                        .filter(|r| r.namespace() == namespace)
                        .collect()
                } else {
                    by_original
                }
            }
        };
        let chosen = self.select(&old, candidates.into_iter(), |c| {
            c.iter()
                .all(|r| r.name() == c[0].name() && r.namespace() == c[0].namespace())
        })?;
        let Some(referral) = chosen else {
            return Ok(());
        };
        if referral.name() == old && referral.namespace().is_empty() {
            return Ok(());
        }
        map.insert("name".into(), Value::String(referral.name().to_string()));
        if !referral.namespace().is_empty() {
            map.insert(
                "namespace".into(),
                Value::String(referral.namespace().to_string()),
            );
        }
        Ok(())
    }

    /// kustomize's sieve: previous name, target kind, roleRef kind, namespace, then prefixes and
    /// suffixes; several identical survivors are fine, several different ones are an error.
    fn select<'r>(
        &self,
        old: &str,
        candidates: impl Iterator<Item = &'r Resource>,
        identical: impl Fn(&[&'r Resource]) -> bool,
    ) -> Result<Option<&'r Resource>, PathError> {
        let mut left: Vec<&Resource> = candidates
            .filter(|r| r.previous_ids.iter().any(|id| id.name == old))
            .filter(|r| {
                r.previous_ids
                    .iter()
                    .any(|id| id.gvk.is_selected_by(self.target))
            })
            .collect();
        if self.path.ends_with("roleRef/name")
            && let Some(role_gvk) = self.role_ref_gvk()
        {
            left.retain(|r| {
                r.previous_ids
                    .iter()
                    .any(|id| id.gvk.is_selected_by(&role_gvk))
            });
        }
        let referrer_id = self.referrer.id();
        if !referrer_id.gvk.is_cluster_scoped() {
            left.retain(|r| {
                let id = r.id();
                id.gvk.is_cluster_scoped()
                    || id.gvk.kind == "ServiceAccount"
                    || id.effective_namespace() == referrer_id.effective_namespace()
            });
        }
        if left.len() == 1 {
            return Ok(left.pop());
        }
        left.retain(|r| affixes_match(r, self.referrer, true));
        if left.len() > 1 {
            left.retain(|r| affixes_match(r, self.referrer, false));
        }
        match left.len() {
            0 => Ok(None),
            1 => Ok(left.pop()),
            _ if identical(&left) => Ok(left.first().copied()),
            _ => Err(PathError {
                path: self.path.to_string(),
                at: format!(
                    "{old:?} could refer to several objects: {}",
                    left.iter()
                        .map(|r| r.id().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    fn role_ref_gvk(&self) -> Option<Gvk> {
        let role_ref = self.referrer.object.get("roleRef")?;
        Some(Gvk {
            group: role_ref.get("apiGroup")?.as_str()?.to_string(),
            version: String::new(),
            kind: role_ref.get("kind")?.as_str()?.to_string(),
        })
    }
}

/// Whether one affix list ends with the other (kustomize's `SameEndingSubSlice`), allowing an
/// empty side when `allow_empty`.
fn affixes_match(a: &Resource, b: &Resource, allow_empty: bool) -> bool {
    let same = |x: &[String], y: &[String]| {
        if allow_empty && (x.is_empty() || y.is_empty()) {
            return true;
        }
        same_ending(x, y)
    };
    same(&a.prefixes, &b.prefixes) && same(&a.suffixes, &b.suffixes)
}

fn same_ending(x: &[String], y: &[String]) -> bool {
    let (short, long) = if x.len() <= y.len() { (x, y) } else { (y, x) };
    if short.is_empty() {
        return long.is_empty();
    }
    long[long.len() - short.len()..] == *short
}
