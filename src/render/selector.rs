//! Selecting objects: by id parts (kind, name, namespace, …) and by Kubernetes label or
//! annotation selectors (`a=b,c!=d,e in (x,y),!f,g`).

use super::kustomization::Selector;
use super::resource::{ResId, Resource};
use regex::Regex;
use serde_json::{Map, Value};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label (or annotation) selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses the Kubernetes selector syntax; the empty string selects everything.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((key, values)) = split_set(part, " notin ") {
                Requirement::NotIn(key, values?)
            } else if let Some((key, values)) = split_set(part, " in ") {
                Requirement::In(key, values?)
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else {
                Requirement::Exists(part.to_string())
            };
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let get = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

fn split_set(part: &str, operator: &str) -> Option<(String, Result<Vec<String>, String>)> {
    let (key, rest) = part.split_once(operator)?;
    let rest = rest.trim();
    let values = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(|inner| inner.split(',').map(|v| v.trim().to_string()).collect())
        .ok_or_else(|| format!("selector {part:?}: expected a parenthesised set of values"));
    Some((key.trim().to_string(), values))
}

/// A compiled object selector (`patches[].target`, replacement `select`/`reject`).
#[derive(Debug, Clone)]
pub struct ObjectSelector {
    id: Selector,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: LabelSelector,
    annotations: LabelSelector,
}

impl ObjectSelector {
    /// Compiles a selector; with `regex_names`, name and namespace are anchored regular
    /// expressions (patch targets), otherwise exact strings (replacements).
    pub fn new(selector: &Selector, regex_names: bool) -> Result<Self, String> {
        let anchored = |pattern: &str| -> Result<Option<Regex>, String> {
            if pattern.is_empty() || !regex_names {
                return Ok(None);
            }
            Regex::new(&format!("^(?:{pattern})$"))
                .map(Some)
                .map_err(|e| format!("invalid name pattern {pattern:?}: {e}"))
        };
        Ok(Self {
            name: anchored(&selector.name)?,
            namespace: anchored(&selector.namespace)?,
            labels: LabelSelector::parse(&selector.label_selector)?,
            annotations: LabelSelector::parse(&selector.annotation_selector)?,
            id: selector.clone(),
        })
    }

    /// Whether `id` matches the id parts of the selector.
    pub fn matches_id(&self, id: &ResId) -> bool {
        let s = &self.id;
        let text_match = |pattern: &Option<Regex>, exact: &str, value: &str| match pattern {
            Some(regex) => regex.is_match(value),
            None => exact.is_empty() || exact == value,
        };
        (s.group.is_empty() || s.group == id.gvk.group)
            && (s.version.is_empty() || s.version == id.gvk.version)
            && (s.kind.is_empty() || s.kind == id.gvk.kind)
            && text_match(&self.name, &s.name, &id.name)
            && (s.namespace.is_empty()
                || match &self.namespace {
                    Some(regex) => {
                        regex.is_match(&id.namespace) || regex.is_match(id.effective_namespace())
                    }
                    None => {
                        let wanted = ResId {
                            gvk: id.gvk.clone(),
                            name: String::new(),
                            namespace: s.namespace.clone(),
                        };
                        wanted.effective_namespace() == id.effective_namespace()
                    }
                })
    }

    /// Whether the object's labels and annotations match.
    pub fn matches_metadata(&self, resource: &Resource) -> bool {
        self.labels.matches(&resource.labels()) && self.annotations.matches(&resource.annotations())
    }

    /// Whether any of the object's ids, and its metadata, match.
    pub fn matches(&self, resource: &Resource) -> bool {
        self.matches_metadata(resource) && resource.all_ids().iter().any(|id| self.matches_id(id))
    }

    /// Whether the selector names no id parts (only label or annotation selectors, or nothing).
    pub fn has_no_id(&self) -> bool {
        let s = &self.id;
        s.group.is_empty()
            && s.version.is_empty()
            && s.kind.is_empty()
            && s.name.is_empty()
            && s.namespace.is_empty()
    }

    /// Whether the selector has label or annotation requirements.
    pub fn has_metadata(&self) -> bool {
        !self.id.label_selector.is_empty() || !self.id.annotation_selector.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        let labels = labels.as_object().expect("map");
        let yes = [
            "app=web",
            "app==web,tier",
            "tier in (front, back)",
            "env notin (prod)",
            "!env",
            "",
        ];
        let no = ["app=db", "app!=web", "tier in (back)", "!app", "env"];
        for s in yes {
            assert!(
                LabelSelector::parse(s).expect("parse").matches(labels),
                "{s}"
            );
        }
        for s in no {
            assert!(
                !LabelSelector::parse(s).expect("parse").matches(labels),
                "{s}"
            );
        }
        assert!(LabelSelector::parse("a in x").is_err());
    }
}
