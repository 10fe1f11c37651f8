//! Where each transformer writes: kustomize's built-in field specs, extended by a kustomization's
//! `configurations` files (same schema as kustomize's `configurations`).

use super::fieldspec::FieldSpec;
use super::kustomization::{FieldSpecArgs, normalize_keys};
use super::resource::Gvk;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// "Objects of kind `target` are referred to by name from these fields."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameBackReference {
    pub target: Gvk,
    pub referrers: Vec<FieldSpec>,
}

/// A list of field specs, shared until one configuration changes it.
pub type SharedSpecs = Arc<Vec<FieldSpec>>;

/// Field specs for every transformer that uses them. The lists are shared between the
/// configurations of a build (every directory starts from the built-in one) and copied when one
/// of them changes.
#[derive(Debug, Clone, Default)]
pub struct TransformerConfig {
    pub name_prefix: SharedSpecs,
    pub name_suffix: SharedSpecs,
    pub namespace: SharedSpecs,
    pub common_labels: SharedSpecs,
    pub template_labels: SharedSpecs,
    pub common_annotations: SharedSpecs,
    pub name_reference: Arc<Vec<NameBackReference>>,
    pub var_reference: SharedSpecs,
    pub images: SharedSpecs,
    pub replicas: SharedSpecs,
}

/// A `configurations` file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ConfigurationFile {
    name_prefix: Vec<FieldSpecArgs>,
    name_suffix: Vec<FieldSpecArgs>,
    namespace: Vec<FieldSpecArgs>,
    common_labels: Vec<FieldSpecArgs>,
    template_labels: Vec<FieldSpecArgs>,
    common_annotations: Vec<FieldSpecArgs>,
    name_reference: Vec<NameReferenceArgs>,
    var_reference: Vec<FieldSpecArgs>,
    images: Vec<FieldSpecArgs>,
    replicas: Vec<FieldSpecArgs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct NameReferenceArgs {
    group: String,
    version: String,
    kind: String,
    field_specs: Vec<FieldSpecArgs>,
}

impl ConfigurationFile {
    /// Reads a `configurations` file's document. Field specs of the kfctl era may carry
    /// `apiGroup` (read as `group`) and `apiVersion` (ignored), which kustomize v2/v3 took and v5
    /// refuses; kfop takes them and returns one warning per file that uses them.
    pub fn from_value(document: Value) -> Result<(Self, Option<String>), String> {
        let mut document = normalize_keys(document);
        let mut legacy = std::collections::BTreeSet::new();
        if let Value::Object(map) = &mut document {
            for (key, list) in map.iter_mut() {
                let Value::Array(entries) = list else {
                    continue;
                };
                for entry in entries.iter_mut() {
                    accept_legacy_gvk(entry, &mut legacy);
                    if key == "nameReference"
                        && let Some(Value::Array(specs)) = entry.get_mut("fieldSpecs")
                    {
                        for spec in specs {
                            accept_legacy_gvk(spec, &mut legacy);
                        }
                    }
                }
            }
        }
        let file = serde_json::from_value(document).map_err(|e| e.to_string())?;
        let warning = (!legacy.is_empty()).then(|| {
            format!(
                "field specs use {} (kustomize v2/v3 fields that kustomize v5 refuses): `apiGroup` is read as `group`, `apiVersion` is ignored",
                legacy.into_iter().collect::<Vec<_>>().join(" and ")
            )
        });
        Ok((file, warning))
    }
}

/// Moves a field spec's `apiGroup` into `group` (unless it has one) and drops its `apiVersion`,
/// noting which of them it had.
fn accept_legacy_gvk(spec: &mut Value, found: &mut std::collections::BTreeSet<&'static str>) {
    let Value::Object(map) = spec else {
        return;
    };
    if let Some(group) = map.remove("apiGroup") {
        found.insert("apiGroup");
        map.entry("group").or_insert(group);
    }
    if map.remove("apiVersion").is_some() {
        found.insert("apiVersion");
    }
}

impl From<&FieldSpecArgs> for FieldSpec {
    fn from(args: &FieldSpecArgs) -> Self {
        FieldSpec::new(
            &args.group,
            &args.version,
            &args.kind,
            &args.path,
            args.create,
        )
    }
}

fn merge_specs(into: &mut SharedSpecs, from: &[FieldSpecArgs]) {
    let specs: Vec<FieldSpec> = from.iter().map(FieldSpec::from).collect();
    append_missing(into, &specs);
}

/// Appends the specs of `from` that `into` does not hold yet, in order; a list shared with
/// `from` is left as it is.
fn append_missing(into: &mut SharedSpecs, from: &[FieldSpec]) {
    if std::ptr::eq(into.as_slice(), from) {
        return;
    }
    let missing = missing_specs(into, from);
    if !missing.is_empty() {
        Arc::make_mut(into).extend(missing);
    }
}

/// The specs of `from` that `held` does not hold, in order, each once (one pass over each:
/// configurations are merged once per directory of a build).
fn missing_specs(held: &[FieldSpec], from: &[FieldSpec]) -> Vec<FieldSpec> {
    use std::hash::{BuildHasher, RandomState};
    let hasher = RandomState::new();
    let mut seen: std::collections::HashMap<u64, Vec<&FieldSpec>> =
        std::collections::HashMap::new();
    for spec in held {
        seen.entry(hasher.hash_one(spec)).or_default().push(spec);
    }
    let mut missing = Vec::new();
    for spec in from {
        let same = seen.entry(hasher.hash_one(spec)).or_default();
        if !same.contains(&spec) {
            same.push(spec);
            missing.push(spec.clone());
        }
    }
    missing
}

impl TransformerConfig {
    /// Adds a `configurations` file's specs (duplicates are dropped).
    pub fn merge_file(&mut self, file: &ConfigurationFile) {
        merge_specs(&mut self.name_prefix, &file.name_prefix);
        merge_specs(&mut self.name_suffix, &file.name_suffix);
        merge_specs(&mut self.namespace, &file.namespace);
        merge_specs(&mut self.common_labels, &file.common_labels);
        merge_specs(&mut self.template_labels, &file.template_labels);
        merge_specs(&mut self.common_annotations, &file.common_annotations);
        merge_specs(&mut self.var_reference, &file.var_reference);
        merge_specs(&mut self.images, &file.images);
        merge_specs(&mut self.replicas, &file.replicas);
        for entry in &file.name_reference {
            let target = Gvk {
                group: entry.group.clone(),
                version: entry.version.clone(),
                kind: entry.kind.clone(),
            };
            self.add_name_references(target, entry.field_specs.iter().map(FieldSpec::from));
        }
    }

    /// Adds referrer fields for `target`, merging with an existing entry for it.
    pub fn add_name_references(
        &mut self,
        target: Gvk,
        referrers: impl IntoIterator<Item = FieldSpec>,
    ) {
        let referrers: Vec<FieldSpec> = referrers.into_iter().collect();
        let references = Arc::make_mut(&mut self.name_reference);
        match references.iter_mut().find(|r| r.target == target) {
            Some(entry) => {
                let missing = missing_specs(&entry.referrers, &referrers);
                entry.referrers.extend(missing);
            }
            None => references.push(NameBackReference {
                target,
                referrers: missing_specs(&[], &referrers),
            }),
        }
    }

    /// Merges another configuration into this one.
    pub fn merge(&mut self, other: &TransformerConfig) {
        let lists: [(&mut SharedSpecs, &SharedSpecs); 9] = [
            (&mut self.name_prefix, &other.name_prefix),
            (&mut self.name_suffix, &other.name_suffix),
            (&mut self.namespace, &other.namespace),
            (&mut self.common_labels, &other.common_labels),
            (&mut self.template_labels, &other.template_labels),
            (&mut self.common_annotations, &other.common_annotations),
            (&mut self.var_reference, &other.var_reference),
            (&mut self.images, &other.images),
            (&mut self.replicas, &other.replicas),
        ];
        for (into, from) in lists {
            append_missing(into, from);
        }
        if Arc::ptr_eq(&self.name_reference, &other.name_reference) {
            return;
        }
        for reference in other.name_reference.iter() {
            match self
                .name_reference
                .iter()
                .position(|r| r.target == reference.target)
            {
                Some(index) => {
                    let missing =
                        missing_specs(&self.name_reference[index].referrers, &reference.referrers);
                    if !missing.is_empty() {
                        Arc::make_mut(&mut self.name_reference)[index]
                            .referrers
                            .extend(missing);
                    }
                }
                None => Arc::make_mut(&mut self.name_reference).push(reference.clone()),
            }
        }
    }

    /// kustomize's built-in configuration.
    pub fn builtin() -> Self {
        static BUILTIN: std::sync::OnceLock<TransformerConfig> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(Self::make_builtin).clone()
    }

    fn make_builtin() -> Self {
        let spec = |group: &str, version: &str, kind: &str, path: &str, create: bool| {
            FieldSpec::new(group, version, kind, path, create)
        };
        let mut config = TransformerConfig {
            name_prefix: vec![spec("", "", "", "metadata/name", false)].into(),
            name_suffix: vec![spec("", "", "", "metadata/name", false)].into(),
            namespace: vec![
                spec("", "", "Namespace", "metadata/name", true),
                spec(
                    "apiregistration.k8s.io",
                    "",
                    "APIService",
                    "spec/service/namespace",
                    true,
                ),
                spec(
                    "apiextensions.k8s.io",
                    "",
                    "CustomResourceDefinition",
                    "spec/conversion/webhook/clientConfig/service/namespace",
                    false,
                ),
            ]
            .into(),
            images: ["spec/containers[]/image", "spec/initContainers[]/image"]
                .iter()
                .chain(&[
                    "spec/template/spec/containers[]/image",
                    "spec/template/spec/initContainers[]/image",
                ])
                .map(|path| spec("", "", "", path, true))
                .collect::<Vec<_>>()
                .into(),
            replicas: [
                "Deployment",
                "ReplicationController",
                "ReplicaSet",
                "StatefulSet",
            ]
            .iter()
            .map(|kind| spec("", "", kind, "spec/replicas", true))
            .collect::<Vec<_>>()
            .into(),
            ..Default::default()
        };

        // Labels in object metadata and in the templates of workloads.
        let metadata_labels = {
            let mut specs = vec![spec("", "", "", "metadata/labels", true)];
            specs.push(spec(
                "",
                "v1",
                "ReplicationController",
                "spec/template/metadata/labels",
                true,
            ));
            for kind in ["Deployment", "ReplicaSet", "DaemonSet"] {
                specs.push(spec("", "", kind, "spec/template/metadata/labels", true));
            }
            specs.push(spec(
                "apps",
                "",
                "StatefulSet",
                "spec/template/metadata/labels",
                true,
            ));
            specs.push(spec(
                "apps",
                "",
                "StatefulSet",
                "spec/volumeClaimTemplates[]/metadata/labels",
                true,
            ));
            specs.push(spec(
                "batch",
                "",
                "Job",
                "spec/template/metadata/labels",
                true,
            ));
            specs.push(spec(
                "batch",
                "",
                "CronJob",
                "spec/jobTemplate/metadata/labels",
                true,
            ));
            specs.push(spec(
                "batch",
                "",
                "CronJob",
                "spec/jobTemplate/spec/template/metadata/labels",
                true,
            ));
            specs
        };
        config.template_labels = metadata_labels.clone().into();

        let mut selectors = vec![
            spec("", "v1", "Service", "spec/selector", true),
            spec("", "v1", "ReplicationController", "spec/selector", true),
            spec("", "", "Deployment", "spec/selector/matchLabels", true),
        ];
        let affinity = [
            "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
            "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
            "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
            "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
            "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        ];
        selectors.extend(
            affinity
                .iter()
                .map(|p| spec("apps", "", "Deployment", p, false)),
        );
        selectors.push(spec(
            "",
            "",
            "ReplicaSet",
            "spec/selector/matchLabels",
            true,
        ));
        selectors.push(spec("", "", "DaemonSet", "spec/selector/matchLabels", true));
        selectors.push(spec(
            "apps",
            "",
            "StatefulSet",
            "spec/selector/matchLabels",
            true,
        ));
        selectors.extend(
            affinity
                .iter()
                .map(|p| spec("apps", "", "StatefulSet", p, false)),
        );
        selectors.push(spec("batch", "", "Job", "spec/selector/matchLabels", false));
        selectors.push(spec(
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/spec/selector/matchLabels",
            false,
        ));
        selectors.push(spec(
            "policy",
            "",
            "PodDisruptionBudget",
            "spec/selector/matchLabels",
            false,
        ));
        for path in [
            "spec/podSelector/matchLabels",
            "spec/ingress/from/podSelector/matchLabels",
            "spec/egress/to/podSelector/matchLabels",
        ] {
            selectors.push(spec("networking.k8s.io", "", "NetworkPolicy", path, false));
        }
        selectors.extend(metadata_labels);
        config.common_labels = selectors.into();

        let mut annotations = vec![
            spec("", "", "", "metadata/annotations", true),
            spec(
                "",
                "v1",
                "ReplicationController",
                "spec/template/metadata/annotations",
                true,
            ),
        ];
        for kind in ["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"] {
            annotations.push(spec(
                "",
                "",
                kind,
                "spec/template/metadata/annotations",
                true,
            ));
        }
        for (kind, path) in [
            ("Job", "spec/template/metadata/annotations"),
            ("CronJob", "spec/jobTemplate/metadata/annotations"),
            (
                "CronJob",
                "spec/jobTemplate/spec/template/metadata/annotations",
            ),
        ] {
            annotations.push(spec("batch", "", kind, path, true));
        }
        config.common_annotations = annotations.into();
        config.var_reference = builtin_var_references().into();
        builtin_name_references(&mut config);
        config
    }
}

/// The workloads kustomize lists for service-account, claim and priority-class references.
const WORKLOADS: &[&str] = &[
    "Pod",
    "StatefulSet",
    "Deployment",
    "ReplicationController",
    "CronJob",
    "Job",
    "DaemonSet",
];

/// Workload kinds and where their pod spec sits.
const POD_SPECS: &[(&str, &str)] = &[
    ("Pod", "spec"),
    ("PodTemplate", "template/spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicaSet", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
    ("ReplicationController", "spec/template/spec"),
];

/// Referrer specs for `suffixes` inside the pod spec of each of `kinds`; `pod_version` restricts
/// the `Pod` entries to a version (kustomize pins ConfigMap and Secret references to `v1` Pods).
fn pod_spec_paths(kinds: &[&str], pod_version: &str, suffixes: &[&str]) -> Vec<FieldSpec> {
    let mut specs = Vec::new();
    for (kind, prefix) in POD_SPECS.iter().filter(|(k, _)| kinds.contains(k)) {
        let version = if *kind == "Pod" { pod_version } else { "" };
        for suffix in suffixes {
            specs.push(FieldSpec::new(
                "",
                version,
                kind,
                &format!("{prefix}/{suffix}"),
                false,
            ));
        }
    }
    specs
}

fn builtin_var_references() -> Vec<FieldSpec> {
    let mut specs = Vec::new();
    let container_fields = ["args", "command", "env/value", "volumeMounts/mountPath"];
    for (kind, prefix) in [
        ("CronJob", "spec/jobTemplate/spec/template/spec"),
        ("DaemonSet", "spec/template/spec"),
        ("Deployment", "spec/template/spec"),
        ("Job", "spec/template/spec"),
        ("Pod", "spec"),
        ("ReplicaSet", "spec/template/spec"),
        ("StatefulSet", "spec/template/spec"),
    ] {
        for containers in ["containers", "initContainers"] {
            for field in container_fields {
                specs.push(FieldSpec::new(
                    "",
                    "",
                    kind,
                    &format!("{prefix}/{containers}/{field}"),
                    false,
                ));
            }
        }
        let nfs = match kind {
            // kustomize's CronJob entry omits the pod spec's `spec` level.
            "CronJob" => "spec/jobTemplate/spec/template/volumes/nfs/server".to_string(),
            "StatefulSet" => "spec/volumeClaimTemplates/spec/nfs/server".to_string(),
            _ => format!("{prefix}/volumes/nfs/server"),
        };
        specs.push(FieldSpec::new("", "", kind, &nfs, false));
        if kind == "Deployment" {
            specs.push(FieldSpec::new(
                "",
                "",
                kind,
                "spec/template/metadata/annotations",
                false,
            ));
        }
    }
    for path in ["spec/rules/host", "spec/tls/hosts", "spec/tls/secretName"] {
        specs.push(FieldSpec::new("", "", "Ingress", path, false));
    }
    for path in ["spec/ports/port", "spec/ports/targetPort"] {
        specs.push(FieldSpec::new("", "", "Service", path, false));
    }
    specs.push(FieldSpec::new(
        "",
        "",
        "PersistentVolume",
        "spec/nfs/server",
        false,
    ));
    specs.push(FieldSpec::new("", "", "", "metadata/labels", false));
    specs.push(FieldSpec::new("", "", "", "metadata/annotations", false));
    specs
}

fn builtin_name_references(config: &mut TransformerConfig) {
    let gvk = |group: &str, version: &str, kind: &str| Gvk {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
    };
    let spec = |group: &str, kind: &str, path: &str| FieldSpec::new(group, "", kind, path, false);
    let all_workloads = [
        "Pod",
        "PodTemplate",
        "Deployment",
        "ReplicaSet",
        "DaemonSet",
        "StatefulSet",
        "Job",
        "CronJob",
    ];

    for kind in [
        "Deployment",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
    ] {
        config.add_name_references(
            gvk("", "", kind),
            [spec(
                "",
                "HorizontalPodAutoscaler",
                "spec/scaleTargetRef/name",
            )],
        );
    }

    let mut config_map_refs = pod_spec_paths(
        &all_workloads,
        "v1",
        &[
            "volumes/configMap/name",
            "containers/env/valueFrom/configMapKeyRef/name",
            "initContainers/env/valueFrom/configMapKeyRef/name",
            "containers/envFrom/configMapRef/name",
            "initContainers/envFrom/configMapRef/name",
            "volumes/projected/sources/configMap/name",
        ],
    );
    config_map_refs.push(spec("", "Node", "spec/configSource/configMap"));
    config_map_refs.push(spec("", "Role", "rules/resourceNames"));
    config_map_refs.push(spec("", "ClusterRole", "rules/resourceNames"));
    config_map_refs.push(spec(
        "",
        "Ingress",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap",
    ));
    config.add_name_references(gvk("", "v1", "ConfigMap"), config_map_refs);

    let mut secret_refs = pod_spec_paths(
        &all_workloads,
        "v1",
        &[
            "volumes/secret/secretName",
            "containers/env/valueFrom/secretKeyRef/name",
            "initContainers/env/valueFrom/secretKeyRef/name",
            "containers/envFrom/secretRef/name",
            "initContainers/envFrom/secretRef/name",
            "imagePullSecrets/name",
            "volumes/projected/sources/secret/name",
        ],
    );
    secret_refs.extend([
        spec("", "Ingress", "spec/tls/secretName"),
        spec(
            "",
            "Ingress",
            "metadata/annotations/ingress.kubernetes.io\\/auth-secret",
        ),
        spec(
            "",
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret",
        ),
        spec(
            "",
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret",
        ),
        spec("", "ServiceAccount", "imagePullSecrets/name"),
        spec("", "StorageClass", "parameters/secretName"),
        spec("", "StorageClass", "parameters/adminSecretName"),
        spec("", "StorageClass", "parameters/userSecretName"),
        spec("", "StorageClass", "parameters/secretRef"),
        spec("", "Role", "rules/resourceNames"),
        spec("", "ClusterRole", "rules/resourceNames"),
        FieldSpec::new(
            "serving.knative.dev",
            "v1",
            "Service",
            "spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
            false,
        ),
        spec("", "PersistentVolume", "spec/azureFile/secretName"),
    ]);
    config.add_name_references(gvk("", "v1", "Secret"), secret_refs);

    config.add_name_references(
        gvk("", "v1", "Service"),
        [
            spec("apps", "StatefulSet", "spec/serviceName"),
            spec("", "Ingress", "spec/rules/http/paths/backend/serviceName"),
            spec("", "Ingress", "spec/backend/serviceName"),
            spec("", "Ingress", "spec/rules/http/paths/backend/service/name"),
            spec("", "Ingress", "spec/defaultBackend/service/name"),
            spec("apiregistration.k8s.io", "APIService", "spec/service/name"),
            spec(
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
                "webhooks/clientConfig/service",
            ),
            spec(
                "admissionregistration.k8s.io",
                "MutatingWebhookConfiguration",
                "webhooks/clientConfig/service",
            ),
        ],
    );

    let rbac = "rbac.authorization.k8s.io";
    config.add_name_references(
        gvk(rbac, "", "Role"),
        [spec(rbac, "RoleBinding", "roleRef/name")],
    );
    config.add_name_references(
        gvk(rbac, "", "ClusterRole"),
        [
            spec(rbac, "RoleBinding", "roleRef/name"),
            spec(rbac, "ClusterRoleBinding", "roleRef/name"),
        ],
    );

    let mut service_account_refs = vec![
        spec(rbac, "RoleBinding", "subjects"),
        spec(rbac, "ClusterRoleBinding", "subjects"),
    ];
    service_account_refs.extend(pod_spec_paths(WORKLOADS, "", &["serviceAccountName"]));
    config.add_name_references(gvk("", "v1", "ServiceAccount"), service_account_refs);

    config.add_name_references(
        gvk("", "v1", "PersistentVolumeClaim"),
        pod_spec_paths(WORKLOADS, "", &["volumes/persistentVolumeClaim/claimName"]),
    );
    config.add_name_references(
        gvk("", "v1", "PersistentVolume"),
        [
            spec("", "PersistentVolumeClaim", "spec/volumeName"),
            spec("", "ClusterRole", "rules/resourceNames"),
        ],
    );
    config.add_name_references(
        gvk("storage.k8s.io", "v1", "StorageClass"),
        [
            spec("", "PersistentVolume", "spec/storageClassName"),
            spec("", "PersistentVolumeClaim", "spec/storageClassName"),
            spec(
                "",
                "StatefulSet",
                "spec/volumeClaimTemplates/spec/storageClassName",
            ),
        ],
    );
    config.add_name_references(
        gvk("scheduling.k8s.io", "v1", "PriorityClass"),
        pod_spec_paths(WORKLOADS, "", &["priorityClassName"]),
    );
    config.add_name_references(
        gvk("networking.k8s.io", "v1", "IngressClass"),
        [spec("", "Ingress", "spec/ingressClassName")],
    );
    let admission = "admissionregistration.k8s.io";
    config.add_name_references(
        gvk(admission, "", "ValidatingAdmissionPolicy"),
        [spec(
            admission,
            "ValidatingAdmissionPolicyBinding",
            "spec/policyName",
        )],
    );
}
