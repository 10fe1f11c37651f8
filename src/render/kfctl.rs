//! How kfctl turned a KfDef application into a kustomization: the application's `base` and each
//! of its overlays are merged into one generated `kustomization.yaml`, and `params.env` files are
//! filled from the application's parameters and the KfDef. kfctl wrote these files into the repo;
//! kfop serves them from memory through the [`Loader`], leaving the repo untouched.
//!
//! Differences from kfctl, on purpose: paths that leave the application directory stay correct
//! (kfctl garbled them), a generator's `files` stay files (kfctl turned the last one into an env
//! file), and an application with overlays but no `base/kustomization.yaml` is an error (kfctl
//! silently ignored the overlays).

use super::RenderError;
use super::kustomization::normalize_keys;
use super::loader::Loader;
use super::yaml;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// What kfctl took from the KfDef itself.
#[derive(Debug, Clone, Default)]
pub struct KfDefContext {
    /// The KfDef's UID (empty for a file never stored): `generateName` suffixes derive from it.
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub project: String,
}

/// One application: its directory in the repo, overlays and parameters.
#[derive(Debug, Clone, Default)]
pub struct ApplicationSource {
    pub dir: PathBuf,
    pub overlays: Vec<String>,
    pub parameters: Vec<(String, String)>,
}

/// The kustomization kfctl would generate, being built.
#[derive(Default)]
struct Merged {
    bases: Vec<String>,
    name_prefix: String,
    name_suffix: String,
    common_labels: Map<String, Value>,
    common_annotations: Map<String, Value>,
    generator_options: Option<Value>,
    resources: Vec<String>,
    images: Vec<Value>,
    crds: Vec<String>,
    config_map_generator: Vec<Value>,
    secret_generator: Vec<Value>,
    vars: Vec<Value>,
    patches_strategic_merge: Vec<String>,
    patches_json6902: Vec<(String, Value)>,
    configurations: Vec<String>,
    seen: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Merged {
    /// Records `key` under `kind`; false if it was there already.
    fn first(&mut self, kind: &'static str, key: &str) -> bool {
        self.seen.entry(kind).or_default().insert(key.to_string())
    }
}

/// Prepares `loader` so that building `app.dir` renders the application as kfctl would.
pub fn prepare(
    loader: &mut Loader,
    app: &ApplicationSource,
    kfdef: &KfDefContext,
) -> Result<(), RenderError> {
    let comp = &app.dir;
    let base_dir = comp.join("base");
    let Some(base) = read_kustomization(loader, &base_dir)? else {
        if !app.overlays.is_empty() {
            return Err(RenderError::Invalid {
                file: comp.clone(),
                message: format!(
                    "overlays {:?} are given, but there is no base/kustomization.yaml to merge them into",
                    app.overlays
                ),
            });
        }
        if !app.parameters.is_empty() {
            tracing::warn!(dir = %comp.display(), "no base/kustomization.yaml: the application's parameters are not applied");
        }
        return Ok(());
    };
    let mut merged = Merged::default();
    merge(loader, comp, &base_dir, &base, app, kfdef, &mut merged)?;
    let mut namespace = String::new();
    for (name, value) in &app.parameters {
        if name == "namespace" {
            namespace = value.clone();
        }
    }
    for overlay in &app.overlays {
        let dir = comp.join("overlays").join(overlay);
        if !dir.is_dir() {
            return Err(RenderError::Invalid {
                file: comp.clone(),
                message: format!("no overlay {overlay:?} (expected {})", dir.display()),
            });
        }
        let child = read_kustomization(loader, &dir)?.unwrap_or(Value::Object(Map::new()));
        merge(loader, comp, &dir, &child, app, kfdef, &mut merged)?;
    }
    if namespace.is_empty() {
        namespace = kfdef.namespace.clone();
    }

    // JSON 6902 patches are gathered per target into one file each, as kfctl did.
    let mut groups: Vec<(String, Value, Vec<String>)> = Vec::new();
    for (path, target) in std::mem::take(&mut merged.patches_json6902) {
        let key = format!(
            "{}-{}",
            target.get("name").and_then(Value::as_str).unwrap_or(""),
            target.get("kind").and_then(Value::as_str).unwrap_or("")
        );
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, paths)) => paths.push(path),
            None => groups.push((key, target, vec![path])),
        }
    }
    let mut json_patches = Vec::new();
    for (key, target, paths) in groups {
        let mut content = Vec::new();
        for path in paths {
            let file = comp.join(&path);
            if loader.is_file(&file) {
                content.extend(loader.read(&file)?);
            }
        }
        let file_name = format!("{key}.yaml");
        loader.override_file(&comp.join(&file_name), content)?;
        json_patches.push(json!({"path": file_name, "target": target}));
    }

    let mut k = Map::new();
    k.insert(
        "apiVersion".into(),
        json!("kustomize.config.k8s.io/v1beta1"),
    );
    k.insert("kind".into(), json!("Kustomization"));
    let mut list = |key: &str, items: Vec<Value>| {
        if !items.is_empty() {
            k.insert(key.into(), Value::Array(items));
        }
    };
    let strings = |v: Vec<String>| v.into_iter().map(Value::String).collect::<Vec<_>>();
    list("bases", strings(merged.bases));
    list("resources", strings(merged.resources));
    list("images", merged.images);
    list("crds", strings(merged.crds));
    list("configMapGenerator", merged.config_map_generator);
    list("secretGenerator", merged.secret_generator);
    list("vars", merged.vars);
    list(
        "patchesStrategicMerge",
        strings(merged.patches_strategic_merge),
    );
    list("patchesJson6902", json_patches);
    list("configurations", strings(merged.configurations));
    if !merged.common_labels.is_empty() {
        k.insert("commonLabels".into(), Value::Object(merged.common_labels));
    }
    if !merged.common_annotations.is_empty() {
        k.insert(
            "commonAnnotations".into(),
            Value::Object(merged.common_annotations),
        );
    }
    if !merged.name_prefix.is_empty() {
        k.insert("namePrefix".into(), json!(merged.name_prefix));
    }
    if !merged.name_suffix.is_empty() {
        k.insert("nameSuffix".into(), json!(merged.name_suffix));
    }
    if let Some(options) = merged.generator_options {
        k.insert("generatorOptions".into(), options);
    }
    if !namespace.is_empty() {
        k.insert("namespace".into(), json!(namespace));
    }
    let text = yaml::to_yaml_stream(&[Value::Object(k)]).map_err(|e| RenderError::Invalid {
        file: comp.join("kustomization.yaml"),
        message: format!("writing the generated kustomization: {e}"),
    })?;
    loader.override_file(&comp.join("kustomization.yaml"), text)
}

fn read_kustomization(loader: &Loader, dir: &Path) -> Result<Option<Value>, RenderError> {
    let file = dir.join("kustomization.yaml");
    if !loader.is_file(&file) {
        return Ok(None);
    }
    let text = loader.read_text(&file)?;
    let (document, _) = yaml::parse_kustomization_document(&text)
        .map_err(|source| RenderError::Yaml { path: file, source })?;
    Ok(Some(normalize_keys(document)))
}

/// Merges one directory (the base or an overlay) the way kfctl's `MergeKustomization` did.
fn merge(
    loader: &mut Loader,
    comp: &Path,
    target: &Path,
    child: &Value,
    app: &ApplicationSource,
    kfdef: &KfDefContext,
    merged: &mut Merged,
) -> Result<(), RenderError> {
    update_params(loader, target, app, kfdef)?;
    let rel = |value: &str| relative(comp, &target.join(value));
    let strings = |key: &str| -> Vec<String> {
        child
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let Some(bases) = child.get("bases").and_then(Value::as_array) else {
        let path = relative(comp, target);
        if merged.first("bases", &path) {
            merged.bases.push(path);
        }
        return Ok(());
    };
    for base in bases.iter().filter_map(Value::as_str) {
        let path = rel(base);
        if merged.first("bases", &path) {
            merged.bases.push(path);
        }
    }
    let text = |key: &str| {
        child
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if merged.name_prefix.is_empty() {
        merged.name_prefix = text("namePrefix");
    }
    if merged.name_suffix.is_empty() {
        merged.name_suffix = text("nameSuffix");
    }
    if let Some(Value::Object(labels)) = child.get("commonLabels") {
        merged.common_labels.extend(labels.clone());
    }
    if let Some(Value::Object(annotations)) = child.get("commonAnnotations") {
        merged.common_annotations.extend(annotations.clone());
    }
    if merged.generator_options.is_none() {
        merged.generator_options = child
            .get("generatorOptions")
            .filter(|v| !v.is_null())
            .cloned();
    }
    for resource in strings("resources") {
        let path = rel(&resource);
        if merged.first("resources", &path) {
            merged.resources.push(path);
        }
    }
    for image in child
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = image.get("name").and_then(Value::as_str).unwrap_or("");
        if merged.first("images", name) {
            merged.images.push(image.clone());
        } else {
            tracing::warn!(image = name, dir = %target.display(), "image already set by an earlier overlay; ignored");
        }
    }
    for crd in strings("crds") {
        if merged.first("crds", &crd) {
            merged.crds.push(crd);
        }
    }
    for (key, seen_kind) in [
        ("configMapGenerator", "configMaps"),
        ("secretGenerator", "secrets"),
    ] {
        for generator in child
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut generator = generator.clone();
            let name = generator
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Value::Object(map) = &mut generator {
                for field in ["envs", "files"] {
                    if let Some(Value::Array(items)) = map.get_mut(field) {
                        for item in items.iter_mut() {
                            if let Value::String(path) = item {
                                *path = rewrite_source(comp, target, path);
                            }
                        }
                    }
                }
                if let Some(Value::String(env)) = map.get_mut("env") {
                    *env = rel(env);
                }
            }
            let behavior = generator
                .get("behavior")
                .and_then(Value::as_str)
                .unwrap_or("");
            let create = behavior.is_empty() || behavior == "create";
            if create && !merged.first(seen_kind, &name) {
                continue;
            }
            merged.first(seen_kind, &name);
            if key == "configMapGenerator" {
                merged.config_map_generator.push(generator);
            } else {
                merged.secret_generator.push(generator);
            }
        }
    }
    for var in child
        .get("vars")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = var.get("name").and_then(Value::as_str).unwrap_or("");
        if merged.first("vars", name) {
            merged.vars.push(var.clone());
        } else {
            tracing::warn!(var = name, dir = %target.display(), "var already declared by an earlier overlay; ignored");
        }
    }
    for patch in strings("patchesStrategicMerge") {
        let path = rel(&patch);
        if merged.first("patchesStrategicMerge", &path) {
            merged.patches_strategic_merge.push(path);
        }
    }
    for patch in child
        .get("patchesJson6902")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = rel(patch.get("path").and_then(Value::as_str).unwrap_or(""));
        let target_spec = patch.get("target").cloned().unwrap_or(Value::Null);
        let key = format!(
            "{path}-{}",
            target_spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        if merged.first("patchesJson6902", &key) {
            merged.patches_json6902.push((path, target_spec));
        }
    }
    for configuration in strings("configurations") {
        let path = rel(&configuration);
        if merged.first("configurations", &path) {
            merged.configurations.push(path);
        }
    }
    Ok(())
}

/// A generator source (`path` or `key=path`) made relative to the application directory.
fn rewrite_source(comp: &Path, target: &Path, source: &str) -> String {
    match source.split_once('=') {
        Some((key, path)) => format!("{key}={}", relative(comp, &target.join(path))),
        None => relative(comp, &target.join(source)),
    }
}

/// Fills `params.env` in `dir` as kfctl did: a parameter with a value replaces its line;
/// otherwise `appName`, `namespace` and `project` come from the KfDef.
fn update_params(
    loader: &mut Loader,
    dir: &Path,
    app: &ApplicationSource,
    kfdef: &KfDefContext,
) -> Result<(), RenderError> {
    let file = dir.join("params.env");
    if !loader.is_file(&file) {
        return Ok(());
    }
    let text = loader.read_text(&file)?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for line in &mut lines {
        let name = line.split('=').next().unwrap_or("").to_string();
        let value = app
            .parameters
            .iter()
            .rev()
            .find(|(n, v)| *n == name && !v.is_empty())
            .map(|(_, v)| v.clone());
        match value {
            Some(value) => {
                let value =
                    if name == "generateName" && line.split('=').nth(1).unwrap_or("").is_empty() {
                        format!("{value}{}", name_suffix(kfdef, &value, 8))
                    } else {
                        value
                    };
                *line = format!("{name}={value}");
            }
            None => match name.as_str() {
                "appName" => *line = format!("appName={}", kfdef.name),
                "namespace" => *line = format!("namespace={}", kfdef.namespace),
                "project" => *line = format!("project={}", kfdef.project),
                _ => {}
            },
        }
    }
    let mut content = lines.join("\n");
    content.push('\n');
    loader.override_file(&file, content)
}

/// `n` lowercase hex digits standing in for kfctl's random `generateName` suffix: derived from
/// the KfDef (its UID, else its namespace and name) and the prefix, so that every render of one
/// KfDef gives the same names and two KfDefs get different ones.
fn name_suffix(kfdef: &KfDefContext, prefix: &str, n: usize) -> String {
    use sha2::{Digest, Sha256};
    let seed = if kfdef.uid.is_empty() {
        format!("{}/{}", kfdef.namespace, kfdef.name)
    } else {
        kfdef.uid.clone()
    };
    let digest = Sha256::digest(format!("{seed}\n{prefix}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..n.min(hex.len())].to_string()
}

/// `path` relative to `base`, both cleaned lexically (`..` may appear when `path` is outside).
pub fn relative(base: &Path, path: &Path) -> String {
    let base = clean(base);
    let path = clean(path);
    let common = base
        .components()
        .zip(path.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> = Vec::new();
    for _ in base.components().skip(common) {
        parts.push("..".into());
    }
    for component in path.components().skip(common) {
        parts.push(component.as_os_str().to_string_lossy().into_owned());
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/r/app"), Path::new("/r/app/base")),
            "base"
        );
        assert_eq!(
            relative(
                Path::new("/r/app"),
                Path::new("/r/app/overlays/x/../../base/a.yaml")
            ),
            "base/a.yaml"
        );
        assert_eq!(
            relative(Path::new("/r/app"), Path::new("/r/common/base")),
            "../common/base"
        );
    }

    #[test]
    fn name_suffixes_are_stable_per_kfdef_and_differ_between_kfdefs() {
        let kfdef = |uid: &str| KfDefContext {
            uid: uid.into(),
            name: "kf".into(),
            namespace: "kubeflow".into(),
            project: String::new(),
        };
        let app = "notebook-";
        let a = name_suffix(&kfdef("uid-a"), app, 8);
        assert_eq!(a.len(), 8);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, name_suffix(&kfdef("uid-a"), app, 8));
        assert_ne!(a, name_suffix(&kfdef("uid-b"), app, 8));
        assert_ne!(
            name_suffix(&kfdef(""), app, 8),
            name_suffix(&kfdef(""), "other-", 8)
        );
    }
}
