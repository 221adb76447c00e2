//! Storage scan routes: the analysis of a tree, its duplicate files and its largest files.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::ApiError;
use sutazai_proto::v1 as pb;
use utoipa::ToSchema;

use super::{admin_query, query_count, query_number, required_path};
use crate::downstream::HARDWARE;
use crate::http::AppState;
use crate::http::tasks::time;

/// Most files a large-file scan lists (the hardware contract's bound).
const MAX_LARGE_FILES: u32 = 1000;
const BYTES_PER_MIB: u64 = 1024 * 1024;

/// Query of the storage scans.
#[derive(Debug, Deserialize)]
pub(crate) struct PathQuery {
    path: Option<String>,
}

/// Size by extension.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExtensionView {
    /// Lowercase, without the dot; empty for files without one.
    extension: String,
    file_count: u64,
    size_bytes: u64,
}

/// Files with `min_size_bytes <= size < max_size_bytes` (no upper bound when max is null).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SizeBucketView {
    min_size_bytes: u64,
    max_size_bytes: Option<u64>,
    file_count: u64,
    size_bytes: u64,
}

/// Files last modified `min_age_days <= age < max_age_days` ago (no upper bound when max is null).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgeBucketView {
    min_age_days: u32,
    max_age_days: Option<u32>,
    file_count: u64,
    size_bytes: u64,
}

/// The analysis of one tree.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StorageView {
    /// The canonical path that was analysed.
    path: String,
    total_size_bytes: u64,
    file_count: u64,
    directory_count: u64,
    by_extension: Vec<ExtensionView>,
    by_size: Vec<SizeBucketView>,
    by_age: Vec<AgeBucketView>,
    /// Entries that could not be read.
    skipped_count: u64,
    /// True when the scan hit its time or memory bound and covers only part of the tree.
    truncated: bool,
}

impl From<pb::AnalyzeStorageResponse> for StorageView {
    fn from(analysis: pb::AnalyzeStorageResponse) -> Self {
        Self {
            path: analysis.path,
            total_size_bytes: analysis.total_size_bytes,
            file_count: analysis.file_count,
            directory_count: analysis.directory_count,
            by_extension: analysis
                .by_extension
                .into_iter()
                .map(|usage| ExtensionView {
                    extension: usage.extension,
                    file_count: usage.file_count,
                    size_bytes: usage.size_bytes,
                })
                .collect(),
            // The contract says "max 0 means no upper bound"; JSON says it with null.
            by_size: analysis
                .by_size
                .into_iter()
                .map(|bucket| SizeBucketView {
                    min_size_bytes: bucket.min_size_bytes,
                    max_size_bytes: (bucket.max_size_bytes != 0).then_some(bucket.max_size_bytes),
                    file_count: bucket.file_count,
                    size_bytes: bucket.size_bytes,
                })
                .collect(),
            by_age: analysis
                .by_age
                .into_iter()
                .map(|bucket| AgeBucketView {
                    min_age_days: bucket.min_age_days,
                    max_age_days: (bucket.max_age_days != 0).then_some(bucket.max_age_days),
                    file_count: bucket.file_count,
                    size_bytes: bucket.size_bytes,
                })
                .collect(),
            skipped_count: analysis.skipped_count,
            truncated: analysis.truncated,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/hardware/storage", tag = "hardware", params(("path" = String, Query)),
    responses((status = 200, body = StorageView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn analyze_storage(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Json<StorageView>, ApiError> {
    let query = admin_query(&principal, query)?;
    let request = pb::AnalyzeStorageRequest { path: required_path(query.path)? };
    let response =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().analyze_storage(request)).await?;
    Ok(Json(response.into()))
}

/// Files with byte-identical content.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DuplicateGroupView {
    /// Of each file.
    size_bytes: u64,
    sha256: String,
    /// Sorted; a duplicates cleanup keeps the first.
    paths: Vec<String>,
}

/// Duplicate groups, biggest wasted space first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DuplicatesView {
    groups: Vec<DuplicateGroupView>,
    /// Bytes freed by keeping one file per group.
    reclaimable_bytes: u64,
    files_scanned: u64,
    truncated: bool,
}

#[utoipa::path(get, path = "/api/v1/hardware/storage/duplicates", tag = "hardware", params(("path" = String, Query)),
    responses((status = 200, body = DuplicatesView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn find_duplicates(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Json<DuplicatesView>, ApiError> {
    let query = admin_query(&principal, query)?;
    // min_size_bytes 0: the service's default, which ignores empty files.
    let request = pb::FindDuplicatesRequest { path: required_path(query.path)?, min_size_bytes: 0 };
    let response =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().find_duplicates(request)).await?;
    Ok(Json(DuplicatesView {
        groups: response
            .groups
            .into_iter()
            .map(|group| DuplicateGroupView {
                size_bytes: group.size_bytes,
                sha256: group.sha256,
                paths: group.paths,
            })
            .collect(),
        reclaimable_bytes: response.reclaimable_bytes,
        files_scanned: response.files_scanned,
        truncated: response.truncated,
    }))
}

/// Query of `GET /api/v1/hardware/storage/large-files`.
#[derive(Debug, Deserialize)]
pub(crate) struct LargeFilesQuery {
    path: Option<String>,
    /// Smallest size listed, in MiB (default 100; 0 lists every non-empty file).
    min_size_mb: Option<String>,
    /// Most files listed, 1 to 1000 (default 100).
    limit: Option<String>,
}

/// One large file.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LargeFileView {
    path: String,
    size_bytes: u64,
    modified_at: Option<DateTime<Utc>>,
}

/// The largest files, biggest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LargeFilesView {
    files: Vec<LargeFileView>,
    truncated: bool,
}

#[utoipa::path(get, path = "/api/v1/hardware/storage/large-files", tag = "hardware",
    params(("path" = String, Query), ("min_size_mb" = Option<u64>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = LargeFilesView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn find_large_files(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<LargeFilesQuery>, QueryRejection>,
) -> Result<Json<LargeFilesView>, ApiError> {
    let query = admin_query(&principal, query)?;
    let path = required_path(query.path)?;
    let min_size_bytes = match query_number::<u64>("min_size_mb", query.min_size_mb.as_deref())? {
        // 0 in the contract means "the default", so an explicit 0 MiB asks for every non-empty file.
        Some(0) => 1,
        Some(mebibytes) => mebibytes
            .checked_mul(BYTES_PER_MIB)
            .ok_or_else(|| ApiError::validation("min_size_mb", "is too large"))?,
        None => 0,
    };
    let limit = query_count("limit", query.limit.as_deref(), MAX_LARGE_FILES)?;
    let request = pb::FindLargeFilesRequest { path, min_size_bytes, limit };
    let response =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().find_large_files(request)).await?;
    Ok(Json(LargeFilesView {
        files: response
            .files
            .into_iter()
            .map(|file| LargeFileView {
                modified_at: time(file.modified_at.as_ref()),
                path: file.path,
                size_bytes: file.size_bytes,
            })
            .collect(),
        truncated: response.truncated,
    }))
}
