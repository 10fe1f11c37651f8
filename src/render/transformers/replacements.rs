//! `replacements`: copy a field of one object into fields of others, with optional delimiter
//! splitting, wildcard (`*`) and list-selector (`[name=x]`) paths, and field creation.

use crate::render::RenderError;
use crate::render::kustomization::{Replacement, ReplacementOptions, Selector};
use crate::render::resource::Resource;
use crate::render::selector::ObjectSelector;
use crate::render::transformers::vars::{
    element_matches, field_value, scalar_text, split_field_path,
};
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
        let value = field_value(&source_object.object, path)
            .filter(|v| !is_empty(v))
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
                        &split(path),
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

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
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
        _ => value,
    };
    Ok(())
}

/// Splits a field path on dots outside brackets (empty parts dropped).
fn split(path: &str) -> Vec<String> {
    let mut parts = split_field_path(path);
    parts.retain(|p| !p.is_empty());
    parts
}

fn visit(
    node: &mut Value,
    path: &[String],
    create: bool,
    action: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        return action(node);
    };
    if head == "*" {
        match node {
            Value::Array(items) => {
                for item in items {
                    visit(item, rest, create, action)?;
                }
            }
            Value::Object(map) => {
                for item in map.values_mut() {
                    visit(item, rest, create, action)?;
                }
            }
            _ => {}
        }
        return Ok(());
    }
    if let Some(selector) = head.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let Some((key, wanted)) = selector.split_once('=') else {
            return Err(format!("invalid list selector {head:?}"));
        };
        if node.is_null() && create {
            *node = Value::Array(Vec::new());
        }
        let Value::Array(items) = node else {
            return Ok(());
        };
        let mut matched = false;
        for item in items
            .iter_mut()
            .filter(|item| element_matches(item, key, wanted))
        {
            matched = true;
            visit(item, rest, create, action)?;
        }
        if !matched && create {
            let mut element = Map::new();
            element.insert(key.to_string(), Value::String(wanted.to_string()));
            items.push(Value::Object(element));
            if let Some(last) = items.last_mut() {
                visit(last, rest, create, action)?;
            }
        }
        return Ok(());
    }
    if let (Value::Array(items), Ok(index)) = (&mut *node, head.parse::<usize>()) {
        return match items.get_mut(index) {
            Some(item) => visit(item, rest, create, action),
            None => Ok(()),
        };
    }
    if node.is_null() && create {
        *node = Value::Object(Map::new());
    }
    let Value::Object(map) = node else {
        return Ok(());
    };
    if !map.contains_key(head.as_str()) {
        if !create {
            return Ok(());
        }
        map.insert(head.clone(), Value::Null);
    }
    match map.get_mut(head.as_str()) {
        Some(child) => visit(child, rest, create, action),
        None => Ok(()),
    }
}
