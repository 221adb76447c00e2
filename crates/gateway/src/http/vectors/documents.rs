//! Document routes: texts the vector service embeds and stores as points, and text queries over
//! them.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Map, Value};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::ApiError;
use sutazai_proto::v1 as pb;
use utoipa::ToSchema;

use super::filter::parse_filter;
use super::points::{PointIdJson, Upserted, payload_struct};
use super::search::{ScoredPointView, SearchResults, check_k};
use super::{READ_SCOPE, WRITE_SCOPE, require_collection_access};
use crate::downstream::VECTOR;
use crate::http::AppState;

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
    require_collection_access(&principal, WRITE_SCOPE, &name)?;
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
    require_collection_access(&principal, READ_SCOPE, &name)?;
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
