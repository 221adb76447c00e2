//! The data directory: one subdirectory per collection, named by its validated name, plus a lock
//! file that keeps a second process off the same directory.
//!
//! Creating and deleting a collection are each one atomic rename, fsynced in the parent:
//! a collection is built in `.creating-<name>-<uuid>` and renamed into place, and a deleted one
//! is renamed to `.deleted-<name>-<uuid>` before it is removed. A crash in between leaves only a
//! dot-directory, which the next start removes, never a half-made or half-removed collection.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::domain::name::CollectionName;
use crate::error::StoreError;

use super::files::sync_dir;
use super::meta::{CollectionMeta, meta_path};
use super::segment::{SegmentWriter, segment_path};

const LOCK_FILE: &str = ".lock";
const CREATING_PREFIX: &str = ".creating-";
const DELETED_PREFIX: &str = ".deleted-";

/// An opened, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    /// Held open for the life of the process: the advisory lock goes with it.
    _lock: File,
}

/// A directory entry that looks like a collection.
#[derive(Debug)]
pub struct FoundCollection {
    /// The parsed name.
    pub name: CollectionName,
    /// Its directory.
    pub directory: PathBuf,
}

impl DataDir {
    /// Creates `root` if needed, locks it, and removes what interrupted creations and deletions
    /// left behind.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root).map_err(|error| StoreError::io("create directory", root, error))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|error| StoreError::io("open", &lock_path, error))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::io(
                    "lock",
                    &lock_path,
                    std::io::Error::other("another process is using this data directory"),
                ));
            }
            Err(TryLockError::Error(error)) => return Err(StoreError::io("lock", &lock_path, error)),
        }
        let data_dir = Self { root: root.to_owned(), _lock: lock };
        data_dir.remove_leftovers()?;
        Ok(data_dir)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of collection `name`.
    pub fn collection_path(&self, name: &CollectionName) -> PathBuf {
        self.root.join(name.as_str())
    }

    fn remove_leftovers(&self) -> Result<(), StoreError> {
        let mut removed_any = false;
        for entry in read_dir(&self.root)? {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else { continue };
            if name.starts_with(CREATING_PREFIX) || name.starts_with(DELETED_PREFIX) {
                let path = entry.path();
                tracing::warn!(path = %path.display(), "removing an interrupted collection creation or deletion");
                std::fs::remove_dir_all(&path).map_err(|error| StoreError::io("remove", &path, error))?;
                removed_any = true;
            }
        }
        if removed_any {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Every collection directory, by name. Entries whose name is not a valid collection name
    /// are skipped with a warning: they are not ours to read.
    pub fn collections(&self) -> Result<Vec<FoundCollection>, StoreError> {
        let mut found = Vec::new();
        for entry in read_dir(&self.root)? {
            let path = entry.path();
            let file_name = entry.file_name();
            let Some(text) = file_name.to_str() else { continue };
            if text == LOCK_FILE {
                continue;
            }
            let Ok(name) = CollectionName::parse("name", text) else {
                tracing::warn!(path = %path.display(), "ignoring an entry that is not a collection");
                continue;
            };
            if !path.is_dir() {
                tracing::warn!(path = %path.display(), "ignoring a file where a collection directory was expected");
                continue;
            }
            found.push(FoundCollection { name, directory: path });
        }
        found.sort_by(|left, right| left.name.cmp(&right.name));
        Ok(found)
    }

    /// Creates collection `name` with `meta` and its first log segment, atomically and durably;
    /// returns its directory and the open segment.
    pub fn create_collection(
        &self,
        name: &CollectionName,
        meta: &CollectionMeta,
    ) -> Result<(PathBuf, SegmentWriter), StoreError> {
        let target = self.collection_path(name);
        let staging = self.root.join(format!("{CREATING_PREFIX}{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&staging).map_err(|error| StoreError::io("create directory", &staging, error))?;
        let built = (|| {
            let meta_file = meta_path(&staging);
            std::fs::write(&meta_file, meta.to_bytes())
                .map_err(|error| StoreError::io("write", &meta_file, error))?;
            File::open(&meta_file)
                .and_then(|file| file.sync_all())
                .map_err(|error| StoreError::io("fsync", &meta_file, error))?;
            // The segment syncs the staging directory, which makes the metadata entry durable too.
            drop(SegmentWriter::create(&staging, 1).map_err(StoreError::from)?);
            if target.exists() {
                return Err(StoreError::io(
                    "create",
                    &target,
                    std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists"),
                ));
            }
            std::fs::rename(&staging, &target).map_err(|error| {
                StoreError::io(format!("rename to {}", target.display()), &staging, error)
            })?;
            sync_dir(&self.root)
        })();
        if let Err(error) = built {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
        let segment = SegmentWriter::open_for_append(&segment_path(&target, 1), 1)?;
        Ok((target, segment))
    }

    /// Removes collection `name` with everything in it, durably: once this returns, a restart
    /// will not bring it back.
    pub fn remove_collection(&self, name: &CollectionName) -> Result<(), StoreError> {
        let directory = self.collection_path(name);
        let doomed = self.root.join(format!("{DELETED_PREFIX}{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::rename(&directory, &doomed)
            .map_err(|error| StoreError::io(format!("rename to {}", doomed.display()), &directory, error))?;
        sync_dir(&self.root)?;
        std::fs::remove_dir_all(&doomed).map_err(|error| StoreError::io("remove", &doomed, error))?;
        sync_dir(&self.root)
    }
}

fn read_dir(root: &Path) -> Result<Vec<std::fs::DirEntry>, StoreError> {
    let entries = std::fs::read_dir(root).map_err(|error| StoreError::io("list", root, error))?;
    entries.collect::<Result<Vec<_>, _>>().map_err(|error| StoreError::io("list", root, error))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use chrono::Utc;
    use sutazai_vector_index::Metric;

    use super::*;
    use crate::domain::spec::CollectionSpec;

    fn meta(name: &str) -> CollectionMeta {
        CollectionMeta::new(name, &CollectionSpec::new(4, Metric::L2, None).unwrap(), Utc::now())
    }

    #[test]
    fn create_list_remove_and_lock() {
        let root = tempfile::tempdir().unwrap();
        let data_dir = DataDir::open(root.path()).unwrap();
        assert!(DataDir::open(root.path()).is_err(), "a second opener is refused");
        let name = CollectionName::parse("name", "docs").unwrap();
        let (directory, segment) = data_dir.create_collection(&name, &meta("docs")).unwrap();
        assert_eq!(directory, root.path().join("docs"));
        assert_eq!(segment.number(), 1);
        assert!(data_dir.create_collection(&name, &meta("docs")).is_err());
        std::fs::create_dir(root.path().join("Not_A_Name")).unwrap();
        std::fs::write(root.path().join("stray"), b"").unwrap();
        let found: Vec<String> =
            data_dir.collections().unwrap().into_iter().map(|found| found.name.to_string()).collect();
        assert_eq!(found, ["docs"]);
        data_dir.remove_collection(&name).unwrap();
        assert!(!directory.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 3, ".lock, Not_A_Name and stray remain");
    }

    #[test]
    fn interrupted_creations_and_deletions_are_cleaned_up() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(".creating-docs-1")).unwrap();
        std::fs::create_dir(root.path().join(".deleted-old-2")).unwrap();
        std::fs::write(root.path().join(".deleted-old-2").join("wal-1.log"), b"x").unwrap();
        let data_dir = DataDir::open(root.path()).unwrap();
        assert!(data_dir.collections().unwrap().is_empty());
        assert!(!root.path().join(".creating-docs-1").exists());
        assert!(!root.path().join(".deleted-old-2").exists());
    }
}
