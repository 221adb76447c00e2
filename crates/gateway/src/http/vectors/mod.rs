//! Vector collections, points, search and documents (API.md "Vectors"), forwarded to the vector
//! service, which owns the data. The gateway checks what it can without the data (names, shapes,
//! finite components, k, filter syntax) so a malformed request is refused even while the service
//! is down; the dimension of a vector can only be checked by the service.

mod collections;
mod documents;
mod filter;
mod points;
mod search;

use axum::Router;
use axum::routing::{get, post, put};
use sutazai_kit::auth::{Principal, require_scope};
use sutazai_kit::http::ApiError;
use sutazai_types::ServiceErrorCode;

use self::collections::{
    CollectionView, CreateCollection, IndexSpec, MetricName, SnapshotView, create_collection,
    delete_collection, get_collection, list_collections, snapshot,
};
use self::documents::{DocumentSpec, QueryBody, UpsertDocuments, query_documents, upsert_documents};
use self::points::{
    DeletePoints, Deleted, PointIdJson, PointSpec, PointView, UpsertPoints, Upserted, delete_points,
    get_point, upsert_points,
};
use self::search::{ScoredPointView, SearchBody, SearchParams, SearchResults, search};
use super::AppState;

const READ_SCOPE: &str = "vectors:read";
const WRITE_SCOPE: &str = "vectors:write";

/// Longest collection name (API.md: `[a-z0-9_-]{1,64}`).
const MAX_NAME_CHARS: usize = 64;

/// Every vector route, to be merged into the API router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vectors/collections", post(create_collection).get(list_collections))
        .route("/api/v1/vectors/collections/{name}", get(get_collection).delete(delete_collection))
        .route("/api/v1/vectors/collections/{name}/points", put(upsert_points))
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
        collections::create_collection, collections::list_collections, collections::get_collection,
        collections::delete_collection, points::upsert_points, points::delete_points, points::get_point,
        search::search, documents::upsert_documents, documents::query_documents, collections::snapshot,
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

/// What every route on one collection checks first: the caller's scope, then the name.
fn require_collection_access(principal: &Principal, scope: &str, name: &str) -> Result<(), ApiError> {
    require_scope(principal, scope)?;
    check_collection_name(name)
}

/// A count the contract carries as u32, refused with a 422 naming `field` outside `1..=max`.
fn count_up_to(field: &str, value: u64, max: u64) -> Result<u32, ApiError> {
    match u32::try_from(value) {
        Ok(count) if (1..=max).contains(&value) => Ok(count),
        _ => Err(ApiError::validation(field, format!("must be between 1 and {max}"))),
    }
}

#[cfg(test)]
mod tests {
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
    fn routes_build_and_are_documented() {
        // axum checks route syntax (and the policy wildcard) when the router is built.
        let _router = routes();
        let document = <VectorsDoc as utoipa::OpenApi>::openapi();
        assert_eq!(document.paths.paths.len(), 9);
        assert!(document.paths.paths.contains_key("/api/v1/vectors/collections/{name}/points/{id}"));
    }
}
