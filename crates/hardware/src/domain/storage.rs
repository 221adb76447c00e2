//! Storage analysis of one tree: size by extension, size buckets and age buckets. Fixed bucket
//! edges, so every answer has the same shape and empty buckets say "none" rather than vanish.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::paths::SafePath;
use super::walk::{FileEntry, ScanLimits, walk};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// Lower edges of the size buckets; the last has no upper bound.
const SIZE_EDGES: [u64; 6] = [0, 4 * KIB, MIB, 100 * MIB, GIB, 10 * GIB];
/// Lower edges of the age buckets in days, youngest first; the last has no upper bound.
const AGE_EDGES_DAYS: [u32; 6] = [0, 1, 7, 30, 90, 365];
/// Extensions longer than this are not extensions but parts of a name (`file.0d8a1c3f9b2e7a64`).
const MAX_EXTENSION_CHARS: usize = 16;
/// Most extension rows in an answer; the rest are the smallest.
pub const MAX_EXTENSION_ROWS: usize = 1000;
const SECONDS_PER_DAY: u64 = 86_400;

/// Files and bytes of one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionUsage {
    /// Lowercase, without the dot; empty for none.
    pub extension: String,
    /// Files.
    pub file_count: u64,
    /// Bytes.
    pub size_bytes: u64,
}

/// Files with `min <= size < max` (`max` 0: unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeBucket {
    /// Inclusive lower edge.
    pub min_size_bytes: u64,
    /// Exclusive upper edge, 0 for none.
    pub max_size_bytes: u64,
    /// Files.
    pub file_count: u64,
    /// Bytes.
    pub size_bytes: u64,
}

/// Files last modified `min <= age < max` days ago (`max` 0: unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeBucket {
    /// Inclusive lower edge.
    pub min_age_days: u32,
    /// Exclusive upper edge, 0 for none.
    pub max_age_days: u32,
    /// Files.
    pub file_count: u64,
    /// Bytes.
    pub size_bytes: u64,
}

/// The analysis of one tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAnalysis {
    /// The canonical path analysed.
    pub path: PathBuf,
    /// Bytes of all files.
    pub total_size_bytes: u64,
    /// Regular files.
    pub file_count: u64,
    /// Directories.
    pub directory_count: u64,
    /// Biggest first, at most [`MAX_EXTENSION_ROWS`].
    pub by_extension: Vec<ExtensionUsage>,
    /// Ascending.
    pub by_size: Vec<SizeBucket>,
    /// Youngest first.
    pub by_age: Vec<AgeBucket>,
    /// Unreadable entries.
    pub skipped_count: u64,
    /// Stopped at a bound.
    pub truncated: bool,
}

/// Analyses the tree at `start`.
pub fn analyze(
    start: &SafePath,
    excluded: &[PathBuf],
    limits: &ScanLimits,
    now: SystemTime,
) -> StorageAnalysis {
    let mut by_size: Vec<SizeBucket> = SIZE_EDGES
        .iter()
        .enumerate()
        .map(|(index, &min)| SizeBucket {
            min_size_bytes: min,
            max_size_bytes: SIZE_EDGES.get(index + 1).copied().unwrap_or(0),
            file_count: 0,
            size_bytes: 0,
        })
        .collect();
    let mut by_age: Vec<AgeBucket> = AGE_EDGES_DAYS
        .iter()
        .enumerate()
        .map(|(index, &min)| AgeBucket {
            min_age_days: min,
            max_age_days: AGE_EDGES_DAYS.get(index + 1).copied().unwrap_or(0),
            file_count: 0,
            size_bytes: 0,
        })
        .collect();
    let mut extensions: HashMap<String, (u64, u64)> = HashMap::new();
    let mut total_size_bytes = 0_u64;
    let stats = walk(start, excluded, limits, |file: FileEntry| {
        total_size_bytes = total_size_bytes.saturating_add(file.size_bytes);
        let size_index = SIZE_EDGES.iter().rposition(|&edge| file.size_bytes >= edge).unwrap_or(0);
        let bucket = &mut by_size[size_index];
        add(&mut bucket.file_count, &mut bucket.size_bytes, file.size_bytes);
        let age_days = age_days(file.modified, now);
        let age_index = AGE_EDGES_DAYS.iter().rposition(|&edge| u64::from(edge) <= age_days).unwrap_or(0);
        let bucket = &mut by_age[age_index];
        add(&mut bucket.file_count, &mut bucket.size_bytes, file.size_bytes);
        let usage = extensions.entry(extension_of(&file.path)).or_default();
        add(&mut usage.0, &mut usage.1, file.size_bytes);
    });
    let mut by_extension: Vec<ExtensionUsage> = extensions
        .into_iter()
        .map(|(extension, (file_count, size_bytes))| ExtensionUsage { extension, file_count, size_bytes })
        .collect();
    by_extension.sort_by(|left, right| {
        right.size_bytes.cmp(&left.size_bytes).then_with(|| left.extension.cmp(&right.extension))
    });
    by_extension.truncate(MAX_EXTENSION_ROWS);
    StorageAnalysis {
        path: start.as_path().to_path_buf(),
        total_size_bytes,
        file_count: stats.files,
        directory_count: stats.directories,
        by_extension,
        by_size,
        by_age,
        skipped_count: stats.skipped,
        truncated: stats.truncated,
    }
}

fn add(count: &mut u64, bytes: &mut u64, size: u64) {
    *count += 1;
    *bytes = bytes.saturating_add(size);
}

/// Whole days since `modified`; a file from the future is 0 days old.
pub fn age_days(modified: SystemTime, now: SystemTime) -> u64 {
    now.duration_since(modified).map(|age| age.as_secs() / SECONDS_PER_DAY).unwrap_or(0)
}

/// Lowercase extension without the dot; empty for none, a dotfile (`.bashrc`), or a suffix too
/// long to be an extension.
pub fn extension_of(path: &Path) -> String {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some(extension) if extension.chars().count() <= MAX_EXTENSION_CHARS => extension.to_lowercase(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::fs::File;
    use std::time::Duration;

    use super::*;
    use crate::domain::paths::AllowedRoots;
    use crate::domain::test_support::TempDir;

    #[test]
    fn buckets_and_extensions() {
        let base = TempDir::new();
        let now = SystemTime::now();
        std::fs::write(base.path().join("a.TXT"), vec![0_u8; 10]).unwrap();
        std::fs::write(base.path().join("b.txt"), vec![0_u8; 5000]).unwrap();
        std::fs::write(base.path().join(".bashrc"), vec![0_u8; 1]).unwrap();
        std::fs::create_dir(base.path().join("old")).unwrap();
        std::fs::write(base.path().join("old/c.log"), vec![0_u8; 100]).unwrap();
        File::options()
            .write(true)
            .open(base.path().join("old/c.log"))
            .unwrap()
            .set_modified(now - Duration::from_secs(40 * 86_400))
            .unwrap();
        let roots = AllowedRoots::resolve_configured(&[base.path().to_path_buf()], Vec::new());
        let start = roots.resolve(base.path().to_str().unwrap().as_bytes()).unwrap();
        let analysis = analyze(&start, &[], &ScanLimits::starting_now(100, Duration::from_secs(10)), now);
        assert_eq!((analysis.file_count, analysis.directory_count, analysis.total_size_bytes), (4, 2, 5111));
        assert_eq!(
            analysis.by_extension,
            vec![
                ExtensionUsage { extension: "txt".into(), file_count: 2, size_bytes: 5010 },
                ExtensionUsage { extension: "log".into(), file_count: 1, size_bytes: 100 },
                ExtensionUsage { extension: String::new(), file_count: 1, size_bytes: 1 },
            ]
        );
        assert_eq!(
            analysis.by_size[0],
            SizeBucket { min_size_bytes: 0, max_size_bytes: 4096, file_count: 3, size_bytes: 111 }
        );
        assert_eq!(analysis.by_size[1].file_count, 1);
        assert_eq!(analysis.by_size.last().unwrap().max_size_bytes, 0);
        assert_eq!(analysis.by_age[0].file_count, 3);
        assert_eq!(
            analysis.by_age[3],
            AgeBucket { min_age_days: 30, max_age_days: 90, file_count: 1, size_bytes: 100 }
        );
        assert!(!analysis.truncated);
    }

    #[test]
    fn extensions() {
        assert_eq!(extension_of(Path::new("/a/b.tar.GZ")), "gz");
        assert_eq!(extension_of(Path::new("/a/Makefile")), "");
        assert_eq!(extension_of(Path::new("/a/x.0123456789abcdef0")), "");
    }
}
