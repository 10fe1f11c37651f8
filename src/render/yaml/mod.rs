//! YAML in and out: manifests are parsed into `serde_json::Value` documents and printed back as a
//! multi-document stream with sorted keys, the way `kubectl kustomize` prints them.

use serde_json::Value;

mod fast_path;

/// A YAML syntax error, with the line and column the parser reports.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    message: String,
}

fn options() -> serde_saphyr::Options {
    // Kubernetes manifests are YAML 1.2 as Kubernetes reads them: `yes`/`on` stay strings, a
    // leading-zero number such as 0755 is octal.
    serde_saphyr::options! {
        strict_booleans: true,
        legacy_octal_numbers: true,
    }
}

/// Parses every non-empty document of a YAML stream.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    if let Some(documents) = fast_path::parse_stream(text) {
        return Ok(documents.into_iter().map(|d| d.value).collect());
    }
    parse_documents_fully(&fold_like_go_yaml(text))
}

/// Parses every non-empty document of a manifest, each with the paths of its fields written as
/// nothing (see [`empty_values`]).
pub fn parse_manifest(text: &str) -> Result<Vec<(Value, Vec<FieldPath>)>, YamlError> {
    if let Some(documents) = fast_path::parse_stream(text) {
        return Ok(documents
            .into_iter()
            .map(|d| (d.value, d.written_empty))
            .collect());
    }
    let documents = parse_documents_fully(&fold_like_go_yaml(text))?;
    let mut written_empty = empty_values(text)
        .filter(|per_document| per_document.len() == documents.len())
        .unwrap_or_default()
        .into_iter();
    Ok(documents
        .into_iter()
        .map(|document| (document, written_empty.next().unwrap_or_default()))
        .collect())
}

/// Whether the fast path reads what the full parser reads (objects and fields written as
/// nothing) from `text`, or `None` when the fast path leaves `text` to the full parser. For the
/// tests and the fuzz targets.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fast_path_agrees(text: &str) -> Option<bool> {
    let fast = fast_path::parse_stream(text)?;
    let Ok(full) = parse_documents_fully(&fold_like_go_yaml(text)) else {
        return Some(false);
    };
    let empties = empty_values(text)
        .filter(|per_document| per_document.len() == full.len())
        .unwrap_or_else(|| vec![Vec::new(); full.len()]);
    Some(
        fast.len() == full.len()
            && fast
                .iter()
                .zip(&full)
                .zip(&empties)
                .all(|((fast, value), empty)| fast.value == *value && fast.written_empty == *empty),
    )
}

/// [`parse_documents`] by the full YAML parser, on text already folded like go-yaml.
fn parse_documents_fully(text: &str) -> Result<Vec<Value>, YamlError> {
    let documents = serde_saphyr::from_multiple_with_options::<TrackedDocument>(text, options())
        .map_err(|e| YamlError {
            message: first_line(&e.to_string()),
        })?;
    let count = documents.len();
    Ok(documents
        .into_iter()
        .enumerate()
        .map(|(i, document)| {
            if i + 1 == count {
                document.fixed_at_end_of(text)
            } else {
                document.value
            }
        })
        .filter(|d| !d.is_null())
        .collect())
}

/// A document and the JSON pointer of the last string scalar in it, in document order.
///
/// The YAML parser keeps a final line break in a block scalar (`|`, `>`) that ends the file
/// without one; YAML (and kustomize) drop it. Knowing which scalar came last lets
/// [`parse_documents`] put that right.
struct TrackedDocument {
    value: Value,
    last_string: Option<String>,
}

impl TrackedDocument {
    fn fixed_at_end_of(mut self, text: &str) -> Value {
        let ends_open = !text.ends_with('\n') && !text.ends_with('"') && !text.ends_with('\'');
        if ends_open
            && let Some(pointer) = &self.last_string
            && let Some(Value::String(s)) = self.value.pointer_mut(pointer)
            && s.ends_with('\n')
        {
            s.pop();
        }
        self.value
    }
}

impl<'de> serde::Deserialize<'de> for TrackedDocument {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::DeserializeSeed;
        let last = std::cell::RefCell::new(None);
        let value = TrackingSeed {
            pointer: String::new(),
            last: &last,
        }
        .deserialize(deserializer)?;
        Ok(Self {
            value,
            last_string: last.into_inner(),
        })
    }
}

/// Builds a `Value` like serde_json's own visitor, noting the pointer of each string it meets.
struct TrackingSeed<'a> {
    pointer: String,
    last: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for TrackingSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TrackingSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v)
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(v as f64)))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(u64::try_from(v)
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        *self.last.borrow_mut() = Some(self.pointer);
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        *self.last.borrow_mut() = Some(self.pointer);
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = TrackingSeed {
                pointer: format!("{}/{}", self.pointer, items.len()),
                last: self.last,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<MapKey>()? {
            let escaped = key.0.replace('~', "~0").replace('/', "~1");
            let seed = TrackingSeed {
                pointer: format!("{}/{escaped}", self.pointer),
                last: self.last,
            };
            let value = map.next_value_seed(seed)?;
            object.insert(key.0, value);
        }
        Ok(Value::Object(object))
    }
}

/// A mapping key: YAML allows any scalar; JSON objects need strings.
struct MapKey(String);

impl<'de> serde::Deserialize<'de> for MapKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(MapKey(match value {
            Value::String(s) => s,
            Value::Null => "null".to_string(),
            other => other.to_string(),
        }))
    }
}

/// A path into a document: map keys, and list positions as decimal text.
pub type FieldPath = Vec<String>;

/// Where each document of a YAML stream (empty documents skipped, as [`parse_documents`] does)
/// has a map value written as nothing at all (`key:`), as opposed to `null` or `~`.
///
/// kustomize's strategic merge drops such fields from the objects it patches and keeps the
/// explicit nulls; a `serde_json::Value` holds both as `null`, so the renderer keeps this list
/// beside each object. Returns `None` when the stream has no such value (checked cheaply on the
/// text first; the exact answer comes from the YAML events).
fn empty_values(text: &str) -> Option<Vec<Vec<FieldPath>>> {
    if !may_have_empty_values(text) {
        return None;
    }
    use granit_parser::{Event, Parser, ScalarStyle};
    enum Frame {
        Map { key: Option<String> },
        Seq { index: usize },
    }
    let mut documents: Vec<Vec<FieldPath>> = Vec::new();
    let mut current: Vec<FieldPath> = Vec::new();
    let mut root_is_null = false;
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut any = false;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        // The parser reports a value written as nothing as `~`, with an empty span.
        let written_empty = span.start.index() == span.end.index();
        match event {
            Event::DocumentStart(..) => {
                current = Vec::new();
                root_is_null = false;
            }
            Event::DocumentEnd if !root_is_null => {
                documents.push(std::mem::take(&mut current));
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                match stack.last_mut() {
                    // A key that is a map or a list: not a Kubernetes object; no answer.
                    Some(Frame::Map { key: None }) => return None,
                    Some(Frame::Map { key }) => path.push(key.take().unwrap_or_default()),
                    Some(Frame::Seq { index }) => {
                        path.push(index.to_string());
                        *index += 1;
                    }
                    None => {}
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map { key: None }
                } else {
                    Frame::Seq { index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                if !stack.is_empty() {
                    path.pop();
                }
            }
            Event::Scalar(value, style, _, tag) => match stack.last_mut() {
                None => {
                    root_is_null = style == ScalarStyle::Plain
                        && tag.is_none()
                        && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL");
                }
                Some(Frame::Map { key: key @ None }) => *key = Some(value.into_owned()),
                Some(Frame::Map { key }) => {
                    let name = key.take().unwrap_or_default();
                    if written_empty && style == ScalarStyle::Plain && tag.is_none() {
                        let mut at = path.clone();
                        at.push(name);
                        current.push(at);
                        any = true;
                    }
                }
                Some(Frame::Seq { index }) => *index += 1,
            },
            Event::Alias(_) => match stack.last_mut() {
                Some(Frame::Map { key: None }) => return None,
                Some(Frame::Map { key }) => *key = None,
                Some(Frame::Seq { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
    }
    any.then_some(documents)
}

/// Whether some line of `text` may be a block mapping key with no value: it ends in `:` (before
/// any comment) and the next line with content is not indented deeper than the key (nor a list
/// item at the key's column). A cheap test that lets [`empty_values`] skip most files.
fn may_have_empty_values(text: &str) -> bool {
    let content = |line: &str| {
        let trimmed = line.trim_start_matches(' ');
        !(trimmed.is_empty() || trimmed.starts_with('#'))
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split(" #").next().unwrap_or(line).trim_end();
        if !code.ends_with(':') || code.trim_start().starts_with('#') {
            continue;
        }
        let mut key_column = line.len() - line.trim_start_matches(' ').len();
        let mut rest = &line[key_column..];
        while let Some(after) = rest.strip_prefix("- ") {
            let spaces = after.len() - after.trim_start_matches(' ').len();
            key_column += 2 + spaces;
            rest = &after[spaces..];
        }
        let next = lines[i + 1..].iter().find(|l| content(l));
        let Some(next) = next else {
            return true;
        };
        let next_column = next.len() - next.trim_start_matches(' ').len();
        let list_value = next_column == key_column && next.trim_start().starts_with('-');
        if next_column <= key_column && !list_value {
            return true;
        }
    }
    false
}

/// Parses a single YAML document (an empty document is `null`). As in [`parse_documents`], a
/// block scalar that ends a text without a line break has none.
pub fn parse_document(text: &str) -> Result<Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    if is_one_document(text) {
        let mut documents = match fast_path::parse_stream(text) {
            Some(documents) => documents.into_iter().map(|d| d.value).collect(),
            None => parse_documents_fully(&fold_like_go_yaml(text))?,
        };
        if documents.len() <= 1 {
            return Ok(documents.pop().unwrap_or(Value::Null));
        }
    }
    serde_saphyr::from_str_with_options::<Value>(&fold_like_go_yaml(text), options()).map_err(|e| {
        YamlError {
            message: first_line(&e.to_string()),
        }
    })
}

/// Whether no line but the first starts a document (`---`) or ends one (`...`): a text the
/// one-document parser takes.
fn is_one_document(text: &str) -> bool {
    !(text.contains("\n---") || text.contains("\n..."))
}

/// Parses a kustomization file's document. kustomize v5 refuses a mapping that repeats a key;
/// the kustomize of the kfctl era (go-yaml v2) kept the last value, and kfctl-era manifests rely
/// on it (`commonLabels` twice in kubeflow/manifests v1.2's `jupyter-web-app/base_v3`). kfop
/// keeps the last value too; the second result says whether a key was repeated.
pub fn parse_kustomization_document(text: &str) -> Result<(Value, bool), YamlError> {
    match parse_document(text) {
        Err(e) if e.message.contains("duplicate mapping key") => {
            let options = serde_saphyr::options! {
                strict_booleans: true,
                legacy_octal_numbers: true,
                duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
            };
            serde_saphyr::from_str_with_options::<Value>(&fold_like_go_yaml(text), options)
                .map(|value| (value, true))
                .map_err(|e| YamlError {
                    message: first_line(&e.to_string()),
                })
        }
        other => other.map(|value| (value, false)),
    }
}

/// Prints documents as one YAML stream, `---` between documents.
pub fn to_yaml_stream(documents: &[Value]) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(document)?);
    }
    Ok(out)
}

/// In a folded block scalar (`>`), go-yaml (and so kustomize and Kubernetes) keeps an extra line
/// break before a more-indented line that follows a normal one, where YAML 1.2 keeps one. An empty
/// line inserted there makes a YAML 1.2 parser read what go-yaml reads.
fn fold_like_go_yaml(text: &str) -> std::borrow::Cow<'_, str> {
    if !may_have_folded_scalars(text) {
        return std::borrow::Cow::Borrowed(text);
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let indent = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let mut insert_before = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if !line.contains('>') {
            i += 1;
            continue;
        }
        let code = line.split(" #").next().unwrap_or(line).trim_end();
        let is_folded = code.ends_with('>') || code.ends_with(">-") || code.ends_with(">+");
        let header = code.trim_end_matches(['-', '+']).trim_end_matches('>');
        let header_ok = header.trim().is_empty()
            || header.ends_with(": ")
            || header.ends_with("- ")
            || header.trim_end().ends_with(':');
        if !(is_folded && header_ok && !code.trim_start().starts_with('#')) {
            i += 1;
            continue;
        }
        let parent = indent(line);
        let mut content_indent = None;
        let mut previous_normal = false;
        let mut j = i + 1;
        while j < lines.len() {
            let current = lines[j];
            if current.trim().is_empty() {
                previous_normal = false;
                j += 1;
                continue;
            }
            let current_indent = indent(current);
            if current_indent <= parent {
                break;
            }
            let base = *content_indent.get_or_insert(current_indent);
            if current_indent > base && previous_normal {
                insert_before.push(j);
            }
            previous_normal = current_indent == base;
            j += 1;
        }
        i = j;
    }
    if insert_before.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + insert_before.len());
    for (index, line) in lines.iter().enumerate() {
        if insert_before.contains(&index) {
            out.push('\n');
        }
        if index > 0 {
            out.push('\n');
        }
        out.push_str(line);
    }
    std::borrow::Cow::Owned(out)
}

/// Whether some `>` of `text` may start a folded block scalar: it ends its line, but for a
/// chomping indicator and a comment. A cheap test that lets [`fold_like_go_yaml`] skip most texts.
fn may_have_folded_scalars(text: &str) -> bool {
    text.match_indices('>').any(|(i, _)| {
        let rest = &text[i + 1..];
        let line = rest.split('\n').next().unwrap_or(rest);
        let after = line.strip_prefix(['-', '+']).unwrap_or(line).trim_start();
        after.is_empty() || after.starts_with('#')
    })
}

/// serde-saphyr's message starts with "error: line L column C: …" and then draws a snippet; the
/// first line is what belongs in one error message.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_kubernetes_scalars() {
        let docs = parse_documents("a: yes\nb: on\nc: \"2\"\nd: 0755\ne: ~\nf: 2019-01-01\n")
            .expect("parse");
        assert_eq!(
            docs,
            vec![json!({"a": "yes", "b": "on", "c": "2", "d": 493, "e": null, "f": "2019-01-01"})]
        );
    }

    #[test]
    fn block_scalar_at_end_of_file_keeps_no_line_break() {
        assert_eq!(
            parse_documents("a: |\n  x").expect("parse"),
            vec![json!({"a": "x"})]
        );
        assert_eq!(
            parse_documents("a: |\n  x\n").expect("parse"),
            vec![json!({"a": "x\n"})]
        );
        assert_eq!(
            parse_documents("a: \"x\\n\"").expect("parse"),
            vec![json!({"a": "x\n"})]
        );
    }

    #[test]
    fn folded_scalars_read_as_go_yaml_reads_them() {
        // What `kubectl kustomize` prints for this input.
        let text = "a: >\n  first do\n    more\n    more2\n  back\n  back2\n\n  after blank\nb: >-\n  one\n  two\n";
        assert_eq!(
            parse_documents(text).expect("parse"),
            vec![
                json!({"a": "first do\n\n  more\n  more2\nback back2\nafter blank\n", "b": "one two"})
            ]
        );
    }

    #[test]
    fn skips_empty_documents() {
        let docs = parse_documents("---\n# comment only\n---\na: 1\n---\n").expect("parse");
        assert_eq!(docs, vec![json!({"a": 1})]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse_documents("a: 1\n  b: 2\n").expect_err("bad yaml");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn finds_values_written_as_nothing() {
        let path = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let text =
            "a:\nb: null\nc: ~\nd:\n  e:\n  f: 1\ng:\n- h:\n  i: null\n- x\nj: ''\n---\n---\nk:\n";
        assert_eq!(
            empty_values(text),
            Some(vec![
                vec![path(&["a"]), path(&["d", "e"]), path(&["g", "0", "h"])],
                vec![path(&["k"])],
            ])
        );
        let table = [
            "a: 1\nb:\n  c: 2\n",
            "a:\n- 1\n",
            "a: null\nb: ~\n",
            "a: |\n  b:\n  c\n",
        ];
        for text in table {
            assert_eq!(empty_values(text), None, "{text:?}");
        }
    }

    #[test]
    fn repeated_kustomization_keys_keep_the_last_value() {
        let text = "commonLabels:\n  a: b\nresources: [x.yaml]\ncommonLabels:\n  c: d\n";
        assert!(parse_document(text).is_err());
        assert_eq!(
            parse_kustomization_document(text).expect("lenient"),
            (
                json!({"commonLabels": {"c": "d"}, "resources": ["x.yaml"]}),
                true
            )
        );
        assert_eq!(
            parse_kustomization_document("a: 1\n").expect("plain"),
            (json!({"a": 1}), false)
        );
    }

    #[test]
    fn stream_round_trips() {
        let docs = vec![
            json!({"b": [1, {"x": "multi\nline\n"}], "a": "yes"}),
            json!({"c": null}),
        ];
        let text = to_yaml_stream(&docs).expect("emit");
        assert_eq!(parse_documents(&text).expect("parse"), docs);
    }
}
