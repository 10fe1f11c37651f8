//! JSON 6902 patches with kustomize's semantics (`gopkg.in/evanphx/json-patch.v4` v4.12.0).
//!
//! The `json-patch` crate follows RFC 6902 strictly; kustomize's library does not, and manifests
//! rely on the difference. So this is its own implementation. Where evanphx v4 departs from the
//! RFC:
//! - `replace` of a missing map key adds it;
//! - `copy` from a missing map key (or a null) adds a `null`;
//! - `add` without a `value` adds a `null`;
//! - array indices may be negative (counted from the end; `-1` in an `add` appends), and may have
//!   a sign or leading zeros (`+1`, `01`);
//! - a path without a leading `/` loses its first segment (`a/b` is `/b`), and `add` to the whole
//!   document (`""`) fails;
//! - `test` of a missing key passes when the value is `null`;
//! - `replace` of the whole document (`""`) by anything but a map or a list does nothing;
//! - `move` does not check that `from` is not a prefix of `path` (it removes first, then fails).
//!
//! Operations are validated only when applied, as kustomize does: an unknown `op` or a missing
//! `path` fails at that operation.

use serde_json::Value;

use super::{MAX_DEPTH, PatchError, nests_deeper_than, yaml_options};

/// A JSON 6902 operation list, as kustomize decodes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Json6902Patch {
    /// Each a map, or `Value::Null` for a `null` entry (which fails when applied).
    operations: Vec<Value>,
}

/// Why one JSON 6902 operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Json6902Failure {
    #[error("unknown operation (expected add, remove, replace, move, copy or test)")]
    UnknownOperation,
    #[error("the operation has no string `{0}`")]
    MissingField(&'static str),
    #[error("the document has no {0}")]
    MissingPath(String),
    #[error("there is no key {0:?} to remove")]
    MissingKey(String),
    #[error("{0:?} is not an array index")]
    NotAnIndex(String),
    #[error("array index {0} is out of range")]
    IndexOutOfRange(i64),
    #[error("the value differs")]
    TestFailed,
    #[error("the document is not a map or a list")]
    DocumentNotContainer,
}

impl Json6902Patch {
    /// Reads an operation list from patch text as kustomize does: text starting with `[` is
    /// JSON; anything else is YAML (YAML 1.1, as `sigs.k8s.io/yaml`: `yes` is `true`, `0755` is
    /// 493), of which only the first document counts.
    pub fn parse(text: &str) -> Result<Json6902Patch, PatchError> {
        if text.is_empty() {
            return Err(PatchError::InvalidJson6902(
                "empty JSON patch operations".to_owned(),
            ));
        }
        let value = if text.starts_with('[') {
            serde_json::from_str::<Value>(text)
                .map_err(|e| PatchError::InvalidJson6902(e.to_string()))?
        } else {
            first_yaml_document(text)?
        };
        Json6902Patch::from_value(&value)
    }

    /// Reads an operation list from a YAML or JSON value: a list of maps (`null` is an empty
    /// list, as in kustomize).
    pub fn from_value(value: &Value) -> Result<Json6902Patch, PatchError> {
        if nests_deeper_than(value, MAX_DEPTH) {
            return Err(PatchError::TooDeep { limit: MAX_DEPTH });
        }
        let operations = match value {
            Value::Null => Vec::new(),
            Value::Array(items) => {
                if let Some(i) = items
                    .iter()
                    .position(|op| !(op.is_object() || op.is_null()))
                {
                    return Err(PatchError::InvalidJson6902(format!(
                        "operation {i} is not a map"
                    )));
                }
                items.clone()
            }
            _ => {
                return Err(PatchError::InvalidJson6902(
                    "expected a list of operations".to_owned(),
                ));
            }
        };
        Ok(Json6902Patch { operations })
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether the patch has no operation (kustomize's `patchesJson6902` rejects that).
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Applies the operations in order to a copy of `document`.
    pub fn apply(&self, document: &Value) -> Result<Value, PatchError> {
        if nests_deeper_than(document, MAX_DEPTH) {
            return Err(PatchError::TooDeep { limit: MAX_DEPTH });
        }
        let mut document = document.clone();
        if !(document.is_object() || document.is_array()) {
            return Err(PatchError::Json6902 {
                index: 0,
                op: String::new(),
                path: String::new(),
                failure: Json6902Failure::DocumentNotContainer,
            });
        }
        for (index, operation) in self.operations.iter().enumerate() {
            apply_operation(&mut document, operation).map_err(|failure| PatchError::Json6902 {
                index,
                op: string_field(operation, "op").unwrap_or_else(|| "unknown".to_owned()),
                path: string_field(operation, "path").unwrap_or_default(),
                failure,
            })?;
        }
        Ok(document)
    }
}

fn string_field(operation: &Value, name: &str) -> Option<String> {
    operation
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn required(operation: &Value, name: &'static str) -> Result<String, Json6902Failure> {
    string_field(operation, name).ok_or(Json6902Failure::MissingField(name))
}

/// The operation's `value`; a missing one is `null`, as evanphx v4 stores it.
fn value_of(operation: &Value) -> Value {
    operation.get("value").cloned().unwrap_or(Value::Null)
}

fn apply_operation(document: &mut Value, operation: &Value) -> Result<(), Json6902Failure> {
    let missing = |what: &str, path: &str| Json6902Failure::MissingPath(format!("{what} {path:?}"));
    match operation.get("op").and_then(Value::as_str) {
        Some("add") => {
            let path = required(operation, "path")?;
            let (container, key) =
                find_container(document, &path).ok_or_else(|| missing("path", &path))?;
            add(container, &key, value_of(operation))
        }
        Some("remove") => {
            let path = required(operation, "path")?;
            let (container, key) =
                find_container(document, &path).ok_or_else(|| missing("path", &path))?;
            remove(container, &key).map(drop)
        }
        Some("replace") => {
            let path = required(operation, "path")?;
            if path.is_empty() {
                // evanphx v4 means to reject a value that is not a map or a list here, but wraps
                // a nil error: the operation does nothing.
                let value = value_of(operation);
                if value.is_object() || value.is_array() {
                    *document = value;
                }
                return Ok(());
            }
            let (container, key) =
                find_container(document, &path).ok_or_else(|| missing("path", &path))?;
            get(container, &key)?;
            set(container, &key, value_of(operation))
        }
        Some("move") => {
            let from = required(operation, "from")?;
            let (container, key) =
                find_container(document, &from).ok_or_else(|| missing("from path", &from))?;
            get(container, &key)?;
            let value = remove(container, &key)?;
            let path = required(operation, "path")?;
            let (container, key) =
                find_container(document, &path).ok_or_else(|| missing("path", &path))?;
            add(container, &key, value)
        }
        Some("copy") => {
            let from = required(operation, "from")?;
            let (container, key) =
                find_container(document, &from).ok_or_else(|| missing("from path", &from))?;
            let value = get(container, &key)?;
            let path = required(operation, "path")?;
            let (container, key) =
                find_container(document, &path).ok_or_else(|| missing("path", &path))?;
            add(container, &key, value)
        }
        Some("test") => {
            let path = required(operation, "path")?;
            // evanphx v4 crashes on a `test` without `value` where the key is missing, and
            // fails it elsewhere.
            let expected = operation
                .get("value")
                .ok_or(Json6902Failure::TestFailed)?
                .clone();
            let actual = if path.is_empty() {
                document.clone()
            } else {
                let (container, key) =
                    find_container(document, &path).ok_or_else(|| missing("path", &path))?;
                get(container, &key)?
            };
            if actual == expected {
                Ok(())
            } else {
                Err(Json6902Failure::TestFailed)
            }
        }
        _ => Err(Json6902Failure::UnknownOperation),
    }
}

/// evanphx `findObject`: the container holding the last segment of `path`, and that segment.
/// Every segment but the first and the last must lead to a map or a list.
fn find_container<'a>(document: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    let (last, inner) = segments.split_last()?;
    let inner = inner.get(1..)?;
    let mut container = document;
    for segment in inner {
        let segment = unescape(segment);
        let next = match container {
            Value::Object(map) => map.get_mut(&segment)?,
            Value::Array(items) => {
                let index = array_index(items.len(), &segment).ok()?;
                items.get_mut(index)?
            }
            _ => return None,
        };
        if !(next.is_object() || next.is_array()) {
            return None;
        }
        container = next;
    }
    Some((container, unescape(last)))
}

/// RFC 6901 unescaping: `~1` is `/`, `~0` is `~`.
fn unescape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('~', Some('1')) => {
                out.push('/');
                chars.next();
            }
            ('~', Some('0')) => {
                out.push('~');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits.
fn parse_index(segment: &str) -> Result<i64, Json6902Failure> {
    segment
        .parse::<i64>()
        .map_err(|_| Json6902Failure::NotAnIndex(segment.to_owned()))
}

/// An existing element's index (`get`, `set`): negative counts from the end.
fn array_index(len: usize, segment: &str) -> Result<usize, Json6902Failure> {
    let index = parse_index(segment)?;
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let resolved = if index < 0 { index + len } else { index };
    if resolved < 0 || resolved >= len {
        return Err(Json6902Failure::IndexOutOfRange(index));
    }
    usize::try_from(resolved).map_err(|_| Json6902Failure::IndexOutOfRange(index))
}

/// The value at `key` of a container; a missing map key is `null` (evanphx's nil).
fn get(container: &Value, key: &str) -> Result<Value, Json6902Failure> {
    match container {
        Value::Object(map) => Ok(map.get(key).cloned().unwrap_or(Value::Null)),
        Value::Array(items) => {
            let index = array_index(items.len(), key)?;
            Ok(items.get(index).cloned().unwrap_or(Value::Null))
        }
        _ => Err(Json6902Failure::DocumentNotContainer),
    }
}

fn set(container: &mut Value, key: &str, value: Value) -> Result<(), Json6902Failure> {
    match container {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = array_index(items.len(), key)?;
            if let Some(slot) = items.get_mut(index) {
                *slot = value;
            }
            Ok(())
        }
        _ => Err(Json6902Failure::DocumentNotContainer),
    }
}

fn add(container: &mut Value, key: &str, value: Value) -> Result<(), Json6902Failure> {
    match container {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
            Ok(())
        }
        Value::Array(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let index = parse_index(key)?;
            let new_len = i64::try_from(items.len())
                .unwrap_or(i64::MAX)
                .saturating_add(1);
            let resolved = if index < 0 { index + new_len } else { index };
            if index >= new_len || resolved < 0 {
                return Err(Json6902Failure::IndexOutOfRange(index));
            }
            let resolved =
                usize::try_from(resolved).map_err(|_| Json6902Failure::IndexOutOfRange(index))?;
            items.insert(resolved, value);
            Ok(())
        }
        _ => Err(Json6902Failure::DocumentNotContainer),
    }
}

/// Removes and returns the value at `key`; a missing map key is an error.
fn remove(container: &mut Value, key: &str) -> Result<Value, Json6902Failure> {
    match container {
        Value::Object(map) => map
            .remove(key)
            .ok_or_else(|| Json6902Failure::MissingKey(key.to_owned())),
        Value::Array(items) => {
            let index = array_index(items.len(), key)?;
            Ok(items.remove(index))
        }
        _ => Err(Json6902Failure::DocumentNotContainer),
    }
}

/// The first YAML document of `text` (YAML 1.1 scalars), `null` if it is empty: what
/// `sigs.k8s.io/yaml`'s `YAMLToJSON` reads.
fn first_yaml_document(text: &str) -> Result<Value, PatchError> {
    let is_marker = |line: &str| {
        line.strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    };
    let has_content = |lines: &[&str]| {
        lines.iter().any(|l| {
            let t = l.trim_start();
            !(t.is_empty() || t.starts_with('#') || l.starts_with('%'))
        })
    };
    let lines: Vec<&str> = text.lines().collect();
    let first_marker = lines.iter().position(|l| is_marker(l));
    let document: Vec<&str> = match first_marker {
        Some(start) if !has_content(lines.get(..start).unwrap_or_default()) => {
            let rest = lines.get(start + 1..).unwrap_or_default();
            let end = rest.iter().position(|l| is_marker(l)).unwrap_or(rest.len());
            lines.get(start..=start + end).unwrap_or_default().to_vec()
        }
        Some(end) => lines.get(..end).unwrap_or_default().to_vec(),
        None => lines,
    };
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(&document.join("\n"), yaml_options(true))
            .map_err(|e| PatchError::Yaml(e.to_string()))?;
    Ok(documents.into_iter().next().unwrap_or(Value::Null))
}
