//! Safe unpacking of a `.tar.gz` archive into a directory.
//!
//! An archive is refused whole, never half-unpacked into the cache, when an entry has an absolute path or
//! a `..` component, is a device file or a fifo, or is a link that points outside the repo root or at
//! nothing; or when its files add up to more than the limit. A single top-level directory (as in GitHub
//! archives) becomes the root.

use flate2::read::GzDecoder;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The input does not start with the gzip magic bytes.
    #[error("not a gzip-compressed tar archive")]
    NotGzip,
    /// The gzip stream or the tar structure is damaged.
    #[error("corrupt archive: {0}")]
    Corrupt(std::io::Error),
    /// The archive holds no entries.
    #[error("the archive is empty")]
    Empty,
    /// An entry's path is absolute or climbs out with `..`.
    #[error("entry {entry:?} has an absolute path or a `..` component")]
    UnsafePath {
        /// The entry's path as written in the archive.
        entry: String,
    },
    /// An entry is neither a file, a directory nor a link.
    #[error("entry {entry:?} is a {kind} (only files, directories and links are allowed)")]
    UnsupportedEntry {
        /// The entry's path.
        entry: String,
        /// The kind of entry, e.g. `character device`.
        kind: &'static str,
    },
    /// A symbolic or hard link points outside the repo root.
    #[error("link {entry:?} -> {target:?} points outside the repo root")]
    LinkEscapes {
        /// The link's path.
        entry: String,
        /// The link's target as written in the archive.
        target: String,
    },
    /// A symbolic link's target does not exist in the archive (or the links form a loop).
    #[error("link {entry:?} -> {target:?} does not resolve inside the archive: {error}")]
    BrokenLink {
        /// The link's path, relative to the repo root.
        entry: String,
        /// The link's target.
        target: String,
        /// Why it does not resolve.
        error: std::io::Error,
    },
    /// The unpacked files add up to more than the limit.
    #[error("the unpacked files exceed the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Writing the unpacked tree failed.
    #[error("writing {}: {error}", path.display())]
    Write {
        /// The path being written.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// Unpacks the gzip-compressed tar `archive` into the empty directory `dest` and returns the repo root:
/// `dest` itself, or its only entry when that is a directory.
pub fn unpack(archive: impl Read, dest: &Path, max_bytes: u64) -> Result<PathBuf, UnpackError> {
    let mut input = BufReader::new(archive);
    let head = input.fill_buf().map_err(UnpackError::Corrupt)?;
    if !head.starts_with(&[0x1f, 0x8b]) {
        return Err(UnpackError::NotGzip);
    }
    let mut archive = tar::Archive::new(GzDecoder::new(input));
    let mut unpacked_bytes: u64 = 0;
    let mut entries_seen = 0usize;
    for entry in archive.entries().map_err(UnpackError::Corrupt)? {
        let mut entry = entry.map_err(UnpackError::Corrupt)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        match kind {
            EntryType::XGlobalHeader | EntryType::XHeader => continue,
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory => {}
            EntryType::Symlink | EntryType::Link => {
                check_link(&entry, &raw_path, kind)?;
            }
            other => {
                return Err(UnpackError::UnsupportedEntry {
                    entry: raw_path,
                    kind: describe(other),
                });
            }
        }
        let path = entry.path().map_err(UnpackError::Corrupt)?;
        if !is_safe_relative(&path) {
            return Err(UnpackError::UnsafePath { entry: raw_path });
        }
        unpacked_bytes = unpacked_bytes.saturating_add(entry.size());
        if unpacked_bytes > max_bytes {
            return Err(UnpackError::TooLarge { limit: max_bytes });
        }
        entries_seen += 1;
        let unpacked = entry.unpack_in(dest).map_err(|error| match error.kind() {
            // Reading the entry's data failed: the archive ends early or its compression is damaged.
            ErrorKind::UnexpectedEof | ErrorKind::InvalidData | ErrorKind::InvalidInput => {
                UnpackError::Corrupt(error)
            }
            _ => UnpackError::Write {
                path: dest.join(&raw_path),
                error,
            },
        })?;
        if !unpacked {
            return Err(UnpackError::UnsafePath { entry: raw_path });
        }
        if matches!(
            kind,
            EntryType::Directory | EntryType::Regular | EntryType::Continuous
        ) {
            grant_owner_access(&dest.join(&raw_path), kind == EntryType::Directory)?;
        }
    }
    if entries_seen == 0 {
        return Err(UnpackError::Empty);
    }
    let root = single_top_directory(dest)?.unwrap_or_else(|| dest.to_path_buf());
    check_links_stay_inside(&root)?;
    Ok(root)
}

/// Gives the owner read (and for directories write and search) access, so that an archive with
/// read-only folders still unpacks and its files can be read.
fn grant_owner_access(path: &Path, is_dir: bool) -> Result<(), UnpackError> {
    use std::os::unix::fs::PermissionsExt;
    let write_error = |error| UnpackError::Write {
        path: path.to_path_buf(),
        error,
    };
    let metadata = std::fs::symlink_metadata(path).map_err(write_error)?;
    let mode = metadata.permissions().mode();
    let wanted = mode | if is_dir { 0o700 } else { 0o400 };
    if wanted != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted))
            .map_err(write_error)?;
    }
    Ok(())
}

/// Refuses a link whose target, read as a path, leaves the archive: symbolic link targets are relative
/// to the link's folder, hard link targets to the archive root.
fn check_link<R: Read>(
    entry: &tar::Entry<'_, R>,
    raw_path: &str,
    kind: EntryType,
) -> Result<(), UnpackError> {
    let target = entry
        .link_name()
        .map_err(UnpackError::Corrupt)?
        .unwrap_or_default();
    let escapes = || UnpackError::LinkEscapes {
        entry: raw_path.to_string(),
        target: target.display().to_string(),
    };
    if kind == EntryType::Link {
        return if is_safe_relative(&target) {
            Ok(())
        } else {
            Err(escapes())
        };
    }
    let link_folder = Path::new(raw_path).parent().unwrap_or(Path::new(""));
    if target.is_absolute() || normalized_depth(&link_folder.join(&target)).is_none() {
        return Err(escapes());
    }
    Ok(())
}

/// Whether `path` is relative and has no `..` component.
fn is_safe_relative(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// How deep `path` lands below its starting folder once `.` and `..` are applied; `None` if it climbs
/// above it or is absolute.
fn normalized_depth(path: &Path) -> Option<usize> {
    path.components().try_fold(0usize, |depth, c| match c {
        Component::Normal(_) => Some(depth + 1),
        Component::CurDir => Some(depth),
        Component::ParentDir => depth.checked_sub(1),
        Component::RootDir | Component::Prefix(_) => None,
    })
}

/// The only entry of `dest` when it is a real directory (GitHub's `<repo>-<ref>/`).
fn single_top_directory(dest: &Path) -> Result<Option<PathBuf>, UnpackError> {
    let write_error = |error| UnpackError::Write {
        path: dest.to_path_buf(),
        error,
    };
    let mut entries = std::fs::read_dir(dest).map_err(write_error)?;
    let Some(first) = entries.next().transpose().map_err(write_error)? else {
        return Ok(None);
    };
    if entries.next().is_some() {
        return Ok(None);
    }
    let is_dir = first.file_type().map_err(write_error)?.is_dir();
    Ok(is_dir.then(|| first.path()))
}

/// Follows every symbolic link under `root` for real (chains included) and refuses the tree if one
/// leads outside `root` or nowhere.
fn check_links_stay_inside(root: &Path) -> Result<(), UnpackError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error| UnpackError::Write { path, error }
    };
    let canonical_root = std::fs::canonicalize(root).map_err(io_error(root))?;
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(io_error(&folder))? {
            let entry = entry.map_err(io_error(&folder))?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(io_error(&path))?;
            if file_type.is_dir() {
                pending.push(path);
            } else if file_type.is_symlink() {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let target = std::fs::read_link(&path).map_err(io_error(&path))?;
                let describe =
                    |target: &Path| (relative.display().to_string(), target.display().to_string());
                match std::fs::canonicalize(&path) {
                    Ok(resolved) if resolved.starts_with(&canonical_root) => {}
                    Ok(_) => {
                        let (entry, target) = describe(&target);
                        return Err(UnpackError::LinkEscapes { entry, target });
                    }
                    Err(error) => {
                        let (entry, target) = describe(&target);
                        return Err(UnpackError::BrokenLink {
                            entry,
                            target,
                            error,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn describe(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Char => "character device",
        EntryType::Block => "block device",
        EntryType::Fifo => "fifo",
        EntryType::GNULongName | EntryType::GNULongLink => "dangling GNU long-name header",
        _ => "entry of an unsupported type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use tar::{Builder, Header};

    const LIMIT: u64 = 1 << 20;

    /// One archive entry: a path written verbatim into the header, its kind, contents or link target.
    enum Item<'a> {
        File(&'a str, &'a str),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Special(&'a str, EntryType),
    }

    /// Builds a `.tar.gz` without tar's own path checks, so that hostile archives can be made.
    fn archive(items: &[Item<'_>]) -> Vec<u8> {
        let mut builder = Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for item in items {
            let mut header = Header::new_gnu();
            let (path, kind, data, link) = match *item {
                Item::File(path, data) => (path, EntryType::Regular, data, None),
                Item::Dir(path) => (path, EntryType::Directory, "", None),
                Item::Symlink(path, target) => (path, EntryType::Symlink, "", Some(target)),
                Item::Hardlink(path, target) => (path, EntryType::Link, "", Some(target)),
                Item::Special(path, kind) => (path, kind, "", None),
            };
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(target) = link {
                let link_name = &mut header.as_old_mut().linkname;
                link_name[..target.len()].copy_from_slice(target.as_bytes());
            }
            header.set_entry_type(kind);
            header.set_mode(if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data.as_bytes()).expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gzip")
    }

    fn unpack_items(items: &[Item<'_>]) -> (tempfile::TempDir, Result<PathBuf, UnpackError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let result = unpack(archive(items).as_slice(), dir.path(), LIMIT);
        (dir, result)
    }

    #[test]
    fn strips_a_single_top_level_folder() {
        let (dir, root) = unpack_items(&[
            Item::Dir("manifests-1.0.2/"),
            Item::File("manifests-1.0.2/app/kustomization.yaml", "resources: []\n"),
            Item::File("manifests-1.0.2/README.md", "hi"),
        ]);
        let root = root.expect("unpacks");
        assert_eq!(root, dir.path().join("manifests-1.0.2"));
        let text = std::fs::read_to_string(root.join("app/kustomization.yaml")).expect("file");
        assert_eq!(text, "resources: []\n");
    }

    #[test]
    fn keeps_the_root_when_there_are_several_top_level_entries() {
        let (dir, root) = unpack_items(&[Item::File("a/x", "1"), Item::File("b", "2")]);
        assert_eq!(root.expect("unpacks"), dir.path());
        assert!(dir.path().join("a/x").is_file());
    }

    #[test]
    fn a_single_top_level_file_is_not_stripped() {
        let (dir, root) = unpack_items(&[Item::File("kustomization.yaml", "x")]);
        assert_eq!(root.expect("unpacks"), dir.path());
    }

    #[test]
    fn skips_the_pax_global_header_of_github_archives() {
        let (dir, root) = unpack_items(&[
            Item::Special("pax_global_header", EntryType::XGlobalHeader),
            Item::File("repo-main/a", "1"),
        ]);
        assert_eq!(root.expect("unpacks"), dir.path().join("repo-main"));
    }

    #[test]
    fn refuses_parent_components() {
        let (dir, result) = unpack_items(&[Item::File("repo/../../evil", "x")]);
        assert!(
            matches!(&result, Err(UnpackError::UnsafePath { entry }) if entry == "repo/../../evil"),
            "{result:?}"
        );
        assert!(!dir.path().parent().expect("parent").join("evil").exists());
    }

    #[test]
    fn refuses_absolute_paths() {
        let (_dir, result) = unpack_items(&[Item::File("/tmp/kfop-evil", "x")]);
        assert!(
            matches!(result, Err(UnpackError::UnsafePath { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn refuses_symlinks_that_climb_out() {
        let (_dir, result) = unpack_items(&[
            Item::File("repo/a", "1"),
            Item::Symlink("repo/link", "../../etc"),
        ]);
        assert!(
            matches!(result, Err(UnpackError::LinkEscapes { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn refuses_absolute_symlinks() {
        let (_dir, result) = unpack_items(&[Item::Symlink("repo/passwd", "/etc/passwd")]);
        assert!(
            matches!(result, Err(UnpackError::LinkEscapes { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn refuses_symlinks_that_escape_the_stripped_folder() {
        // Inside the archive, but outside `repo/`, which becomes the root.
        let (_dir, result) =
            unpack_items(&[Item::File("repo/a", "1"), Item::Symlink("repo/up", "..")]);
        assert!(
            matches!(result, Err(UnpackError::LinkEscapes { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn refuses_chains_of_symlinks_that_escape_together() {
        // Each target looks inside on paper; followed for real, `b/m` lands above the root.
        let (_dir, result) = unpack_items(&[
            Item::File("x/a", "1"),
            Item::File("y", "2"),
            Item::Symlink("b/up", ".."),
            Item::Symlink("b/m", "up/../.."),
        ]);
        assert!(
            matches!(result, Err(UnpackError::LinkEscapes { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn refuses_dangling_symlinks() {
        let (_dir, result) = unpack_items(&[
            Item::File("repo/a", "1"),
            Item::Symlink("repo/gone", "missing"),
        ]);
        assert!(
            matches!(result, Err(UnpackError::BrokenLink { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn keeps_symlinks_inside_the_root() {
        let (_dir, root) = unpack_items(&[
            Item::File("repo/base/kustomization.yaml", "k"),
            Item::Symlink("repo/overlays/base", "../base"),
        ]);
        let root = root.expect("unpacks");
        let text = std::fs::read_to_string(root.join("overlays/base/kustomization.yaml"));
        assert_eq!(text.expect("through the link"), "k");
    }

    #[test]
    fn hard_links_stay_inside() {
        let (_dir, root) = unpack_items(&[
            Item::File("repo/a", "same"),
            Item::Hardlink("repo/b", "repo/a"),
        ]);
        let root = root.expect("unpacks");
        assert_eq!(std::fs::read_to_string(root.join("b")).expect("b"), "same");
        let (_dir, result) = unpack_items(&[
            Item::File("repo/a", "1"),
            Item::Hardlink("repo/b", "../etc/passwd"),
        ]);
        assert!(
            matches!(result, Err(UnpackError::LinkEscapes { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn refuses_device_files_and_fifos() {
        for (kind, name) in [
            (EntryType::Char, "character device"),
            (EntryType::Block, "block device"),
            (EntryType::Fifo, "fifo"),
        ] {
            let (_dir, result) = unpack_items(&[Item::Special("repo/dev", kind)]);
            match result {
                Err(UnpackError::UnsupportedEntry { kind, .. }) => assert_eq!(kind, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_input_that_is_not_gzip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let result = unpack(&b"<html>not found</html>"[..], dir.path(), LIMIT);
        assert!(matches!(result, Err(UnpackError::NotGzip)), "{result:?}");
        let result = unpack(&b""[..], dir.path(), LIMIT);
        assert!(matches!(result, Err(UnpackError::NotGzip)), "{result:?}");
    }

    #[test]
    fn refuses_a_truncated_archive() {
        let data: String = (0..20_000)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        let bytes = archive(&[Item::File("repo/a", &data), Item::File("repo/b", "end")]);
        for tenth in 1..10 {
            let dir = tempfile::tempdir().expect("tempdir");
            let cut = bytes.len() * tenth / 10;
            let result = unpack(&bytes[..cut], dir.path(), LIMIT);
            assert!(
                matches!(result, Err(UnpackError::Corrupt(_))),
                "cut at {cut} of {}: {result:?}",
                bytes.len()
            );
        }
    }

    #[test]
    fn read_only_folders_and_unreadable_files_are_made_usable() {
        use std::os::unix::fs::PermissionsExt;
        let mut builder = Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (path, kind, mode, data) in [
            ("repo/", EntryType::Directory, 0o555, ""),
            ("repo/sub/", EntryType::Directory, 0o000, ""),
            ("repo/sub/a", EntryType::Regular, 0o000, "a"),
        ] {
            let mut header = Header::new_gnu();
            header.set_path(path).expect("path");
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data.as_bytes()).expect("append");
        }
        let bytes = builder.into_inner().expect("tar").finish().expect("gzip");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = unpack(bytes.as_slice(), dir.path(), LIMIT).expect("unpacks");
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&root), 0o755);
        assert_eq!(mode(&root.join("sub")), 0o700);
        assert_eq!(mode(&root.join("sub/a")), 0o400);
        assert_eq!(
            std::fs::read_to_string(root.join("sub/a")).expect("read"),
            "a"
        );
    }

    #[test]
    fn refuses_an_empty_archive() {
        let (_dir, result) = unpack_items(&[]);
        assert!(matches!(result, Err(UnpackError::Empty)), "{result:?}");
    }

    #[test]
    fn enforces_the_unpacked_size_limit() {
        let big = "x".repeat(600);
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = archive(&[Item::File("a", &big), Item::File("b", &big)]);
        let result = unpack(bytes.as_slice(), dir.path(), 1000);
        assert!(
            matches!(result, Err(UnpackError::TooLarge { limit: 1000 })),
            "{result:?}"
        );
    }
}
