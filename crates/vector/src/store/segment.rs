//! Write-ahead log segments. A collection's log is a numbered sequence of files
//! `wal-<number>.log`; a snapshot covers every segment below its `next_segment`, so those can go.
//!
//! A segment is a 16-byte header (magic and its own number) followed by frames:
//! `[body length u32][CRC-32 of the body u32][body]`, little-endian. Frames are appended and the
//! file fsynced before any write they hold is acknowledged. A crash can therefore only leave a
//! partly written frame at the end of the newest segment: replay stops at the first frame that is
//! short or fails its checksum and cuts the file there. The same damage in an older segment
//! cannot come from a crash (it was complete and synced before the next one began), so it stops
//! the load instead of silently dropping acknowledged writes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

use super::files::sync_dir;

const MAGIC: [u8; 8] = *b"SZVWAL01";
/// Bytes before the first frame.
pub const HEADER_BYTES: u64 = 16;
const FRAME_HEADER_BYTES: usize = 8;
const FILE_PREFIX: &str = "wal-";
const FILE_SUFFIX: &str = ".log";

/// The path of segment `number` in `directory`.
pub fn segment_path(directory: &Path, number: u64) -> PathBuf {
    directory.join(format!("{FILE_PREFIX}{number:020}{FILE_SUFFIX}"))
}

/// The segments in `directory`, oldest first.
pub fn list_segments(directory: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = std::fs::read_dir(directory).map_err(|error| StoreError::io("list", directory, error))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StoreError::io("list", directory, error))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else { continue };
        let number = name
            .strip_prefix(FILE_PREFIX)
            .and_then(|rest| rest.strip_suffix(FILE_SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(number) = number {
            segments.push((number, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(number, _)| *number);
    Ok(segments)
}

/// Frames `body` for appending: length, checksum, body.
pub fn frame(body: &[u8]) -> Option<Vec<u8>> {
    let length = u32::try_from(body.len()).ok()?;
    let mut framed = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    framed.extend_from_slice(&length.to_le_bytes());
    framed.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    framed.extend_from_slice(body);
    Some(framed)
}

/// Why a segment could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateSegmentError {
    /// Creating failed and no partial file is left.
    #[error(transparent)]
    Cleaned(StoreError),
    /// Creating failed and the partial file could not be removed (or its removal synced).
    #[error("{error}; removing the partial segment failed too: {cleanup}")]
    LeftBehind {
        /// Why creating failed.
        error: StoreError,
        /// Why the partial file stayed.
        cleanup: StoreError,
    },
}

impl From<CreateSegmentError> for StoreError {
    fn from(error: CreateSegmentError) -> Self {
        match error {
            CreateSegmentError::Cleaned(error) | CreateSegmentError::LeftBehind { error, .. } => error,
        }
    }
}

/// The open, newest segment that writes are appended to.
#[derive(Debug)]
pub struct SegmentWriter {
    file: File,
    path: PathBuf,
    number: u64,
    size_bytes: u64,
}

impl SegmentWriter {
    /// Creates segment `number` with its header, durably (file and directory entry fsynced). If
    /// that fails after the file appeared, the file is removed again (and the removal synced):
    /// a partial segment after the one still in use would make that one look complete.
    pub fn create(directory: &Path, number: u64) -> Result<Self, CreateSegmentError> {
        let path = segment_path(directory, number);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| CreateSegmentError::Cleaned(StoreError::io("create", &path, error)))?;
        let written = file
            .write_all(&header(number))
            .map_err(|error| StoreError::io("write", &path, error))
            .and_then(|()| file.sync_all().map_err(|error| StoreError::io("fsync", &path, error)))
            .and_then(|()| sync_dir(directory));
        if let Err(error) = written {
            drop(file);
            let cleaned = std::fs::remove_file(&path)
                .map_err(|cleanup| StoreError::io("remove", &path, cleanup))
                .and_then(|()| sync_dir(directory));
            return Err(match cleaned {
                Ok(()) => CreateSegmentError::Cleaned(error),
                Err(cleanup) => CreateSegmentError::LeftBehind { error, cleanup },
            });
        }
        Ok(Self { file, path, number, size_bytes: HEADER_BYTES })
    }

    /// Opens existing segment `number` at `path` (replayed, so its tail is whole) for appending.
    pub fn open_for_append(path: &Path, number: u64) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|error| StoreError::io("open", path, error))?;
        let size_bytes = file.metadata().map_err(|error| StoreError::io("stat", path, error))?.len();
        Ok(Self { file, path: path.to_owned(), number, size_bytes })
    }

    /// The segment's number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The segment's size.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Appends `frames` and waits until they are on stable storage (`fdatasync`).
    pub fn append_and_sync(&mut self, frames: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(frames).map_err(|error| StoreError::io("append to", &self.path, error))?;
        self.file.sync_data().map_err(|error| StoreError::io("fsync", &self.path, error))?;
        self.size_bytes += frames.len() as u64;
        Ok(())
    }
}

fn header(number: u64) -> [u8; HEADER_BYTES as usize] {
    let mut bytes = [0_u8; HEADER_BYTES as usize];
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..].copy_from_slice(&number.to_le_bytes());
    bytes
}

/// What replaying one segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayedSegment {
    /// Frames applied.
    pub records: u64,
    /// Bytes of the segment that are valid (header and whole frames).
    pub valid_bytes: u64,
    /// Bytes cut off the end (a torn tail).
    pub torn_bytes: u64,
}

/// Replays segment `number` at `path`, calling `apply` with each frame's body in order. When
/// `is_newest`, a torn tail is cut off (and the cut fsynced); otherwise it is corruption. An
/// error from `apply` stops the replay.
pub fn replay(
    path: &Path,
    number: u64,
    is_newest: bool,
    apply: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<ReplayedSegment, StoreError> {
    let bytes = std::fs::read(path).map_err(|error| StoreError::io("read", path, error))?;
    let header_bytes = bytes.get(..HEADER_BYTES as usize);
    let header_valid = header_bytes == Some(&header(number)[..]);
    if !header_valid {
        // A crash while the segment was being created can leave it without a full header, or
        // with a header-sized hole of zeros (the size reached the disk, the data did not); it
        // holds no acknowledged write then, since the header is synced before the first append.
        let half_created = header_bytes.is_none_or(|bytes| bytes.iter().all(|byte| *byte == 0));
        if !is_newest || !half_created {
            return Err(StoreError::corrupt(path, "not a log segment of this collection (bad header)"));
        }
        rewrite_header(path, number)?;
        return Ok(ReplayedSegment { records: 0, valid_bytes: HEADER_BYTES, torn_bytes: bytes.len() as u64 });
    }
    let mut position = HEADER_BYTES as usize;
    let mut records = 0;
    while position < bytes.len() {
        let Some(body) = frame_at(&bytes, position) else { break };
        apply(body)?;
        records += 1;
        position += FRAME_HEADER_BYTES + body.len();
    }
    let torn_bytes = (bytes.len() - position) as u64;
    if torn_bytes > 0 {
        if !is_newest {
            return Err(StoreError::corrupt(
                path,
                format!("damaged frame at offset {position} in a segment that was complete"),
            ));
        }
        truncate(path, position as u64)?;
    }
    Ok(ReplayedSegment { records, valid_bytes: position as u64, torn_bytes })
}

/// The body of the whole, checksum-valid frame at `position`, if there is one.
fn frame_at(bytes: &[u8], position: usize) -> Option<&[u8]> {
    let header = bytes.get(position..position.checked_add(FRAME_HEADER_BYTES)?)?;
    let length = usize::try_from(u32::from_le_bytes([header[0], header[1], header[2], header[3]])).ok()?;
    let checksum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let start = position + FRAME_HEADER_BYTES;
    let body = bytes.get(start..start.checked_add(length)?)?;
    // An empty body is never written (every record has a kind byte), so it marks zeroed garbage.
    (length > 0 && crc32fast::hash(body) == checksum).then_some(body)
}

fn truncate(path: &Path, length: u64) -> Result<(), StoreError> {
    let file =
        OpenOptions::new().write(true).open(path).map_err(|error| StoreError::io("open", path, error))?;
    file.set_len(length).map_err(|error| StoreError::io("truncate", path, error))?;
    file.sync_all().map_err(|error| StoreError::io("fsync", path, error))
}

fn rewrite_header(path: &Path, number: u64) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|error| StoreError::io("open", path, error))?;
    file.write_all(&header(number)).map_err(|error| StoreError::io("write", path, error))?;
    file.sync_all().map_err(|error| StoreError::io("fsync", path, error))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use super::*;

    fn bodies(
        path: &Path,
        number: u64,
        is_newest: bool,
    ) -> Result<(Vec<Vec<u8>>, ReplayedSegment), StoreError> {
        let mut seen = Vec::new();
        let replayed = replay(path, number, is_newest, &mut |body| {
            seen.push(body.to_vec());
            Ok(())
        })?;
        Ok((seen, replayed))
    }

    #[test]
    fn frames_are_replayed_in_order_and_a_torn_tail_is_cut() {
        let directory = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter::create(directory.path(), 3).unwrap();
        writer.append_and_sync(&frame(b"one").unwrap()).unwrap();
        let mut two = frame(b"two").unwrap();
        two.extend(frame(b"three").unwrap());
        writer.append_and_sync(&two).unwrap();
        let valid = writer.size_bytes();
        drop(writer);
        let path = segment_path(directory.path(), 3);
        // A torn frame: the length and checksum of a body that never made it.
        let mut torn = frame(b"four").unwrap();
        torn.truncate(10);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&torn).unwrap();

        let (seen, replayed) = bodies(&path, 3, true).unwrap();
        assert_eq!(seen, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(replayed, ReplayedSegment { records: 3, valid_bytes: valid, torn_bytes: 10 });
        assert_eq!(std::fs::metadata(&path).unwrap().len(), valid, "the tail was cut");

        let mut reopened = SegmentWriter::open_for_append(&path, 3).unwrap();
        assert_eq!(reopened.size_bytes(), valid);
        reopened.append_and_sync(&frame(b"five").unwrap()).unwrap();
        let (seen, _) = bodies(&path, 3, true).unwrap();
        assert_eq!(seen.last().unwrap(), b"five");
    }

    #[test]
    fn garbage_and_bad_checksums_end_the_newest_segment_but_fail_an_older_one() {
        let directory = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter::create(directory.path(), 1).unwrap();
        writer.append_and_sync(&frame(b"kept").unwrap()).unwrap();
        let mut flipped = frame(b"flipped").unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        writer.append_and_sync(&flipped).unwrap();
        writer.append_and_sync(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0]).unwrap();
        drop(writer);
        let path = segment_path(directory.path(), 1);
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(bodies(&path, 1, false), Err(StoreError::Corrupt { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), before, "an older segment is never cut");
        let (seen, replayed) = bodies(&path, 1, true).unwrap();
        assert_eq!(seen, [b"kept".to_vec()]);
        assert_eq!(replayed.records, 1);
    }

    #[test]
    fn a_half_created_newest_segment_is_repaired() {
        let directory = tempfile::tempdir().unwrap();
        let path = segment_path(directory.path(), 7);
        std::fs::write(&path, &MAGIC[..5]).unwrap();
        let (seen, replayed) = bodies(&path, 7, true).unwrap();
        assert!(seen.is_empty());
        assert_eq!(replayed.valid_bytes, HEADER_BYTES);
        assert_eq!(std::fs::read(&path).unwrap(), header(7));
        std::fs::write(&path, [0_u8; 40]).unwrap();
        let (seen, replayed) = bodies(&path, 7, true).unwrap();
        assert!(seen.is_empty());
        assert_eq!(replayed.torn_bytes, 40);
        assert_eq!(std::fs::read(&path).unwrap(), header(7), "a zeroed header is repaired");
        std::fs::write(&path, [0_u8; 16]).unwrap();
        assert!(bodies(&path, 7, false).is_err(), "an older segment is never repaired");
        std::fs::write(&path, header(8)).unwrap();
        assert!(bodies(&path, 7, true).is_err(), "another segment's header");
    }

    #[test]
    fn segments_are_listed_oldest_first() {
        let directory = tempfile::tempdir().unwrap();
        for number in [10, 2, 1] {
            SegmentWriter::create(directory.path(), number).unwrap();
        }
        std::fs::write(directory.path().join("wal-x.log"), b"").unwrap();
        std::fs::write(directory.path().join("collection.json"), b"{}").unwrap();
        let numbers: Vec<u64> =
            list_segments(directory.path()).unwrap().into_iter().map(|(number, _)| number).collect();
        assert_eq!(numbers, [1, 2, 10]);
    }
}
