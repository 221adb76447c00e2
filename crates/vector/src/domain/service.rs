//! The vector service's use cases, one method per RPC, over the collection registry and the
//! embedder. The gRPC adapter decodes into these types, calls one method and maps the error.

use std::sync::Arc;

use super::collection::{CollectionInfo, check_search_options};
use super::collections::Collections;
use super::documents::{Embedder, NewDocument, check_documents, document_points};
use super::filter::Filter;
use super::name::CollectionName;
use super::point_id::PointId;
use super::points::NewPoint;
use super::spec::CollectionSpec;
use super::state::{ScoredPoint, SearchOptions, StoredPoint};
use super::writer::SnapshotInfo;
use crate::error::VectorError;

/// Collections per page when the request says 0.
pub const DEFAULT_PAGE_LIMIT: usize = 50;
/// The most collections per page.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// Request-size limits from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Points (or documents) per write.
    pub max_batch_points: usize,
    /// Query vectors per search.
    pub max_search_queries: usize,
}

/// Which points a delete removes.
#[derive(Debug, Clone)]
pub enum DeleteSelector {
    /// These ids (those that do not exist are not an error).
    Ids(Vec<PointId>),
    /// Points whose payload matches.
    Filter(Filter),
}

/// One page of collections.
#[derive(Debug, Clone)]
pub struct CollectionPage {
    /// The collections on the page, by name.
    pub collections: Vec<CollectionInfo>,
    /// Collections in total.
    pub total: usize,
    /// The skip applied.
    pub skip: usize,
    /// The limit applied.
    pub limit: usize,
}

/// The vector service.
#[derive(Debug, Clone)]
pub struct VectorService {
    collections: Arc<Collections>,
    embedder: Embedder,
    limits: Limits,
}

impl VectorService {
    /// The service over `collections`.
    pub fn new(collections: Arc<Collections>, embedder: Embedder, limits: Limits) -> Self {
        Self { collections, embedder, limits }
    }

    /// The registry, for health checks.
    pub fn collections(&self) -> &Arc<Collections> {
        &self.collections
    }

    /// Creates a collection; a name in use is a conflict.
    pub async fn create_collection(
        &self,
        name: CollectionName,
        spec: CollectionSpec,
    ) -> Result<CollectionInfo, VectorError> {
        let collection = self.collections.create(name, spec).await?;
        tracing::info!(collection = %collection.name(), "collection created");
        Ok(collection.info())
    }

    /// One collection.
    pub fn get_collection(&self, name: &CollectionName) -> Result<CollectionInfo, VectorError> {
        Ok(self.collections.get(name)?.info())
    }

    /// A page of collections by name; `limit` 0 means the default.
    pub fn list_collections(&self, skip: usize, limit: usize) -> Result<CollectionPage, VectorError> {
        let limit = if limit == 0 { DEFAULT_PAGE_LIMIT } else { limit };
        if limit > MAX_PAGE_LIMIT {
            return Err(VectorError::validation(
                "page.limit",
                format!("must be between 1 and {MAX_PAGE_LIMIT}"),
            ));
        }
        let all = self.collections.list();
        let total = all.len();
        let collections = all.iter().skip(skip).take(limit).map(|collection| collection.info()).collect();
        Ok(CollectionPage { collections, total, skip, limit })
    }

    /// Deletes a collection with its data.
    pub async fn delete_collection(&self, name: &CollectionName) -> Result<(), VectorError> {
        self.collections.delete(name).await?;
        tracing::info!(collection = %name, "collection deleted");
        Ok(())
    }

    /// Inserts or replaces points, all or none; answers once durable.
    pub async fn upsert(&self, name: &CollectionName, points: Vec<NewPoint>) -> Result<u64, VectorError> {
        self.check_batch("points", points.len())?;
        self.collections.get(name)?.upsert("points", points).await
    }

    fn check_batch(&self, field: &str, count: usize) -> Result<(), VectorError> {
        if count > self.limits.max_batch_points {
            return Err(VectorError::validation(
                field,
                format!("at most {} per request", self.limits.max_batch_points),
            ));
        }
        Ok(())
    }

    /// Deletes points; returns how many existed.
    pub async fn delete_points(
        &self,
        name: &CollectionName,
        selector: DeleteSelector,
    ) -> Result<u64, VectorError> {
        let collection = self.collections.get(name)?;
        match selector {
            DeleteSelector::Ids(ids) => {
                self.check_batch("ids", ids.len())?;
                collection.delete_ids(ids).await
            }
            DeleteSelector::Filter(filter) => {
                // An empty filter matches every point; wiping a collection takes an explicit act.
                if filter.is_empty() {
                    return Err(VectorError::validation(
                        "filter",
                        "must hold at least one condition (delete the collection to remove every point)",
                    ));
                }
                // A nested empty filter matches every point too, so it is refused the same way.
                if filter.has_empty_part() {
                    return Err(VectorError::validation(
                        "filter",
                        "every nested filter must hold at least one condition",
                    ));
                }
                collection.delete_filter(filter).await
            }
        }
    }

    /// One point; an unknown id is not found.
    pub fn get_point(&self, name: &CollectionName, id: &PointId) -> Result<StoredPoint, VectorError> {
        self.collections.get(name)?.get(id)
    }

    /// The k best points for each query.
    pub async fn search(
        &self,
        name: &CollectionName,
        queries: Vec<Vec<f32>>,
        options: SearchOptions,
    ) -> Result<Vec<Vec<ScoredPoint>>, VectorError> {
        self.collections.get(name)?.search(queries, options, self.limits.max_search_queries).await
    }

    /// Embeds and stores documents.
    pub async fn upsert_documents(
        &self,
        name: &CollectionName,
        documents: Vec<NewDocument>,
    ) -> Result<u64, VectorError> {
        check_documents(&documents, self.limits.max_batch_points)?;
        // The collection is looked up first so an unknown one costs no embedding calls.
        let collection = self.collections.get(name)?;
        let texts = documents.iter().map(|document| document.text.clone()).collect();
        let vectors = self.embedder.embed(texts).await?;
        let points =
            document_points(documents, vectors, collection.state().spec().dimension, self.embedder.model())?;
        collection.upsert("documents", points).await
    }

    /// Embeds `text` and searches with it.
    pub async fn query_documents(
        &self,
        name: &CollectionName,
        text: String,
        options: SearchOptions,
    ) -> Result<Vec<ScoredPoint>, VectorError> {
        if text.trim().is_empty() {
            return Err(VectorError::validation("text", "must not be empty"));
        }
        check_search_options(&options)?;
        let collection = self.collections.get(name)?;
        let dimension = collection.state().spec().dimension;
        let mut vectors = self.embedder.embed(vec![text]).await?;
        let vector = vectors.pop().unwrap_or_default();
        if vector.len() != dimension {
            return Err(VectorError::validation(
                "collection",
                format!(
                    "the embedding model `{}` returns {}-dimensional vectors, the collection has dimension {dimension}",
                    self.embedder.model(),
                    vector.len()
                ),
            ));
        }
        let mut results = collection.search(vec![vector], options, 1).await?;
        Ok(results.pop().unwrap_or_default())
    }

    /// Writes a snapshot of the collection now.
    pub async fn snapshot(&self, name: &CollectionName) -> Result<SnapshotInfo, VectorError> {
        self.collections.get(name)?.snapshot().await
    }
}
