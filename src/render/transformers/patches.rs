//! `patchesStrategicMerge`, `patches` and `patchesJson6902`: find each patch's targets (by id,
//! or by a `target` selector) and apply the patch engines of [`crate::patch`] to them.

use crate::patch::{self, Json6902Patch, ParsedPatch, SmpOptions};
use crate::render::RenderError;
use crate::render::kustomization::{PatchArgs, Selector};
use crate::render::resource::{Gvk, ResId, Resource};
use crate::render::selector::ObjectSelector;
use serde_json::Value;
use std::path::Path;

/// Where a patch's text comes from, for error messages.
pub struct PatchSource<'a> {
    /// The kustomization file that lists the patch.
    pub file: &'a Path,
    /// The patch file, or a description of an inline patch.
    pub label: String,
}

fn error(source: &PatchSource<'_>, message: impl std::fmt::Display) -> RenderError {
    RenderError::Invalid {
        file: source.file.to_path_buf(),
        message: format!("patch {}: {message}", source.label),
    }
}

/// The id a patch document names.
fn patch_id(document: &Value) -> ResId {
    let text = |pointer: &str| {
        document
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    ResId {
        gvk: Gvk::from_api_version(&text("/apiVersion"), &text("/kind")),
        name: text("/metadata/name"),
        namespace: text("/metadata/namespace"),
    }
}

/// Applies strategic-merge patch documents, each to the one object whose current or earlier id
/// is the document's id.
pub fn apply_by_id(
    resources: &mut Vec<Resource>,
    documents: &[Value],
    source: &PatchSource<'_>,
) -> Result<(), RenderError> {
    for document in documents {
        let id = patch_id(document);
        let matches: Vec<usize> = resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.all_ids().iter().any(|other| other.same_object(&id)))
            .map(|(i, _)| i)
            .collect();
        let index = match matches.as_slice() {
            [one] => *one,
            [] => return Err(error(source, format!("no object matches {id}"))),
            many => return Err(error(source, format!("{} objects match {id}", many.len()))),
        };
        apply_smp(resources, index, document, SmpOptions::default(), source)?;
    }
    Ok(())
}

fn apply_smp(
    resources: &mut Vec<Resource>,
    index: usize,
    document: &Value,
    options: SmpOptions,
    source: &PatchSource<'_>,
) -> Result<(), RenderError> {
    let target_id = resources[index].id();
    let target = &resources[index];
    match patch::apply_strategic_merge_patch_marked(
        &target.object,
        &target.written_empty,
        document,
        options,
    )
    .map_err(|e| error(source, format!("on {target_id}: {e}")))?
    {
        Some(patched) => {
            // What the merge walked lost its empty fields; the rest keep their mark.
            let still_null = |path: &Vec<String>| {
                let mut node = &patched;
                for key in path {
                    node = match node {
                        Value::Object(map) => map.get(key),
                        Value::Array(items) => key.parse().ok().and_then(|i: usize| items.get(i)),
                        _ => None,
                    }
                    .unwrap_or(&Value::Bool(false));
                }
                node.is_null()
            };
            resources[index].written_empty.retain(still_null);
            let renamed = patched.pointer("/metadata/name")
                != resources[index].object.pointer("/metadata/name");
            if renamed {
                resources[index].store_previous_id();
            }
            resources[index].object = patched;
        }
        None => {
            resources.remove(index);
        }
    }
    Ok(())
}

/// Indexes of the objects `selector` selects (none is not an error).
fn select(
    resources: &[Resource],
    selector: &Selector,
    source: &PatchSource<'_>,
) -> Result<Vec<usize>, RenderError> {
    let compiled = ObjectSelector::new(selector, true).map_err(|e| error(source, e))?;
    Ok(resources
        .iter()
        .enumerate()
        .filter(|(_, r)| compiled.matches(r))
        .map(|(i, _)| i)
        .collect())
}

/// Applies one `patches:` entry (strategic merge or JSON 6902, told apart by its content).
pub fn apply_entry(
    resources: &mut Vec<Resource>,
    entry: &PatchArgs,
    text: &str,
    source: &PatchSource<'_>,
) -> Result<(), RenderError> {
    let options = SmpOptions {
        allow_name_change: entry
            .options
            .get("allowNameChange")
            .copied()
            .unwrap_or(false),
        allow_kind_change: entry
            .options
            .get("allowKindChange")
            .copied()
            .unwrap_or(false),
    };
    match patch::parse_patch(text).map_err(|e| error(source, e))? {
        ParsedPatch::Json6902(json_patch) => {
            let Some(target) = &entry.target else {
                return Err(error(source, "a JSON 6902 patch needs a target"));
            };
            apply_json6902(resources, &json_patch, target, source)
        }
        ParsedPatch::StrategicMerge(documents) => match &entry.target {
            None => {
                if documents.is_empty() {
                    return Err(error(source, "an empty patch needs a target"));
                }
                for document in &documents {
                    let id = patch_id(document);
                    let index = resources
                        .iter()
                        .position(|r| r.all_ids().iter().any(|other| other.same_object(&id)))
                        .ok_or_else(|| error(source, format!("no object matches {id}")))?;
                    apply_smp(resources, index, document, options, source)?;
                }
                Ok(())
            }
            Some(target) => {
                let document = match documents.as_slice() {
                    [] => return Ok(()),
                    [one] => one,
                    _ => {
                        return Err(error(
                            source,
                            "a patch with a target must be a single document",
                        ));
                    }
                };
                let mut selected = select(resources, target, source)?;
                // Removing objects shifts indexes: go from the back.
                selected.reverse();
                for index in selected {
                    resources[index].store_previous_id();
                    apply_smp(resources, index, document, options, source)?;
                }
                Ok(())
            }
        },
    }
}

/// Applies a JSON 6902 patch to every object `target` selects.
pub fn apply_json6902(
    resources: &mut [Resource],
    json_patch: &Json6902Patch,
    target: &Selector,
    source: &PatchSource<'_>,
) -> Result<(), RenderError> {
    for index in select(resources, target, source)? {
        resources[index].store_previous_id();
        let id = resources[index].id();
        resources[index].object = json_patch
            .apply(&resources[index].object)
            .map_err(|e| error(source, format!("on {id}: {e}")))?;
    }
    Ok(())
}
