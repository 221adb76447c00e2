//! Collection routes: create, list, read, delete and snapshot, and how a collection's metric and
//! index read in JSON.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sutazai_kit::auth::{Principal, require_scope};
use sutazai_kit::http::{ApiError, Page, PageOf};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::index_config::Kind as IndexKind;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::{READ_SCOPE, WRITE_SCOPE, count_up_to, require_collection_access};
use crate::downstream::VECTOR;
use crate::http::AppState;
use crate::http::paging::{page_of, page_request};
use crate::http::tasks::time;

/// Largest dimension the gateway lets a collection have.
const MAX_DIMENSION: u64 = 4096;

/// The distance of a collection.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MetricName {
    /// Squared Euclidean distance; smaller is closer.
    L2,
    /// Inner product; larger is closer.
    Ip,
    /// Cosine similarity; larger is closer.
    Cosine,
}

impl MetricName {
    fn to_proto(self) -> pb::DistanceMetric {
        match self {
            Self::L2 => pb::DistanceMetric::L2,
            Self::Ip => pb::DistanceMetric::Ip,
            Self::Cosine => pb::DistanceMetric::Cosine,
        }
    }

    fn from_proto(metric: i32) -> Option<Self> {
        match pb::DistanceMetric::try_from(metric).unwrap_or(pb::DistanceMetric::Unspecified) {
            pb::DistanceMetric::L2 => Some(Self::L2),
            pb::DistanceMetric::Ip => Some(Self::Ip),
            pb::DistanceMetric::Cosine => Some(Self::Cosine),
            pb::DistanceMetric::Unspecified => None,
        }
    }
}

/// The index of a collection: `{"type": "flat"|"ivf"|"hnsw", ...params}`. A parameter left out
/// (or 0) takes the service's default; answers carry the defaults filled in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum IndexSpec {
    /// Exhaustive, exact search.
    Flat,
    /// Inverted file: k-means into `nlist` cells, `nprobe` of them searched per query.
    Ivf {
        #[serde(default)]
        nlist: u32,
        #[serde(default)]
        nprobe: u32,
    },
    /// Hierarchical navigable small world graph.
    Hnsw {
        /// Links per node.
        #[serde(default)]
        m: u32,
        #[serde(default)]
        ef_construction: u32,
        #[serde(default)]
        ef_search: u32,
    },
}

impl IndexSpec {
    fn to_proto(self) -> pb::IndexConfig {
        let kind = match self {
            Self::Flat => IndexKind::Flat(pb::FlatIndexConfig {}),
            Self::Ivf { nlist, nprobe } => IndexKind::Ivf(pb::IvfIndexConfig { nlist, nprobe }),
            Self::Hnsw { m, ef_construction, ef_search } => {
                IndexKind::Hnsw(pb::HnswIndexConfig { m, ef_construction, ef_search })
            }
        };
        pb::IndexConfig { kind: Some(kind) }
    }

    fn from_proto(index: Option<&pb::IndexConfig>) -> Option<Self> {
        match index?.kind? {
            IndexKind::Flat(_) => Some(Self::Flat),
            IndexKind::Ivf(ivf) => Some(Self::Ivf { nlist: ivf.nlist, nprobe: ivf.nprobe }),
            IndexKind::Hnsw(hnsw) => Some(Self::Hnsw {
                m: hnsw.m,
                ef_construction: hnsw.ef_construction,
                ef_search: hnsw.ef_search,
            }),
        }
    }
}

/// `POST /api/v1/vectors/collections`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCollection {
    /// `[a-z0-9_-]{1,64}`.
    name: String,
    /// Components per vector, 1 to 4096.
    dimension: u64,
    metric: MetricName,
    /// Absent: HNSW with default parameters.
    index: Option<IndexSpec>,
}

/// A collection as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CollectionView {
    name: String,
    dimension: u32,
    metric: Option<MetricName>,
    index: Option<IndexSpec>,
    /// Live points.
    point_count: u64,
    /// Vectors, index structures and payloads held in memory.
    memory_bytes: u64,
    created_at: Option<DateTime<Utc>>,
    last_snapshot_at: Option<DateTime<Utc>>,
}

impl From<pb::Collection> for CollectionView {
    fn from(collection: pb::Collection) -> Self {
        Self {
            metric: MetricName::from_proto(collection.metric),
            index: IndexSpec::from_proto(collection.index.as_ref()),
            created_at: time(collection.created_at.as_ref()),
            last_snapshot_at: time(collection.last_snapshot_at.as_ref()),
            name: collection.name,
            dimension: collection.dimension,
            point_count: collection.point_count,
            memory_bytes: collection.memory_bytes,
        }
    }
}

fn collection_view(collection: Option<pb::Collection>) -> Result<Json<CollectionView>, ApiError> {
    let collection = collection
        .ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "vector answered without a collection"))?;
    Ok(Json(collection.into()))
}

#[utoipa::path(post, path = "/api/v1/vectors/collections", tag = "vectors", request_body = CreateCollection,
    responses((status = 201, body = CollectionView), (status = 400), (status = 403), (status = 409), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn create_collection(
    State(state): State<AppState>,
    principal: Principal,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<CreateCollection>,
) -> Result<(StatusCode, Json<CollectionView>), ApiError> {
    require_collection_access(&principal, WRITE_SCOPE, &body.name)?;
    let dimension = count_up_to("dimension", body.dimension, MAX_DIMENSION)?;
    let request = pb::CreateCollectionRequest {
        name: body.name,
        dimension,
        metric: body.metric.to_proto().into(),
        index: body.index.map(IndexSpec::to_proto),
    };
    let response =
        state.downstreams.call(VECTOR, state.downstreams.vector().create_collection(request)).await?;
    Ok((StatusCode::CREATED, collection_view(response.collection)?))
}

#[utoipa::path(get, path = "/api/v1/vectors/collections", tag = "vectors",
    params(("skip" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200), (status = 403), (status = 422), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn list_collections(
    State(state): State<AppState>,
    principal: Principal,
    page: Page,
) -> Result<Json<PageOf<CollectionView>>, ApiError> {
    require_scope(&principal, READ_SCOPE)?;
    let request = pb::ListCollectionsRequest { page: Some(page_request(page)) };
    let response =
        state.downstreams.call(VECTOR, state.downstreams.vector().list_collections(request)).await?;
    Ok(Json(page_of(response.collections, response.page, page)))
}

#[utoipa::path(get, path = "/api/v1/vectors/collections/{name}", tag = "vectors", params(("name" = String, Path)),
    responses((status = 200, body = CollectionView), (status = 400), (status = 404), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn get_collection(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<CollectionView>, ApiError> {
    require_collection_access(&principal, READ_SCOPE, &name)?;
    let response = state
        .downstreams
        .call(VECTOR, state.downstreams.vector().get_collection(pb::GetCollectionRequest { name }))
        .await?;
    collection_view(response.collection)
}

#[utoipa::path(delete, path = "/api/v1/vectors/collections/{name}", tag = "vectors", params(("name" = String, Path)),
    responses((status = 204), (status = 400), (status = 403), (status = 404), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn delete_collection(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_collection_access(&principal, WRITE_SCOPE, &name)?;
    // Collections have no owner yet (one namespace for everyone), so dropping one takes an admin.
    sutazai_kit::auth::require_admin(&principal)?;
    let request = pb::DeleteCollectionRequest { name };
    state.downstreams.call(VECTOR, state.downstreams.vector().delete_collection(request)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A snapshot that was written.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SnapshotView {
    created_at: Option<DateTime<Utc>>,
    point_count: u64,
    size_bytes: u64,
}

#[utoipa::path(post, path = "/api/v1/vectors/collections/{name}/snapshot", tag = "vectors",
    params(("name" = String, Path)),
    responses((status = 200, body = SnapshotView), (status = 400), (status = 403), (status = 404), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<SnapshotView>, ApiError> {
    require_collection_access(&principal, WRITE_SCOPE, &name)?;
    let request = pb::SnapshotRequest { collection: name };
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().snapshot(request)).await?;
    Ok(Json(SnapshotView {
        created_at: time(response.created_at.as_ref()),
        point_count: response.point_count,
        size_bytes: response.size_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn index_specs() {
        let hnsw: IndexSpec = serde_json::from_value(json!({"type": "hnsw", "m": 32})).unwrap();
        assert!(matches!(hnsw, IndexSpec::Hnsw { m: 32, ef_construction: 0, ef_search: 0 }));
        assert!(matches!(serde_json::from_value(json!({"type": "flat"})).unwrap(), IndexSpec::Flat));
        assert!(serde_json::from_value::<IndexSpec>(json!({"type": "lsh"})).is_err());
        assert!(serde_json::from_value::<IndexSpec>(json!({"type": "ivf", "m": 3})).is_err());
        assert_eq!(
            serde_json::to_value(IndexSpec::Ivf { nlist: 4, nprobe: 2 }).unwrap(),
            json!({"type": "ivf", "nlist": 4, "nprobe": 2})
        );
    }
}
