//! The `logs` cleanup: each `*.log` at least `days_old` days old becomes `*.log.gz`. The
//! compressed copy is written under a temporary name, fsynced, and verified by decompressing it
//! and comparing SHA-256 and length with the original; only then is it linked into place (never
//! over an existing `.gz`) and the original moved to the quarantine. Any doubt leaves the
//! original where it was.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ActionKind, ActionOutcome, CleanupAction, PlanContext, Step, StepTarget};
use crate::domain::cleanup::CleanupKind;
use crate::domain::hashing::{Sha256Digest, sha256_reader};
use crate::domain::storage::age_days;
use crate::domain::verified_open::{BoundedReader, is_changed_since_listed, open_verified};
use crate::domain::walk::{FileEntry, walk};
use crate::store::quarantine::{Quarantine, Quarantined, sync_directory};

/// Plans the logs cleanup over the context's targets.
pub fn plan_logs(context: &PlanContext<'_>) -> (Vec<Step>, bool) {
    let mut steps = Vec::new();
    let mut truncated = false;
    for target in context.targets {
        let stats = walk(target, context.excluded, &context.limits, |file| {
            let is_log = file
                .path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.len() > 4 && name.to_lowercase().ends_with(".log"));
            let age = age_days(file.modified, context.now);
            if !is_log || age < u64::from(context.days_old) {
                return;
            }
            let compressed = compressed_path(&file.path);
            let blocked = context.blocked(&file).or_else(|| {
                fs::symlink_metadata(&compressed)
                    .is_ok()
                    .then(|| format!("{} already exists", compressed.display()))
            });
            steps.push(Step {
                kind: ActionKind::CompressFile,
                // Known once compressed; a dry run fills it in (see `compressed_size`).
                reclaim_estimate: 0,
                detail: format!(
                    "log {age} days old; compressed to {}, original to the quarantine",
                    compressed.display()
                ),
                blocked,
                target: StepTarget::File { file, expected_sha256: None, kept: None },
            });
        });
        truncated |= stats.truncated;
    }
    (steps, truncated)
}

/// `a.log` → `a.log.gz`.
fn compressed_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".gz");
    PathBuf::from(name)
}

/// Counts the bytes written, for sizing a compression without writing it anywhere.
#[derive(Debug, Default)]
struct CountingSink {
    written: u64,
}

impl Write for CountingSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.written += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The gzip size of `file`, computed by compressing into a counter: a dry run's estimate is the
/// real figure, and nothing is written. Read through [`open_verified`], at most one byte past the
/// listed size, and stopped at `deadline`.
pub fn compressed_size(file: &FileEntry, deadline: Option<Instant>) -> io::Result<u64> {
    let mut encoder = GzEncoder::new(CountingSink::default(), Compression::default());
    let opened = open_verified(file)?;
    io::copy(&mut BufReader::new(BoundedReader::new(opened, file.size_bytes, deadline)), &mut encoder)?;
    Ok(encoder.finish()?.written)
}

/// Reads from `inner` while hashing what it yields.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    length: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        self.length += read as u64;
        Ok(read)
    }
}

/// What compressing one file came to, before the original is touched.
enum Compressed {
    /// Written and verified at `temporary`; the original's digest.
    Verified { temporary: PathBuf, digest: Sha256Digest, size_bytes: u64 },
    /// Not done, and why.
    Skipped(String),
}

/// Compresses and verifies `file` into a temporary file next to it.
fn compress_to_temporary(file: &FileEntry) -> io::Result<Compressed> {
    let name = file.path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = file.path.with_file_name(format!(".{name}.gz.{}.tmp", Uuid::new_v4()));
    let written = (|| {
        // 0600 until the end: the log's content must not be readable by others meanwhile.
        let mut output =
            File::options().read(true).write(true).create_new(true).mode(0o600).open(&temporary)?;
        let source = open_verified(file)?;
        let metadata = source.metadata()?;
        let mut reader = HashingReader {
            inner: BoundedReader::new(source, file.size_bytes, None),
            hasher: Sha256::new(),
            length: 0,
        };
        let mut encoder = GzEncoder::new(BufWriter::new(&mut output), Compression::default());
        io::copy(&mut reader, &mut encoder)?;
        encoder.finish()?.flush()?;
        // Keep the log's owner where the service may (as root); otherwise the copy is ours.
        let _ = std::os::unix::fs::fchown(&output, Some(metadata.uid()), Some(metadata.gid()));
        // After the chown, and without setuid, setgid or sticky bits.
        output.set_permissions(fs::Permissions::from_mode(metadata.mode() & 0o777))?;
        // The compressed copy keeps the log's age, so later age-based cleanups see it as old.
        output.set_modified(file.modified)?;
        output.sync_all()?;
        Ok::<_, io::Error>((output, reader.hasher.finalize().into(), reader.length))
    })();
    let (mut output, digest, length): (File, Sha256Digest, u64) = match written {
        Ok(result) => result,
        Err(error) if is_changed_since_listed(&error) => {
            let _ = fs::remove_file(&temporary);
            return Ok(Compressed::Skipped("changed since it was planned".to_owned()));
        }
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
    };
    if length != file.size_bytes {
        let _ = fs::remove_file(&temporary);
        return Ok(Compressed::Skipped("changed while it was compressed".to_owned()));
    }
    // Verify what is on disk, not what was meant to be written, through the descriptor written
    // (the name could have been swapped meanwhile).
    output.seek(SeekFrom::Start(0))?;
    let verified = sha256_reader(&mut GzDecoder::new(BufReader::new(&output)));
    match verified {
        Ok((decompressed_digest, decompressed_length))
            if decompressed_digest == digest && decompressed_length == length =>
        {
            let size_bytes = output.metadata()?.len();
            Ok(Compressed::Verified { temporary, digest, size_bytes })
        }
        _ => {
            let _ = fs::remove_file(&temporary);
            Err(io::Error::other("the compressed copy does not decompress to the original"))
        }
    }
}

/// Executes one compress step.
pub(super) fn compress(step: &Step, file: &FileEntry, quarantine: &Quarantine) -> CleanupAction {
    let report = |outcome: ActionOutcome, reclaimed: u64, detail: String| CleanupAction {
        kind: step.kind,
        target: step.target_text(),
        outcome,
        reclaimed_bytes: reclaimed,
        detail,
        quarantine_id: None,
    };
    let failed = |error: io::Error| {
        tracing::error!(path = %file.path.display(), %error, "compressing a log failed");
        report(
            ActionOutcome::Failed,
            0,
            format!("compression failed: {}; the original is untouched", error.kind()),
        )
    };
    match fs::symlink_metadata(&file.path) {
        Ok(metadata) if file.is_unchanged(&metadata) => {}
        Ok(_) => return report(ActionOutcome::Skipped, 0, "changed since it was planned".to_owned()),
        Err(_) => return report(ActionOutcome::Skipped, 0, "gone since it was planned".to_owned()),
    }
    let compressed = compressed_path(&file.path);
    let (temporary, digest, compressed_bytes) = match compress_to_temporary(file) {
        Ok(Compressed::Verified { temporary, digest, size_bytes }) => (temporary, digest, size_bytes),
        Ok(Compressed::Skipped(reason)) => return report(ActionOutcome::Skipped, 0, reason),
        Err(error) => return failed(error),
    };
    // A hard link never replaces an existing name: a `.gz` that appeared meanwhile wins.
    let linked = fs::hard_link(&temporary, &compressed);
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            return report(ActionOutcome::Skipped, 0, format!("{} already exists", compressed.display()));
        }
        Err(error) => return failed(error),
    }
    if let Some(parent) = file.path.parent()
        && let Err(error) = sync_directory(parent)
    {
        return failed(error);
    }
    let expected = crate::domain::hashing::to_hex(&digest);
    match quarantine.put(file, CleanupKind::Logs, Some(&expected)) {
        Ok(Quarantined::Moved(entry)) => CleanupAction {
            quarantine_id: Some(entry.id),
            ..report(
                ActionOutcome::Performed,
                file.size_bytes.saturating_sub(compressed_bytes),
                format!(
                    "compressed to {} ({compressed_bytes} bytes, verified); original moved to the quarantine",
                    compressed.display()
                ),
            )
        },
        Ok(Quarantined::Skipped(reason)) => {
            // The original changed after it was compressed: the copy is stale, so it goes.
            let _ = fs::remove_file(&compressed);
            report(ActionOutcome::Skipped, 0, reason)
        }
        Err(error) => {
            let _ = fs::remove_file(&compressed);
            failed(error)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::domain::test_support::TempDir;

    #[test]
    fn compressed_size_matches_a_real_compression() {
        let base = TempDir::new();
        let path = base.path().join("a.log");
        let content: Vec<u8> =
            (0..50_000_u32).flat_map(|line| format!("line {line}\n").into_bytes()).collect();
        fs::write(&path, &content).unwrap();
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&content).unwrap();
        let listed = crate::domain::test_support::entry_for(&path);
        assert_eq!(compressed_size(&listed, None).unwrap(), encoder.finish().unwrap().len() as u64);
        assert_eq!(compressed_path(&path), base.path().join("a.log.gz"));

        // Swapped for a link to an endless device after the listing: refused, not compressed
        // forever.
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let error = compressed_size(&listed, None).unwrap_err();
        assert!(crate::domain::verified_open::is_changed_since_listed(&error));
    }
}
