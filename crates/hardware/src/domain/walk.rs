//! The one tree walker every scan uses. It never follows a symlink (entries are `lstat`ed and
//! symlinks are neither entered nor reported), never leaves the root's filesystem (a directory
//! whose `st_dev` differs is a mount point and is not entered), skips special files (FIFOs,
//! sockets, devices: opening a FIFO would block), skips the quarantine, and stops at the scan
//! bounds, reporting the result as truncated.
//!
//! Every entry read counts against the scan's entry bound (directories, symlinks and special
//! files included, so a tree of empty directories or of a million FIFOs is bounded too), and the
//! deadline is checked at every entry, not once per directory. Memory stays bounded by the
//! directories still to visit, which the entry bound caps: files are handed to the caller one at
//! a time.
//!
//! A directory is listed by name, so one swapped for a symlink between its `lstat` and its
//! `read_dir` would list the link's target: right after opening it, the walk checks that the
//! name still is a real directory with the listed device and inode, and passes over it if not.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::paths::SafePath;

/// Limits of one scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// Most entries visited (files, directories, symlinks, special files alike).
    pub max_files: u64,
    /// When the scan stops, wherever it is.
    pub deadline: Instant,
}

impl ScanLimits {
    /// Limits starting now.
    pub fn starting_now(max_files: u64, max_duration: Duration) -> Self {
        Self { max_files, deadline: Instant::now() + max_duration }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// A regular file found by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Canonical: the walk starts from a canonical path and follows no symlinks.
    pub path: PathBuf,
    /// `st_size`.
    pub size_bytes: u64,
    /// `st_mtime`.
    pub modified: SystemTime,
    /// `st_dev`.
    pub device: u64,
    /// `st_ino`.
    pub inode: u64,
}

impl FileEntry {
    fn from_metadata(path: PathBuf, metadata: &fs::Metadata) -> Self {
        Self {
            path,
            size_bytes: metadata.len(),
            modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }

    /// Whether `metadata` (of the same path, later) still describes this file unchanged.
    pub fn is_unchanged(&self, metadata: &fs::Metadata) -> bool {
        metadata.file_type().is_file()
            && metadata.dev() == self.device
            && metadata.ino() == self.inode
            && metadata.len() == self.size_bytes
            && metadata.modified().ok() == Some(self.modified)
    }
}

/// What a walk covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Regular files handed to the visitor.
    pub files: u64,
    /// Directories entered (the start included when it is one).
    pub directories: u64,
    /// Entries that could not be read (permissions, vanished or swapped during the scan).
    pub skipped: u64,
    /// Entries read, of every kind; bounded by [`ScanLimits::max_files`].
    pub entries: u64,
    /// The walk stopped at a bound before covering the tree.
    pub truncated: bool,
}

/// Walks `start`, handing each regular file to `visit`. `excluded` directories (canonical) are
/// not entered.
pub fn walk(
    start: &SafePath,
    excluded: &[PathBuf],
    limits: &ScanLimits,
    mut visit: impl FnMut(FileEntry),
) -> WalkStats {
    let device = start.root().device();
    let mut stats = WalkStats::default();
    let metadata = match fs::symlink_metadata(start.as_path()) {
        Ok(metadata) => metadata,
        Err(_) => {
            stats.skipped += 1;
            return stats;
        }
    };
    if metadata.file_type().is_file() {
        stats.files = 1;
        visit(FileEntry::from_metadata(start.as_path().to_path_buf(), &metadata));
        return stats;
    }
    if !metadata.is_dir() {
        return stats;
    }
    let mut pending = vec![(start.as_path().to_path_buf(), metadata.dev(), metadata.ino())];
    while let Some((directory, directory_device, directory_inode)) = pending.pop() {
        if limits.expired() {
            stats.truncated = true;
            return stats;
        }
        let entries = match fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(_) => {
                stats.skipped += 1;
                continue;
            }
        };
        // Opened by name: the name must still be the directory that was listed, not a symlink
        // (or another directory) swapped in since.
        let still_listed = fs::symlink_metadata(&directory)
            .is_ok_and(|now| now.is_dir() && now.dev() == directory_device && now.ino() == directory_inode);
        if !still_listed {
            stats.skipped += 1;
            continue;
        }
        stats.directories += 1;
        for entry in entries {
            if stats.entries >= limits.max_files || limits.expired() {
                stats.truncated = true;
                return stats;
            }
            stats.entries += 1;
            let Ok(entry) = entry else {
                stats.skipped += 1;
                continue;
            };
            let path = entry.path();
            // lstat: a symlink is described, never followed.
            let Ok(metadata) = fs::symlink_metadata(&path) else {
                stats.skipped += 1;
                continue;
            };
            let file_type = metadata.file_type();
            if file_type.is_dir() {
                if metadata.dev() == device && !excluded.contains(&path) {
                    pending.push((path, metadata.dev(), metadata.ino()));
                }
            } else if file_type.is_file() {
                if metadata.dev() != device {
                    // A file bind-mounted from another filesystem.
                    continue;
                }
                stats.files += 1;
                visit(FileEntry::from_metadata(path, &metadata));
            }
            // Symlinks, FIFOs, sockets and devices: not followed, not opened, not reported.
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::os::unix::fs::symlink;

    use super::*;
    use crate::domain::paths::AllowedRoots;
    use crate::domain::test_support::TempDir;

    #[test]
    fn symlinks_special_files_and_excluded_dirs_are_not_visited() {
        let base = TempDir::new();
        let root = base.path().join("root");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join("quarantine")).unwrap();
        std::fs::create_dir_all(base.path().join("outside")).unwrap();
        std::fs::write(root.join("top.txt"), b"1").unwrap();
        std::fs::write(root.join("sub/deeper/low.txt"), b"22").unwrap();
        std::fs::write(root.join("quarantine/hidden"), b"333").unwrap();
        std::fs::write(base.path().join("outside/secret"), b"4444").unwrap();
        symlink(base.path().join("outside"), root.join("dir_link")).unwrap();
        symlink(base.path().join("outside/secret"), root.join("file_link")).unwrap();
        std::process::Command::new("mkfifo").arg(root.join("fifo")).status().unwrap();
        let quarantine = std::fs::canonicalize(root.join("quarantine")).unwrap();
        let roots = AllowedRoots::resolve_configured(std::slice::from_ref(&root), vec![quarantine]);
        let start = roots.resolve(root.to_str().unwrap().as_bytes()).unwrap();
        let mut seen = Vec::new();
        let limits = ScanLimits::starting_now(100, Duration::from_secs(10));
        let stats = walk(&start, roots.excluded(), &limits, |file| seen.push(file));
        let mut names: Vec<_> =
            seen.iter().map(|file| file.path.strip_prefix(&root).unwrap().to_owned()).collect();
        names.sort();
        assert_eq!(names, vec![PathBuf::from("sub/deeper/low.txt"), PathBuf::from("top.txt")]);
        assert_eq!(stats, WalkStats { files: 2, directories: 3, skipped: 0, entries: 8, truncated: false });
    }

    #[test]
    fn bounds_truncate() {
        let base = TempDir::new();
        for index in 0..10 {
            std::fs::write(base.path().join(format!("f{index}")), b"x").unwrap();
        }
        let roots = AllowedRoots::resolve_configured(&[base.path().to_path_buf()], Vec::new());
        let start = roots.resolve(base.path().to_str().unwrap().as_bytes()).unwrap();
        let stats = walk(&start, &[], &ScanLimits::starting_now(4, Duration::from_secs(10)), |_| {});
        assert_eq!((stats.files, stats.truncated), (4, true));
        let expired = ScanLimits { max_files: 100, deadline: Instant::now() };
        let stats = walk(&start, &[], &expired, |_| {});
        assert_eq!((stats.files, stats.truncated), (0, true));
    }

    #[test]
    fn special_entries_count_against_the_bound() {
        let base = TempDir::new();
        for index in 0..10 {
            std::os::unix::fs::symlink("/nowhere", base.path().join(format!("l{index}"))).unwrap();
        }
        std::fs::write(base.path().join("zfile"), b"x").unwrap();
        let roots = AllowedRoots::resolve_configured(&[base.path().to_path_buf()], Vec::new());
        let start = roots.resolve(base.path().to_str().unwrap().as_bytes()).unwrap();
        let stats = walk(&start, &[], &ScanLimits::starting_now(5, Duration::from_secs(10)), |_| {});
        assert_eq!((stats.entries, stats.truncated), (5, true));
    }

    #[test]
    fn the_deadline_stops_a_walk_in_the_middle_of_a_directory() {
        let base = TempDir::new();
        for index in 0..20 {
            std::fs::write(base.path().join(format!("f{index}")), b"x").unwrap();
        }
        let roots = AllowedRoots::resolve_configured(&[base.path().to_path_buf()], Vec::new());
        let start = roots.resolve(base.path().to_str().unwrap().as_bytes()).unwrap();
        let limits = ScanLimits::starting_now(1000, Duration::from_millis(100));
        // Each file takes 30 ms: the deadline passes after a few of the directory's 20 files.
        let stats = walk(&start, &[], &limits, |_| std::thread::sleep(Duration::from_millis(30)));
        assert!(stats.truncated);
        assert!((1..=5).contains(&stats.files), "visited {} files", stats.files);
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_after_its_lstat_is_not_listed() {
        let base = TempDir::new();
        let root = base.path().join("root");
        for name in ["d1", "d2"] {
            std::fs::create_dir_all(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("trigger"), b"t").unwrap();
        }
        std::fs::create_dir_all(base.path().join("outside")).unwrap();
        std::fs::write(base.path().join("outside/secret"), b"s").unwrap();
        let roots = AllowedRoots::resolve_configured(std::slice::from_ref(&root), Vec::new());
        let start = roots.resolve(root.to_str().unwrap().as_bytes()).unwrap();
        let mut seen = Vec::new();
        let limits = ScanLimits::starting_now(100, Duration::from_secs(10));
        // Both directories are lstat-ed and queued while the root is listed; the first one
        // listed swaps the other, still queued, for a symlink out of the tree.
        let stats = walk(&start, &[], &limits, |file| {
            if seen.is_empty() {
                let other = if file.path.starts_with(root.join("d1")) { "d2" } else { "d1" };
                std::fs::remove_dir_all(root.join(other)).unwrap();
                symlink(base.path().join("outside"), root.join(other)).unwrap();
            }
            seen.push(file.path);
        });
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].ends_with("trigger"));
        assert_eq!((stats.files, stats.skipped), (1, 1));
    }
}
