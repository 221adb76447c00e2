//! Helpers for the unit tests: a temporary directory removed on drop, and a file listed as a
//! walk would list it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::walk::FileEntry;

/// `path` as a walk lists it now (`lstat`).
pub(crate) fn entry_for(path: &Path) -> FileEntry {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) => panic!("lstat {}: {error}", path.display()),
    };
    FileEntry {
        path: path.to_path_buf(),
        size_bytes: metadata.len(),
        modified: metadata.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH),
        device: metadata.dev(),
        inode: metadata.ino(),
    }
}

/// A fresh directory under the system temp dir, removed with everything in it on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(format!("sutazai-hardware-unit-{}", uuid::Uuid::new_v4()));
        if let Err(error) = std::fs::create_dir_all(&path) {
            panic!("create {}: {error}", path.display());
        }
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        Self { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
