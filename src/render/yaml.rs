//! YAML in and out: manifests are parsed into `serde_json::Value` documents and printed back as a
//! multi-document stream with sorted keys, the way `kubectl kustomize` prints them.

use serde_json::Value;

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
    serde_saphyr::from_multiple_with_options::<Value>(text, options())
        .map(|docs| docs.into_iter().filter(|d| !d.is_null()).collect())
        .map_err(|e| YamlError {
            message: first_line(&e.to_string()),
        })
}

/// Parses a single YAML document (an empty document is `null`).
pub fn parse_document(text: &str) -> Result<Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str_with_options::<Value>(text, options()).map_err(|e| YamlError {
        message: first_line(&e.to_string()),
    })
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
    fn stream_round_trips() {
        let docs = vec![
            json!({"b": [1, {"x": "multi\nline\n"}], "a": "yes"}),
            json!({"c": null}),
        ];
        let text = to_yaml_stream(&docs).expect("emit");
        assert_eq!(parse_documents(&text).expect("parse"), docs);
    }
}
