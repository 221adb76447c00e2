//! The registry of collections: loads every collection of the data directory at start, and
//! creates and deletes collections durably. Creation and deletion are serialized (they are rare
//! and touch the directory); lookups only take a read lock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::collection::Collection;
use super::load::{LoadedCollection, load_collection};
use super::name::CollectionName;
use super::spec::CollectionSpec;
use super::state::CollectionState;
use super::writer::{Writer, WriterParts};
use crate::error::VectorError;
use crate::store::data_dir::DataDir;
use crate::store::meta::CollectionMeta;
use crate::store::segment::SegmentWriter;

/// Write requests that may wait for one collection's writer; more wait to be queued.
const WRITE_QUEUE_CAPACITY: usize = 1024;

/// Every collection of one data directory.
#[derive(Debug)]
pub struct Collections {
    data_dir: Arc<DataDir>,
    by_name: RwLock<BTreeMap<CollectionName, Arc<Collection>>>,
    lifecycle: tokio::sync::Mutex<()>,
    snapshot_log_bytes: u64,
    tracker: TaskTracker,
}

impl Collections {
    /// Opens and locks `data_dir` and loads every collection in it; writers run on `tracker`.
    pub async fn open(
        data_dir: &Path,
        snapshot_log_bytes: u64,
        tracker: TaskTracker,
    ) -> Result<Self, VectorError> {
        let root = data_dir.to_owned();
        let (data_dir, loaded) = tokio::task::spawn_blocking(move || load_all(&root))
            .await
            .map_err(|error| VectorError::Internal(format!("loading collections panicked: {error}")))??;
        let collections = Self {
            data_dir: Arc::new(data_dir),
            by_name: RwLock::new(BTreeMap::new()),
            lifecycle: tokio::sync::Mutex::new(()),
            snapshot_log_bytes,
            tracker,
        };
        for (name, collection) in loaded {
            let LoadedCollection { meta, state, log, log_bytes_since_snapshot } = collection;
            let started =
                collections.start(name.clone(), meta.created_at, state, log, log_bytes_since_snapshot);
            collections.write_map().insert(name, started);
        }
        Ok(collections)
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<CollectionName, Arc<Collection>>> {
        self.by_name.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<CollectionName, Arc<Collection>>> {
        self.by_name.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the writer of a collection and returns the collection.
    fn start(
        &self,
        name: CollectionName,
        created_at: chrono::DateTime<Utc>,
        state: CollectionState,
        log: SegmentWriter,
        log_bytes_since_snapshot: u64,
    ) -> Arc<Collection> {
        let state = Arc::new(state);
        let storage_failed = Arc::new(AtomicBool::new(false));
        let (sender, commands) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        crate::metrics::set_points(name.as_str(), state.len());
        crate::metrics::set_memory_bytes(name.as_str(), state.memory_bytes());
        let writer = Writer::new(WriterParts {
            name: name.clone(),
            directory: self.data_dir.collection_path(&name),
            state: Arc::clone(&state),
            storage_failed: Arc::clone(&storage_failed),
            log,
            log_bytes_since_snapshot,
            snapshot_log_bytes: self.snapshot_log_bytes,
            commands,
        });
        self.tracker.spawn(writer.run());
        Arc::new(Collection::new(name, created_at, state, storage_failed, sender))
    }

    /// The collection `name`.
    pub fn get(&self, name: &CollectionName) -> Result<Arc<Collection>, VectorError> {
        self.read_map().get(name).cloned().ok_or_else(|| VectorError::collection_not_found(name.as_str()))
    }

    /// Every collection, by name.
    pub fn list(&self) -> Vec<Arc<Collection>> {
        self.read_map().values().cloned().collect()
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        self.data_dir.root()
    }

    /// Names of collections whose log failed.
    pub fn failed(&self) -> Vec<String> {
        self.read_map()
            .values()
            .filter(|collection| collection.storage_failed())
            .map(|collection| collection.name().to_string())
            .collect()
    }

    /// Creates collection `name` of `spec`, durably; a name in use is a conflict.
    pub async fn create(
        &self,
        name: CollectionName,
        spec: CollectionSpec,
    ) -> Result<Arc<Collection>, VectorError> {
        let _lifecycle = self.lifecycle.lock().await;
        if self.read_map().contains_key(&name) {
            return Err(VectorError::Conflict(format!("collection `{name}` already exists")));
        }
        let state = CollectionState::new(spec)?;
        let created_at = Utc::now();
        let meta = CollectionMeta::new(name.as_str(), state.spec(), created_at);
        let data_dir = Arc::clone(&self.data_dir);
        let directory_name = name.clone();
        let (_, log) =
            tokio::task::spawn_blocking(move || data_dir.create_collection(&directory_name, &meta))
                .await
                .map_err(|error| VectorError::Internal(format!("creating a collection panicked: {error}")))??;
        let collection = self.start(name.clone(), created_at, state, log, 0);
        self.write_map().insert(name, Arc::clone(&collection));
        Ok(collection)
    }

    /// Deletes collection `name` with its points, log and snapshot. Writes already queued finish
    /// first; later ones find no collection.
    pub async fn delete(&self, name: &CollectionName) -> Result<(), VectorError> {
        let _lifecycle = self.lifecycle.lock().await;
        let collection =
            self.write_map().remove(name).ok_or_else(|| VectorError::collection_not_found(name.as_str()))?;
        collection.close().await;
        let data_dir = Arc::clone(&self.data_dir);
        let directory_name = name.clone();
        let removed = tokio::task::spawn_blocking(move || data_dir.remove_collection(&directory_name))
            .await
            .map_err(|error| VectorError::Internal(format!("deleting a collection panicked: {error}")))
            .and_then(|removed| removed.map_err(VectorError::from));
        if let Err(error) = removed {
            // Its writer has stopped, so it comes back read-only: reads and searches go on, writes
            // answer unavailable and readiness reports it, until a restart loads what is on disk.
            collection.mark_storage_failed();
            self.write_map().insert(name.clone(), collection);
            return Err(error);
        }
        crate::metrics::set_points(name.as_str(), 0);
        crate::metrics::set_memory_bytes(name.as_str(), 0);
        Ok(())
    }
}

/// Opens the data directory and loads each collection in it.
fn load_all(root: &Path) -> Result<(DataDir, Vec<(CollectionName, LoadedCollection)>), VectorError> {
    let data_dir = DataDir::open(root)?;
    let mut loaded = Vec::new();
    for found in data_dir.collections()? {
        let started = Instant::now();
        let collection = load_collection(&found)?;
        tracing::info!(
            collection = %found.name,
            points = collection.state.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "collection loaded"
        );
        loaded.push((found.name, collection));
    }
    Ok((data_dir, loaded))
}
