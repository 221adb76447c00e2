//! Host metrics, storage analysis, cleanups and their quarantine (API.md "Hardware and
//! resources"), forwarded to the hardware service. The service owns path safety (allowed roots,
//! canonicalisation, symlinks); the gateway refuses what is malformed on its face, makes every
//! cleanup a dry run unless an admin explicitly sends `dry_run: false`, and audits each cleanup and
//! restore.

mod metrics;
mod optimize;
mod quarantine;
mod storage;

use axum::Router;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::routing::{get, post};
use sutazai_kit::auth::{Principal, require_admin};
use sutazai_kit::http::ApiError;
use sutazai_types::ServiceErrorCode;

use self::metrics::{
    CoreView, CpuView, DiskView, GpuView, HostMetricsView, MemoryView, NetworkView, PressureView,
    ProcessView, SwapView, metrics,
};
use self::optimize::{OptimizeActionView, OptimizeBody, OptimizeView, optimize};
use self::quarantine::{QuarantineEntryView, list_quarantine, restore_quarantine};
use self::storage::{
    AgeBucketView, DuplicateGroupView, DuplicatesView, ExtensionView, LargeFileView, LargeFilesView,
    SizeBucketView, StorageView, analyze_storage, find_duplicates, find_large_files,
};
use super::AppState;

/// Longest path the gateway forwards; PATH_MAX on Linux.
const MAX_PATH_BYTES: usize = 4096;

/// Every hardware route, to be merged into the API router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/hardware/metrics", get(metrics))
        .route("/api/v1/hardware/storage", get(analyze_storage))
        .route("/api/v1/hardware/storage/duplicates", get(find_duplicates))
        .route("/api/v1/hardware/storage/large-files", get(find_large_files))
        .route("/api/v1/hardware/optimize/{kind}", post(optimize))
        .route("/api/v1/hardware/quarantine", get(list_quarantine))
        .route("/api/v1/hardware/quarantine/{id}/restore", post(restore_quarantine))
}

/// The hardware routes of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        metrics::metrics, storage::analyze_storage, storage::find_duplicates, storage::find_large_files,
        optimize::optimize, quarantine::list_quarantine, quarantine::restore_quarantine,
    ),
    components(schemas(
        HostMetricsView, CpuView, CoreView, PressureView, MemoryView, SwapView, DiskView, NetworkView, GpuView,
        ProcessView, StorageView, ExtensionView, SizeBucketView, AgeBucketView, DuplicatesView, DuplicateGroupView,
        LargeFilesView, LargeFileView, OptimizeBody, OptimizeView, OptimizeActionView, QuarantineEntryView,
    )),
    tags((name = "hardware", description = "Host metrics, storage analysis and safe cleanups")),
)]
pub(crate) struct HardwareDoc;

/// axum's own query rejection is plain text; every error of this API is a problem document.
fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::new(ServiceErrorCode::BadRequest, rejection.body_text())
}

/// The query of an admin-only route, read once the caller is known to be an admin: file paths
/// under the allowed roots are not every user's business.
fn admin_query<T>(principal: &Principal, query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    require_admin(principal)?;
    let Query(query) = query.map_err(query_error)?;
    Ok(query)
}

/// An optional numeric query parameter, 422 naming it when it is not a number.
fn query_number<T: std::str::FromStr>(field: &str, text: Option<&str>) -> Result<Option<T>, ApiError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => {
            text.parse().map(Some).map_err(|_| ApiError::validation(field, "must be a non-negative integer"))
        }
    }
}

/// An optional count in the query, 1 to `max`; absent is 0, which asks the service for its default.
fn query_count(field: &str, text: Option<&str>, max: u32) -> Result<u32, ApiError> {
    match query_number::<u32>(field, text)? {
        None => Ok(0),
        Some(count) if (1..=max).contains(&count) => Ok(count),
        Some(_) => Err(ApiError::validation(field, format!("must be between 1 and {max}"))),
    }
}

/// Refuses a path that is malformed on its face; whether it lies under an allowed root is the
/// service's decision (403), made after canonicalisation.
fn check_path(path: &str) -> Result<(), ApiError> {
    if path.is_empty() {
        return Err(ApiError::new(ServiceErrorCode::BadRequest, "path: must not be empty"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(ApiError::new(
            ServiceErrorCode::BadRequest,
            format!("path: longer than {MAX_PATH_BYTES} bytes"),
        ));
    }
    if path.contains('\0') {
        return Err(ApiError::new(ServiceErrorCode::BadRequest, "path: contains a NUL character"));
    }
    Ok(())
}

fn required_path(path: Option<String>) -> Result<String, ApiError> {
    let path = path.ok_or_else(|| ApiError::validation("path", "is required"))?;
    check_path(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_malformed_on_their_face() {
        assert!(check_path("/tmp/data").is_ok());
        assert_eq!(check_path("").unwrap_err().code(), ServiceErrorCode::BadRequest);
        assert_eq!(check_path(&"a".repeat(5000)).unwrap_err().code(), ServiceErrorCode::BadRequest);
        assert_eq!(required_path(None).unwrap_err().code(), ServiceErrorCode::ValidationFailed);
    }

    #[test]
    fn routes_build_and_are_documented() {
        // axum checks route syntax (and the policy wildcard) when the router is built.
        let _router = routes();
        let document = <HardwareDoc as utoipa::OpenApi>::openapi();
        assert_eq!(document.paths.paths.len(), 7);
        assert!(document.paths.paths.contains_key("/api/v1/hardware/optimize/{kind}"));
    }
}
