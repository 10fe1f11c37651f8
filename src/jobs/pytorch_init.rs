//! training-operator's `init-pytorch` container: PyTorchJob workers of a job with a Master wait
//! until the Master's DNS name resolves before the training container starts. The image, the
//! number of tries and the whole container list (a template) are settings of the controller.

use k8s_openapi::api::core::v1::Container;

/// training-operator's default `--pytorch-init-container-image`.
pub const DEFAULT_IMAGE: &str = "alpine:3.10";
/// training-operator's default `--pytorch-init-container-max-tries`.
pub const DEFAULT_MAX_TRIES: u32 = 100;

/// training-operator's built-in template (`initcontainer.go`), with its three variables.
const BUILT_IN_TEMPLATE: &str = r#"- name: init-pytorch
  image: {{.InitContainerImage}}
  imagePullPolicy: IfNotPresent
  resources:
    limits:
      cpu: 100m
      memory: 20Mi
    requests:
      cpu: 50m
      memory: 10Mi
  command: ['sh', '-c', 'err=1;for i in $(seq {{.MaxTries}}); do if nslookup {{.MasterAddr}}; then err=0 && break; fi;echo waiting for master; sleep 2; done; exit $err']
"#;

/// A template that does not make a list of containers.
#[derive(Debug, thiserror::Error)]
#[error("the PyTorch init container template is not a YAML list of containers: {0}")]
pub struct TemplateError(String);

/// How workers wait for their Master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitContainers {
    /// The image (`{{.InitContainerImage}}`).
    pub image: String,
    /// How many DNS lookups, two seconds apart (`{{.MaxTries}}`).
    pub max_tries: u32,
    /// A YAML list of containers with training-operator's template variables; the built-in one
    /// when `None`.
    pub template: Option<String>,
}

impl Default for InitContainers {
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.to_string(),
            max_tries: DEFAULT_MAX_TRIES,
            template: None,
        }
    }
}

impl InitContainers {
    /// Settings with a template, checked now: a bad template is refused at start, not at the
    /// first job.
    pub fn with_template(mut self, template: String) -> Result<Self, TemplateError> {
        self.template = Some(template);
        self.containers("master-0")?;
        Ok(self)
    }

    /// The containers a worker gets when its Master is reachable at `master_address`.
    pub fn containers(&self, master_address: &str) -> Result<Vec<Container>, TemplateError> {
        let text = self
            .template
            .as_deref()
            .unwrap_or(BUILT_IN_TEMPLATE)
            .replace("{{.InitContainerImage}}", &self.image)
            .replace("{{.MaxTries}}", &self.max_tries.to_string())
            .replace("{{.MasterAddr}}", master_address);
        let value =
            crate::render::yaml::parse_document(&text).map_err(|e| TemplateError(e.to_string()))?;
        serde_json::from_value(value).map_err(|e| TemplateError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_container_is_training_operators() {
        let containers = InitContainers::default()
            .containers("ddp-master-0")
            .expect("built-in template");
        let value = serde_json::to_value(&containers).expect("json");
        assert_eq!(
            value,
            serde_json::json!([{
                "name": "init-pytorch",
                "image": "alpine:3.10",
                "imagePullPolicy": "IfNotPresent",
                "resources": {"limits": {"cpu": "100m", "memory": "20Mi"},
                              "requests": {"cpu": "50m", "memory": "10Mi"}},
                "command": ["sh", "-c", "err=1;for i in $(seq 100); do if nslookup ddp-master-0; then err=0 && break; fi;echo waiting for master; sleep 2; done; exit $err"],
            }])
        );
    }

    #[test]
    fn a_template_gets_the_settings_and_a_bad_one_is_refused() {
        let settings = InitContainers {
            image: "busybox:1".into(),
            max_tries: 3,
            template: None,
        };
        let custom = settings
            .clone()
            .with_template(
                "- name: wait\n  image: {{.InitContainerImage}}\n  args: ['{{.MasterAddr}}', '{{.MaxTries}}']\n"
                    .into(),
            )
            .expect("valid template");
        let containers = custom.containers("j-master-0").expect("containers");
        assert_eq!(containers[0].image.as_deref(), Some("busybox:1"));
        assert_eq!(
            containers[0].args.as_deref(),
            Some(&["j-master-0".to_string(), "3".to_string()][..])
        );
        assert!(settings.clone().with_template("name: x\n".into()).is_err());
        assert!(settings.with_template("- [\n".into()).is_err());
    }
}
