//! Opening a file a walk listed, and reading it within bounds. Between the walk's `lstat` and the
//! `open`, whoever may write the directory (anyone, in `/tmp`) can swap the name for a symlink
//! to `/dev/zero` or for a FIFO; a plain `File::open` would then follow the link or block on the
//! FIFO, and the reader would hash or compress forever while holding the cleanup lock.
//!
//! So every listed file is opened through [`open_verified`]: `O_NOFOLLOW` (a symlink fails with
//! `ELOOP`), `O_NONBLOCK` (a FIFO opens at once instead of waiting for a writer; it has no effect
//! on a regular file), then `fstat` of the descriptor must show a regular file with the listed
//! device, inode and size. Everything after reads from that descriptor, never from the name, and
//! through [`BoundedReader`]: at most one byte past the listed size (so growth is seen, not
//! followed) and with the deadline checked as the bytes go by.

use std::fs::File;
use std::io::{self, Read, Take};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use rustix::fs::{Mode, OFlags};

use super::walk::FileEntry;

/// Bytes read between two looks at the clock: a look per 8 MiB costs nothing next to the read,
/// and at disk speed bounds the overrun past a deadline to well under a second.
const DEADLINE_CHECK_BYTES: u64 = 8 * 1024 * 1024;

/// The file at a listed path is no longer the one listed (or never was a regular file).
#[derive(Debug, thiserror::Error)]
#[error("changed since it was listed")]
pub struct ChangedSinceListed;

/// A read went past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the scan deadline passed while reading")]
pub struct DeadlinePassed;

/// Whether `error` says the file changed since it was listed (rather than an I/O failure).
pub fn is_changed_since_listed(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<ChangedSinceListed>())
}

/// Whether `error` says a read stopped at its deadline.
pub fn is_deadline_passed(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<DeadlinePassed>())
}

fn changed() -> io::Error {
    io::Error::other(ChangedSinceListed)
}

/// Opens `path` read-only without following a final symlink and without blocking on a FIFO;
/// the descriptor is close-on-exec.
pub fn open_no_follow(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(descriptor) => Ok(File::from(descriptor)),
        // ELOOP: the last component is a symlink now.
        Err(rustix::io::Errno::LOOP) => Err(changed()),
        Err(errno) => Err(errno.into()),
    }
}

/// Opens the file `entry` lists, provided it is still that file: a regular file with the same
/// device, inode and size. Any other answer is a [`ChangedSinceListed`] error.
pub fn open_verified(entry: &FileEntry) -> io::Result<File> {
    let file = open_no_follow(&entry.path)?;
    let metadata = file.metadata()?;
    let same_file = metadata.file_type().is_file()
        && metadata.dev() == entry.device
        && metadata.ino() == entry.inode
        && metadata.len() == entry.size_bytes;
    if !same_file {
        return Err(changed());
    }
    Ok(file)
}

/// Reads at most `size_bytes + 1` bytes of a file and fails with [`DeadlinePassed`] once the
/// deadline has passed, checked every [`DEADLINE_CHECK_BYTES`].
#[derive(Debug)]
pub struct BoundedReader<R> {
    inner: Take<R>,
    deadline: Option<Instant>,
    since_check: u64,
}

impl<R: Read> BoundedReader<R> {
    /// Bounds `inner`, whose expected length is `size_bytes`; the extra byte lets a caller see
    /// that the file grew.
    pub fn new(inner: R, size_bytes: u64, deadline: Option<Instant>) -> Self {
        Self { inner: inner.take(size_bytes.saturating_add(1)), deadline, since_check: 0 }
    }
}

impl<R: Read> Read for BoundedReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline
            && self.since_check >= DEADLINE_CHECK_BYTES
        {
            if Instant::now() >= deadline {
                return Err(io::Error::other(DeadlinePassed));
            }
            self.since_check = 0;
        }
        let read = self.inner.read(buffer)?;
        self.since_check += read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use super::*;
    use crate::domain::test_support::{TempDir, entry_for};

    #[test]
    fn a_name_swapped_for_a_symlink_or_a_fifo_is_refused_at_once() {
        let base = TempDir::new();
        let path = base.path().join("x.log");
        std::fs::write(&path, b"listed").unwrap();
        let listed = entry_for(&path);
        assert_eq!(std::io::read_to_string(open_verified(&listed).unwrap()).unwrap(), "listed");

        // Swapped for a link to an endless device: not followed. (The listed file is kept under
        // another name so that its inode cannot be reused by the replacements below.)
        std::fs::rename(&path, base.path().join("kept")).unwrap();
        symlink("/dev/zero", &path).unwrap();
        assert!(is_changed_since_listed(&open_verified(&listed).unwrap_err()));

        // Swapped for a FIFO: the open returns at once (no writer needed) and is refused.
        std::fs::remove_file(&path).unwrap();
        std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(is_changed_since_listed(&open_verified(&listed).unwrap_err()));

        // Replaced by another file of the same size: another inode.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"LISTED").unwrap();
        assert!(is_changed_since_listed(&open_verified(&listed).unwrap_err()));
    }

    #[test]
    fn reads_stop_one_byte_past_the_size_and_at_the_deadline() {
        let mut endless = BoundedReader::new(io::repeat(7), 10, None);
        let mut all = Vec::new();
        endless.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 11);

        let past = Instant::now() - Duration::from_millis(1);
        let mut late = BoundedReader::new(io::repeat(7), u64::MAX - 1, Some(past));
        let error = io::copy(&mut late, &mut io::sink()).unwrap_err();
        assert!(is_deadline_passed(&error));
    }
}
