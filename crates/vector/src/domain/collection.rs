//! One collection as the service uses it: its state for reads and searches, and the queue to its
//! writer for everything that changes it. Requests are checked here (dimension, finite
//! components, k) before anything is logged, so a batch is refused whole or taken whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::filter::Filter;
use super::name::CollectionName;
use super::point_id::PointId;
use super::points::NewPoint;
use super::state::{CollectionState, ScoredPoint, SearchOptions, StoredPoint};
use super::writer::{Command, SnapshotInfo, WriteOp};
use crate::error::VectorError;
use crate::store::record::{RecordTooLarge, encode_delete_filter, encode_delete_ids, encode_upsert};
use crate::store::segment::frame;

/// The most hits one query may ask for.
pub const MAX_K: usize = 10_000;

/// The most hits one search request may ask for over all its queries (queries × k), which
/// bounds the work and the size of one response.
pub const MAX_TOTAL_HITS: usize = 1_000_000;

/// What a collection reports about itself.
#[derive(Debug, Clone)]
pub struct CollectionInfo {
    /// Its name.
    pub name: CollectionName,
    /// Components per vector.
    pub dimension: usize,
    /// Its metric.
    pub metric: sutazai_vector_index::Metric,
    /// Its index, defaults filled in.
    pub index: sutazai_vector_index::IndexConfig,
    /// Live points.
    pub point_count: u64,
    /// Engine memory plus ids and payloads.
    pub memory_bytes: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its last snapshot was written.
    pub last_snapshot_at: Option<DateTime<Utc>>,
}

/// A live collection.
#[derive(Debug)]
pub struct Collection {
    name: CollectionName,
    created_at: DateTime<Utc>,
    state: Arc<CollectionState>,
    storage_failed: Arc<AtomicBool>,
    commands: mpsc::Sender<Command>,
}

impl Collection {
    pub(crate) fn new(
        name: CollectionName,
        created_at: DateTime<Utc>,
        state: Arc<CollectionState>,
        storage_failed: Arc<AtomicBool>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Self { name, created_at, state, storage_failed, commands }
    }

    /// Its name.
    pub fn name(&self) -> &CollectionName {
        &self.name
    }

    /// Its state.
    pub fn state(&self) -> &CollectionState {
        &self.state
    }

    /// Whether its log failed (it refuses writes until a restart).
    pub fn storage_failed(&self) -> bool {
        self.storage_failed.load(Ordering::Acquire)
    }

    /// Marks the collection as unable to write (its writer is gone); writes answer unavailable.
    pub(crate) fn mark_storage_failed(&self) {
        self.storage_failed.store(true, Ordering::Release);
    }

    /// What it reports about itself.
    pub fn info(&self) -> CollectionInfo {
        let spec = self.state.spec();
        let memory_bytes = self.state.memory_bytes();
        crate::metrics::set_memory_bytes(self.name.as_str(), memory_bytes);
        CollectionInfo {
            name: self.name.clone(),
            dimension: spec.dimension,
            metric: spec.metric,
            index: self.state.index_config().clone(),
            point_count: self.state.len() as u64,
            memory_bytes: memory_bytes as u64,
            created_at: self.created_at,
            last_snapshot_at: self.state.last_snapshot_at(),
        }
    }

    /// Inserts or replaces `points` (at least one), answering once they are durable. `field`
    /// names the list in errors.
    pub async fn upsert(&self, field: &str, points: Vec<NewPoint>) -> Result<u64, VectorError> {
        let started = Instant::now();
        if points.is_empty() {
            return Err(VectorError::validation(field, "must hold at least one point"));
        }
        self.state.check_points(field, &points)?;
        let body = encode_upsert(&points).map_err(|error| too_large(field, error))?;
        let count = self.write(field, WriteOp::Upsert(points), &body).await?;
        crate::metrics::record_upsert(self.name.as_str(), started.elapsed());
        Ok(count)
    }

    /// Removes the points with `ids`; returns how many existed.
    pub async fn delete_ids(&self, ids: Vec<PointId>) -> Result<u64, VectorError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let body = encode_delete_ids(&ids).map_err(|error| too_large("ids", error))?;
        self.write("ids", WriteOp::DeleteIds(ids), &body).await
    }

    /// Removes the points whose payload matches `filter`; returns how many.
    pub async fn delete_filter(&self, filter: Filter) -> Result<u64, VectorError> {
        let body = encode_delete_filter(&filter).map_err(|error| too_large("filter", error))?;
        self.write("filter", WriteOp::DeleteFilter(filter), &body).await
    }

    async fn write(&self, field: &str, op: WriteOp, body: &[u8]) -> Result<u64, VectorError> {
        let frame = frame(body).ok_or_else(|| too_large(field, RecordTooLarge))?;
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Write { op, frame, reply }).await.map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    /// Writes a snapshot now; answers once it is on disk.
    pub async fn snapshot(&self) -> Result<SnapshotInfo, VectorError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Snapshot(reply)).await.map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    /// Lets the writer finish what is queued and stop.
    pub(crate) async fn close(&self) {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Close(reply)).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// The writer is gone: it failed, or the collection was deleted under the request.
    fn gone(&self) -> VectorError {
        if self.storage_failed() {
            return VectorError::Unavailable(format!(
                "collection `{}` cannot be written (its log failed); restart the service",
                self.name
            ));
        }
        VectorError::collection_not_found(self.name.as_str())
    }

    /// The point with `id`.
    pub fn get(&self, id: &PointId) -> Result<StoredPoint, VectorError> {
        self.state.get(id).ok_or_else(|| VectorError::NotFound(format!("point {id}")))
    }

    /// The k best points for each query. Queries and k are checked here; the search itself runs
    /// on the blocking pool, since it is CPU work that may take milliseconds.
    pub async fn search(
        &self,
        queries: Vec<Vec<f32>>,
        options: SearchOptions,
        max_queries: usize,
    ) -> Result<Vec<Vec<ScoredPoint>>, VectorError> {
        let started = Instant::now();
        if queries.is_empty() || queries.len() > max_queries {
            return Err(VectorError::validation(
                "queries",
                format!("must hold 1 to {max_queries} query vectors"),
            ));
        }
        check_search_options(&options)?;
        if queries.len().saturating_mul(options.k) > MAX_TOTAL_HITS {
            return Err(VectorError::validation(
                "k",
                format!(
                    "{} queries × k {} exceed {MAX_TOTAL_HITS} hits per request; lower k or send fewer queries",
                    queries.len(),
                    options.k
                ),
            ));
        }
        for (position, query) in queries.iter().enumerate() {
            self.state.check_vector(&format!("queries[{position}].vector"), query)?;
        }
        let state = Arc::clone(&self.state);
        let hits = tokio::task::spawn_blocking(move || state.search(&queries, &options))
            .await
            .map_err(|error| VectorError::Internal(format!("search task failed: {error}")))??;
        crate::metrics::record_search(self.name.as_str(), started.elapsed());
        Ok(hits)
    }
}

/// Checks k (1 ..= [`MAX_K`]) and the optional `ef` and `nprobe` (at least 1).
pub fn check_search_options(options: &SearchOptions) -> Result<(), VectorError> {
    if !(1..=MAX_K).contains(&options.k) {
        return Err(VectorError::validation("k", format!("must be between 1 and {MAX_K}")));
    }
    if options.ef == Some(0) {
        return Err(VectorError::validation("ef", "must be at least 1"));
    }
    if options.nprobe == Some(0) {
        return Err(VectorError::validation("nprobe", "must be at least 1"));
    }
    Ok(())
}

fn too_large(field: &str, error: RecordTooLarge) -> VectorError {
    VectorError::validation(field, error.to_string())
}
