//! `configMapGenerator` and `secretGenerator`: ConfigMaps and Secrets made from env files,
//! literals and files.

use super::RenderError;
use super::kustomization::{GeneratorArgs, GeneratorOptions};
use super::loader::Loader;
use super::resource::Resource;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::path::Path;

/// Which object a generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratedKind {
    ConfigMap,
    Secret,
}

/// One key's value: text, or bytes that are not UTF-8.
enum Data {
    Text(String),
    Binary(Vec<u8>),
}

/// Makes the object one generator entry describes. `dir` is the kustomization's directory and
/// `file` its path, for errors.
pub fn generate(
    kind: GeneratedKind,
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
    dir: &Path,
    file: &Path,
    loader: &Loader,
) -> Result<Resource, RenderError> {
    let what = match kind {
        GeneratedKind::ConfigMap => "configMapGenerator",
        GeneratedKind::Secret => "secretGenerator",
    };
    let invalid = |message: String| RenderError::Invalid {
        file: file.to_path_buf(),
        message: format!("{what} {:?}: {message}", args.name),
    };
    if args.name.is_empty() {
        return Err(invalid("a generator needs a name".into()));
    }
    let mut pairs: Vec<(String, Data)> = Vec::new();
    let mut add = |key: String, value: Data| -> Result<(), RenderError> {
        if !is_config_map_key(&key) {
            return Err(invalid(format!("{key:?} is not a valid key name")));
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!("key {key:?} is given more than once")));
        }
        pairs.push((key, value));
        Ok(())
    };
    for env in &args.envs {
        let text = loader.read_text(&dir.join(env))?;
        for (line_number, line) in text.lines().enumerate() {
            let line = if line_number == 0 {
                line.trim_start_matches('\u{feff}')
            } else {
                line
            };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            if !is_env_var_name(key) {
                return Err(invalid(format!(
                    "{env} line {}: {key:?} is not a valid environment variable name",
                    line_number + 1
                )));
            }
            add(key.to_string(), Data::Text(value.to_string()))?;
        }
    }
    for literal in &args.literals {
        let Some((key, value)) = literal.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(invalid(format!("literal {literal:?} is not key=value")));
        };
        add(
            key.to_string(),
            Data::Text(remove_quotes(value).to_string()),
        )?;
    }
    for source in &args.files {
        let (key, path) = match source.split_once('=') {
            Some((key, path)) if !key.is_empty() && !path.is_empty() => (key.to_string(), path),
            Some(_) => return Err(invalid(format!("file source {source:?} is not key=path"))),
            None => {
                let name = Path::new(source)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, source.as_str())
            }
        };
        let bytes = loader.read(&dir.join(path))?;
        let data = match String::from_utf8(bytes) {
            Ok(text) => Data::Text(text),
            Err(e) => Data::Binary(e.into_bytes()),
        };
        add(key, data)?;
    }

    let options = merge_options(args.options.as_ref(), global);
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(args.name));
    if !args.namespace.is_empty() {
        metadata.insert("namespace".into(), json!(args.namespace));
    }
    if !options.labels.is_empty() {
        metadata.insert("labels".into(), json!(options.labels));
    }
    if !options.annotations.is_empty() {
        metadata.insert("annotations".into(), json!(options.annotations));
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!("v1"));
    match kind {
        GeneratedKind::ConfigMap => {
            object.insert("kind".into(), json!("ConfigMap"));
            let mut data = Map::new();
            let mut binary = Map::new();
            for (key, value) in pairs {
                match value {
                    Data::Text(text) => data.insert(key, Value::String(text)),
                    Data::Binary(bytes) => {
                        binary.insert(key, Value::String(STANDARD.encode(bytes)))
                    }
                };
            }
            if !data.is_empty() {
                object.insert("data".into(), Value::Object(data));
            }
            if !binary.is_empty() {
                object.insert("binaryData".into(), Value::Object(binary));
            }
        }
        GeneratedKind::Secret => {
            object.insert("kind".into(), json!("Secret"));
            let type_ = if args.type_.is_empty() {
                "Opaque"
            } else {
                &args.type_
            };
            object.insert("type".into(), json!(type_));
            let data: Map<String, Value> = pairs
                .into_iter()
                .map(|(key, value)| {
                    let bytes = match value {
                        Data::Text(text) => text.into_bytes(),
                        Data::Binary(bytes) => bytes,
                    };
                    (key, Value::String(secret_base64(&bytes)))
                })
                .collect();
            // kustomize writes a Secret's `data` even when it is empty (a ConfigMap's, not).
            object.insert("data".into(), Value::Object(data));
        }
    }
    if options.immutable {
        object.insert("immutable".into(), json!(true));
    }
    object.insert("metadata".into(), Value::Object(metadata));
    let mut resource = Resource::new(
        Value::Object(object),
        format!("{what} {} in {}", args.name, file.display()),
    );
    resource.needs_hash_suffix = !options.disable_name_suffix_hash;
    Ok(resource)
}

/// A generator's options over the kustomization's `generatorOptions`: its own labels and
/// annotations win, the flags are set if either sets them.
pub fn merge_options(
    local: Option<&GeneratorOptions>,
    global: Option<&GeneratorOptions>,
) -> GeneratorOptions {
    let mut merged = global.cloned().unwrap_or_default();
    if let Some(local) = local {
        merged.labels.extend(local.labels.clone());
        merged.annotations.extend(local.annotations.clone());
        merged.disable_name_suffix_hash |= local.disable_name_suffix_hash;
        merged.immutable |= local.immutable;
    }
    merged
}

/// Base64 as kustomize writes Secret data: lines of 70 characters, each followed by a newline,
/// once the encoding is at least 70 characters long.
fn secret_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let encoded = STANDARD.encode(bytes);
    if encoded.len() < LINE {
        return encoded;
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE + 1);
    for chunk in encoded.as_bytes().chunks(LINE) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

fn remove_quotes(value: &str) -> &str {
    let bytes = value.as_bytes();
    if bytes.len() >= 2
        && bytes[0] == bytes[bytes.len() - 1]
        && (bytes[0] == b'"' || bytes[0] == b'\'')
    {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

fn is_env_var_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn is_config_map_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_data_wraps_like_kustomize() {
        assert_eq!(secret_base64(b"v"), "dg==");
        let long = secret_base64(&[b'x'; 60]);
        let lines: Vec<&str> = long.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), 70);
        assert!(long.ends_with('\n'));
    }

    #[test]
    fn quotes_are_removed_only_in_pairs() {
        assert_eq!(remove_quotes("\"a b\""), "a b");
        assert_eq!(remove_quotes("'a'"), "a");
        assert_eq!(remove_quotes("\"a'"), "\"a'");
        assert_eq!(remove_quotes("\""), "\"");
    }

    #[test]
    fn key_names() {
        assert!(is_env_var_name("JAVA_HOME") && is_env_var_name(".x") && !is_env_var_name("1x"));
        assert!(is_config_map_key("a.b-c_1") && !is_config_map_key("a/b"));
    }
}
