//! Duplicate files, verified in four passes that each read only what the previous one could not
//! rule out: group by size; then by a SHA-256 of the first [`PARTIAL_BYTES`]; then by a SHA-256
//! of the whole file; then a byte-for-byte comparison against the group's first file before a
//! group is declared. Hard links to one inode count once (removing one frees nothing).
//!
//! Within a group, files are ordered by the keep rule ([`KEEP_RULE`]): a duplicates cleanup keeps
//! the first and quarantines the others.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use super::hashing::{PARTIAL_BYTES, Sha256Digest, identical_to, partial_sha256, sha256_file, to_hex};
use super::paths::SafePath;
use super::pool::map_until;
use super::walk::{FileEntry, ScanLimits, walk};

/// Which copy of a group is kept, in the words the cleanup reports.
pub const KEEP_RULE: &str = "the oldest copy is kept (earliest modification time; ties: the smallest path)";
/// Files compared against the group's first in one lockstep pass (open files at once).
const COMPARE_BATCH: usize = 64;

/// Files with byte-identical content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroup {
    /// Of each file.
    pub size_bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// In keep-rule order: the first is kept.
    pub files: Vec<FileEntry>,
}

impl DuplicateGroup {
    /// Bytes freed by keeping one file.
    pub fn reclaimable_bytes(&self) -> u64 {
        self.size_bytes.saturating_mul(self.files.len().saturating_sub(1) as u64)
    }
}

/// The duplicate groups of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateReport {
    /// Biggest wasted space first.
    pub groups: Vec<DuplicateGroup>,
    /// Sum over the groups.
    pub reclaimable_bytes: u64,
    /// Regular files the walk visited.
    pub files_scanned: u64,
    /// The walk or a hashing pass stopped at a bound.
    pub truncated: bool,
}

/// Finds the duplicate groups of files of at least `min_size_bytes` under `start`.
pub fn find_duplicates(
    start: &SafePath,
    excluded: &[PathBuf],
    limits: &ScanLimits,
    min_size_bytes: u64,
    workers: usize,
) -> DuplicateReport {
    let mut by_size: HashMap<u64, Vec<FileEntry>> = HashMap::new();
    let mut inodes: HashSet<(u64, u64)> = HashSet::new();
    let stats = walk(start, excluded, limits, |file| {
        if file.size_bytes >= min_size_bytes && inodes.insert((file.device, file.inode)) {
            by_size.entry(file.size_bytes).or_default().push(file);
        }
    });
    drop(inodes);
    let mut truncated = stats.truncated;

    let candidates: Vec<FileEntry> =
        by_size.into_values().filter(|files| files.len() > 1).flatten().collect();
    let partial =
        map_until(&candidates, workers, limits.deadline, |file| partial_sha256(file).ok().flatten());
    truncated |= partial.iter().any(Option::is_none);
    let by_partial = regroup(candidates, partial);

    // A file no longer than the partial pass is already hashed whole.
    let (small, large): (Vec<_>, Vec<_>) =
        by_partial.into_iter().partition(|(size, _, _)| *size <= PARTIAL_BYTES);
    let mut hashed: Vec<(u64, Sha256Digest, Vec<FileEntry>)> = small;
    let large_files: Vec<FileEntry> = large.into_iter().flat_map(|(_, _, files)| files).collect();
    let full = map_until(&large_files, workers, limits.deadline, |file| {
        // Past the deadline mid-file: no digest, the file drops out and the scan is truncated.
        sha256_file(file, Some(limits.deadline)).ok().flatten()
    });
    truncated |= full.iter().any(Option::is_none);
    hashed.extend(regroup(large_files, full));

    let verified = map_until(&hashed, workers, limits.deadline, |(size, digest, files)| {
        confirm_identical(*size, digest, files, limits.deadline)
    });
    let mut groups: Vec<DuplicateGroup> = Vec::new();
    for confirmed in verified {
        match confirmed {
            Some(Ok(Some(group))) => groups.push(group),
            Some(Ok(None)) => {}
            // Not started before the deadline, or stopped by it or by an error.
            None | Some(Err(())) => truncated = true,
        }
    }
    groups.sort_by(|left, right| {
        right
            .reclaimable_bytes()
            .cmp(&left.reclaimable_bytes())
            .then_with(|| left.files[0].path.cmp(&right.files[0].path))
    });
    let reclaimable_bytes = groups.iter().map(DuplicateGroup::reclaimable_bytes).sum();
    DuplicateReport { groups, reclaimable_bytes, files_scanned: stats.files, truncated }
}

/// Groups files by (size, digest), keeping only groups of two or more; files without a digest
/// (unread, changed, or past the deadline) drop out.
fn regroup(
    files: Vec<FileEntry>,
    digests: Vec<Option<Option<Sha256Digest>>>,
) -> Vec<(u64, Sha256Digest, Vec<FileEntry>)> {
    let mut groups: HashMap<(u64, Sha256Digest), Vec<FileEntry>> = HashMap::new();
    for (file, digest) in files.into_iter().zip(digests) {
        if let Some(Some(digest)) = digest {
            groups.entry((file.size_bytes, digest)).or_default().push(file);
        }
    }
    groups
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|((size, digest), files)| (size, digest, files))
        .collect()
}

/// The group of files confirmed byte-identical to the keep-rule first, if two or more are;
/// `Err` when the comparison could not finish (an I/O error or the deadline).
fn confirm_identical(
    size_bytes: u64,
    digest: &Sha256Digest,
    files: &[FileEntry],
    deadline: Instant,
) -> Result<Option<DuplicateGroup>, ()> {
    let mut ordered = files.to_vec();
    ordered
        .sort_by(|left, right| left.modified.cmp(&right.modified).then_with(|| left.path.cmp(&right.path)));
    let Some((reference, others)) = ordered.split_first() else { return Ok(None) };
    let mut confirmed = vec![reference.clone()];
    for batch in others.chunks(COMPARE_BATCH) {
        let listed: Vec<&FileEntry> = batch.iter().collect();
        let Ok(identical) = identical_to(reference, &listed, Some(deadline)) else {
            return Err(());
        };
        for (file, same) in batch.iter().zip(identical) {
            if same {
                confirmed.push(file.clone());
            } else {
                tracing::warn!(
                    path = %file.path.display(),
                    "same size and sha-256 as its group but different bytes, or changed while compared"
                );
            }
        }
    }
    Ok((confirmed.len() > 1).then(|| DuplicateGroup { size_bytes, sha256: to_hex(digest), files: confirmed }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::fs::File;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::domain::paths::AllowedRoots;
    use crate::domain::test_support::TempDir;

    fn write(path: &std::path::Path, content: &[u8], age_s: u64) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 - age_s);
        File::options().write(true).open(path).unwrap().set_modified(modified).unwrap();
    }

    #[test]
    fn groups_are_verified_and_ordered_by_the_keep_rule() {
        let base = TempDir::new();
        let root = base.path();
        let big: Vec<u8> = (0..20_000_u32).map(|value| (value % 7) as u8).collect();
        let mut big_other = big.clone();
        big_other[19_999] = 99;
        write(&root.join("x/copy.bin"), &big, 10);
        write(&root.join("y/copy.bin"), &big, 30);
        write(&root.join("z.bin"), &big, 30);
        write(&root.join("late-diff.bin"), &big_other, 0);
        write(&root.join("s1"), b"small", 0);
        write(&root.join("s2"), b"small", 5);
        write(&root.join("empty1"), b"", 0);
        write(&root.join("empty2"), b"", 0);
        write(&root.join("unique"), b"other", 0);
        std::fs::hard_link(root.join("unique"), root.join("unique-link")).unwrap();
        let roots = AllowedRoots::resolve_configured(&[root.to_path_buf()], Vec::new());
        let start = roots.resolve(root.to_str().unwrap().as_bytes()).unwrap();
        let limits = ScanLimits::starting_now(1000, Duration::from_secs(30));
        let report = find_duplicates(&start, &[], &limits, 1, 2);
        let names: Vec<Vec<String>> = report
            .groups
            .iter()
            .map(|group| {
                group
                    .files
                    .iter()
                    .map(|file| file.path.strip_prefix(root).unwrap().display().to_string())
                    .collect()
            })
            .collect();
        assert_eq!(names, vec![vec!["y/copy.bin", "z.bin", "x/copy.bin"], vec!["s2", "s1"]]);
        assert_eq!(report.reclaimable_bytes, 2 * 20_000 + 5);
        assert_eq!(report.groups[1].sha256, to_hex(&<sha2::Sha256 as sha2::Digest>::digest(b"small")));
        assert_eq!(report.files_scanned, 10);
        assert!(!report.truncated);
    }
}
