//! The quarantine: where a real cleanup moves files instead of deleting them, restorable by id
//! until the purge deletes them for good.
//!
//! Layout under the configured directory (mode 0700):
//! - `files/<uuid>`: the content, under a unique UUIDv7 name, so files that share a basename and
//!   are quarantined in the same second never meet;
//! - `entries/<uuid>.json`: the manifest entry (id, original path, size, SHA-256, reason, times),
//!   written to a temporary name, fsynced and renamed, so an entry is either whole or absent.
//!
//! Order of writes, so a crash at any point leaves nothing lost and nothing ambiguous:
//! quarantining writes the entry, then moves the file; purging deletes the file, then the entry;
//! restoring links the file back without overwriting, then deletes the entry. On open, an entry
//! without its file (a move that never happened, or a purge cut short) is dropped and temporary
//! names are removed.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::cleanup::CleanupKind;
use crate::domain::hashing::{sha256_file, sha256_reader, to_hex};
use crate::domain::paths::AllowedRoots;
use crate::domain::verified_open::{BoundedReader, is_changed_since_listed, open_no_follow, open_verified};
use crate::domain::walk::FileEntry;
use crate::error::HardwareError;

/// `EXDEV`: rename and link cannot cross filesystems; the content is copied instead.
const EXDEV: i32 = 18;

/// One quarantined file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// Its name in the quarantine.
    pub id: Uuid,
    /// Where it was, and where a restore puts it back.
    pub original_path: String,
    /// Its size.
    pub size_bytes: u64,
    /// Lowercase hex SHA-256 of the content, checked on restore.
    pub sha256: String,
    /// The cleanup that moved it.
    pub reason: CleanupKind,
    /// When it was moved.
    pub quarantined_at: DateTime<Utc>,
    /// When the purge deletes it.
    pub purge_at: DateTime<Utc>,
    /// Its owner, given back on restore (entries written before this field: unknown, and a
    /// restored copy stays the service's, mode 0600).
    #[serde(default)]
    pub owner_uid: Option<u32>,
    /// Its group, given back on restore.
    #[serde(default)]
    pub owner_gid: Option<u32>,
    /// Its `st_mode` permission bits; restored without setuid, setgid and sticky.
    #[serde(default)]
    pub mode: Option<u32>,
}

/// What became of a file handed to the quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quarantined {
    /// Moved; restorable under the entry's id.
    Moved(QuarantineEntry),
    /// Left where it was, and why.
    Skipped(String),
}

/// The quarantine directory.
#[derive(Debug)]
pub struct Quarantine {
    directory: PathBuf,
    files: PathBuf,
    entries: PathBuf,
    ttl: Duration,
    // One change at a time within the process; the service is the only writer of the directory.
    lock: Mutex<()>,
}

impl Quarantine {
    /// Opens (creating it if needed) the quarantine at `directory` and recovers from a crash.
    pub fn open(directory: &Path, ttl: Duration) -> io::Result<Self> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(directory)?;
        let directory = fs::canonicalize(directory)?;
        let files = directory.join("files");
        let entries = directory.join("entries");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&files)?;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&entries)?;
        let quarantine = Self { directory, files, entries, ttl, lock: Mutex::new(()) };
        quarantine.recover()?;
        Ok(quarantine)
    }

    /// The canonical quarantine directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn file_path(&self, id: Uuid) -> PathBuf {
        self.files.join(id.to_string())
    }

    fn entry_path(&self, id: Uuid) -> PathBuf {
        self.entries.join(format!("{id}.json"))
    }

    /// Moves `file` into the quarantine, unless it changed since it was listed (then it is
    /// skipped) or, when `expected_sha256` is given, its content no longer has that digest.
    pub fn put(
        &self,
        file: &FileEntry,
        reason: CleanupKind,
        expected_sha256: Option<&str>,
    ) -> io::Result<Quarantined> {
        let _guard = self.guard();
        let Some(original_path) = file.path.to_str() else {
            return Ok(Quarantined::Skipped("the path is not UTF-8".to_owned()));
        };
        let metadata = match fs::symlink_metadata(&file.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Quarantined::Skipped("gone since it was planned".to_owned()));
            }
            Err(error) => return Err(error),
        };
        if !file.is_unchanged(&metadata) {
            return Ok(Quarantined::Skipped("changed since it was planned".to_owned()));
        }
        // Read through the listed inode only: a name swapped for a symlink or a FIFO meanwhile
        // is skipped, never followed or waited on.
        let Some(digest) = sha256_file(file, None)? else {
            return Ok(Quarantined::Skipped("changed while it was read".to_owned()));
        };
        let sha256 = to_hex(&digest);
        if expected_sha256.is_some_and(|expected| expected != sha256) {
            return Ok(Quarantined::Skipped("its content no longer matches its group".to_owned()));
        }
        let quarantined_at = Utc::now();
        let entry = QuarantineEntry {
            id: Uuid::now_v7(),
            original_path: original_path.to_owned(),
            size_bytes: file.size_bytes,
            sha256,
            reason,
            quarantined_at,
            purge_at: quarantined_at + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX),
            owner_uid: Some(metadata.uid()),
            owner_gid: Some(metadata.gid()),
            mode: Some(metadata.mode() & 0o7777),
        };
        self.write_entry(&entry)?;
        let target = self.file_path(entry.id);
        let moved = match fs::rename(&file.path, &target) {
            Ok(()) => Ok(()),
            Err(error) if error.raw_os_error() == Some(EXDEV) => self.copy_in(file, &target, &entry.sha256),
            Err(error) => Err(error),
        };
        if let Err(error) = moved {
            // Nothing of it may stay in the quarantine: the original is where it was (copy_in
            // unlinks the source last, after everything that can fail).
            let _ = remove_if_present(&target);
            let _ = fs::remove_file(self.entry_path(entry.id));
            return Err(error);
        }
        // The file has moved: from here on the answer is `Moved` whatever else fails, or a
        // caller would act as if the original were still in place (the logs cleanup would
        // delete its compressed copy). A failed fsync only weakens durability across a crash.
        if let Err(error) = sync_directory(&self.files) {
            tracing::warn!(id = %entry.id, %error, "fsync of the quarantine directory failed");
        }
        if let Some(parent) = file.path.parent()
            && let Err(error) = sync_directory(parent)
        {
            tracing::warn!(path = %parent.display(), %error, "fsync of the original directory failed");
        }
        Ok(Quarantined::Moved(entry))
    }

    /// Copies `file` into the quarantine across filesystems, verifies the copy, makes it durable,
    /// then removes the source, provided the name still holds the listed inode.
    fn copy_in(&self, file: &FileEntry, target: &Path, sha256: &str) -> io::Result<()> {
        let partial = target.with_extension("partial");
        let source = match open_verified(file) {
            Ok(source) => source,
            Err(error) if is_changed_since_listed(&error) => {
                return Err(io::Error::other("changed while it was being quarantined"));
            }
            Err(error) => return Err(error),
        };
        copy_verified(source, file.size_bytes, &partial, sha256)?;
        fs::rename(&partial, target)?;
        // The copy must survive a crash before the only other copy goes.
        sync_directory(&self.files)?;
        let now = fs::symlink_metadata(&file.path)?;
        if now.dev() != file.device || now.ino() != file.inode {
            return Err(io::Error::other("the original name was replaced while it was copied"));
        }
        fs::remove_file(&file.path)
    }

    fn write_entry(&self, entry: &QuarantineEntry) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        let final_path = self.entry_path(entry.id);
        let temporary = final_path.with_extension("json.tmp");
        let mut file = File::options().write(true).create_new(true).open(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&temporary, &final_path)?;
        sync_directory(&self.entries)
    }

    fn read_entry(&self, id: Uuid) -> io::Result<Option<QuarantineEntry>> {
        match fs::read(self.entry_path(id)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every entry, newest first.
    pub fn list(&self) -> io::Result<Vec<QuarantineEntry>> {
        let mut entries = Vec::new();
        for dir_entry in fs::read_dir(&self.entries)? {
            let path = dir_entry?.path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            match fs::read(&path).map(|bytes| serde_json::from_slice::<QuarantineEntry>(&bytes)) {
                Ok(Ok(entry)) => entries.push(entry),
                Ok(Err(error)) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable quarantine entry")
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        entries.sort_by(|left, right| {
            right.quarantined_at.cmp(&left.quarantined_at).then_with(|| right.id.cmp(&left.id))
        });
        Ok(entries)
    }

    /// Moves entry `id` back to its original path. Nothing is overwritten: conflict when
    /// anything exists there; the original directory must still exist, be reached without a
    /// symlink and lie under an allowed root; the content must still match its SHA-256.
    pub fn restore(&self, id: Uuid, roots: &AllowedRoots) -> Result<QuarantineEntry, HardwareError> {
        let _guard = self.guard();
        let not_found = || HardwareError::NotFound(format!("quarantine entry `{id}` not found"));
        let internal = |error: io::Error| HardwareError::internal("restore from the quarantine", error);
        let entry = self.read_entry(id).map_err(internal)?.ok_or_else(not_found)?;
        let stored = self.file_path(id);
        if !stored.exists() {
            return Err(not_found());
        }
        let original = PathBuf::from(&entry.original_path);
        let parent = original
            .parent()
            .ok_or_else(|| HardwareError::Conflict("the original path has no directory".to_owned()))?;
        let canonical_parent = match fs::canonicalize(parent) {
            Ok(canonical) => canonical,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(HardwareError::Conflict("the original directory no longer exists".to_owned()));
            }
            Err(error) => return Err(internal(error)),
        };
        if canonical_parent != parent {
            return Err(HardwareError::Conflict(
                "the original directory is now reached through a symlink".to_owned(),
            ));
        }
        roots.admit(canonical_parent).map_err(|_| {
            HardwareError::Forbidden("the original path is no longer under an allowed root".to_owned())
        })?;
        if fs::symlink_metadata(&original).is_ok() {
            return Err(exists_conflict());
        }
        let stored_file = open_no_follow(&stored).map_err(internal)?;
        let (digest, _) = sha256_reader(&mut &stored_file).map_err(internal)?;
        if to_hex(&digest) != entry.sha256 {
            return Err(HardwareError::Conflict(
                "the quarantined copy no longer matches its sha256; left in the quarantine".to_owned(),
            ));
        }
        link_back(&stored_file, &stored, &original, &entry)?;
        // The restored name must be durable before the quarantined one goes.
        sync_directory(parent).map_err(internal)?;
        fs::remove_file(&stored).map_err(internal)?;
        fs::remove_file(self.entry_path(id)).map_err(internal)?;
        sync_directory(&self.files).map_err(internal)?;
        sync_directory(&self.entries).map_err(internal)?;
        Ok(entry)
    }

    /// Deletes for good every entry whose purge time has come; returns how many.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> io::Result<usize> {
        let expired: Vec<QuarantineEntry> =
            self.list()?.into_iter().filter(|entry| entry.purge_at <= now).collect();
        let _guard = self.guard();
        for entry in &expired {
            remove_if_present(&self.file_path(entry.id))?;
            remove_if_present(&self.entry_path(entry.id))?;
        }
        if !expired.is_empty() {
            sync_directory(&self.files)?;
            sync_directory(&self.entries)?;
        }
        Ok(expired.len())
    }

    /// Removes temporary names and entries whose file never arrived or was already purged.
    fn recover(&self) -> io::Result<()> {
        for directory in [&self.entries, &self.files] {
            for dir_entry in fs::read_dir(directory)? {
                let path = dir_entry?.path();
                let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
                if name.ends_with(".tmp") || name.ends_with(".partial") {
                    tracing::warn!(path = %path.display(), "removing a half-written quarantine file");
                    remove_if_present(&path)?;
                }
            }
        }
        for entry in self.list()? {
            if !self.file_path(entry.id).exists() {
                tracing::warn!(
                    id = %entry.id,
                    original_path = %entry.original_path,
                    "quarantine entry without its file; dropped"
                );
                remove_if_present(&self.entry_path(entry.id))?;
            }
        }
        Ok(())
    }
}

fn exists_conflict() -> HardwareError {
    HardwareError::Conflict("something exists at the original path; nothing was overwritten".to_owned())
}

/// Gives `file` the owner and permissions `entry` recorded: the owner where the service may
/// (as root), then the mode without setuid, setgid and sticky bits (after the chown, which
/// would clear them anyway). Old entries recorded neither: the file is left as it is.
fn give_back_ownership(file: &File, entry: &QuarantineEntry) -> io::Result<()> {
    if (entry.owner_uid.is_some() || entry.owner_gid.is_some())
        && let Err(error) = std::os::unix::fs::fchown(file, entry.owner_uid, entry.owner_gid)
    {
        tracing::warn!(id = %entry.id, %error, "cannot give a restored file back to its owner");
    }
    if let Some(mode) = entry.mode {
        file.set_permissions(fs::Permissions::from_mode(mode & 0o777))?;
    }
    Ok(())
}

/// Puts `stored` (opened as `stored_file`) back at `original` without ever replacing what is
/// there: a hard link fails if the name exists; across filesystems, a verified copy under a
/// temporary name (mode 0600 until its owner and mode are set) is linked.
fn link_back(
    stored_file: &File,
    stored: &Path,
    original: &Path,
    entry: &QuarantineEntry,
) -> Result<(), HardwareError> {
    let internal = |error: io::Error| HardwareError::internal("restore from the quarantine", error);
    // Same filesystem: the link is the quarantined inode itself, so it gets its owner and mode
    // back first (a cross-filesystem quarantine copy is the service's, 0600).
    give_back_ownership(stored_file, entry).map_err(internal)?;
    match fs::hard_link(stored, original) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Err(exists_conflict()),
        Err(error) if error.raw_os_error() == Some(EXDEV) => {}
        Err(error) => return Err(internal(error)),
    }
    let file_name = original.file_name().and_then(|name| name.to_str()).unwrap_or("restored");
    let temporary = original.with_file_name(format!(".{file_name}.{}.restore", Uuid::new_v4()));
    let source = open_no_follow(stored).map_err(internal)?;
    let copy = copy_verified(source, entry.size_bytes, &temporary, &entry.sha256).map_err(internal)?;
    let linked = give_back_ownership(&copy, entry)
        .and_then(|()| copy.sync_all())
        .and_then(|()| fs::hard_link(&temporary, original));
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(exists_conflict()),
        Err(error) => Err(internal(error)),
    }
}

/// Copies at most `size_bytes` of `source` to a new file `target` (never replacing one, mode
/// 0600: no setuid bit or private content leaks through the copy), keeps the modification
/// time, fsyncs it and checks its SHA-256 through the descriptor written. Returns the copy.
fn copy_verified(source: File, size_bytes: u64, target: &Path, sha256: &str) -> io::Result<File> {
    let modified = source.metadata()?.modified()?;
    let mut output = File::options().read(true).write(true).create_new(true).mode(0o600).open(target)?;
    let copied = (|| {
        let length = io::copy(&mut BoundedReader::new(source, size_bytes, None), &mut output)?;
        if length != size_bytes {
            return Err(io::Error::other("the source changed length while it was copied"));
        }
        output.set_modified(modified)?;
        output.sync_all()?;
        output.seek(SeekFrom::Start(0))?;
        let (digest, _) = sha256_reader(&mut &output)?;
        if to_hex(&digest) != sha256 {
            return Err(io::Error::other("the copy does not match the original's sha256"));
        }
        Ok(())
    })();
    if let Err(error) = copied {
        let _ = fs::remove_file(target);
        return Err(error);
    }
    Ok(output)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// fsync of a directory, so a rename or unlink in it survives a crash.
pub(crate) fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::domain::test_support::{TempDir, entry_for};

    #[test]
    fn put_list_restore_purge() {
        let base = TempDir::new();
        let root = base.path().join("root");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("a/same.txt"), b"one").unwrap();
        fs::write(root.join("b/same.txt"), b"one").unwrap();
        let quarantine = Quarantine::open(&base.path().join("q"), Duration::from_secs(3600)).unwrap();
        let roots = AllowedRoots::resolve_configured(
            std::slice::from_ref(&root),
            vec![quarantine.directory().to_path_buf()],
        );
        let first = entry_for(&root.join("a/same.txt"));
        let second = entry_for(&root.join("b/same.txt"));
        let Quarantined::Moved(moved_first) = quarantine.put(&first, CleanupKind::Duplicates, None).unwrap()
        else {
            panic!("not moved")
        };
        let Quarantined::Moved(moved_second) =
            quarantine.put(&second, CleanupKind::Duplicates, None).unwrap()
        else {
            panic!("not moved")
        };
        assert!(!root.join("a/same.txt").exists() && !root.join("b/same.txt").exists());
        assert_ne!(moved_first.id, moved_second.id);
        let listed = quarantine.list().unwrap();
        assert_eq!(
            listed.iter().map(|entry| entry.id).collect::<Vec<_>>(),
            vec![moved_second.id, moved_first.id]
        );

        // Restore onto an occupied path: conflict, and neither copy is touched.
        fs::write(root.join("a/same.txt"), b"new").unwrap();
        let error = quarantine.restore(moved_first.id, &roots).unwrap_err();
        assert_eq!(error.code(), sutazai_types::ServiceErrorCode::Conflict);
        assert_eq!(fs::read(root.join("a/same.txt")).unwrap(), b"new");
        fs::remove_file(root.join("a/same.txt")).unwrap();
        assert_eq!(quarantine.restore(moved_first.id, &roots).unwrap(), moved_first);
        assert_eq!(fs::read(root.join("a/same.txt")).unwrap(), b"one");
        assert_eq!(
            quarantine.restore(moved_first.id, &roots).unwrap_err().code(),
            sutazai_types::ServiceErrorCode::NotFound
        );

        // A changed file is skipped, not moved.
        let stale = entry_for(&root.join("a/same.txt"));
        File::options().append(true).open(root.join("a/same.txt")).unwrap().write_all(b"+").unwrap();
        assert_eq!(
            quarantine.put(&stale, CleanupKind::Storage, None).unwrap(),
            Quarantined::Skipped("changed since it was planned".to_owned())
        );

        assert_eq!(quarantine.purge_expired(Utc::now()).unwrap(), 0);
        assert_eq!(quarantine.purge_expired(moved_second.purge_at).unwrap(), 1);
        assert!(quarantine.list().unwrap().is_empty());
        assert_eq!(
            quarantine.restore(moved_second.id, &roots).unwrap_err().code(),
            sutazai_types::ServiceErrorCode::NotFound
        );
    }

    #[test]
    fn recovery_drops_entries_without_files() {
        let base = TempDir::new();
        fs::write(base.path().join("x"), b"x").unwrap();
        let directory = base.path().join("q");
        let quarantine = Quarantine::open(&directory, Duration::from_secs(60)).unwrap();
        let Quarantined::Moved(entry) =
            quarantine.put(&entry_for(&base.path().join("x")), CleanupKind::Storage, None).unwrap()
        else {
            panic!("not moved")
        };
        fs::remove_file(directory.join("files").join(entry.id.to_string())).unwrap();
        fs::write(directory.join("entries/leftover.json.tmp"), b"{").unwrap();
        let reopened = Quarantine::open(&directory, Duration::from_secs(60)).unwrap();
        assert!(reopened.list().unwrap().is_empty());
        assert!(!directory.join("entries/leftover.json.tmp").exists());
    }

    /// `/dev/shm` when it is another filesystem than the system temp dir: a quarantine there
    /// makes every move a copy (`EXDEV`).
    fn other_filesystem_than(path: &Path) -> Option<PathBuf> {
        let shm = Path::new("/dev/shm");
        let shm_device = fs::metadata(shm).ok()?.dev();
        (shm_device != fs::metadata(path).ok()?.dev())
            .then(|| shm.join(format!("sutazai-q-{}", Uuid::new_v4())))
    }

    #[test]
    fn across_filesystems_copies_are_private_and_restore_gives_back_owner_and_safe_mode() {
        let base = TempDir::new();
        let Some(quarantine_dir) = other_filesystem_than(base.path()) else {
            println!("note: /dev/shm is missing or on the same filesystem; cross-filesystem test skipped");
            return;
        };
        let root = base.path().join("root");
        fs::create_dir_all(&root).unwrap();
        let path = root.join("tool");
        fs::write(&path, b"#!/bin/sh\necho private\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o4750)).unwrap();
        let running_as_root = fs::metadata(&path).unwrap().uid() == 0;
        // As root the owner can be anyone; otherwise it stays ours.
        let (owner_uid, owner_gid) = if running_as_root { (4321, 4322) } else { metadata_owner(&path) };
        if running_as_root {
            std::os::unix::fs::chown(&path, Some(owner_uid), Some(owner_gid)).unwrap();
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o4750)).unwrap();
        let quarantine = Quarantine::open(&quarantine_dir, Duration::from_secs(3600)).unwrap();
        let roots = AllowedRoots::resolve_configured(std::slice::from_ref(&root), Vec::new());

        let result = quarantine.put(&entry_for(&path), CleanupKind::Storage, None);
        let Ok(Quarantined::Moved(entry)) = result else {
            let _ = fs::remove_dir_all(&quarantine_dir);
            panic!("not moved: {result:?}");
        };
        let stored = fs::metadata(quarantine_dir.join("files").join(entry.id.to_string())).unwrap();
        let stored_mode = stored.mode() & 0o7777;
        let restored = quarantine.restore(entry.id, &roots);
        let restored_metadata = fs::metadata(&path);
        let content = fs::read(&path);
        let _ = fs::remove_dir_all(&quarantine_dir);

        assert_eq!(
            (entry.owner_uid, entry.owner_gid, entry.mode),
            (Some(owner_uid), Some(owner_gid), Some(0o4750))
        );
        // The copy in the quarantine is the service's alone, without the setuid bit.
        assert_eq!(stored_mode, 0o600);
        assert_eq!(restored.unwrap(), entry);
        assert_eq!(content.unwrap(), b"#!/bin/sh\necho private\n");
        let restored_metadata = restored_metadata.unwrap();
        assert_eq!(restored_metadata.mode() & 0o7777, 0o750);
        assert_eq!((restored_metadata.uid(), restored_metadata.gid()), (owner_uid, owner_gid));
        assert!(fs::read_dir(&root).unwrap().all(|name| name.unwrap().file_name() == "tool"));
    }

    fn metadata_owner(path: &Path) -> (u32, u32) {
        let metadata = fs::metadata(path).unwrap();
        (metadata.uid(), metadata.gid())
    }
}
