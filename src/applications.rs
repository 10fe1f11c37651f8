//! A KfDef's applications as objects: fetch the repos it names, merge each application's base,
//! overlays and parameters the way kfctl did, and render the result. The operator and
//! `kfop render -f` share this path.

use crate::kfdef::{Application, KfDef};
use crate::render::kfctl::{self, ApplicationSource, KfDefContext};
use crate::render::loader::Loader;
use crate::render::{RenderError, Renderer};
use crate::repos::{LocalRepo, RepoCache, RepoError};
use kube::ResourceExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Why one application could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    /// The application has no `kustomizeConfig.repoRef`.
    #[error("application {app:?} has no kustomizeConfig.repoRef")]
    NoRepoRef { app: String },
    /// The application names a repo the KfDef does not list.
    #[error("application {app:?} refers to repo {repo:?}, which spec.repos does not list")]
    UnknownRepo { app: String, repo: String },
    /// Its repo could not be fetched.
    #[error("application {app:?}: {source}")]
    Repo {
        app: String,
        source: std::sync::Arc<RepoError>,
    },
    /// Its path escapes the repo or does not exist.
    #[error("application {app:?}: path {path:?} {problem}")]
    Path {
        app: String,
        path: String,
        problem: &'static str,
    },
    /// Rendering failed.
    #[error("application {app:?}: {source}")]
    Render { app: String, source: RenderError },
    /// The render task itself failed (a bug: it panicked or was cancelled).
    #[error("application {app:?}: render task failed: {message}")]
    Task { app: String, message: String },
}

/// One application's outcome.
#[derive(Debug)]
pub struct RenderedApplication {
    /// The application's name.
    pub name: String,
    /// Its objects in kustomize's output order, or why there are none.
    pub result: Result<Vec<Value>, ApplicationError>,
    /// Objects [`crate::upgrade`] left out: the cluster serves no equivalent kind.
    pub skipped: Vec<crate::upgrade::Skipped>,
}

/// Fetches every repo the KfDef lists (each once), then renders every application in order.
/// Relative local repo paths resolve against the working directory.
pub async fn render(kfdef: &KfDef, cache: &RepoCache) -> Vec<RenderedApplication> {
    let mut repos: BTreeMap<String, Result<LocalRepo, std::sync::Arc<RepoError>>> = BTreeMap::new();
    for repo in &kfdef.spec.repos {
        let fetched = cache.fetch(repo).await.map_err(std::sync::Arc::new);
        repos.insert(repo.name.clone(), fetched);
    }
    let context = KfDefContext {
        uid: kfdef.uid().unwrap_or_default(),
        name: kfdef.name_any(),
        namespace: kfdef.namespace().unwrap_or_default(),
        project: project(kfdef),
    };
    let mut rendered = Vec::new();
    for app in &kfdef.spec.applications {
        let result = match locate(app, &repos) {
            Ok((root, dir)) => {
                let owned = app.clone();
                let context = context.clone();
                // Rendering reads files and burns CPU: keep it off the async workers.
                tokio::task::spawn_blocking(move || render_one(&owned, &root, &dir, &context))
                    .await
                    .unwrap_or_else(|e| {
                        Err(ApplicationError::Task {
                            app: app.name.clone(),
                            message: e.to_string(),
                        })
                    })
            }
            Err(e) => Err(e),
        };
        rendered.push(RenderedApplication {
            name: app.name.clone(),
            result,
            skipped: Vec::new(),
        });
    }
    rendered
}

/// The repo root and application directory of `app`.
fn locate(
    app: &Application,
    repos: &BTreeMap<String, Result<LocalRepo, std::sync::Arc<RepoError>>>,
) -> Result<(std::path::PathBuf, std::path::PathBuf), ApplicationError> {
    let repo_ref = app
        .kustomize_config
        .as_ref()
        .and_then(|c| c.repo_ref.as_ref())
        .ok_or_else(|| ApplicationError::NoRepoRef {
            app: app.name.clone(),
        })?;
    let repo = repos
        .get(&repo_ref.name)
        .ok_or_else(|| ApplicationError::UnknownRepo {
            app: app.name.clone(),
            repo: repo_ref.name.clone(),
        })?;
    let local = repo.as_ref().map_err(|e| ApplicationError::Repo {
        app: app.name.clone(),
        source: e.clone(),
    })?;
    let path = repo_ref.path.clone().unwrap_or_default();
    let relative = Path::new(&path);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ApplicationError::Path {
            app: app.name.clone(),
            path,
            problem: "must stay inside the repo",
        });
    }
    let dir = local.root.join(relative);
    if !dir.is_dir() {
        return Err(ApplicationError::Path {
            app: app.name.clone(),
            path,
            problem: "is not a directory of the repo",
        });
    }
    Ok((local.root.clone(), dir))
}

fn render_one(
    app: &Application,
    root: &Path,
    dir: &Path,
    context: &KfDefContext,
) -> Result<Vec<Value>, ApplicationError> {
    let wrap = |source: RenderError| ApplicationError::Render {
        app: app.name.clone(),
        source,
    };
    let config = app.kustomize_config.clone().unwrap_or_default();
    let source = ApplicationSource {
        dir: dir.to_path_buf(),
        overlays: config.overlays.clone(),
        parameters: config
            .parameters
            .iter()
            .map(|p| (p.name.clone(), p.value.clone().unwrap_or_default()))
            .collect(),
    };
    let mut loader = Loader::new(Some(root)).map_err(wrap)?;
    kfctl::prepare(&mut loader, &source, context).map_err(wrap)?;
    Renderer::with_loader(loader).render(dir).map_err(wrap)
}

/// kfctl's `project`: the GCP plugin's `spec.project`, if any.
fn project(kfdef: &KfDef) -> String {
    kfdef
        .spec
        .plugins
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .find_map(|spec| spec.get("project").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}
