//! The largest files of a tree, biggest first. A bounded min-heap keeps only `limit` candidates,
//! so memory does not grow with the tree.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::time::SystemTime;

use super::paths::SafePath;
use super::walk::{ScanLimits, walk};

/// Smallest size listed when the request says 0 (100 MiB).
pub const DEFAULT_MIN_SIZE_BYTES: u64 = 100 * 1024 * 1024;
/// Files listed when the request says 0.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most files one answer lists.
pub const MAX_LIMIT: u32 = 1000;

/// One large file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeFile {
    /// Canonical path.
    pub path: PathBuf,
    /// Size.
    pub size_bytes: u64,
    /// Last modification.
    pub modified: SystemTime,
}

/// The largest files and whether the scan covered the whole tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeFiles {
    /// Biggest first; equal sizes by path.
    pub files: Vec<LargeFile>,
    /// Stopped at a bound.
    pub truncated: bool,
}

/// The `limit` largest files of at least `min_size_bytes` under `start`.
pub fn find_large_files(
    start: &SafePath,
    excluded: &[PathBuf],
    limits: &ScanLimits,
    min_size_bytes: u64,
    limit: usize,
) -> LargeFiles {
    // Reverse turns the max-heap into a min-heap: the smallest kept file is the one to evict.
    let mut heap: BinaryHeap<Reverse<(u64, Reverse<PathBuf>, SystemTime)>> = BinaryHeap::new();
    let stats = walk(start, excluded, limits, |file| {
        if file.size_bytes < min_size_bytes || limit == 0 {
            return;
        }
        let candidate = Reverse((file.size_bytes, Reverse(file.path), file.modified));
        if heap.len() < limit {
            heap.push(candidate);
        } else if heap.peek().is_some_and(|smallest| candidate < *smallest) {
            heap.pop();
            heap.push(candidate);
        }
    });
    let files = heap
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse((size_bytes, Reverse(path), modified))| LargeFile { path, size_bytes, modified })
        .collect();
    LargeFiles { files, truncated: stats.truncated }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::time::Duration;

    use super::*;
    use crate::domain::paths::AllowedRoots;
    use crate::domain::test_support::TempDir;

    #[test]
    fn keeps_the_biggest_in_order() {
        let base = TempDir::new();
        for (name, size) in [("a", 10), ("b", 50), ("c", 30), ("d", 50), ("e", 5), ("f", 40)] {
            std::fs::write(base.path().join(name), vec![1_u8; size]).unwrap();
        }
        let roots = AllowedRoots::resolve_configured(&[base.path().to_path_buf()], Vec::new());
        let start = roots.resolve(base.path().to_str().unwrap().as_bytes()).unwrap();
        let limits = ScanLimits::starting_now(100, Duration::from_secs(10));
        let found = find_large_files(&start, &[], &limits, 10, 3);
        let listed: Vec<_> = found
            .files
            .iter()
            .map(|file| (file.path.file_name().unwrap().to_str().unwrap().to_owned(), file.size_bytes))
            .collect();
        assert_eq!(listed, vec![("b".to_owned(), 50), ("d".to_owned(), 50), ("f".to_owned(), 40)]);
        assert!(!found.truncated);
        assert!(find_large_files(&start, &[], &limits, 100, 3).files.is_empty());
    }
}
