//! Reads the files a render needs, refusing any that resolve outside the render's root.

use super::RenderError;
use std::path::{Path, PathBuf};

/// File access for one render.
#[derive(Debug, Clone)]
pub struct Loader {
    /// Canonical directory every file must stay inside (`None`: no restriction).
    root: Option<PathBuf>,
}

impl Loader {
    /// A loader confined to `root` (a manifest repo), or unconfined with `None`.
    pub fn new(root: Option<&Path>) -> Result<Self, RenderError> {
        let root = match root {
            Some(root) => Some(canonical(root)?),
            None => None,
        };
        Ok(Self { root })
    }

    /// The canonical form of `path`, checked against the root.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, RenderError> {
        let resolved = canonical(path)?;
        if let Some(root) = &self.root
            && !resolved.starts_with(root)
        {
            return Err(RenderError::OutsideRoot {
                path: path.to_path_buf(),
                root: root.clone(),
            });
        }
        Ok(resolved)
    }

    /// The bytes of a file.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, RenderError> {
        let resolved = self.resolve(path)?;
        std::fs::read(&resolved).map_err(|source| RenderError::Read {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A file as UTF-8 text.
    pub fn read_text(&self, path: &Path) -> Result<String, RenderError> {
        let bytes = self.read(path)?;
        String::from_utf8(bytes).map_err(|_| RenderError::Invalid {
            file: path.to_path_buf(),
            message: "not UTF-8 text".into(),
        })
    }
}

fn canonical(path: &Path) -> Result<PathBuf, RenderError> {
    path.canonicalize().map_err(|source| RenderError::Read {
        path: path.to_path_buf(),
        source,
    })
}
