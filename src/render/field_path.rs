//! Dotted field paths as vars and replacements write them (`spec.ports.[name=http].port`,
//! `metadata.annotations.[cert-manager.io/inject-ca-from]`), split and read the way kustomize
//! v5.5 (kyaml's `SmarterPathSplitter` and `PathGetter`) does.

use serde_json::Value;

/// Splits a path on dots. `\.` escapes a dot; a leading dot is ignored; a bracketed part keeps
/// its dots: `[name=a.b]` stays a list-element selector, brackets and all, while `[a.b/c]` (no
/// `=`) is a map key and loses its brackets.
pub fn split(path: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let raw: Vec<&str> = path.split('.').collect();
    let raw = if raw.len() > 1 && raw[0].is_empty() {
        &raw[1..]
    } else {
        &raw[..]
    };
    for piece in raw {
        match pieces.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('.');
                last.push_str(piece);
            }
            _ => pieces.push((*piece).to_string()),
        }
    }
    let mut parts = Vec::with_capacity(pieces.len());
    let mut iter = pieces.into_iter();
    while let Some(piece) = iter.next() {
        if !piece.starts_with('[') || piece.ends_with(']') {
            parts.push(piece);
            continue;
        }
        let mut bracketed = piece;
        for next in iter.by_ref() {
            bracketed.push('.');
            bracketed.push_str(&next);
            if next.ends_with(']') {
                break;
            }
        }
        if bracketed.contains('=') {
            parts.push(bracketed);
        } else {
            parts.push(bracketed.trim_matches(['[', ']']).to_string());
        }
    }
    parts
}

/// What a path part asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// A map key.
    Field(&'a str),
    /// A list position (`-` is the last element).
    Index(Index),
    /// The list elements whose `key` field (or, for an empty key, the element itself) is `value`.
    Element { key: &'a str, value: &'a str },
    /// `*`: every element or value.
    Wildcard,
}

/// A list position.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Index {
    At(usize),
    Last,
}

/// Reads one path part as kyaml does; a bracketed part without `=` is an error.
pub fn parse_part(part: &str) -> Result<Part<'_>, String> {
    if let Ok(index) = part.parse::<i64>() {
        return usize::try_from(index)
            .map(|i| Part::Index(Index::At(i)))
            .map_err(|_| format!("array index {index} cannot be negative"));
    }
    match part {
        "-" => return Ok(Part::Index(Index::Last)),
        "*" => return Ok(Part::Wildcard),
        _ => {}
    }
    if let Some(inner) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
        return match inner.split_once('=') {
            Some((key, value)) => Ok(Part::Element { key, value }),
            None => Err(format!(
                "{part}: a list path element must contain fieldName=fieldValue"
            )),
        };
    }
    Ok(Part::Field(part))
}

/// Whether a list element is the one `[key=value]` selects.
pub fn element_matches(item: &Value, key: &str, value: &str) -> bool {
    let field = if key.is_empty() {
        Some(item)
    } else {
        item.get(key)
    };
    field.and_then(scalar_text).as_deref() == Some(value)
}

/// The text of a scalar, as kustomize compares and substitutes it.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The value at `path` (kyaml's `Lookup`): `None` when a part is missing. A wildcard is an error.
pub fn lookup<'a>(object: &'a Value, path: &str) -> Result<Option<&'a Value>, String> {
    lookup_parts(object, &split(path))
}

/// The value at already split `parts`.
pub fn lookup_parts<'a>(object: &'a Value, parts: &[String]) -> Result<Option<&'a Value>, String> {
    let mut node = object;
    for part in parts {
        let next = match parse_part(part)? {
            Part::Wildcard => return Err("wildcard is not supported in a lookup".into()),
            Part::Field(name) => node.as_object().and_then(|map| map.get(name)),
            Part::Index(Index::At(i)) => node.as_array().and_then(|items| items.get(i)),
            Part::Index(Index::Last) => node.as_array().and_then(|items| items.last()),
            Part::Element { key, value } => node
                .as_array()
                .and_then(|items| items.iter().find(|i| element_matches(i, key, value))),
        };
        match next {
            Some(value) => node = value,
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

/// The value a var's `fieldref.fieldPath` names (kyaml's `GetFieldValue`, which also reads
/// `list[0]` as `list.0`).
pub fn var_value<'a>(object: &'a Value, path: &str) -> Result<Option<&'a Value>, String> {
    let mut parts = Vec::new();
    for part in split(path) {
        match slice_index(&part) {
            Some((head, index)) => {
                if !head.is_empty() {
                    parts.push(head.to_string());
                }
                parts.push(index.to_string());
            }
            None => parts.push(part),
        }
    }
    lookup_parts(object, &parts)
}

/// `name[12]` → (`name`, `12`).
fn slice_index(part: &str) -> Option<(&str, &str)> {
    let inner = part.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let digits = &inner[open + 1..];
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (&inner[..open], digits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_like_kustomize() {
        let table: &[(&str, &[&str])] = &[
            ("a.b.c", &["a", "b", "c"]),
            (".metadata.name", &["metadata", "name"]),
            (
                "metadata.annotations.[cert-manager.io/inject-ca-from]",
                &["metadata", "annotations", "cert-manager.io/inject-ca-from"],
            ),
            (
                "spec.template.metadata.annotations.[traffic.sidecar.istio.io/excludeOutboundPorts]",
                &[
                    "spec",
                    "template",
                    "metadata",
                    "annotations",
                    "traffic.sidecar.istio.io/excludeOutboundPorts",
                ],
            ),
            (
                "spec.containers.[name=a.b].image",
                &["spec", "containers", "[name=a.b]", "image"],
            ),
            ("spec.[plain]", &["spec", "[plain]"]),
            (r"data.a\.b", &["data", "a.b"]),
            ("spec.list.0.x", &["spec", "list", "0", "x"]),
        ];
        for (path, parts) in table {
            assert_eq!(split(path), *parts, "{path}");
        }
    }

    #[test]
    fn looks_up_like_kyaml() {
        let object = json!({
            "metadata": {"annotations": {"cert-manager.io/inject-ca-from": "ns/cert", "empty": ""}},
            "spec": {"ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 90}],
                     "args": ["-jar", "x"]},
        });
        let table: &[(&str, Option<Value>)] = &[
            (
                "metadata.annotations.[cert-manager.io/inject-ca-from]",
                Some(json!("ns/cert")),
            ),
            ("metadata.annotations.empty", Some(json!(""))),
            ("spec.ports.1.port", Some(json!(90))),
            ("spec.ports.-.name", Some(json!("grpc"))),
            ("spec.ports.[name=grpc].port", Some(json!(90))),
            ("spec.ports.[port=80].name", Some(json!("http"))),
            ("spec.args.[=x]", Some(json!("x"))),
            ("spec.missing", None),
            ("spec.ports.[name=none].port", None),
        ];
        for (path, expected) in table {
            assert_eq!(
                lookup(&object, path).expect("valid").cloned(),
                *expected,
                "{path}"
            );
        }
        assert!(lookup(&object, "spec.ports.*").is_err());
        assert!(lookup(&object, "spec.ports.-1").is_err());
        assert_eq!(
            var_value(&object, "spec.ports[1].port").expect("valid"),
            Some(&json!(90))
        );
    }
}
