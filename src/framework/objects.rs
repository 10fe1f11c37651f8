//! The objects a framework attempt consists of, built as FrameworkController builds them: the
//! attempt ConfigMap `{framework}-attempt` (owned by the framework, deleted in the foreground) and
//! each task's pod `{framework}-{role}-{index}` (owned by the ConfigMap), with the `FC_*` labels,
//! annotations and environment and the `{{FC_…}}` placeholders replaced.

use super::api::{Framework, FrameworkStatus, TaskRoleStatus, TaskStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use serde_json::Value;
use std::collections::BTreeMap;

/// Annotation, label and environment variable: the framework's namespace.
pub const FRAMEWORK_NAMESPACE: &str = "FC_FRAMEWORK_NAMESPACE";
/// Annotation, label and environment variable: the framework's name.
pub const FRAMEWORK_NAME: &str = "FC_FRAMEWORK_NAME";
/// Annotation, label and environment variable: the task's role.
pub const TASKROLE_NAME: &str = "FC_TASKROLE_NAME";
/// Annotation, label and environment variable: the task's index.
pub const TASK_INDEX: &str = "FC_TASK_INDEX";
/// Annotation and environment variable: the attempt ConfigMap's name.
pub const CONFIGMAP_NAME: &str = "FC_CONFIGMAP_NAME";
/// Annotation and environment variable: the pod's name.
pub const POD_NAME: &str = "FC_POD_NAME";
/// Annotation and environment variable: the framework's UID.
pub const FRAMEWORK_UID: &str = "FC_FRAMEWORK_UID";
/// Annotation and environment variable: the framework attempt id.
pub const FRAMEWORK_ATTEMPT_ID: &str = "FC_FRAMEWORK_ATTEMPT_ID";
/// Annotation and environment variable: `{attempt id}_{ConfigMap UID}`.
pub const FRAMEWORK_ATTEMPT_INSTANCE_UID: &str = "FC_FRAMEWORK_ATTEMPT_INSTANCE_UID";
/// Annotation and environment variable: the attempt ConfigMap's UID.
pub const CONFIGMAP_UID: &str = "FC_CONFIGMAP_UID";
/// Annotation and environment variable: the task role instance's UID.
pub const TASKROLE_UID: &str = "FC_TASKROLE_UID";
/// Annotation and environment variable: the task instance's UID.
pub const TASK_UID: &str = "FC_TASK_UID";
/// Annotation and environment variable: the task attempt id.
pub const TASK_ATTEMPT_ID: &str = "FC_TASK_ATTEMPT_ID";
/// Environment variable: `{task attempt id}_{pod UID}`.
pub const TASK_ATTEMPT_INSTANCE_UID: &str = "FC_TASK_ATTEMPT_INSTANCE_UID";
/// Environment variable: the pod's UID.
pub const POD_UID: &str = "FC_POD_UID";

/// The attempt ConfigMap's name.
pub fn config_map_name(framework: &str) -> String {
    format!("{framework}-attempt")
}

/// A task's pod name.
pub fn pod_name(framework: &str, role: &str, index: i32) -> String {
    format!("{framework}-{role}-{index}")
}

/// A controller owner reference to `owner`.
fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// The ConfigMap of the framework's current attempt.
pub fn config_map(framework: &Framework, status: &FrameworkStatus) -> ConfigMap {
    let name = framework.name_any();
    let namespace = framework.namespace().unwrap_or_default();
    let annotations = BTreeMap::from([
        (FRAMEWORK_NAMESPACE.to_string(), namespace.clone()),
        (FRAMEWORK_NAME.to_string(), name.clone()),
        (
            CONFIGMAP_NAME.to_string(),
            status.attempt_status.config_map_name.clone(),
        ),
        (
            FRAMEWORK_UID.to_string(),
            framework.uid().unwrap_or_default(),
        ),
        (
            FRAMEWORK_ATTEMPT_ID.to_string(),
            status.attempt_status.id.to_string(),
        ),
    ]);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(status.attempt_status.config_map_name.clone()),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([(FRAMEWORK_NAME.to_string(), name)])),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(
                &Framework::api_version(&()),
                &Framework::kind(&()),
                &framework.metadata,
            )]),
            finalizers: Some(vec!["foregroundDeletion".to_string()]),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

/// Why a task's pod could not be built from its template.
#[derive(Debug, thiserror::Error)]
#[error(
    "the pod template of task role {role} is not a valid pod after placeholder replacement: {source}"
)]
pub struct PodTemplateError {
    /// The task role.
    pub role: String,
    /// The decoding error.
    pub source: serde_json::Error,
}

/// The pod of a task's current attempt, owned by the attempt ConfigMap `config_map`.
pub fn pod(
    framework: &Framework,
    status: &FrameworkStatus,
    template: &PodTemplateSpec,
    role: &TaskRoleStatus,
    task: &TaskStatus,
    config_map: &ObjectMeta,
) -> Result<Pod, PodTemplateError> {
    let name = framework.name_any();
    let namespace = framework.namespace().unwrap_or_default();
    let index = task.index.to_string();
    let attempt = &status.attempt_status;
    let pod_name = task.attempt_status.pod_name.clone();
    let placeholders = [
        ("{{FC_FRAMEWORK_NAMESPACE}}", namespace.as_str()),
        ("{{FC_FRAMEWORK_NAME}}", name.as_str()),
        ("{{FC_TASKROLE_NAME}}", role.name.as_str()),
        ("{{FC_TASK_INDEX}}", index.as_str()),
        ("{{FC_CONFIGMAP_NAME}}", attempt.config_map_name.as_str()),
        ("{{FC_POD_NAME}}", pod_name.as_str()),
    ];
    let mut json = serde_json::to_value(template).map_err(|source| PodTemplateError {
        role: role.name.clone(),
        source,
    })?;
    replace_placeholders(&mut json, &placeholders);
    let template: PodTemplateSpec =
        serde_json::from_value(json).map_err(|source| PodTemplateError {
            role: role.name.clone(),
            source,
        })?;

    let values: Vec<(&str, String)> = vec![
        (FRAMEWORK_NAMESPACE, namespace.clone()),
        (FRAMEWORK_NAME, name.clone()),
        (TASKROLE_NAME, role.name.clone()),
        (TASK_INDEX, index.clone()),
        (CONFIGMAP_NAME, attempt.config_map_name.clone()),
        (POD_NAME, pod_name.clone()),
        (FRAMEWORK_UID, framework.uid().unwrap_or_default()),
        (FRAMEWORK_ATTEMPT_ID, attempt.id.to_string()),
        (
            FRAMEWORK_ATTEMPT_INSTANCE_UID,
            attempt.instance_uid.clone().unwrap_or_default(),
        ),
        (
            CONFIGMAP_UID,
            attempt.config_map_uid.clone().unwrap_or_default(),
        ),
        (TASKROLE_UID, role.instance_uid.clone()),
        (TASK_UID, task.instance_uid.clone()),
        (TASK_ATTEMPT_ID, task.attempt_status.id.to_string()),
    ];
    let mut metadata = template.metadata.unwrap_or_default();
    metadata.name = Some(pod_name);
    metadata.namespace = Some(namespace);
    metadata.generate_name = None;
    metadata
        .owner_references
        .get_or_insert_with(Vec::new)
        .push(controller_ref("v1", "ConfigMap", config_map));
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in &values {
        annotations.insert(key.to_string(), value.clone());
    }
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(FRAMEWORK_NAME.to_string(), name);
    labels.insert(TASKROLE_NAME.to_string(), role.name.clone());
    labels.insert(TASK_INDEX.to_string(), index);

    let mut env: Vec<EnvVar> = values
        .iter()
        .map(|(key, value)| EnvVar {
            name: key.to_string(),
            value: Some(value.clone()),
            value_from: None,
        })
        .collect();
    env.push(EnvVar {
        name: POD_UID.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: "metadata.uid".to_string(),
            }),
            ..EnvVarSource::default()
        }),
    });
    env.push(EnvVar {
        name: TASK_ATTEMPT_INSTANCE_UID.to_string(),
        value: Some(format!("{}_$({POD_UID})", task.attempt_status.id)),
        value_from: None,
    });
    let mut spec = template.spec.unwrap_or_default();
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        let own = container.env.take().unwrap_or_default();
        container.env = Some(env.iter().cloned().chain(own).collect());
        if container.termination_message_policy.is_none() {
            container.termination_message_policy = Some("FallbackToLogsOnError".to_string());
        }
    }
    Ok(Pod {
        metadata,
        spec: Some(spec),
        status: None,
    })
}

/// Replaces placeholders in every string and map key of `value`.
fn replace_placeholders(value: &mut Value, placeholders: &[(&str, &str)]) {
    let replace = |text: &str| {
        let mut text = text.to_string();
        for (placeholder, value) in placeholders {
            if text.contains(placeholder) {
                text = text.replace(placeholder, value);
            }
        }
        text
    };
    match value {
        Value::String(text) if text.contains("{{FC_") => *text = replace(text),
        Value::Array(items) => {
            for item in items {
                replace_placeholders(item, placeholders);
            }
        }
        Value::Object(map) => {
            let keys: Vec<String> = map
                .keys()
                .filter(|k| k.contains("{{FC_"))
                .cloned()
                .collect();
            for key in keys {
                if let Some(item) = map.remove(&key) {
                    map.insert(replace(&key), item);
                }
            }
            for (_, item) in map.iter_mut() {
                replace_placeholders(item, placeholders);
            }
        }
        _ => {}
    }
}
