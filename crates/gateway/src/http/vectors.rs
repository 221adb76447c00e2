//! Vector collections, points, search and documents (API.md "Vectors"), forwarded to the vector
//! service, which owns the data. The gateway checks what it can without the data (names, shapes,
//! finite components, k, filter syntax) so a malformed request is refused even while the service
//! is down; the dimension of a vector can only be checked by the service.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sutazai_kit::auth::{Principal, require_scope};
use sutazai_kit::http::{ApiError, Page, PageOf};
use sutazai_proto::json::{from_proto_struct, to_proto_struct, to_proto_value};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::condition::Condition as ConditionKind;
use sutazai_proto::v1::delete_points_request::Selector;
use sutazai_proto::v1::index_config::Kind as IndexKind;
use sutazai_proto::v1::point_id::Kind as PointIdKind;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::AppState;
use super::tasks::time;
use crate::downstream::VECTOR;

const READ_SCOPE: &str = "vectors:read";
const WRITE_SCOPE: &str = "vectors:write";

/// Longest collection name (API.md: `[a-z0-9_-]{1,64}`).
const MAX_NAME_CHARS: usize = 64;
/// Largest dimension the gateway lets a collection have.
const MAX_DIMENSION: u64 = 4096;
/// Hits per query (the vector contract's bound).
const MAX_K: u64 = 10_000;
/// Query vectors in one search; with k up to 10,000 a larger batch would build answers of
/// hundreds of megabytes.
const MAX_QUERIES: usize = 1000;
/// A string point id is at most this long (the vector contract's bound).
const MAX_ID_BYTES: usize = 256;
/// Filter keys are dotted payload paths; anything longer is a mistake, not a path.
const MAX_FILTER_KEY_BYTES: usize = 256;
/// Nested filters become nested protobuf messages (two per level), and prost refuses to decode
/// more than 100 levels, so the gateway stops well before the service would fail to read it.
const MAX_FILTER_DEPTH: usize = 16;

/// Every vector route, to be merged into the API router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vectors/collections", post(create_collection).get(list_collections))
        .route("/api/v1/vectors/collections/{name}", get(get_collection).delete(delete_collection))
        .route("/api/v1/vectors/collections/{name}/points", axum::routing::put(upsert_points))
        .route("/api/v1/vectors/collections/{name}/points/delete", post(delete_points))
        .route("/api/v1/vectors/collections/{name}/points/{id}", get(get_point))
        .route("/api/v1/vectors/collections/{name}/search", post(search))
        .route("/api/v1/vectors/collections/{name}/documents", post(upsert_documents))
        .route("/api/v1/vectors/collections/{name}/query", post(query_documents))
        .route("/api/v1/vectors/collections/{name}/snapshot", post(snapshot))
}

/// The vector routes of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_collection, list_collections, get_collection, delete_collection, upsert_points,
        delete_points, get_point, search, upsert_documents, query_documents, snapshot,
    ),
    components(schemas(
        CreateCollection, IndexSpec, MetricName, CollectionView, PointIdJson, UpsertPoints, PointSpec,
        Upserted, DeletePoints, Deleted, PointView, SearchBody, SearchParams, ScoredPointView,
        SearchResults, UpsertDocuments, DocumentSpec, QueryBody, SnapshotView,
    )),
    tags((name = "vectors", description = "Vector collections, points and search")),
)]
pub(crate) struct VectorsDoc;

/// A bad collection name is a 400 (API.md), not a 422: the name is also a path segment, and the
/// check is what keeps `../` and `/` out of the service's storage layout.
fn check_collection_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-');
    if valid {
        return Ok(());
    }
    Err(ApiError::new(
        ServiceErrorCode::BadRequest,
        format!("name: must be 1 to {MAX_NAME_CHARS} characters of a-z, 0-9, `_` and `-`"),
    ))
}

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
    require_scope(&principal, WRITE_SCOPE)?;
    check_collection_name(&body.name)?;
    let dimension = match u32::try_from(body.dimension) {
        Ok(dimension) if (1..=MAX_DIMENSION).contains(&body.dimension) => dimension,
        _ => return Err(ApiError::validation("dimension", format!("must be between 1 and {MAX_DIMENSION}"))),
    };
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
    let request = pb::ListCollectionsRequest {
        page: Some(pb::PageRequest {
            skip: u32::try_from(page.skip).unwrap_or(u32::MAX),
            limit: u32::try_from(page.limit).unwrap_or(1000),
        }),
    };
    let response =
        state.downstreams.call(VECTOR, state.downstreams.vector().list_collections(request)).await?;
    let total = response.page.map(|info| i64::try_from(info.total).unwrap_or(i64::MAX)).unwrap_or(0);
    Ok(Json(PageOf::new(response.collections.into_iter().map(CollectionView::from).collect(), total, page)))
}

#[utoipa::path(get, path = "/api/v1/vectors/collections/{name}", tag = "vectors", params(("name" = String, Path)),
    responses((status = 200, body = CollectionView), (status = 400), (status = 404), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn get_collection(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<CollectionView>, ApiError> {
    require_scope(&principal, READ_SCOPE)?;
    check_collection_name(&name)?;
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
    require_scope(&principal, WRITE_SCOPE)?;
    check_collection_name(&name)?;
    let request = pb::DeleteCollectionRequest { name };
    state.downstreams.call(VECTOR, state.downstreams.vector().delete_collection(request)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A point id: a string or an unsigned integer; `"7"` and `7` are different ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum PointIdJson {
    // Tried first, so a JSON integer is a numeric id and a JSON string never is.
    Num(u64),
    Str(String),
}

impl PointIdJson {
    fn into_proto(self, field: &str) -> Result<pb::PointId, ApiError> {
        let kind = match self {
            Self::Num(number) => PointIdKind::Num(number),
            Self::Str(text) => {
                if text.is_empty() || text.len() > MAX_ID_BYTES {
                    return Err(ApiError::validation(field, format!("must be 1 to {MAX_ID_BYTES} bytes")));
                }
                PointIdKind::Str(text)
            }
        };
        Ok(pb::PointId { kind: Some(kind) })
    }

    fn from_proto(id: Option<pb::PointId>) -> Option<Self> {
        match id?.kind? {
            PointIdKind::Num(number) => Some(Self::Num(number)),
            PointIdKind::Str(text) => Some(Self::Str(text)),
        }
    }
}

/// Refuses a vector with a NaN or infinite component. JSON has no NaN, but a number beyond the
/// f32 range (say 1e39) becomes infinity when read as f32.
fn check_finite(field: &str, vector: &[f32]) -> Result<(), ApiError> {
    if vector.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    match vector.iter().position(|component| !component.is_finite()) {
        None => Ok(()),
        Some(index) => {
            Err(ApiError::validation(field, format!("component {index} is not a finite 32-bit number")))
        }
    }
}

fn payload_struct(payload: Option<&Map<String, Value>>) -> Option<prost_types::Struct> {
    payload.map(to_proto_struct)
}

fn payload_json(payload: Option<&prost_types::Struct>) -> Value {
    payload.map(|fields| Value::Object(from_proto_struct(fields))).unwrap_or(Value::Null)
}

/// One point to upsert.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointSpec {
    id: PointIdJson,
    /// Exactly the collection's dimension of finite numbers.
    vector: Vec<f32>,
    /// Any JSON object; filters address its fields by dotted path.
    #[schema(value_type = Option<Object>)]
    payload: Option<Map<String, Value>>,
}

/// `PUT /api/v1/vectors/collections/{name}/points`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpsertPoints {
    points: Vec<PointSpec>,
}

/// How many points a write stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Upserted {
    upserted: u64,
}

#[utoipa::path(put, path = "/api/v1/vectors/collections/{name}/points", tag = "vectors",
    params(("name" = String, Path)), request_body = UpsertPoints,
    responses((status = 200, body = Upserted), (status = 400), (status = 403), (status = 404), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn upsert_points(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<UpsertPoints>,
) -> Result<Json<Upserted>, ApiError> {
    require_scope(&principal, WRITE_SCOPE)?;
    check_collection_name(&name)?;
    if body.points.is_empty() {
        return Err(ApiError::validation("points", "must hold at least one point"));
    }
    // A batch is all or nothing, so the first bad point refuses the whole request.
    let mut points = Vec::with_capacity(body.points.len());
    for (index, point) in body.points.into_iter().enumerate() {
        check_finite(&format!("points[{index}].vector"), &point.vector)?;
        points.push(pb::Point {
            id: Some(point.id.into_proto(&format!("points[{index}].id"))?),
            payload: payload_struct(point.payload.as_ref()),
            vector: point.vector,
        });
    }
    let request = pb::UpsertRequest { collection: name, points };
    // The service answers only once the write is durable, so a 200 here means acknowledged.
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().upsert(request)).await?;
    Ok(Json(Upserted { upserted: response.upserted }))
}

/// `POST /api/v1/vectors/collections/{name}/points/delete`: exactly one of `ids` and `filter`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeletePoints {
    ids: Option<Vec<PointIdJson>>,
    /// `{"must":[...], "should":[...], "must_not":[...]}`.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
}

/// How many points a delete removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deleted {
    deleted: u64,
}

#[utoipa::path(post, path = "/api/v1/vectors/collections/{name}/points/delete", tag = "vectors",
    params(("name" = String, Path)), request_body = DeletePoints,
    responses((status = 200, body = Deleted), (status = 400), (status = 403), (status = 404), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn delete_points(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<DeletePoints>,
) -> Result<Json<Deleted>, ApiError> {
    require_scope(&principal, WRITE_SCOPE)?;
    check_collection_name(&name)?;
    let selector = match (body.ids, body.filter) {
        (Some(ids), None) => {
            let mut point_ids = Vec::with_capacity(ids.len());
            for (index, id) in ids.into_iter().enumerate() {
                point_ids.push(id.into_proto(&format!("ids[{index}]"))?);
            }
            Selector::Ids(pb::PointIdList { ids: point_ids })
        }
        (None, Some(filter)) => Selector::Filter(parse_filter(&filter)?),
        _ => return Err(ApiError::validation("ids", "send exactly one of `ids` and `filter`")),
    };
    let request = pb::DeletePointsRequest { collection: name, selector: Some(selector) };
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().delete_points(request)).await?;
    Ok(Json(Deleted { deleted: response.deleted }))
}

/// How to read the `{id}` path segment of a point.
#[derive(Debug, Deserialize)]
pub(crate) struct PointIdQuery {
    /// `string` or `number`; absent: a canonical unsigned integer is a number, anything else a string.
    id_type: Option<String>,
}

/// A path segment is text, so `"7"` and `7` cannot be told apart by the segment alone: a canonical
/// integer (no sign, no leading zero) is read as the numeric id, and `?id_type=string` reaches a
/// string id made of digits.
fn path_point_id(segment: &str, id_type: Option<&str>) -> Result<pb::PointId, ApiError> {
    let numeric = segment.parse::<u64>().ok().filter(|number| number.to_string() == segment);
    let id = match (id_type, numeric) {
        (Some("string"), _) | (None, None) => PointIdJson::Str(segment.to_owned()),
        (Some("number"), Some(number)) | (None, Some(number)) => PointIdJson::Num(number),
        (Some("number"), None) => {
            return Err(ApiError::new(ServiceErrorCode::BadRequest, "id: not an unsigned integer"));
        }
        (Some(_), _) => return Err(ApiError::validation("id_type", "must be `string` or `number`")),
    };
    id.into_proto("id")
}

/// A stored point.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PointView {
    id: Option<PointIdJson>,
    vector: Vec<f32>,
    #[schema(value_type = Object)]
    payload: Value,
}

#[utoipa::path(get, path = "/api/v1/vectors/collections/{name}/points/{id}", tag = "vectors",
    params(("name" = String, Path), ("id" = String, Path), ("id_type" = Option<String>, Query)),
    responses((status = 200, body = PointView), (status = 400), (status = 403), (status = 404), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn get_point(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, id)): Path<(String, String)>,
    query: Result<Query<PointIdQuery>, QueryRejection>,
) -> Result<Json<PointView>, ApiError> {
    require_scope(&principal, READ_SCOPE)?;
    check_collection_name(&name)?;
    // axum's own rejection is plain text; every error of this API is a problem document.
    let Query(query) =
        query.map_err(|rejection| ApiError::new(ServiceErrorCode::BadRequest, rejection.body_text()))?;
    let request =
        pb::GetPointRequest { id: Some(path_point_id(&id, query.id_type.as_deref())?), collection: name };
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().get_point(request)).await?;
    let point = response.point.ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, "point not found"))?;
    Ok(Json(PointView {
        payload: payload_json(point.payload.as_ref()),
        id: PointIdJson::from_proto(point.id),
        vector: point.vector,
    }))
}

/// Search parameters of one request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    /// HNSW candidate list size; absent: the collection's ef_search.
    ef: Option<u32>,
    /// IVF cells to probe; absent: the collection's nprobe.
    nprobe: Option<u32>,
}

/// `POST /api/v1/vectors/collections/{name}/search`: exactly one of `vector` and `vectors`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchBody {
    /// One query.
    vector: Option<Vec<f32>>,
    /// Several queries, each answered separately.
    vectors: Option<Vec<Vec<f32>>>,
    /// Hits per query, 1 to 10000.
    k: u64,
    /// `{"must":[...], "should":[...], "must_not":[...]}`, applied during the search.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    params: Option<SearchParams>,
    #[serde(default)]
    with_payload: bool,
    #[serde(default)]
    with_vector: bool,
}

/// One hit.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScoredPointView {
    id: Option<PointIdJson>,
    /// The distance for l2 (smaller is better), the similarity for ip and cosine.
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<Vec<f32>>,
}

impl ScoredPointView {
    fn new(hit: pb::ScoredPoint, with_payload: bool, with_vector: bool) -> Self {
        Self {
            payload: with_payload.then(|| payload_json(hit.payload.as_ref())),
            vector: with_vector.then_some(hit.vector),
            id: PointIdJson::from_proto(hit.id),
            score: hit.score,
        }
    }
}

/// One list of hits per query, in query order, each best first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SearchResults {
    results: Vec<Vec<ScoredPointView>>,
}

fn check_k(k: u64) -> Result<u32, ApiError> {
    match u32::try_from(k) {
        Ok(k_hits) if (1..=MAX_K).contains(&k) => Ok(k_hits),
        _ => Err(ApiError::validation("k", format!("must be between 1 and {MAX_K}"))),
    }
}

fn check_search_parameter(field: &str, value: Option<u32>) -> Result<Option<u32>, ApiError> {
    if value == Some(0) {
        return Err(ApiError::validation(field, "must be at least 1"));
    }
    Ok(value)
}

#[utoipa::path(post, path = "/api/v1/vectors/collections/{name}/search", tag = "vectors",
    params(("name" = String, Path)), request_body = SearchBody,
    responses((status = 200, body = SearchResults), (status = 400), (status = 403), (status = 404), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn search(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<SearchBody>,
) -> Result<Json<SearchResults>, ApiError> {
    require_scope(&principal, READ_SCOPE)?;
    check_collection_name(&name)?;
    let queries = match (body.vector, body.vectors) {
        (Some(vector), None) => {
            check_finite("vector", &vector)?;
            vec![pb::QueryVector { vector }]
        }
        (None, Some(vectors)) => {
            if vectors.is_empty() || vectors.len() > MAX_QUERIES {
                return Err(ApiError::validation("vectors", format!("must hold 1 to {MAX_QUERIES} vectors")));
            }
            let mut queries = Vec::with_capacity(vectors.len());
            for (index, vector) in vectors.into_iter().enumerate() {
                check_finite(&format!("vectors[{index}]"), &vector)?;
                queries.push(pb::QueryVector { vector });
            }
            queries
        }
        _ => return Err(ApiError::validation("vector", "send exactly one of `vector` and `vectors`")),
    };
    let k = check_k(body.k)?;
    let params = body.params.unwrap_or_default();
    let request = pb::SearchRequest {
        collection: name,
        queries,
        k,
        filter: body.filter.as_ref().map(parse_filter).transpose()?,
        ef: check_search_parameter("params.ef", params.ef)?,
        nprobe: check_search_parameter("params.nprobe", params.nprobe)?,
        with_payload: body.with_payload,
        with_vector: body.with_vector,
    };
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().search(request)).await?;
    let results = response
        .results
        .into_iter()
        .map(|query_hits| {
            query_hits
                .hits
                .into_iter()
                .map(|hit| ScoredPointView::new(hit, body.with_payload, body.with_vector))
                .collect()
        })
        .collect();
    Ok(Json(SearchResults { results }))
}

/// A text to embed and store as a point.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentSpec {
    id: PointIdJson,
    text: String,
    /// Stored as the point's payload, with the text under `text` unless already set.
    #[schema(value_type = Option<Object>)]
    payload: Option<Map<String, Value>>,
}

/// `POST /api/v1/vectors/collections/{name}/documents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpsertDocuments {
    documents: Vec<DocumentSpec>,
}

#[utoipa::path(post, path = "/api/v1/vectors/collections/{name}/documents", tag = "vectors",
    params(("name" = String, Path)), request_body = UpsertDocuments,
    responses((status = 200, body = Upserted), (status = 400), (status = 403), (status = 404), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn upsert_documents(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<UpsertDocuments>,
) -> Result<Json<Upserted>, ApiError> {
    require_scope(&principal, WRITE_SCOPE)?;
    check_collection_name(&name)?;
    if body.documents.is_empty() {
        return Err(ApiError::validation("documents", "must hold at least one document"));
    }
    let mut documents = Vec::with_capacity(body.documents.len());
    for (index, document) in body.documents.into_iter().enumerate() {
        if document.text.trim().is_empty() {
            return Err(ApiError::validation(format!("documents[{index}].text"), "must not be empty"));
        }
        documents.push(pb::Document {
            id: Some(document.id.into_proto(&format!("documents[{index}].id"))?),
            payload: payload_struct(document.payload.as_ref()),
            text: document.text,
        });
    }
    let request = pb::UpsertDocumentsRequest { collection: name, documents };
    let response =
        state.downstreams.call(VECTOR, state.downstreams.vector().upsert_documents(request)).await?;
    Ok(Json(Upserted { upserted: response.upserted }))
}

/// `POST /api/v1/vectors/collections/{name}/query`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryBody {
    text: String,
    /// Hits, 1 to 10000.
    k: u64,
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    #[serde(default)]
    with_payload: bool,
}

#[utoipa::path(post, path = "/api/v1/vectors/collections/{name}/query", tag = "vectors",
    params(("name" = String, Path)), request_body = QueryBody,
    responses((status = 200, body = SearchResults), (status = 400), (status = 403), (status = 404), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn query_documents(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<QueryBody>,
) -> Result<Json<SearchResults>, ApiError> {
    require_scope(&principal, READ_SCOPE)?;
    check_collection_name(&name)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::validation("text", "must not be empty"));
    }
    let request = pb::QueryDocumentsRequest {
        collection: name,
        k: check_k(body.k)?,
        filter: body.filter.as_ref().map(parse_filter).transpose()?,
        with_payload: body.with_payload,
        text: body.text,
    };
    let response =
        state.downstreams.call(VECTOR, state.downstreams.vector().query_documents(request)).await?;
    // The same shape as a search (one list per query), so clients read both alike.
    let hits =
        response.hits.into_iter().map(|hit| ScoredPointView::new(hit, body.with_payload, false)).collect();
    Ok(Json(SearchResults { results: vec![hits] }))
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
    require_scope(&principal, WRITE_SCOPE)?;
    check_collection_name(&name)?;
    let request = pb::SnapshotRequest { collection: name };
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().snapshot(request)).await?;
    Ok(Json(SnapshotView {
        created_at: time(response.created_at.as_ref()),
        point_count: response.point_count,
        size_bytes: response.size_bytes,
    }))
}

/// Reads a JSON filter (API.md "Filters") into the contract's `Filter`; any shape error is a 422
/// naming `filter`, with the place inside it in the detail.
fn parse_filter(json: &Value) -> Result<pb::Filter, ApiError> {
    filter_at(json, "", 0).map_err(|detail| ApiError::validation("filter", detail))
}

/// `parent.child`, or just `child` at the top of the filter.
fn join(at: &str, child: &str) -> String {
    if at.is_empty() { child.to_owned() } else { format!("{at}.{child}") }
}

/// An error at `at` inside the filter; at the top, the detail's `filter:` prefix already says where.
fn fail(at: &str, message: &str) -> String {
    if at.is_empty() { message.to_owned() } else { format!("{at}: {message}") }
}

fn filter_at(json: &Value, at: &str, depth: usize) -> Result<pb::Filter, String> {
    if depth > MAX_FILTER_DEPTH {
        return Err(fail(at, &format!("nested more than {MAX_FILTER_DEPTH} levels deep")));
    }
    let Value::Object(clauses) = json else {
        return Err(fail(at, "must be an object of `must`, `should` and `must_not` lists"));
    };
    let mut filter = pb::Filter::default();
    for (clause, conditions) in clauses {
        let target = match clause.as_str() {
            "must" => &mut filter.must,
            "should" => &mut filter.should,
            "must_not" => &mut filter.must_not,
            other => {
                return Err(fail(
                    at,
                    &format!("unknown clause `{other}` (expected must, should or must_not)"),
                ));
            }
        };
        let clause_at = join(at, clause);
        let Value::Array(items) = conditions else {
            return Err(format!("{clause_at}: must be a list of conditions"));
        };
        for (index, item) in items.iter().enumerate() {
            target.push(condition_at(item, &format!("{clause_at}[{index}]"), depth)?);
        }
    }
    Ok(filter)
}

fn condition_at(json: &Value, at: &str, depth: usize) -> Result<pb::Condition, String> {
    let Value::Object(fields) = json else {
        return Err(format!("{at}: must be an object"));
    };
    if fields.is_empty() {
        return Err(format!(
            "{at}: must be a condition (`key` with `match`, `in` or `range`) or a nested filter"
        ));
    }
    // Without a key, the object is a nested filter (for or-of-ands and similar logic).
    let Some(key) = fields.get("key") else {
        let nested = filter_at(json, at, depth + 1)?;
        return Ok(pb::Condition { key: String::new(), condition: Some(ConditionKind::Filter(nested)) });
    };
    let Value::String(key) = key else {
        return Err(format!("{at}.key: must be a string"));
    };
    if key.is_empty() || key.len() > MAX_FILTER_KEY_BYTES {
        return Err(format!("{at}.key: must be 1 to {MAX_FILTER_KEY_BYTES} bytes"));
    }
    let mut condition = None;
    for (name, value) in fields {
        let parsed = match name.as_str() {
            "key" => continue,
            "match" => ConditionKind::Match(to_proto_value(value)),
            "in" => {
                let Value::Array(values) = value else {
                    return Err(format!("{at}.in: must be a list of values"));
                };
                ConditionKind::In(pb::ValueList { values: values.iter().map(to_proto_value).collect() })
            }
            "range" => ConditionKind::Range(range_at(value, &format!("{at}.range"))?),
            other => {
                return Err(format!("{at}: unknown field `{other}` (expected key with match, in or range)"));
            }
        };
        if condition.replace(parsed).is_some() {
            return Err(format!("{at}: needs exactly one of `match`, `in` and `range`"));
        }
    }
    let Some(condition) = condition else {
        return Err(format!("{at}: needs one of `match`, `in` and `range`"));
    };
    Ok(pb::Condition { key: key.clone(), condition: Some(condition) })
}

fn range_at(json: &Value, at: &str) -> Result<pb::Range, String> {
    let Value::Object(bounds) = json else {
        return Err(format!("{at}: must be an object of `gt`, `gte`, `lt` and `lte`"));
    };
    let mut range = pb::Range::default();
    for (name, value) in bounds {
        let Some(bound) = value.as_f64().filter(|bound| bound.is_finite()) else {
            return Err(format!("{at}.{name}: must be a number"));
        };
        let slot = match name.as_str() {
            "gt" => &mut range.gt,
            "gte" => &mut range.gte,
            "lt" => &mut range.lt,
            "lte" => &mut range.lte,
            other => return Err(format!("{at}: unknown bound `{other}` (expected gt, gte, lt or lte)")),
        };
        *slot = Some(bound);
    }
    if bounds.is_empty() {
        return Err(format!("{at}: needs at least one of `gt`, `gte`, `lt` and `lte`"));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn collection_names() {
        assert!(check_collection_name("docs_v2-en").is_ok());
        assert!(check_collection_name(&"a".repeat(64)).is_ok());
        for bad in ["", "Docs", "../etc", "a/b", "a.b", "é", &"a".repeat(65)] {
            let error = check_collection_name(bad).unwrap_err();
            assert_eq!(error.code(), ServiceErrorCode::BadRequest, "{bad}");
            assert!(error.detail().starts_with("name: "), "{bad}");
        }
    }

    #[test]
    fn filter_with_every_condition() {
        let filter = parse_filter(&json!({
            "must": [
                {"key": "lang", "match": "en"},
                {"key": "author.id", "in": [1, 2]},
                {"key": "year", "range": {"gte": 2000, "lt": 2010}},
            ],
            "should": [{"must": [{"key": "a", "match": true}]}],
            "must_not": [{"key": "draft", "match": true}],
        }))
        .unwrap();
        assert_eq!(filter.must.len(), 3);
        assert_eq!(filter.must[0].key, "lang");
        assert!(
            matches!(filter.must[1].condition, Some(ConditionKind::In(ref list)) if list.values.len() == 2)
        );
        assert_eq!(
            filter.must[2].condition,
            Some(ConditionKind::Range(pb::Range {
                gt: None,
                gte: Some(2000.0),
                lt: Some(2010.0),
                lte: None
            }))
        );
        assert!(
            matches!(filter.should[0].condition, Some(ConditionKind::Filter(ref nested)) if nested.must.len() == 1)
        );
        assert_eq!(filter.must_not.len(), 1);
    }

    #[test]
    fn bad_filters_name_the_place() {
        let cases = [
            (json!([1]), "filter: must be an object"),
            (json!({"may": []}), "filter: unknown clause `may`"),
            (json!({"must": {}}), "filter: must: must be a list"),
            (json!({"must": [{"key": "a"}]}), "filter: must[0]: needs one of"),
            (json!({"must": [{"key": "a", "match": 1, "in": [1]}]}), "filter: must[0]: needs exactly one"),
            (json!({"must": [{"key": "a", "range": {}}]}), "filter: must[0].range: needs at least one"),
            (
                json!({"must": [{"key": "a", "range": {"gt": "x"}}]}),
                "filter: must[0].range.gt: must be a number",
            ),
            (json!({"should": [{"key": 3, "match": 1}]}), "filter: should[0].key: must be a string"),
            (json!({"must": [{}]}), "filter: must[0]: must be a condition"),
        ];
        for (json, expected) in cases {
            let error = parse_filter(&json).unwrap_err();
            assert_eq!(error.code(), ServiceErrorCode::ValidationFailed);
            assert!(
                error.detail().starts_with(expected),
                "{} does not start with {expected}",
                error.detail()
            );
        }
    }

    #[test]
    fn deep_filters_are_refused() {
        let mut filter = json!({"must": [{"key": "a", "match": 1}]});
        for _ in 0..=MAX_FILTER_DEPTH {
            filter = json!({"must": [filter]});
        }
        assert!(parse_filter(&filter).unwrap_err().detail().contains("nested more than"));
    }

    #[test]
    fn point_ids_from_json_and_path() {
        assert_eq!(serde_json::from_value::<PointIdJson>(json!(7)).unwrap(), PointIdJson::Num(7));
        assert_eq!(
            serde_json::from_value::<PointIdJson>(json!("7")).unwrap(),
            PointIdJson::Str("7".to_owned())
        );
        assert!(serde_json::from_value::<PointIdJson>(json!(-1)).is_err());
        assert!(PointIdJson::Str(String::new()).into_proto("id").is_err());

        let numeric = |id: pb::PointId| matches!(id.kind, Some(PointIdKind::Num(_)));
        assert!(numeric(path_point_id("7", None).unwrap()));
        assert!(!numeric(path_point_id("007", None).unwrap()));
        assert!(!numeric(path_point_id("7", Some("string")).unwrap()));
        assert!(!numeric(path_point_id("doc-1", None).unwrap()));
        assert!(path_point_id("doc-1", Some("number")).is_err());
        assert!(path_point_id("7", Some("uuid")).is_err());
    }

    #[test]
    fn vectors_must_be_finite() {
        let error = check_finite("points[3].vector", &[0.5, f32::INFINITY]).unwrap_err();
        assert_eq!(error.code(), ServiceErrorCode::ValidationFailed);
        assert!(error.detail().starts_with("points[3].vector: component 1"));
        // A number beyond f32's range parses, as infinity, and is then refused.
        let body: UpsertPoints =
            serde_json::from_value(json!({"points": [{"id": 1, "vector": [1e39]}]})).unwrap();
        assert!(check_finite("points[0].vector", &body.points[0].vector).is_err());
    }

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

    #[test]
    fn k_bounds() {
        assert_eq!(check_k(1).unwrap(), 1);
        assert_eq!(check_k(10_000).unwrap(), 10_000);
        for bad in [0, 10_001, u64::MAX] {
            assert!(check_k(bad).unwrap_err().detail().starts_with("k: "));
        }
    }

    #[test]
    fn routes_build_and_are_documented() {
        // axum checks route syntax (and the policy wildcard) when the router is built.
        let _router = routes();
        let document = <VectorsDoc as utoipa::OpenApi>::openapi();
        assert_eq!(document.paths.paths.len(), 9);
        assert!(document.paths.paths.contains_key("/api/v1/vectors/collections/{name}/points/{id}"));
    }
}
