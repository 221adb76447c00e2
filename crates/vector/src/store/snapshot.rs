//! Snapshots: every live point of a collection (id, vector as given, payload) in one file,
//! `snapshot.bin`, replaced atomically. The header says which log segment comes next, so a load
//! is "snapshot, then every segment from `next_segment` on".
//!
//! Layout (little-endian): magic `SZVSNP01`, `next_segment` u64, `created_at` Unix ms i64,
//! dimension u32, point count u64, the points (id, components, payload), and a CRC-32 of all
//! bytes before it. A snapshot that fails its checksum is never half-loaded.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::domain::point_id::PointId;
use crate::domain::points::NewPoint;
use crate::error::StoreError;

use super::codec::{Decoder, Encoder};
use super::files::{temporary_path, write_atomically};

const MAGIC: [u8; 8] = *b"SZVSNP01";
const FILE_NAME: &str = "snapshot.bin";
/// Offset of the point count in the header, patched once the points are written.
const COUNT_OFFSET: usize = 8 + 8 + 8 + 4;
/// Points handed to the loader at a time, so a large snapshot is never decoded whole.
const LOAD_CHUNK_POINTS: usize = 4096;

/// The snapshot file of a collection directory.
pub fn snapshot_path(directory: &Path) -> PathBuf {
    directory.join(FILE_NAME)
}

/// What a snapshot's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The first log segment not covered by the snapshot.
    pub next_segment: u64,
    /// When the snapshot was taken, Unix milliseconds.
    pub created_at_ms: i64,
    /// Points in it.
    pub point_count: u64,
}

/// Builds a snapshot file in memory, point by point.
#[derive(Debug)]
pub struct SnapshotBuilder {
    encoder: Encoder,
    point_count: u64,
}

impl SnapshotBuilder {
    /// Starts a snapshot covering the log before `next_segment`.
    pub fn new(next_segment: u64, created_at_ms: i64, dimension: usize, capacity_bytes: usize) -> Self {
        let mut encoder = Encoder::with_capacity(capacity_bytes);
        encoder.put_raw(&MAGIC);
        encoder.put_u64(next_segment);
        encoder.put_i64(created_at_ms);
        // Dimensions are at most 65536.
        encoder.put_u32(u32::try_from(dimension).unwrap_or(u32::MAX));
        debug_assert_eq!(encoder.len(), COUNT_OFFSET);
        encoder.put_u64(0);
        Self { encoder, point_count: 0 }
    }

    /// Adds one point; `None` when its payload is too large to encode.
    pub fn push(&mut self, id: &PointId, vector: &[f32], payload: Option<&Map<String, Value>>) -> Option<()> {
        self.encoder.put_point_id(id);
        self.encoder.put_vector(vector);
        self.encoder.put_payload(payload)?;
        self.point_count += 1;
        Some(())
    }

    /// The finished file: the count patched in and the checksum appended.
    pub fn finish(self) -> (Vec<u8>, u64) {
        let point_count = self.point_count;
        let mut bytes = self.encoder.into_bytes();
        bytes[COUNT_OFFSET..COUNT_OFFSET + 8].copy_from_slice(&point_count.to_le_bytes());
        let checksum = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        (bytes, point_count)
    }
}

/// Writes `bytes` as the collection's snapshot, replacing the previous one atomically.
pub fn write(directory: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomically(&snapshot_path(directory), bytes)
}

/// Removes a temporary snapshot a crash left behind.
pub fn remove_leftover(directory: &Path) -> Result<(), StoreError> {
    let temporary = temporary_path(&snapshot_path(directory));
    match std::fs::remove_file(&temporary) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StoreError::io("remove", temporary, error)),
    }
}

/// Loads the snapshot of `directory`, if there is one, handing its points to `apply` in chunks.
/// Vectors must have `dimension` components.
pub fn load(
    directory: &Path,
    dimension: usize,
    apply: &mut dyn FnMut(Vec<NewPoint>) -> Result<(), StoreError>,
) -> Result<Option<SnapshotHeader>, StoreError> {
    let path = snapshot_path(directory);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(StoreError::io("read", path, error)),
    };
    let corrupt = |reason: String| StoreError::corrupt(&path, reason);
    let Some(checksum_at) = bytes.len().checked_sub(4) else {
        return Err(corrupt("shorter than a header".to_owned()));
    };
    let stored_checksum = u32::from_le_bytes([
        bytes[checksum_at],
        bytes[checksum_at + 1],
        bytes[checksum_at + 2],
        bytes[checksum_at + 3],
    ]);
    let content = &bytes[..checksum_at];
    if crc32fast::hash(content) != stored_checksum {
        return Err(corrupt("checksum mismatch".to_owned()));
    }
    let mut decoder = Decoder::new(content);
    if decoder.take(MAGIC.len()).map_err(&corrupt)? != MAGIC {
        return Err(corrupt("not a snapshot (bad magic)".to_owned()));
    }
    let next_segment = decoder.u64().map_err(&corrupt)?;
    let created_at_ms = decoder.i64().map_err(&corrupt)?;
    let stored_dimension = decoder.u32().map_err(&corrupt)?;
    if usize::try_from(stored_dimension).ok() != Some(dimension) {
        return Err(corrupt(format!("dimension {stored_dimension}, the collection has {dimension}")));
    }
    let point_count = decoder.u64().map_err(&corrupt)?;
    let mut chunk = Vec::with_capacity(LOAD_CHUNK_POINTS);
    for _ in 0..point_count {
        let id = decoder.point_id().map_err(&corrupt)?;
        let vector = decoder.vector(dimension).map_err(&corrupt)?;
        let payload = decoder.payload().map_err(&corrupt)?;
        chunk.push(NewPoint { id, vector, payload });
        if chunk.len() == LOAD_CHUNK_POINTS {
            apply(std::mem::replace(&mut chunk, Vec::with_capacity(LOAD_CHUNK_POINTS)))?;
        }
    }
    if !chunk.is_empty() {
        apply(chunk)?;
    }
    if !decoder.is_at_end() {
        return Err(corrupt(format!("{} bytes after the last point", decoder.remaining())));
    }
    Ok(Some(SnapshotHeader { next_segment, created_at_ms, point_count }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;

    use super::*;

    fn load_all(
        directory: &Path,
        dimension: usize,
    ) -> Result<Option<(SnapshotHeader, Vec<NewPoint>)>, StoreError> {
        let mut points = Vec::new();
        let header = load(directory, dimension, &mut |chunk| {
            points.extend(chunk);
            Ok(())
        })?;
        Ok(header.map(|header| (header, points)))
    }

    #[test]
    fn snapshots_round_trip_and_detect_damage() {
        let directory = tempfile::tempdir().unwrap();
        assert!(load_all(directory.path(), 2).unwrap().is_none());
        let payload = json!({"text": "hello"}).as_object().cloned();
        let mut builder = SnapshotBuilder::new(5, 1_700_000_000_000, 2, 0);
        for number in 0..5000_u64 {
            builder.push(&PointId::Num(number), &[number as f32, -1.0], payload.as_ref()).unwrap();
        }
        builder.push(&PointId::Str("s".into()), &[0.0, 0.5], None).unwrap();
        let (bytes, count) = builder.finish();
        assert_eq!(count, 5001);
        write(directory.path(), &bytes).unwrap();

        let (header, points) = load_all(directory.path(), 2).unwrap().unwrap();
        assert_eq!(
            header,
            SnapshotHeader { next_segment: 5, created_at_ms: 1_700_000_000_000, point_count: 5001 }
        );
        assert_eq!(points.len(), 5001);
        assert_eq!(
            points[4999],
            NewPoint { id: PointId::Num(4999), vector: vec![4999.0, -1.0], payload: payload.clone() }
        );
        assert_eq!(points[5000].id, PointId::Str("s".into()));

        assert!(matches!(load_all(directory.path(), 3), Err(StoreError::Corrupt { .. })), "wrong dimension");
        let mut damaged = bytes.clone();
        damaged[100] ^= 1;
        std::fs::write(snapshot_path(directory.path()), &damaged).unwrap();
        assert!(matches!(load_all(directory.path(), 2), Err(StoreError::Corrupt { .. })));
    }
}
