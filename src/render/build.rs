//! The kustomize pipeline: accumulate resources layer by layer (resources, generators, components,
//! transformers, vars), then hash generated names, fix name references, resolve vars and sort.

use super::config::{ConfigurationFile, TransformerConfig};
use super::generators::{self, GeneratedKind};
use super::kustomization::{
    FILE_NAMES, Kustomization, PatchArgs, Replacement, ReplacementEntry, Var, normalize_keys,
};
use super::loader::Loader;
use super::resource::Resource;
use super::transformers::{
    images, labels, name_affix, name_reference, namespace, patches, replacements, replicas, sort,
    vars,
};
use super::{RenderError, hash, openapi_crds, yaml};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Whether a directory is built as the root, a kustomization or a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The directory a build starts from: a kustomization or a component.
    Root,
    /// A directory listed in `resources`: not a component.
    Kustomization,
    /// A directory listed in `components`.
    Component,
}

/// What one kustomization layer has gathered.
#[derive(Default)]
struct Accumulator {
    resources: Vec<Resource>,
    config: TransformerConfig,
    vars: Vec<Var>,
}

impl Accumulator {
    fn append(&mut self, resource: Resource, file: &Path) -> Result<(), RenderError> {
        let id = resource.id();
        if let Some(existing) = self.resources.iter().find(|r| r.id().same_object(&id)) {
            return Err(RenderError::Invalid {
                file: file.to_path_buf(),
                message: format!(
                    "{id} (from {}) is already defined (by {})",
                    resource.origin, existing.origin
                ),
            });
        }
        self.resources.push(resource);
        Ok(())
    }

    /// Appends many objects, refusing ids already present (one pass over what is there).
    fn append_all(&mut self, batch: Vec<Resource>, file: &Path) -> Result<(), RenderError> {
        let mut seen: std::collections::HashMap<_, usize> = self
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id().identity(), i))
            .collect();
        for resource in batch {
            let id = resource.id();
            if let Some(&existing) = seen.get(&id.identity()) {
                return Err(RenderError::Invalid {
                    file: file.to_path_buf(),
                    message: format!(
                        "{id} (from {}) is already defined (by {})",
                        resource.origin, self.resources[existing].origin
                    ),
                });
            }
            seen.insert(id.identity(), self.resources.len());
            self.resources.push(resource);
        }
        Ok(())
    }

    fn merge_vars(&mut self, incoming: Vec<Var>, file: &Path) -> Result<(), RenderError> {
        for var in incoming {
            if self.vars.iter().any(|v| v.name == var.name) {
                return Err(RenderError::Var {
                    file: file.display().to_string(),
                    var: var.name,
                    message: "is declared more than once".into(),
                });
            }
            self.vars.push(var);
        }
        Ok(())
    }
}

/// Renders kustomization directories.
pub struct Renderer {
    loader: Loader,
}

impl Renderer {
    /// A renderer whose file reads must stay inside `root` (`None`: anywhere).
    pub fn new(root: Option<&Path>) -> Result<Self, RenderError> {
        Ok(Self {
            loader: Loader::new(root)?,
        })
    }

    /// A renderer reading through `loader` (which may serve generated files).
    pub fn with_loader(loader: Loader) -> Self {
        Self { loader }
    }

    /// Builds the kustomization in `dir` into its final objects, in output order.
    pub fn render(&self, dir: &Path) -> Result<Vec<Value>, RenderError> {
        let mut stack = Vec::new();
        let mut acc = Accumulator {
            config: TransformerConfig::builtin(),
            ..Default::default()
        };
        let top = self.accumulate(dir, &mut acc, &mut stack, Role::Root)?;
        let mut resources = acc.resources;
        for resource in resources.iter_mut().filter(|r| r.needs_hash_suffix) {
            let suffix = hash::name_suffix(&resource.object);
            resource.store_previous_id();
            let name = format!("{}-{suffix}", resource.name());
            resource.set_name(&name);
        }
        name_reference::apply(&mut resources, &acc.config.name_reference)?;
        vars::resolve(&mut resources, &acc.vars, &acc.config.var_reference)?;
        resources.retain(|r| {
            r.object
                .pointer("/metadata/annotations/config.kubernetes.io~1local-config")
                != Some(&Value::String("true".into()))
        });
        for resource in &mut resources {
            drop_empty_annotations(resource);
        }
        sort::apply(&mut resources, top.sort_options.as_ref());
        Ok(resources.into_iter().map(|r| r.object).collect())
    }

    /// Runs one kustomization (or component) in `dir` into `acc`; returns the kustomization.
    fn accumulate(
        &self,
        dir: &Path,
        acc: &mut Accumulator,
        stack: &mut Vec<PathBuf>,
        role: Role,
    ) -> Result<Kustomization, RenderError> {
        let canonical = self.loader.resolve(dir)?;
        if stack.contains(&canonical) {
            let mut chain: Vec<String> = stack.iter().map(|p| p.display().to_string()).collect();
            chain.push(canonical.display().to_string());
            return Err(RenderError::Cycle(chain.join(" -> ")));
        }
        stack.push(canonical.clone());
        let result = self.accumulate_layer(&canonical, acc, stack, role);
        stack.pop();
        result
    }

    fn accumulate_layer(
        &self,
        dir: &Path,
        acc: &mut Accumulator,
        stack: &mut Vec<PathBuf>,
        role: Role,
    ) -> Result<Kustomization, RenderError> {
        let (file, kustomization) = self.read_kustomization(dir, role)?;

        for entry in &kustomization.resources {
            if is_remote(entry) {
                return Err(RenderError::Unsupported {
                    file: file.clone(),
                    what: format!("remote resource {entry:?} (only local files and directories)"),
                });
            }
            let path = dir.join(entry);
            if path.is_dir() {
                let mut child = Accumulator {
                    config: TransformerConfig::builtin(),
                    ..Default::default()
                };
                self.accumulate(&path, &mut child, stack, Role::Kustomization)?;
                acc.append_all(child.resources, &file)?;
                acc.config.merge(&child.config);
                acc.merge_vars(child.vars, &file)?;
            } else {
                acc.append_all(self.read_resources(&path)?, &file)?;
            }
        }

        for path in &kustomization.configurations {
            let text = self.loader.read_text(&dir.join(path))?;
            let document = yaml::parse_document(&text).map_err(|source| RenderError::Yaml {
                path: dir.join(path),
                source,
            })?;
            let (configuration, warning) =
                ConfigurationFile::from_value(document).map_err(|e| RenderError::Invalid {
                    file: dir.join(path),
                    message: format!("not a transformer configuration: {e}"),
                })?;
            if let Some(warning) = warning {
                tracing::warn!(file = %dir.join(path).display(), "{warning}");
            }
            acc.config.merge_file(&configuration);
        }
        for path in &kustomization.crds {
            let text = self.loader.read_text(&dir.join(path))?;
            let document = yaml::parse_document(&text).map_err(|source| RenderError::Yaml {
                path: dir.join(path),
                source,
            })?;
            openapi_crds::load(&document, &mut acc.config).map_err(|message| {
                RenderError::Invalid {
                    file: dir.join(path),
                    message,
                }
            })?;
        }

        let global = kustomization.generator_options.as_ref();
        for (kind, list) in [
            (
                GeneratedKind::ConfigMap,
                &kustomization.config_map_generator,
            ),
            (GeneratedKind::Secret, &kustomization.secret_generator),
        ] {
            for args in list {
                let generated = generators::generate(kind, args, global, dir, &file, &self.loader)?;
                absorb(acc, generated, &args.behavior, &file)?;
            }
        }

        for component in &kustomization.components {
            let path = dir.join(component);
            self.accumulate(&path, acc, stack, Role::Component)?;
        }

        self.transform(&kustomization, acc, &file)?;
        vars::bind(
            &mut acc.resources,
            &kustomization.vars,
            &file.display().to_string(),
        )?;
        acc.merge_vars(kustomization.vars.clone(), &file)?;
        Ok(kustomization)
    }

    /// The built-in transformers, in kustomize's order.
    fn transform(
        &self,
        k: &Kustomization,
        acc: &mut Accumulator,
        file: &Path,
    ) -> Result<(), RenderError> {
        let dir = file.parent().unwrap_or(Path::new("."));
        let config = acc.config.clone();
        let resources = &mut acc.resources;
        for entry in &k.patches_strategic_merge {
            // An entry is a file, or (kustomize allows it) the patch itself inline.
            let (text, label) = if self.loader.is_file(&dir.join(entry)) {
                (self.loader.read_text(&dir.join(entry))?, entry.clone())
            } else if entry.contains('\n') || entry.contains(": ") {
                (entry.clone(), "(inline)".to_string())
            } else {
                return Err(RenderError::Read {
                    path: dir.join(entry),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "patch file not found",
                    ),
                });
            };
            let source = patches::PatchSource { file, label };
            let documents = crate::patch::parse_strategic_merge_patches(&text).map_err(|e| {
                RenderError::Invalid {
                    file: dir.join(entry),
                    message: e.to_string(),
                }
            })?;
            patches::apply_by_id(resources, &documents, &source)?;
        }
        for entry in &k.patches {
            let (text, label) = self.patch_text(dir, entry, file)?;
            patches::apply_entry(
                resources,
                entry,
                &text,
                &patches::PatchSource { file, label },
            )?;
        }
        namespace::apply(resources, &k.namespace, &config.namespace)?;
        if !k.name_prefix.is_empty() {
            name_affix::apply(
                resources,
                &k.name_prefix,
                name_affix::End::Prefix,
                &config.name_prefix,
            )?;
        }
        if !k.name_suffix.is_empty() {
            name_affix::apply(
                resources,
                &k.name_suffix,
                name_affix::End::Suffix,
                &config.name_suffix,
            )?;
        }
        for entry in &k.labels {
            let mut specs = if entry.include_selectors {
                config.common_labels.to_vec()
            } else if entry.include_templates {
                config.template_labels.to_vec()
            } else {
                vec![super::fieldspec::FieldSpec::new(
                    "",
                    "",
                    "",
                    "metadata/labels",
                    true,
                )]
            };
            specs.extend(entry.fields.iter().map(Into::into));
            labels::add_pairs(resources, &entry.pairs, &specs, "labels")?;
        }
        labels::add_pairs(
            resources,
            &k.common_labels,
            &config.common_labels,
            "commonLabels",
        )?;
        labels::add_pairs(
            resources,
            &k.common_annotations,
            &config.common_annotations,
            "commonAnnotations",
        )?;
        for entry in &k.patches_json6902 {
            let (text, label) = self.patch_text(dir, entry, file)?;
            let source = patches::PatchSource { file, label };
            let Some(target) = entry.target.as_ref().filter(|t| !t.name.is_empty()) else {
                return Err(RenderError::Invalid {
                    file: file.to_path_buf(),
                    message: format!(
                        "patchesJson6902 {}: needs a target with a name",
                        source.label
                    ),
                });
            };
            let json_patch =
                crate::patch::Json6902Patch::parse(&text).map_err(|e| RenderError::Invalid {
                    file: file.to_path_buf(),
                    message: format!("patch {}: {e}", source.label),
                })?;
            if json_patch.is_empty() {
                return Err(RenderError::Invalid {
                    file: file.to_path_buf(),
                    message: format!("patch {}: no operations", source.label),
                });
            }
            patches::apply_json6902(resources, &json_patch, target, &source)?;
        }
        replicas::apply(resources, &k.replicas, &config.replicas)?;
        images::apply(resources, &k.images, &config.images)?;
        let mut all_replacements = Vec::new();
        for entry in &k.replacements {
            match entry {
                ReplacementEntry::Inline(replacement) => all_replacements.push(replacement.clone()),
                ReplacementEntry::Path { path } => {
                    let dir = file.parent().unwrap_or(Path::new("."));
                    let text = self.loader.read_text(&dir.join(path))?;
                    for document in
                        yaml::parse_documents(&text).map_err(|source| RenderError::Yaml {
                            path: dir.join(path),
                            source,
                        })?
                    {
                        let items = match document {
                            Value::Array(items) => items,
                            other => vec![other],
                        };
                        for item in items {
                            let replacement: Replacement =
                                serde_json::from_value(normalize_keys(item)).map_err(|e| {
                                    RenderError::Invalid {
                                        file: dir.join(path),
                                        message: format!("not a replacement: {e}"),
                                    }
                                })?;
                            all_replacements.push(replacement);
                        }
                    }
                }
            }
        }
        replacements::apply(resources, &all_replacements, &file.display().to_string())?;
        Ok(())
    }

    /// The text of a `patches`/`patchesJson6902` entry (`path` or inline `patch`) and a label for
    /// messages.
    fn patch_text(
        &self,
        dir: &Path,
        entry: &PatchArgs,
        file: &Path,
    ) -> Result<(String, String), RenderError> {
        match (&entry.path, &entry.patch) {
            (Some(path), None) => Ok((self.loader.read_text(&dir.join(path))?, path.clone())),
            (None, Some(inline)) => Ok((inline.trim().to_string(), "(inline)".to_string())),
            _ => Err(RenderError::Invalid {
                file: file.to_path_buf(),
                message: "a patch needs exactly one of path and patch".into(),
            }),
        }
    }

    fn read_kustomization(
        &self,
        dir: &Path,
        role: Role,
    ) -> Result<(PathBuf, Kustomization), RenderError> {
        let file = FILE_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| self.loader.is_file(path))
            .ok_or_else(|| RenderError::NoKustomization(dir.to_path_buf()))?;
        let text = self.loader.read_text(&file)?;
        let (document, repeated_keys) =
            yaml::parse_kustomization_document(&text).map_err(|source| RenderError::Yaml {
                path: file.clone(),
                source,
            })?;
        if repeated_keys {
            tracing::warn!(file = %file.display(), "a key is repeated; the last value is used, as kfctl-era kustomize did (kustomize v5 refuses the file)");
        }
        let kustomization =
            Kustomization::from_value(document).map_err(|source| RenderError::Kustomization {
                path: file.clone(),
                source,
            })?;
        let kind = kustomization.kind.as_deref().unwrap_or("Kustomization");
        let expected = match role {
            Role::Root => None,
            Role::Kustomization => Some("Kustomization"),
            Role::Component => Some("Component"),
        };
        if !matches!(kind, "Kustomization" | "Component") || expected.is_some_and(|e| e != kind) {
            return Err(RenderError::Invalid {
                file,
                message: format!(
                    "expected kind {}, found {kind}",
                    expected.unwrap_or("Kustomization or Component")
                ),
            });
        }
        Ok((file, kustomization))
    }

    /// The objects in a manifest file (`List` objects are unpacked).
    fn read_resources(&self, path: &Path) -> Result<Vec<Resource>, RenderError> {
        let text = self.loader.read_text(path)?;
        let documents = yaml::parse_manifest(&text).map_err(|source| RenderError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        let mut resources = Vec::new();
        for (document, empty) in documents {
            let Value::Object(map) = document else {
                return Err(RenderError::Invalid {
                    file: path.to_path_buf(),
                    message: "a document is not a mapping".into(),
                });
            };
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind.is_empty() {
                return Err(RenderError::Invalid {
                    file: path.to_path_buf(),
                    message: "an object has no kind".into(),
                });
            }
            if kind.ends_with("List") && map.get("items").is_some_and(Value::is_array) {
                if let Some(Value::Array(items)) = map.get("items") {
                    // kustomize re-reads a List's items from JSON: no field of theirs is
                    // written as nothing any more.
                    for item in items.iter().filter(|i| i.is_object()) {
                        resources.push(Resource::new(item.clone(), origin.clone()));
                    }
                }
                continue;
            }
            let mut resource = Resource::new(Value::Object(map), origin.clone());
            resource.written_empty = empty;
            resources.push(resource);
        }
        Ok(resources)
    }
}

/// Adds a generated object, creating, merging or replacing as its generator's behavior says.
fn absorb(
    acc: &mut Accumulator,
    mut generated: Resource,
    behavior: &str,
    file: &Path,
) -> Result<(), RenderError> {
    let id = generated.id();
    let matches: Vec<usize> = acc
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.all_ids().iter().any(|other| other.same_object(&id)))
        .map(|(i, _)| i)
        .collect();
    let invalid = |message: String| RenderError::Invalid {
        file: file.to_path_buf(),
        message,
    };
    match (matches.as_slice(), behavior) {
        ([], "merge" | "replace") => Err(invalid(format!(
            "{id} does not exist; cannot {behavior} it"
        ))),
        // kustomize reads a behavior it does not know as unspecified, which creates.
        ([], _) => acc.append(generated, file),
        ([_], behavior) if !matches!(behavior, "merge" | "replace") => Err(invalid(format!(
            "{id} already exists; behavior must be merge or replace"
        ))),
        ([index], behavior) => {
            let old = acc.resources[*index].clone();
            let merged_labels = merge_maps(old.labels(), generated.labels());
            let merged_annotations = merge_maps(old.annotations(), generated.annotations());
            if behavior == "merge" {
                for field in ["data", "binaryData"] {
                    let mut data = old
                        .object
                        .get(field)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(new) = generated.object.get(field).and_then(Value::as_object) {
                        data.extend(new.clone());
                    }
                    if !data.is_empty()
                        && let Value::Object(object) = &mut generated.object
                    {
                        object.insert(field.into(), Value::Object(data));
                    }
                }
            }
            let metadata = generated.metadata_mut();
            set_or_remove(metadata, "labels", merged_labels);
            set_or_remove(metadata, "annotations", merged_annotations);
            generated.set_name(old.name());
            if old.namespace().is_empty() {
                generated.metadata_mut().remove("namespace");
            } else {
                generated.set_namespace(old.namespace());
            }
            generated.previous_ids = old.previous_ids.clone();
            generated.prefixes = old.prefixes.clone();
            generated.suffixes = old.suffixes.clone();
            generated.var_names = old.var_names.clone();
            generated.needs_hash_suffix = old.needs_hash_suffix && generated.needs_hash_suffix;
            acc.resources[*index] = generated;
            Ok(())
        }
        (many, _) => Err(invalid(format!(
            "{} objects could take the merge of {id}",
            many.len()
        ))),
    }
}

fn merge_maps(base: Map<String, Value>, over: Map<String, Value>) -> Map<String, Value> {
    let mut merged = base;
    merged.extend(over);
    merged
}

fn set_or_remove(metadata: &mut Map<String, Value>, key: &str, value: Map<String, Value>) {
    if value.is_empty() {
        metadata.remove(key);
    } else {
        metadata.insert(key.into(), Value::Object(value));
    }
}

/// kustomize clears its own bookkeeping annotations at the end, which removes a
/// `metadata.annotations` that is null or empty.
fn drop_empty_annotations(resource: &mut Resource) {
    if let Some(Value::Object(metadata)) = resource.object.get_mut("metadata") {
        let empty = match metadata.get("annotations") {
            Some(Value::Null) => true,
            Some(Value::Object(map)) => map.is_empty(),
            _ => false,
        };
        if empty {
            metadata.remove("annotations");
        }
    }
}

fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("github.com/")
        || entry.starts_with("gitlab.com/")
        || entry.starts_with("bitbucket.org/")
        || entry.starts_with("git@")
        || entry.starts_with("git::")
}
