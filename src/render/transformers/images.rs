//! `images`: rewrites container image names, tags and digests.

use crate::render::RenderError;
use crate::render::fieldspec::{FieldSpec, PathError};
use crate::render::kustomization::ImageArgs;
use crate::render::resource::Resource;
use regex::Regex;
use serde_json::Value;

/// Applies every `images` entry to every `containers`/`initContainers` list in every object but
/// CRDs, then again through the image field specs, as kustomize does (so a `tagSuffix` lands twice
/// on fields both reach, exactly like `kubectl kustomize`).
pub fn apply(
    resources: &mut [Resource],
    entries: &[ImageArgs],
    specs: &[FieldSpec],
) -> Result<(), RenderError> {
    for entry in entries {
        // kustomize treats the name as a regular expression; one that does not compile matches nothing.
        let Ok(pattern) = Regex::new(&format!(
            "^{}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$",
            entry.name
        )) else {
            continue;
        };
        for resource in resources.iter_mut() {
            if resource.gvk().kind != "CustomResourceDefinition" {
                walk_containers(&mut resource.object, &pattern, entry);
            }
            let gvk = resource.gvk();
            // The image filter never creates fields, whatever the spec says. kustomize v5 fails
            // when a scalar stands where a spec's path goes on (an Istio `instance` has a string
            // `spec.template`); the kustomize kfctl used did not look there, and real Kubeflow
            // manifests rely on that, so such an object is simply not an image holder.
            for spec in specs.iter().filter(|s| s.applies_to(&gvk)) {
                let spec = FieldSpec {
                    create: false,
                    ..spec.clone()
                };
                let _not_applicable = spec.visit(&mut resource.object, &mut |v: &mut Value| {
                    update_image(v, &pattern, entry);
                    Ok::<(), PathError>(())
                });
            }
        }
    }
    Ok(())
}

fn walk_containers(node: &mut Value, pattern: &Regex, entry: &ImageArgs) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                walk_containers(value, pattern, entry);
                if (key == "containers" || key == "initContainers")
                    && let Value::Array(containers) = value
                {
                    for container in containers {
                        if let Some(image) = container.get_mut("image") {
                            update_image(image, pattern, entry);
                        }
                    }
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| walk_containers(item, pattern, entry)),
        _ => {}
    }
}

fn update_image(value: &mut Value, pattern: &Regex, entry: &ImageArgs) {
    let Value::String(image) = value else { return };
    if !pattern.is_match(image) {
        return;
    }
    let (mut name, mut tag, mut digest) = split_image(image);
    if !entry.new_name.is_empty() {
        name = entry.new_name.clone();
    }
    if !entry.new_tag.is_empty() && !entry.digest.is_empty() {
        tag = entry.new_tag.clone();
        digest = entry.digest.clone();
    } else if !entry.new_tag.is_empty() {
        tag = entry.new_tag.clone();
        digest.clear();
    } else if !entry.digest.is_empty() {
        tag.clear();
        digest = entry.digest.clone();
    } else if !entry.tag_suffix.is_empty() {
        tag.push_str(&entry.tag_suffix);
        digest.clear();
    }
    let mut result = name;
    if !tag.is_empty() {
        result = format!("{result}:{tag}");
    }
    if !digest.is_empty() {
        result = format!("{result}@{digest}");
    }
    *image = result;
}

/// Splits `registry/name:tag@digest` the way kustomize does (a `:` before the first `/` is a port).
pub fn split_image(image: &str) -> (String, String, String) {
    let slash = image.find('/').filter(|&i| i > 0).unwrap_or(0);
    let search = &image[slash..];
    let at = search.find('@').map(|i| i + slash);
    let colon = search.find(':').map(|i| i + slash);
    match (colon, at) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (colon, Some(at)) if colon.is_none_or(|c| at < c) => (
            image[..at].to_string(),
            String::new(),
            image[at + 1..].to_string(),
        ),
        (Some(colon), Some(at)) => (
            image[..colon].to_string(),
            image[colon + 1..at].to_string(),
            image[at + 1..].to_string(),
        ),
        (Some(colon), None) => (
            image[..colon].to_string(),
            image[colon + 1..].to_string(),
            String::new(),
        ),
        (None, Some(_)) => (image.to_string(), String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_kustomize() {
        let s = |i: &str| {
            let (n, t, d) = split_image(i);
            (n, t, d)
        };
        assert_eq!(s("nginx"), ("nginx".into(), "".into(), "".into()));
        assert_eq!(s("nginx:1.2"), ("nginx".into(), "1.2".into(), "".into()));
        assert_eq!(
            s("reg:5000/a/b:v1"),
            ("reg:5000/a/b".into(), "v1".into(), "".into())
        );
        assert_eq!(s("a@sha256:x"), ("a".into(), "".into(), "sha256:x".into()));
        assert_eq!(
            s("a:t@sha256:x"),
            ("a".into(), "t".into(), "sha256:x".into())
        );
    }

    #[test]
    fn new_tag_clears_digest() {
        let entry = ImageArgs {
            name: "gcr.io/a".into(),
            new_tag: "v2".into(),
            ..Default::default()
        };
        let pattern = Regex::new("^gcr.io/a(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9_.{}-]*)?$")
            .expect("regex");
        let mut v = Value::String("gcr.io/a:v1@sha256:abc".into());
        update_image(&mut v, &pattern, &entry);
        assert_eq!(v, Value::String("gcr.io/a:v2".into()));
    }
}
