//! The writer of one collection: the only task that changes it. Write requests queue on a
//! channel; the writer takes everything queued, appends all their log records with one write and
//! one `fdatasync` (group commit: concurrent writers share the fsync), then applies them to the
//! in-memory state in log order and answers each waiter. A write is therefore visible only once
//! it is durable, and the state is always exactly what replaying the log gives.
//!
//! Snapshots go through the same queue, so one is taken between two writes: the writer starts a
//! new log segment, encodes the state into memory, and hands the file writing to a background
//! task while writes go on into the new segment. Once the snapshot is renamed into place the
//! segments it covers are removed.
//!
//! If the log cannot be written or synced, the in-memory state is left as it was and the
//! collection refuses further writes until the service restarts and replays what is on disk:
//! after a failed fsync the kernel's view of the file cannot be trusted to retry.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::filter::Filter;
use super::name::CollectionName;
use super::point_id::PointId;
use super::points::NewPoint;
use super::state::CollectionState;
use crate::error::{StoreError, VectorError};
use crate::store::files::sync_dir;
use crate::store::segment::{CreateSegmentError, SegmentWriter, list_segments};
use crate::store::snapshot::{self, SnapshotBuilder};

/// Most write requests committed together.
const MAX_GROUP_WRITES: usize = 1024;
/// Most log bytes committed together; a larger group only delays the first waiter.
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// A change to the collection.
#[derive(Debug)]
pub enum WriteOp {
    /// Insert or replace points.
    Upsert(Vec<NewPoint>),
    /// Remove points by id.
    DeleteIds(Vec<PointId>),
    /// Remove points whose payload matches.
    DeleteFilter(Filter),
}

/// A written snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// When the state was captured.
    pub created_at: DateTime<Utc>,
    /// Points in it.
    pub point_count: u64,
    /// The file's size.
    pub size_bytes: u64,
}

/// What the writer is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Log and apply a change, answering with its count (points upserted or deleted).
    Write {
        /// The change.
        op: WriteOp,
        /// Its log frame, encoded by the requester.
        frame: Vec<u8>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<u64, VectorError>>,
    },
    /// Write a snapshot now.
    Snapshot(oneshot::Sender<Result<SnapshotInfo, VectorError>>),
    /// Finish queued work and stop (the collection is being deleted).
    Close(oneshot::Sender<()>),
}

impl Command {
    fn frame_len(&self) -> usize {
        match self {
            Self::Write { frame, .. } => frame.len(),
            Self::Snapshot(_) | Self::Close(_) => 0,
        }
    }
}

struct PendingWrite {
    op: WriteOp,
    frame: Vec<u8>,
    reply: oneshot::Sender<Result<u64, VectorError>>,
}

/// Everything a writer is started with.
#[derive(Debug)]
pub(crate) struct WriterParts {
    /// The collection.
    pub name: CollectionName,
    /// Its directory.
    pub directory: PathBuf,
    /// Its state.
    pub state: Arc<CollectionState>,
    /// Set once the log cannot be written.
    pub storage_failed: Arc<AtomicBool>,
    /// The open newest segment.
    pub log: SegmentWriter,
    /// Log bytes written since the last snapshot.
    pub log_bytes_since_snapshot: u64,
    /// Log growth that triggers a snapshot.
    pub snapshot_log_bytes: u64,
    /// The queue.
    pub commands: mpsc::Receiver<Command>,
}

/// The writer task's state.
pub(crate) struct Writer {
    name: CollectionName,
    directory: PathBuf,
    state: Arc<CollectionState>,
    storage_failed: Arc<AtomicBool>,
    log: Option<SegmentWriter>,
    log_bytes_since_snapshot: u64,
    snapshot_log_bytes: u64,
    /// Log bytes the running snapshot covers; they count again if it fails.
    unsnapshotted_log_bytes: u64,
    /// The running snapshot's file writing; `true` once it is in place.
    snapshot_task: Option<JoinHandle<bool>>,
    compaction_task: Option<JoinHandle<()>>,
    commands: mpsc::Receiver<Command>,
}

impl Writer {
    /// A writer over `parts`; run it with [`Writer::run`].
    pub(crate) fn new(parts: WriterParts) -> Self {
        Self {
            name: parts.name,
            directory: parts.directory,
            state: parts.state,
            storage_failed: parts.storage_failed,
            log: Some(parts.log),
            log_bytes_since_snapshot: parts.log_bytes_since_snapshot,
            snapshot_log_bytes: parts.snapshot_log_bytes,
            unsnapshotted_log_bytes: 0,
            snapshot_task: None,
            compaction_task: None,
            commands: parts.commands,
        }
    }

    /// Serves the queue until it closes (every sender dropped) or a `Close` arrives; a snapshot
    /// in progress is finished first.
    pub(crate) async fn run(mut self) {
        while let Some(first) = self.commands.recv().await {
            let mut group_bytes = first.frame_len();
            let mut group = vec![first];
            while group.len() < MAX_GROUP_WRITES && group_bytes < MAX_GROUP_BYTES {
                let Ok(next) = self.commands.try_recv() else { break };
                group_bytes += next.frame_len();
                group.push(next);
            }
            let mut writes = Vec::with_capacity(group.len());
            for command in group {
                match command {
                    Command::Write { op, frame, reply } => writes.push(PendingWrite { op, frame, reply }),
                    Command::Snapshot(reply) => {
                        self.commit(std::mem::take(&mut writes)).await;
                        self.start_snapshot(Some(reply)).await;
                    }
                    Command::Close(reply) => {
                        self.commit(std::mem::take(&mut writes)).await;
                        self.finish_snapshot().await;
                        let _ = reply.send(());
                        return;
                    }
                }
            }
            self.commit(writes).await;
            let snapshot_running = self.reap_snapshot().await;
            if self.log_bytes_since_snapshot >= self.snapshot_log_bytes && !snapshot_running {
                tracing::info!(
                    collection = %self.name,
                    log_bytes = self.log_bytes_since_snapshot,
                    "log outgrew snapshot_log_bytes, taking a snapshot"
                );
                self.start_snapshot(None).await;
            }
            self.compact_if_needed();
        }
        self.finish_snapshot().await;
    }

    /// Rebuilds the index in the background once tombstones pile up (one rebuild at a time).
    fn compact_if_needed(&mut self) {
        let running = self.compaction_task.as_ref().is_some_and(|task| !task.is_finished());
        if running || !self.state.needs_compaction() {
            return;
        }
        let state = Arc::clone(&self.state);
        let name = self.name.clone();
        self.compaction_task = Some(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            state.compact();
            tracing::info!(collection = %name, elapsed_ms = started.elapsed().as_millis() as u64, "index compacted");
        }));
    }

    fn unavailable(&self) -> VectorError {
        VectorError::Unavailable(format!(
            "collection `{}` cannot be written (its log failed); restart the service",
            self.name
        ))
    }

    /// Logs `writes` with one write and one fsync, then applies and answers them in order.
    async fn commit(&mut self, writes: Vec<PendingWrite>) {
        if writes.is_empty() {
            return;
        }
        let log = if self.storage_failed.load(Ordering::Acquire) { None } else { self.log.take() };
        let Some(mut log) = log else {
            for write in writes {
                let _ = write.reply.send(Err(self.unavailable()));
            }
            return;
        };
        let state = Arc::clone(&self.state);
        let storage_failed = Arc::clone(&self.storage_failed);
        let write_count = writes.len();
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let frames: Cow<'_, [u8]> = match writes.as_slice() {
                [only] => Cow::Borrowed(only.frame.as_slice()),
                many => Cow::Owned(many.iter().flat_map(|write| write.frame.iter().copied()).collect()),
            };
            let frame_bytes = frames.len() as u64;
            if let Err(error) = log.append_and_sync(&frames) {
                return (log, Err((error, writes)));
            }
            drop(frames);
            let synced = started.elapsed();
            for write in writes {
                let reply = write.reply;
                // Declared after `reply`, so a panic marks the collection failed before the
                // waiters' senders drop: they then read unavailable, not "collection gone".
                let fail_on_panic = FailOnPanic(&storage_failed);
                let outcome = match write.op {
                    WriteOp::Upsert(points) => state.apply_upsert(points),
                    WriteOp::DeleteIds(ids) => Ok(state.apply_delete_ids(&ids)),
                    WriteOp::DeleteFilter(filter) => Ok(state.apply_delete_filter(&filter)),
                };
                drop(fail_on_panic);
                let _ = reply.send(outcome);
            }
            (log, Ok((frame_bytes, synced)))
        })
        .await;
        match joined {
            Ok((log, Ok((frame_bytes, synced)))) => {
                self.log = Some(log);
                self.log_bytes_since_snapshot += frame_bytes;
                crate::metrics::record_commit(synced, write_count);
                crate::metrics::set_points(self.name.as_str(), self.state.len());
                crate::metrics::set_memory_bytes(self.name.as_str(), self.state.memory_bytes());
            }
            Ok((log, Err((error, writes)))) => {
                self.log = Some(log);
                self.fail(&VectorError::Storage(error));
                for write in writes {
                    let _ = write.reply.send(Err(self.unavailable()));
                }
            }
            Err(join_error) => {
                // The log went down with the panicking task; the waiters' senders were dropped.
                self.fail(&VectorError::Internal(format!("log writer panicked: {join_error}")));
            }
        }
    }

    fn fail(&self, error: &VectorError) {
        self.storage_failed.store(true, Ordering::Release);
        tracing::error!(
            collection = %self.name,
            error = %error_chain(error),
            "writing the log failed; the collection refuses writes until the service restarts"
        );
    }

    async fn finish_snapshot(&mut self) {
        let Some(task) = self.snapshot_task.take() else { return };
        let persisted = match task.await {
            Ok(persisted) => persisted,
            Err(error) => {
                tracing::error!(collection = %self.name, %error, "snapshot task panicked");
                false
            }
        };
        let carried = std::mem::take(&mut self.unsnapshotted_log_bytes);
        if !persisted {
            self.log_bytes_since_snapshot += carried;
        }
    }

    /// Collects a finished snapshot task; whether one is still running.
    async fn reap_snapshot(&mut self) -> bool {
        if self.snapshot_task.as_ref().is_some_and(|task| !task.is_finished()) {
            return true;
        }
        self.finish_snapshot().await;
        false
    }

    /// Starts a new segment, captures the state into a snapshot image, and writes it in the
    /// background; `reply` gets the outcome once the file is in place.
    async fn start_snapshot(&mut self, reply: Option<oneshot::Sender<Result<SnapshotInfo, VectorError>>>) {
        self.finish_snapshot().await;
        let log = if self.storage_failed.load(Ordering::Acquire) { None } else { self.log.take() };
        let Some(log) = log else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(self.unavailable()));
            }
            return;
        };
        let state = Arc::clone(&self.state);
        let directory = self.directory.clone();
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || capture(&state, &directory, log)).await;
        let captured = match joined {
            Ok(Ok(captured)) => captured,
            Ok(Err((log, error))) => {
                self.log = Some(log);
                if matches!(error, VectorError::Unavailable(_)) {
                    self.fail(&error);
                }
                tracing::error!(collection = %self.name, error = %error_chain(&error), "snapshot failed");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error));
                }
                return;
            }
            Err(join_error) => {
                self.fail(&VectorError::Internal(format!("snapshot capture panicked: {join_error}")));
                if let Some(reply) = reply {
                    let _ = reply.send(Err(self.unavailable()));
                }
                return;
            }
        };
        self.log = Some(captured.log);
        // Counted again from zero now, but added back if the snapshot fails to persist (see
        // `reap_snapshot`), so a failing snapshot is retried as the log keeps growing.
        self.unsnapshotted_log_bytes = self.log_bytes_since_snapshot;
        self.log_bytes_since_snapshot = 0;
        let name = self.name.clone();
        let state = Arc::clone(&self.state);
        let directory = self.directory.clone();
        let image = captured.image;
        let info = captured.info;
        let next_segment = captured.next_segment;
        self.snapshot_task = Some(tokio::task::spawn_blocking(move || {
            let outcome = persist(&directory, &image, next_segment).map(|()| {
                state.set_last_snapshot_at(info.created_at);
                info
            });
            match &outcome {
                Ok(info) => {
                    crate::metrics::record_snapshot(name.as_str(), started.elapsed());
                    tracing::info!(
                        collection = %name,
                        points = info.point_count,
                        size_bytes = info.size_bytes,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    );
                }
                Err(error) => {
                    tracing::error!(collection = %name, error = %error_chain(error), "writing the snapshot failed")
                }
            }
            let persisted = outcome.is_ok();
            if let Some(reply) = reply {
                let _ = reply.send(outcome.map_err(VectorError::from));
            }
            persisted
        }));
    }
}

/// Marks the collection failed when dropped by a panic.
struct FailOnPanic<'flag>(&'flag AtomicBool);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// A captured snapshot, not yet on disk.
struct Captured {
    log: SegmentWriter,
    image: Vec<u8>,
    info: SnapshotInfo,
    next_segment: u64,
}

/// Rotates the log and encodes the state. On failure, the segment that is current afterwards
/// comes back with the error.
fn capture(
    state: &CollectionState,
    directory: &Path,
    log: SegmentWriter,
) -> Result<Captured, (SegmentWriter, VectorError)> {
    let next_segment = log.number() + 1;
    // The new segment exists (durably) before the snapshot claims the log continues there.
    let new_log = match SegmentWriter::create(directory, next_segment) {
        Ok(new_log) => new_log,
        Err(error) => return Err((log, rotation_error(error))),
    };
    drop(log);
    // Milliseconds, as the snapshot header stores it, so the time reads the same after a restart.
    let now = Utc::now();
    let created_at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let dimension = state.spec().dimension;
    let estimated_bytes = state.len().saturating_mul(dimension * 4 + 48);
    let mut builder =
        SnapshotBuilder::new(next_segment, created_at.timestamp_millis(), dimension, estimated_bytes);
    let mut encodable = true;
    let visited = state.for_each_point(&mut |id, vector, payload| {
        encodable &= builder.push(id, vector, payload).is_some();
    });
    if let Err(error) = visited {
        return Err((new_log, error));
    }
    if !encodable {
        return Err((new_log, VectorError::Internal("a payload is too large to snapshot".to_owned())));
    }
    let (image, point_count) = builder.finish();
    let info = SnapshotInfo { created_at, point_count, size_bytes: image.len() as u64 };
    Ok(Captured { log: new_log, image, info, next_segment })
}

/// The error of a failed log rotation. A partial next segment that could not be removed would
/// make the current one look complete at the next start (its torn tail then reads as corruption),
/// so the collection must stop writing: that error is [`VectorError::Unavailable`].
fn rotation_error(error: CreateSegmentError) -> VectorError {
    match error {
        CreateSegmentError::Cleaned(error) => VectorError::Storage(error),
        CreateSegmentError::LeftBehind { error, cleanup } => VectorError::Unavailable(format!(
            "rotating the log failed ({}) and the partial segment could not be removed ({})",
            error_chain(&error),
            error_chain(&cleanup)
        )),
    }
}

/// Writes the snapshot into place, then removes the segments it covers.
fn persist(directory: &Path, image: &[u8], next_segment: u64) -> Result<(), StoreError> {
    snapshot::write(directory, image)?;
    let mut removed_any = false;
    for (number, path) in list_segments(directory)? {
        if number >= next_segment {
            continue;
        }
        // A segment that cannot be removed now is removed at the next start (it is covered).
        match std::fs::remove_file(&path) {
            Ok(()) => removed_any = true,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "removing a covered log segment failed")
            }
        }
    }
    if removed_any {
        sync_dir(directory)?;
    }
    Ok(())
}

/// An error and its causes, for one log line.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
