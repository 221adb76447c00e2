//! Loading a collection at start: its metadata, its snapshot if any, then every log segment the
//! snapshot does not cover, in order. Segments the snapshot covers (left by a crash between the
//! snapshot's rename and their removal) are removed; a torn tail of the newest segment is cut.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::state::CollectionState;
use crate::error::{StoreError, VectorError};
use crate::store::data_dir::FoundCollection;
use crate::store::files::sync_dir;
use crate::store::meta::CollectionMeta;
use crate::store::record::LogRecord;
use crate::store::segment::{self, HEADER_BYTES, SegmentWriter};
use crate::store::snapshot;

/// A loaded collection, ready for its writer.
#[derive(Debug)]
pub(crate) struct LoadedCollection {
    /// Its metadata.
    pub meta: CollectionMeta,
    /// Its state, as of the end of the log.
    pub state: CollectionState,
    /// The newest segment, open for appending.
    pub log: SegmentWriter,
    /// Log bytes after the snapshot (what the next automatic snapshot counts from).
    pub log_bytes_since_snapshot: u64,
}

/// Loads `found`.
pub(crate) fn load_collection(found: &FoundCollection) -> Result<LoadedCollection, VectorError> {
    let directory = &found.directory;
    let meta = CollectionMeta::read(directory)?;
    if meta.name != found.name.as_str() {
        return Err(StoreError::corrupt(
            crate::store::meta::meta_path(directory),
            format!("describes collection `{}`", meta.name),
        )
        .into());
    }
    let spec = meta.spec();
    let dimension = spec.dimension;
    let state = CollectionState::new(spec)?;
    snapshot::remove_leftover(directory)?;
    let snapshot_file = snapshot::snapshot_path(directory);
    let header = snapshot::load(directory, dimension, &mut |points| {
        state
            .apply_upsert(points)
            .map(drop)
            .map_err(|error| StoreError::corrupt(&snapshot_file, error.to_string()))
    })?;
    if let Some(header) = &header
        && let Some(at) = DateTime::<Utc>::from_timestamp_millis(header.created_at_ms)
    {
        state.set_last_snapshot_at(at);
    }
    let next_segment = header.map_or(0, |header| header.next_segment);
    let live_segments = remove_covered_segments(directory, next_segment)?;
    let (log, log_bytes_since_snapshot) = replay_segments(directory, &state, &live_segments, next_segment)?;
    Ok(LoadedCollection { meta, state, log, log_bytes_since_snapshot })
}

/// Removes segments below `next_segment`; returns the others, oldest first.
fn remove_covered_segments(
    directory: &Path,
    next_segment: u64,
) -> Result<Vec<(u64, std::path::PathBuf)>, StoreError> {
    let mut live = Vec::new();
    let mut removed_any = false;
    for (number, path) in segment::list_segments(directory)? {
        if number < next_segment {
            std::fs::remove_file(&path).map_err(|error| StoreError::io("remove", &path, error))?;
            removed_any = true;
        } else {
            live.push((number, path));
        }
    }
    if removed_any {
        sync_dir(directory)?;
    }
    Ok(live)
}

/// Replays `segments` into `state` and opens the newest for appending (creating it when there is
/// none); returns it with the log bytes replayed.
fn replay_segments(
    directory: &Path,
    state: &CollectionState,
    segments: &[(u64, std::path::PathBuf)],
    next_segment: u64,
) -> Result<(SegmentWriter, u64), VectorError> {
    let Some(&(first_number, _)) = segments.first() else {
        return Ok((SegmentWriter::create(directory, next_segment.max(1)).map_err(StoreError::from)?, 0));
    };
    // Segments are numbered consecutively; a gap means acknowledged writes are missing.
    for (offset, (number, path)) in segments.iter().enumerate() {
        let expected = first_number + offset as u64;
        if *number != expected || (next_segment > 0 && first_number != next_segment) {
            return Err(StoreError::corrupt(path, format!("log segment {expected} is missing")).into());
        }
    }
    let dimension = state.spec().dimension;
    let mut log_bytes = 0;
    for (position, (number, path)) in segments.iter().enumerate() {
        let is_newest = position + 1 == segments.len();
        let replayed = segment::replay(path, *number, is_newest, &mut |body| {
            let record =
                LogRecord::decode(body, dimension).map_err(|reason| StoreError::corrupt(path, reason))?;
            apply_record(state, record, path);
            Ok(())
        })?;
        if replayed.torn_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = replayed.torn_bytes,
                "cut a torn tail off the log (a write that was never acknowledged)"
            );
        }
        log_bytes += replayed.valid_bytes.saturating_sub(HEADER_BYTES);
    }
    let (newest_number, newest_path) = &segments[segments.len() - 1];
    Ok((SegmentWriter::open_for_append(newest_path, *newest_number)?, log_bytes))
}

/// Applies one replayed record. A record the engine refuses was refused the same way when it
/// was first applied (its writer answered with the error), so it is skipped here too.
fn apply_record(state: &CollectionState, record: LogRecord, path: &Path) {
    let outcome = match record {
        LogRecord::Upsert(points) => state.apply_upsert(points).map(drop),
        LogRecord::DeleteIds(ids) => {
            state.apply_delete_ids(&ids);
            Ok(())
        }
        LogRecord::DeleteFilter(filter) => {
            state.apply_delete_filter(&filter);
            Ok(())
        }
    };
    if let Err(error) = outcome {
        tracing::error!(path = %path.display(), %error, "a logged write could not be applied on replay; skipped");
    }
}
