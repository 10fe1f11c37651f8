//! The strategic-merge schema: which lists of a built-in kind merge element by element, and on
//! which keys. The data is generated into `merge_keys.rs` by `hack/gen-merge-keys.py`.

use super::merge_keys::{KINDS, OBJECTS};

/// What the schema says about one node, as kyaml's `ResourceSchema` would answer a merge.
///
/// `Leaf` stands for every known node below which no merge list can be reached: objects without
/// such lists, scalars, and lists that are replaced wholesale. A node the schema does not know at
/// all is `None` where a `Schema` is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Schema {
    Leaf,
    Object(u16),
    List(&'static ListSchema),
}

/// An object type on the way to a merge list.
#[derive(Debug)]
pub(super) struct ObjectSchema {
    pub fields: &'static [Field],
    /// The schema of every value of a map type (`additionalProperties`).
    pub additional: Option<Schema>,
}

/// One field of an [`ObjectSchema`] that leads to a merge list.
#[derive(Debug)]
pub(super) struct Field {
    pub name: &'static str,
    pub schema: Schema,
}

/// A list with `x-kubernetes-patch-strategy` including `merge`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ListSchema {
    /// The whole `x-kubernetes-patch-strategy`, e.g. `merge` or `merge,retainKeys`.
    pub strategy: &'static str,
    /// `x-kubernetes-list-map-keys` if set, else `[x-kubernetes-patch-merge-key]`, else empty
    /// (a list of scalars such as `finalizers`).
    pub keys: &'static [&'static str],
    pub items: Schema,
}

impl Schema {
    /// The schema of the top-level kind `apiVersion`/`kind`, if it is a built-in kind.
    pub fn for_kind(api_version: &str, kind: &str) -> Option<Schema> {
        KINDS
            .binary_search_by(|(a, k, _)| (*a, *k).cmp(&(api_version, kind)))
            .ok()
            .and_then(|i| KINDS.get(i))
            .map(|(_, _, object)| Schema::Object(*object))
    }

    /// The schema of field `name` of a map described by `self`.
    pub fn field(self, name: &str) -> Schema {
        let Schema::Object(index) = self else {
            return Schema::Leaf;
        };
        let Some(object) = OBJECTS.get(usize::from(index)) else {
            return Schema::Leaf;
        };
        object
            .fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.schema)
            .or(object.additional)
            .unwrap_or(Schema::Leaf)
    }

    /// The schema of the elements of a list described by `self`.
    pub fn elements(self) -> Schema {
        match self {
            Schema::List(list) => list.items,
            _ => Schema::Leaf,
        }
    }

    /// The merge keys of an associative list (one whose strategy includes `merge`), else `None`.
    pub fn merge_keys(self) -> Option<&'static [&'static str]> {
        match self {
            Schema::List(list) if list.strategy.split(',').any(|s| s == "merge") => Some(list.keys),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(api_version: &str, kind: &str, fields: &[&str]) -> Option<Schema> {
        let mut schema = Schema::for_kind(api_version, kind)?;
        for f in fields {
            schema = if *f == "[]" {
                schema.elements()
            } else {
                schema.field(f)
            };
        }
        Some(schema)
    }

    #[test]
    fn kinds_are_sorted_for_binary_search() {
        assert!(
            KINDS
                .windows(2)
                .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
        );
        assert!(KINDS.iter().all(|k| usize::from(k.2) < OBJECTS.len()));
    }

    #[test]
    fn deployment_containers_merge_by_name() {
        let containers = path(
            "apps/v1",
            "Deployment",
            &["spec", "template", "spec", "containers"],
        );
        assert_eq!(containers.and_then(Schema::merge_keys), Some(&["name"][..]));
        let env = path(
            "apps/v1",
            "Deployment",
            &["spec", "template", "spec", "containers", "[]", "env"],
        );
        assert_eq!(env.and_then(Schema::merge_keys), Some(&["name"][..]));
        let ports = path(
            "apps/v1",
            "Deployment",
            &["spec", "template", "spec", "containers", "[]", "ports"],
        );
        assert_eq!(
            ports.and_then(Schema::merge_keys),
            Some(&["containerPort", "protocol"][..])
        );
        let volumes = path(
            "apps/v1",
            "Deployment",
            &["spec", "template", "spec", "volumes"],
        );
        assert!(matches!(volumes, Some(Schema::List(l)) if l.strategy == "merge,retainKeys"));
    }

    #[test]
    fn service_ports_merge_by_port_and_protocol() {
        let ports = path("v1", "Service", &["spec", "ports"]);
        assert_eq!(
            ports.and_then(Schema::merge_keys),
            Some(&["port", "protocol"][..])
        );
    }

    #[test]
    fn finalizers_merge_as_scalars() {
        let finalizers = path("v1", "ConfigMap", &["metadata", "finalizers"]);
        assert_eq!(finalizers.and_then(Schema::merge_keys), Some(&[][..]));
    }

    #[test]
    fn lists_without_merge_strategy_are_leaves() {
        assert_eq!(
            path(
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "tolerations"]
            ),
            Some(Schema::Leaf)
        );
        assert_eq!(
            path("rbac.authorization.k8s.io/v1", "ClusterRole", &["rules"]),
            Some(Schema::Leaf)
        );
    }

    #[test]
    fn removed_kinds_of_kustomizes_spec_are_known() {
        let webhooks = path(
            "admissionregistration.k8s.io/v1beta1",
            "MutatingWebhookConfiguration",
            &["webhooks"],
        );
        assert_eq!(webhooks.and_then(Schema::merge_keys), Some(&["name"][..]));
    }

    #[test]
    fn kinds_removed_before_kustomizes_spec_are_unknown() {
        // kustomize v5.5 embeds the 1.21 spec, which no longer had these: their lists are
        // replaced wholesale, like a custom resource's.
        assert_eq!(Schema::for_kind("extensions/v1beta1", "Deployment"), None);
        assert_eq!(Schema::for_kind("apps/v1beta1", "Deployment"), None);
        assert!(Schema::for_kind("extensions/v1beta1", "Ingress").is_some());
    }

    #[test]
    fn generated_table_is_fresh() {
        // Regenerates the table from the specs in the Go module cache (never downloading them)
        // and compares; skips where Python, Go or the specs are missing.
        let output = std::process::Command::new("python3")
            .args(["hack/gen-merge-keys.py", "--check"])
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .output();
        match output {
            Ok(out) if out.status.success() => {}
            Ok(out) if out.status.code() == Some(2) => {
                eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr).trim())
            }
            Ok(out) => panic!(
                "src/patch/merge_keys.rs is stale, run hack/gen-merge-keys.py: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("skipped: cannot run python3: {e}"),
        }
    }

    #[test]
    fn custom_kinds_have_no_schema() {
        assert_eq!(Schema::for_kind("example.com/v1", "Widget"), None);
        assert_eq!(Schema::for_kind("v1", "DeploymentList"), None);
    }
}
