//! Reads the files a render needs, refusing any that resolve outside the render's root.

use super::RenderError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File access for one render.
#[derive(Debug, Clone, Default)]
pub struct Loader {
    /// Canonical directory every file must stay inside (`None`: no restriction).
    root: Option<PathBuf>,
    /// Files that exist only in memory, or replace what is on disk, by canonical path.
    overrides: BTreeMap<PathBuf, Vec<u8>>,
}

impl Loader {
    /// A loader confined to `root` (a manifest repo), or unconfined with `None`.
    pub fn new(root: Option<&Path>) -> Result<Self, RenderError> {
        let root = match root {
            Some(root) => Some(canonical(root)?),
            None => None,
        };
        Ok(Self {
            root,
            overrides: BTreeMap::new(),
        })
    }

    /// Serves `content` for `path` instead of what is on disk (the file need not exist; its
    /// directory must).
    pub fn override_file(
        &mut self,
        path: &Path,
        content: impl Into<Vec<u8>>,
    ) -> Result<(), RenderError> {
        let resolved = self.resolve_new(path)?;
        self.overrides.insert(resolved, content.into());
        Ok(())
    }

    /// The files served from memory, by canonical path.
    pub fn overrides(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.overrides
            .iter()
            .map(|(path, content)| (path.as_path(), content.as_slice()))
    }

    /// Whether `path` is a file, on disk or overridden.
    pub fn is_file(&self, path: &Path) -> bool {
        if self.is_plain() {
            return path.is_file();
        }
        self.resolve_new(path)
            .is_ok_and(|p| self.overrides.contains_key(&p) || p.is_file())
    }

    /// Whether paths need no resolving: no root to stay in and no file served from memory.
    fn is_plain(&self) -> bool {
        self.root.is_none() && self.overrides.is_empty()
    }

    /// Resolves a path whose last component may not exist yet.
    fn resolve_new(&self, path: &Path) -> Result<PathBuf, RenderError> {
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
                Ok(self.resolve(parent)?.join(name))
            }
            _ => self.resolve(path),
        }
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
        if self.is_plain() {
            return std::fs::read(path).map_err(|source| RenderError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
        if let Ok(virtual_path) = self.resolve_new(path)
            && let Some(content) = self.overrides.get(&virtual_path)
        {
            return Ok(content.clone());
        }
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
