//! `replacements`: copy a field of one object into fields of others, with optional delimiter
//! splitting, wildcard (`*`) and list-selector (`[name=x]`) paths, and field creation.

use crate::render::RenderError;
use crate::render::field_path::{self, Index, Part, scalar_text};
use crate::render::kustomization::{Replacement, ReplacementOptions, Selector};
use crate::render::resource::Resource;
use crate::render::selector::ObjectSelector;
use regex::Regex;
use serde_json::{Map, Value};

/// Applies each replacement in order.
pub fn apply(
    resources: &mut [Resource],
    replacements: &[Replacement],
    file: &str,
) -> Result<(), RenderError> {
    for replacement in replacements {
        let fail = |message: String| RenderError::Invalid {
            file: file.into(),
            message: format!("replacement: {message}"),
        };
        let (Some(source), false) = (&replacement.source, replacement.targets.is_empty()) else {
            return Err(fail(
                "replacements must specify a source and at least one target".into(),
            ));
        };
        let selector = Selector {
            group: source.group.clone(),
            version: source.version.clone(),
            kind: source.kind.clone(),
            name: source.name.clone(),
            namespace: source.namespace.clone(),
            ..Default::default()
        };
        let source_selector = ObjectSelector::new(&selector, false).map_err(&fail)?;
        let mut matches = resources
            .iter()
            .filter(|r| r.all_ids().iter().any(|id| source_selector.matches_id(id)));
        let Some(source_object) = matches.next() else {
            return Err(fail(format!(
                "nothing selected by source {}",
                describe(&selector)
            )));
        };
        if matches.next().is_some() {
            return Err(fail(format!(
                "multiple matches for source {}",
                describe(&selector)
            )));
        }
        let path = if source.field_path.is_empty() {
            "metadata.name"
        } else {
            &source.field_path
        };
        // An empty string is a value; a null, `{}` or `[]` counts as missing (kyaml's
        // `IsNilOrEmpty`).
        let value = field_path::lookup(&source_object.object, path)
            .map_err(|e| fail(format!("error looking up replacement source: {e}")))?
            .filter(|v| !is_nil_or_empty(v))
            .cloned()
            .ok_or_else(|| {
                fail(format!(
                    "fieldPath `{path}` is missing for source {}",
                    source_object.id()
                ))
            })?;
        let value = refine(value, source.options.as_ref()).map_err(&fail)?;

        for target in &replacement.targets {
            let Some(select) = &target.select else {
                return Err(fail("target must specify resources to select".into()));
            };
            let select = ObjectSelector::new(select, false).map_err(&fail)?;
            let rejects = target
                .reject
                .iter()
                .map(|r| ObjectSelector::new(r, false))
                .collect::<Result<Vec<_>, _>>()
                .map_err(&fail)?;
            let paths: Vec<String> = if target.field_paths.is_empty() {
                vec!["metadata.name".into()]
            } else {
                target.field_paths.clone()
            };
            for resource in resources.iter_mut() {
                if !select.matches_metadata(resource)
                    || rejects
                        .iter()
                        .any(|r| r.has_metadata() && r.matches_metadata(resource))
                {
                    continue;
                }
                let ids = resource.all_ids();
                let selected = ids.iter().any(|id| select.matches_id(id));
                let rejected = rejects
                    .iter()
                    .any(|r| !r.has_no_id() && ids.iter().any(|id| r.matches_id(id)));
                if !selected || rejected {
                    continue;
                }
                let create = target.options.as_ref().is_some_and(|o| o.create);
                for path in &paths {
                    let mut found = 0;
                    visit(
                        &mut resource.object,
                        &field_path::split(path),
                        create,
                        &mut |field: &mut Value| {
                            found += 1;
                            set_value(field, &value, target.options.as_ref())
                        },
                    )
                    .map_err(&fail)?;
                    if found == 0 {
                        let verb = if create { "find or create" } else { "find" };
                        return Err(fail(format!(
                            "unable to {verb} field {path:?} in replacement target {}",
                            resource.id()
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn describe(selector: &Selector) -> String {
    format!("{}/{} {}", selector.kind, selector.namespace, selector.name)
}

fn is_nil_or_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn refine(value: Value, options: Option<&ReplacementOptions>) -> Result<Value, String> {
    let Some(options) = options.filter(|o| !o.delimiter.is_empty()) else {
        return Ok(value);
    };
    let text = scalar_text(&value).ok_or("delimiter option can only be used with scalar nodes")?;
    let parts: Vec<&str> = text.split(options.delimiter.as_str()).collect();
    usize::try_from(options.index)
        .ok()
        .and_then(|i| parts.get(i))
        .map(|part| Value::String((*part).to_string()))
        .ok_or_else(|| {
            format!(
                "options.index {} is out of bounds for value {text}",
                options.index
            )
        })
}

fn set_value(
    field: &mut Value,
    value: &Value,
    options: Option<&ReplacementOptions>,
) -> Result<(), String> {
    let mut value = value.clone();
    if let Some(options) = options.filter(|o| !o.delimiter.is_empty()) {
        let target =
            scalar_text(field).ok_or("delimiter option can only be used with scalar nodes")?;
        let mut parts: Vec<String> = target
            .split(options.delimiter.as_str())
            .map(str::to_string)
            .collect();
        let new = scalar_text(&value).unwrap_or_default();
        match usize::try_from(options.index) {
            Err(_) => parts.insert(0, new),
            Ok(i) if i >= parts.len() => parts.push(new),
            Ok(i) => parts[i] = new,
        }
        value = Value::String(parts.join(&options.delimiter));
    }
    // A scalar target keeps its own type when the new text can be read as one (kustomize only
    // replaces the scalar's text).
    *field = match (&*field, &value) {
        (Value::Number(_), _) => scalar_text(&value)
            .and_then(|t| serde_json::from_str::<serde_json::Number>(&t).ok())
            .map_or(value.clone(), Value::Number),
        (Value::Bool(_), _) => match scalar_text(&value).as_deref() {
            Some("true") => Value::Bool(true),
            Some("false") => Value::Bool(false),
            _ => value.clone(),
        },
        (Value::String(_), Value::Number(_) | Value::Bool(_)) => {
            Value::String(scalar_text(&value).unwrap_or_default())
        }
        // A created (or null) field has no type of its own: kustomize prints the text plain, so
        // `8080` reads back as a number.
        (Value::Null, Value::String(text)) => plain_scalar(text).unwrap_or(value),
        _ => value,
    };
    Ok(())
}

/// What `text`, printed as a plain YAML scalar, reads back as, when that is a number or a boolean.
fn plain_scalar(text: &str) -> Option<Value> {
    if text.is_empty() || text.contains(['\n', ':', '#', '[', '{', ',']) {
        return None;
    }
    match crate::render::yaml::parse_document(text).ok()? {
        scalar @ (Value::Number(_) | Value::Bool(_)) => Some(scalar),
        _ => None,
    }
}

/// kyaml's `PathMatcher`: calls `action` on every field `path` reaches, creating missing fields
/// (and list elements a `[key=value]` part names) when `create` is set. List selectors match
/// element values by unanchored regular expression, as kyaml does.
fn visit(
    node: &mut Value,
    path: &[String],
    create: bool,
    action: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        return action(node);
    };
    let fresh = |rest: &[String]| match rest.first().map(|p| field_path::parse_part(p)) {
        Some(Ok(Part::Index(_) | Part::Element { .. })) => Value::Array(Vec::new()),
        Some(_) => Value::Object(Map::new()),
        None => Value::Null,
    };
    match field_path::parse_part(head)? {
        Part::Wildcard => {
            let Value::Array(items) = node else {
                return Err(format!("{head}: expected a list"));
            };
            for item in items {
                visit(item, rest, create, action)?;
            }
            Ok(())
        }
        Part::Index(index) => {
            let Value::Array(items) = node else {
                return Err(format!("{head}: expected a list"));
            };
            let at = match index {
                Index::At(i) => i,
                Index::Last => return Err(format!("{head}: not a list index")),
            };
            if at == items.len() && create {
                items.push(fresh(rest));
            }
            let found = items.len();
            match items.get_mut(at) {
                Some(item) => visit(item, rest, create, action),
                None => Err(format!(
                    "index {at} specified but only {found} elements found"
                )),
            }
        }
        Part::Element { key, value } => {
            if node.is_null() && create {
                *node = Value::Array(Vec::new());
            }
            let Value::Array(items) = node else {
                return Err(format!("{head}: expected a list"));
            };
            let pattern = Regex::new(value).map_err(|e| format!("{head}: invalid pattern: {e}"))?;
            let matches = |item: &Value| {
                let field = if key.is_empty() {
                    Some(item)
                } else {
                    item.get(key)
                };
                field
                    .and_then(scalar_text)
                    .is_some_and(|text| pattern.is_match(text.trim()))
            };
            let mut matched = false;
            for item in items.iter_mut().filter(|item| matches(item)) {
                matched = true;
                visit(item, rest, create, action)?;
            }
            if !matched && create {
                let element = if key.is_empty() {
                    Value::String(value.to_string())
                } else {
                    let mut element = Map::new();
                    element.insert(key.to_string(), Value::String(value.to_string()));
                    Value::Object(element)
                };
                items.push(element);
                if let Some(last) = items.last_mut() {
                    visit(last, rest, create, action)?;
                }
            }
            Ok(())
        }
        Part::Field(name) => {
            if node.is_null() && create {
                *node = Value::Object(Map::new());
            }
            let Value::Object(map) = node else {
                return Ok(());
            };
            if !map.contains_key(name) {
                if !create {
                    return Ok(());
                }
                map.insert(name.to_string(), fresh(rest));
            }
            match map.get_mut(name) {
                Some(child) => visit(child, rest, create, action),
                None => Ok(()),
            }
        }
    }
}
