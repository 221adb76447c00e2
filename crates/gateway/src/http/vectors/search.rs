//! The search route, and the hit lists it shares with a text query.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sutazai_kit::auth::Principal;
use sutazai_kit::http::ApiError;
use sutazai_proto::v1 as pb;
use utoipa::ToSchema;

use super::filter::parse_filter;
use super::points::{PointIdJson, check_finite, payload_json};
use super::{READ_SCOPE, count_up_to, require_collection_access};
use crate::downstream::VECTOR;
use crate::http::AppState;

/// Hits per query (the vector contract's bound).
const MAX_K: u64 = 10_000;
/// Query vectors in one search; with k up to 10,000 a larger batch would build answers of
/// hundreds of megabytes.
const MAX_QUERIES: usize = 1000;

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
    pub(super) fn new(hit: pb::ScoredPoint, with_payload: bool, with_vector: bool) -> Self {
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
    pub(super) results: Vec<Vec<ScoredPointView>>,
}

pub(super) fn check_k(k: u64) -> Result<u32, ApiError> {
    count_up_to("k", k, MAX_K)
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
    require_collection_access(&principal, READ_SCOPE, &name)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_bounds() {
        assert_eq!(check_k(1).unwrap(), 1);
        assert_eq!(check_k(10_000).unwrap(), 10_000);
        for bad in [0, 10_001, u64::MAX] {
            assert!(check_k(bad).unwrap_err().detail().starts_with("k: "));
        }
    }
}
