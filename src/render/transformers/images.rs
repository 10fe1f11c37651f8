//! `images`: rewrites container image names, tags and digests.

use crate::render::RenderError;
use crate::render::fieldspec::{FieldSpec, PathError};
use crate::render::kustomization::ImageArgs;
use crate::render::resource::Resource;
use regex::Regex;
use serde_json::Value;
use std::fmt::Write;

/// Applies every `images` entry to every `containers`/`initContainers` list in every object but
/// CRDs, then again through the image field specs, as kustomize does (so a `tagSuffix` lands twice
/// on fields both reach, exactly like `kubectl kustomize`).
pub fn apply(
    resources: &mut [Resource],
    entries: &[ImageArgs],
    specs: &[FieldSpec],
) -> Result<(), RenderError> {
    let patterns: Vec<(ImagePattern, &ImageArgs)> = entries
        .iter()
        .filter_map(|entry| ImagePattern::new(&entry.name).map(|pattern| (pattern, entry)))
        .collect();
    if patterns.is_empty() {
        return Ok(());
    }
    // kustomize applies each entry to every object in turn; objects do not affect each other, so
    // each object takes every entry in turn, and its containers are found once.
    for resource in resources.iter_mut() {
        let gvk = resource.gvk();
        let mut container_images = Vec::new();
        if gvk.kind != "CustomResourceDefinition" {
            find_container_images(&resource.object, &mut String::new(), &mut container_images);
        }
        let applicable: Vec<&FieldSpec> = specs.iter().filter(|s| s.applies_to(&gvk)).collect();
        for (pattern, entry) in &patterns {
            for pointer in &container_images {
                if let Some(image) = resource.object.pointer_mut(pointer) {
                    update_image(image, pattern, entry);
                }
            }
            // The image filter never creates fields, whatever the spec says. kustomize v5 fails
            // when a scalar stands where a spec's path goes on (an Istio `instance` has a string
            // `spec.template`); the kustomize kfctl used did not look there, and real Kubeflow
            // manifests rely on that, so such an object is simply not an image holder.
            for spec in &applicable {
                let _not_applicable =
                    spec.visit_creating(false, &mut resource.object, &mut |v: &mut Value| {
                        update_image(v, pattern, entry);
                        Ok::<(), PathError>(())
                    });
            }
        }
    }
    Ok(())
}

/// The JSON pointers of the `image` of every item of every `containers` and `initContainers`
/// list under `node` (at `at`).
fn find_container_images(node: &Value, at: &mut String, found: &mut Vec<String>) {
    let depth = at.len();
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                at.push('/');
                if key.contains(['~', '/']) {
                    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                } else {
                    at.push_str(key);
                }
                find_container_images(value, at, found);
                if (key == "containers" || key == "initContainers")
                    && let Value::Array(containers) = value
                {
                    for (i, container) in containers.iter().enumerate() {
                        if container.get("image").is_some() {
                            found.push(format!("{at}/{i}/image"));
                        }
                    }
                }
                at.truncate(depth);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let _ = write!(at, "/{i}");
                find_container_images(item, at, found);
                at.truncate(depth);
            }
        }
        _ => {}
    }
}

/// Which images an `images` entry's name selects. kustomize reads the name as a regular
/// expression, `^name(:tag)?(@sha256:digest)?$`; one that does not compile selects nothing.
enum ImagePattern {
    /// A name whose only special character is `.` (any one character), as nearly all are:
    /// matched directly, without building a regular expression.
    Plain(Vec<char>),
    Regex(Regex),
}

impl ImagePattern {
    fn new(name: &str) -> Option<Self> {
        if !name.contains([
            '\\', '^', '$', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}',
        ]) {
            return Some(Self::Plain(name.chars().collect()));
        }
        Regex::new(&format!(
            "^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$"
        ))
        .ok()
        .map(Self::Regex)
    }

    fn is_match(&self, image: &str) -> bool {
        let name = match self {
            Self::Regex(regex) => return regex.is_match(image),
            Self::Plain(name) => name,
        };
        let mut chars = image.chars();
        let name_matches = name.iter().all(|&want| {
            chars
                .next()
                .is_some_and(|got| got == want || (want == '.' && got != '\n'))
        });
        if !name_matches {
            return false;
        }
        let rest = chars.as_str();
        let reference_char = |c: char| c.is_ascii_alphanumeric() || "_.{}-".contains(c);
        let rest = match rest.strip_prefix(':') {
            Some(tag) => tag.trim_start_matches(reference_char),
            None => rest,
        };
        match rest.strip_prefix("@sha256:") {
            Some(digest) => digest.trim_start_matches(reference_char).is_empty(),
            None => rest.is_empty(),
        }
    }
}

fn update_image(value: &mut Value, pattern: &ImagePattern, entry: &ImageArgs) {
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
        let pattern = ImagePattern::new("gcr.io/a").expect("pattern");
        let mut v = Value::String("gcr.io/a:v1@sha256:abc".into());
        update_image(&mut v, &pattern, &entry);
        assert_eq!(v, Value::String("gcr.io/a:v2".into()));
    }

    #[test]
    fn plain_names_match_as_the_regular_expression_does() {
        for name in ["gcr.io/a", "docker.io/istio/proxyv2", "a.b", "x"] {
            let plain = ImagePattern::new(name).expect("pattern");
            assert!(matches!(plain, ImagePattern::Plain(_)));
            let regex = ImagePattern::Regex(
                Regex::new(&format!(
                    "^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$"
                ))
                .expect("regex"),
            );
            for image in [
                name.to_string(),
                format!("{name}:v1"),
                format!("{name}:"),
                format!("{name}:v1@sha256:abc"),
                format!("{name}@sha256:x"),
                format!("{name}:v1@sha256:"),
                format!("{name}b"),
                format!("{name}:v1:v2"),
                format!("{name}:v/1"),
                format!("{name}@sha512:x"),
                format!("{name}\n"),
                name.replace('.', "X"),
                name.replace('.', "\n"),
                name[..name.len() - 1].to_string(),
                "é".repeat(name.chars().count()),
            ] {
                assert_eq!(
                    plain.is_match(&image),
                    regex.is_match(&image),
                    "{name} {image:?}"
                );
            }
        }
        assert!(matches!(
            ImagePattern::new("gcr.io/(a|b)"),
            Some(ImagePattern::Regex(_))
        ));
        assert!(ImagePattern::new("gcr.io/(a").is_none());
    }
}
