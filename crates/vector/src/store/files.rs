//! File-system steps that make writes durable: fsync of a directory (so a created, renamed or
//! removed entry survives a crash), and the write-temp, fsync, rename, fsync-directory sequence
//! that replaces a file atomically.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::StoreError;

/// Makes the entries of `directory` (creations, renames, removals) durable.
pub fn sync_dir(directory: &Path) -> Result<(), StoreError> {
    let handle = File::open(directory).map_err(|error| StoreError::io("open directory", directory, error))?;
    handle.sync_all().map_err(|error| StoreError::io("fsync directory", directory, error))
}

/// Replaces `path` with `bytes` atomically: after a crash the file holds either the old or the new
/// content, never a mix. The temporary file sits beside the target (same file system, so the
/// rename is atomic) and is named after it with `.tmp`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let directory = path.parent().ok_or_else(|| StoreError::corrupt(path, "has no parent directory"))?;
    let temporary = temporary_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(|error| StoreError::io("create", &temporary, error))?;
    file.write_all(bytes).map_err(|error| StoreError::io("write", &temporary, error))?;
    file.sync_all().map_err(|error| StoreError::io("fsync", &temporary, error))?;
    drop(file);
    std::fs::rename(&temporary, path)
        .map_err(|error| StoreError::io(format!("rename to {}", path.display()), &temporary, error))?;
    sync_dir(directory)
}

/// The temporary file [`write_atomically`] writes before renaming it to `path`.
pub fn temporary_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("meta.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!temporary_path(&path).exists());
        assert_eq!(temporary_path(&path).file_name().unwrap(), "meta.json.tmp");
    }
}
