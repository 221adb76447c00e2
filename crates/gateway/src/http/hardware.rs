//! Host metrics, storage analysis, cleanups and their quarantine (API.md "Hardware and
//! resources"), forwarded to the hardware service. The service owns path safety (allowed roots,
//! canonicalisation, symlinks); the gateway refuses what is malformed on its face, makes every
//! cleanup a dry run unless an admin explicitly sends `dry_run: false`, and audits each cleanup and
//! restore.

use axum::Json;
use axum::Router;
use axum::body::to_bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sutazai_kit::audit::AuditRecord;
use sutazai_kit::auth::{Principal, require_admin};
use sutazai_kit::http::{ApiError, ClientIp, Page, PageOf, parse_uuid};
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::AppState;
use super::tasks::time;
use crate::downstream::HARDWARE;

/// Longest path the gateway forwards; PATH_MAX on Linux.
const MAX_PATH_BYTES: usize = 4096;
/// Most processes a metrics sample lists.
const MAX_TOP_PROCESSES: u32 = 100;
/// Most files a large-file scan lists (the hardware contract's bound).
const MAX_LARGE_FILES: u32 = 1000;
/// Longest docker label filter.
const MAX_LABEL_BYTES: usize = 256;
const BYTES_PER_MIB: u64 = 1024 * 1024;

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
    paths(metrics, analyze_storage, find_duplicates, find_large_files, optimize, list_quarantine, restore_quarantine),
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

/// An optional numeric query parameter, 422 naming it when it is not a number.
fn query_number<T: std::str::FromStr>(field: &str, text: Option<&str>) -> Result<Option<T>, ApiError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => {
            text.parse().map(Some).map_err(|_| ApiError::validation(field, "must be a non-negative integer"))
        }
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

/// Linux pressure stall information, in percent of time.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PressureView {
    some_avg10: f64,
    some_avg60: f64,
    some_avg300: f64,
    full_avg10: f64,
    full_avg60: f64,
    full_avg300: f64,
}

impl From<pb::PressureStall> for PressureView {
    fn from(pressure: pb::PressureStall) -> Self {
        Self {
            some_avg10: pressure.some_avg10,
            some_avg60: pressure.some_avg60,
            some_avg300: pressure.some_avg300,
            full_avg10: pressure.full_avg10,
            full_avg60: pressure.full_avg60,
            full_avg300: pressure.full_avg300,
        }
    }
}

/// One CPU core.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CoreView {
    index: u32,
    usage_percent: f64,
    frequency_mhz: u64,
}

/// CPU use, per core and overall.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CpuView {
    usage_percent: f64,
    cores: Vec<CoreView>,
    load_average_1m: f64,
    load_average_5m: f64,
    load_average_15m: f64,
    /// Absent where the kernel has no PSI.
    pressure: Option<PressureView>,
}

impl From<pb::CpuMetrics> for CpuView {
    fn from(cpu: pb::CpuMetrics) -> Self {
        Self {
            usage_percent: cpu.usage_percent,
            cores: cpu
                .cores
                .into_iter()
                .map(|core| CoreView {
                    index: core.index,
                    usage_percent: core.usage_percent,
                    frequency_mhz: core.frequency_mhz,
                })
                .collect(),
            load_average_1m: cpu.load_average_1m,
            load_average_5m: cpu.load_average_5m,
            load_average_15m: cpu.load_average_15m,
            pressure: cpu.pressure.map(PressureView::from),
        }
    }
}

/// Memory.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MemoryView {
    total_bytes: u64,
    used_bytes: u64,
    /// What new allocations can get without swapping, page cache included.
    available_bytes: u64,
    pressure: Option<PressureView>,
}

/// Swap.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SwapView {
    total_bytes: u64,
    used_bytes: u64,
}

/// One mounted disk.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DiskView {
    name: String,
    mount_point: String,
    file_system: String,
    total_bytes: u64,
    available_bytes: u64,
    removable: bool,
}

/// One network interface.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NetworkView {
    name: String,
    received_bytes: u64,
    transmitted_bytes: u64,
    received_bytes_per_s: u64,
    transmitted_bytes_per_s: u64,
}

/// One GPU.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GpuView {
    index: u32,
    name: String,
    uuid: String,
    utilization_percent: f64,
    memory_total_bytes: u64,
    memory_used_bytes: u64,
    temperature_celsius: Option<f64>,
}

/// One process, by CPU use.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProcessView {
    pid: u32,
    name: String,
    /// Of one core, so a multi-threaded process may exceed 100.
    cpu_percent: f64,
    memory_bytes: u64,
    user: Option<String>,
}

/// One sample of the host.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HostMetricsView {
    collected_at: Option<DateTime<Utc>>,
    hostname: String,
    uptime_s: u64,
    cpu: Option<CpuView>,
    memory: Option<MemoryView>,
    swap: Option<SwapView>,
    disks: Vec<DiskView>,
    networks: Vec<NetworkView>,
    /// Empty when the host has no GPU or no way to query one.
    gpus: Vec<GpuView>,
    top_processes: Vec<ProcessView>,
}

impl From<pb::HostMetrics> for HostMetricsView {
    fn from(metrics: pb::HostMetrics) -> Self {
        Self {
            collected_at: time(metrics.collected_at.as_ref()),
            hostname: metrics.hostname,
            uptime_s: metrics.uptime_s,
            cpu: metrics.cpu.map(CpuView::from),
            memory: metrics.memory.map(|memory| MemoryView {
                total_bytes: memory.total_bytes,
                used_bytes: memory.used_bytes,
                available_bytes: memory.available_bytes,
                pressure: memory.pressure.map(PressureView::from),
            }),
            swap: metrics
                .swap
                .map(|swap| SwapView { total_bytes: swap.total_bytes, used_bytes: swap.used_bytes }),
            disks: metrics
                .disks
                .into_iter()
                .map(|disk| DiskView {
                    name: disk.name,
                    mount_point: disk.mount_point,
                    file_system: disk.file_system,
                    total_bytes: disk.total_bytes,
                    available_bytes: disk.available_bytes,
                    removable: disk.removable,
                })
                .collect(),
            networks: metrics
                .networks
                .into_iter()
                .map(|network| NetworkView {
                    name: network.name,
                    received_bytes: network.received_bytes,
                    transmitted_bytes: network.transmitted_bytes,
                    received_bytes_per_s: network.received_bytes_per_s,
                    transmitted_bytes_per_s: network.transmitted_bytes_per_s,
                })
                .collect(),
            gpus: metrics
                .gpus
                .into_iter()
                .map(|gpu| GpuView {
                    index: gpu.index,
                    name: gpu.name,
                    uuid: gpu.uuid,
                    utilization_percent: gpu.utilization_percent,
                    memory_total_bytes: gpu.memory_total_bytes,
                    memory_used_bytes: gpu.memory_used_bytes,
                    temperature_celsius: gpu.temperature_celsius,
                })
                .collect(),
            top_processes: metrics
                .top_processes
                .into_iter()
                .map(|process| ProcessView {
                    pid: process.pid,
                    name: process.name,
                    cpu_percent: process.cpu_percent,
                    memory_bytes: process.memory_bytes,
                    user: (!process.user.is_empty()).then_some(process.user),
                })
                .collect(),
        }
    }
}

/// Query of `GET /api/v1/hardware/metrics`.
#[derive(Debug, Deserialize)]
pub(crate) struct MetricsQuery {
    /// Processes to list by CPU use, 1 to 100 (default 10).
    top_processes: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/hardware/metrics", tag = "hardware",
    params(("top_processes" = Option<u32>, Query)),
    responses((status = 200, body = HostMetricsView), (status = 401), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    _principal: Principal,
    query: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<HostMetricsView>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let top_processes = match query_number::<u32>("top_processes", query.top_processes.as_deref())? {
        // 0 asks the service for its default.
        None => 0,
        Some(count) if (1..=MAX_TOP_PROCESSES).contains(&count) => count,
        Some(_) => {
            return Err(ApiError::validation(
                "top_processes",
                format!("must be between 1 and {MAX_TOP_PROCESSES}"),
            ));
        }
    };
    let request = pb::GetMetricsRequest { top_processes };
    let response =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().get_metrics(request)).await?;
    let metrics = response
        .metrics
        .ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "hardware answered without metrics"))?;
    Ok(Json(metrics.into()))
}

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
    // File paths under the allowed roots are not every user's business.
    require_admin(&principal)?;
    let Query(query) = query.map_err(query_error)?;
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
    // File paths under the allowed roots are not every user's business.
    require_admin(&principal)?;
    let Query(query) = query.map_err(query_error)?;
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
    // File paths under the allowed roots are not every user's business.
    require_admin(&principal)?;
    let Query(query) = query.map_err(query_error)?;
    let path = required_path(query.path)?;
    let min_size_bytes = match query_number::<u64>("min_size_mb", query.min_size_mb.as_deref())? {
        // 0 in the contract means "the default", so an explicit 0 MiB asks for every non-empty file.
        Some(0) => 1,
        Some(mebibytes) => mebibytes
            .checked_mul(BYTES_PER_MIB)
            .ok_or_else(|| ApiError::validation("min_size_mb", "is too large"))?,
        None => 0,
    };
    let limit = match query_number::<u32>("limit", query.limit.as_deref())? {
        None => 0,
        Some(limit) if (1..=MAX_LARGE_FILES).contains(&limit) => limit,
        Some(_) => {
            return Err(ApiError::validation("limit", format!("must be between 1 and {MAX_LARGE_FILES}")));
        }
    };
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

fn optimize_kind(name: &str) -> Option<pb::OptimizeKind> {
    match name {
        "storage" => Some(pb::OptimizeKind::Storage),
        "duplicates" => Some(pb::OptimizeKind::Duplicates),
        "logs" => Some(pb::OptimizeKind::Logs),
        "memory" => Some(pb::OptimizeKind::Memory),
        "docker" => Some(pb::OptimizeKind::Docker),
        _ => None,
    }
}

fn optimize_kind_name(kind: i32) -> &'static str {
    match pb::OptimizeKind::try_from(kind).unwrap_or(pb::OptimizeKind::Unspecified) {
        pb::OptimizeKind::Storage => "storage",
        pb::OptimizeKind::Duplicates => "duplicates",
        pb::OptimizeKind::Logs => "logs",
        pb::OptimizeKind::Memory => "memory",
        pb::OptimizeKind::Docker => "docker",
        pb::OptimizeKind::Unspecified => "unknown",
    }
}

fn action_kind_name(kind: i32) -> &'static str {
    match pb::OptimizeActionKind::try_from(kind).unwrap_or(pb::OptimizeActionKind::Unspecified) {
        pb::OptimizeActionKind::QuarantineFile => "quarantine_file",
        pb::OptimizeActionKind::CompressFile => "compress_file",
        pb::OptimizeActionKind::DropCaches => "drop_caches",
        pb::OptimizeActionKind::RemoveContainer => "remove_container",
        pb::OptimizeActionKind::RemoveImage => "remove_image",
        pb::OptimizeActionKind::Unspecified => "unknown",
    }
}

fn action_outcome_name(outcome: i32) -> &'static str {
    match pb::OptimizeActionOutcome::try_from(outcome).unwrap_or(pb::OptimizeActionOutcome::Unspecified) {
        pb::OptimizeActionOutcome::Planned => "planned",
        pb::OptimizeActionOutcome::Performed => "performed",
        pb::OptimizeActionOutcome::Skipped => "skipped",
        pb::OptimizeActionOutcome::Failed => "failed",
        pb::OptimizeActionOutcome::Unspecified => "unknown",
    }
}

/// `POST /api/v1/hardware/optimize/{kind}`; the body may be left out entirely.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OptimizeBody {
    /// storage, logs: the tree to clean (default: the configured roots); duplicates: required.
    path: Option<String>,
    /// True unless explicitly false: only `false` changes anything.
    dry_run: Option<bool>,
    /// storage, logs: only files last modified at least this many days ago (default 7).
    days_old: Option<i64>,
    /// docker (required): the label filter, e.g. `sutazai.cleanup=true`.
    label: Option<String>,
}

/// Refuses a field that does not apply to the cleanup, so a client never believes it narrowed
/// a cleanup with a field the service would ignore.
fn not_applicable(field: &str, kind_name: &str) -> ApiError {
    ApiError::validation(field, format!("does not apply to the `{kind_name}` cleanup"))
}

/// Checks the body against the cleanup and builds the request; `dry_run` is sent explicitly.
fn optimize_request(
    kind: pb::OptimizeKind,
    kind_name: &str,
    body: OptimizeBody,
    requested_by: String,
) -> Result<pb::OptimizeRequest, ApiError> {
    let takes_path =
        matches!(kind, pb::OptimizeKind::Storage | pb::OptimizeKind::Logs | pb::OptimizeKind::Duplicates);
    let takes_age = matches!(kind, pb::OptimizeKind::Storage | pb::OptimizeKind::Logs);
    let takes_label = kind == pb::OptimizeKind::Docker;
    match &body.path {
        Some(_) if !takes_path => return Err(not_applicable("path", kind_name)),
        Some(path) => check_path(path)?,
        None if kind == pb::OptimizeKind::Duplicates => {
            // Never a default root: duplicate removal over a whole data dir by accident is what
            // this API exists to prevent.
            return Err(ApiError::validation("path", "is required for the `duplicates` cleanup"));
        }
        None => {}
    }
    let days_old = match body.days_old {
        Some(_) if !takes_age => return Err(not_applicable("days_old", kind_name)),
        Some(days) => {
            Some(u32::try_from(days).map_err(|_| ApiError::validation("days_old", "must be 0 or more"))?)
        }
        None => None,
    };
    match &body.label {
        Some(_) if !takes_label => return Err(not_applicable("label", kind_name)),
        Some(label)
            if label.trim().is_empty()
                || label.len() > MAX_LABEL_BYTES
                || label.contains(char::is_control) =>
        {
            return Err(ApiError::validation(
                "label",
                format!("must be 1 to {MAX_LABEL_BYTES} printable bytes"),
            ));
        }
        None if takes_label => {
            return Err(ApiError::validation("label", "is required for the `docker` cleanup"));
        }
        _ => {}
    }
    Ok(pb::OptimizeRequest {
        kind: kind.into(),
        path: body.path,
        // The contract already treats unset as true; sending it spelled out keeps a dry run a dry
        // run even against a service that reads proto3 defaults carelessly.
        dry_run: Some(body.dry_run.unwrap_or(true)),
        days_old,
        label: body.label,
        requested_by,
    })
}

/// Reads a JSON body that may be left out: no `Content-Type` and no bytes is the default body;
/// anything else goes through the kit's extractor (422 naming the field, 413, missing type).
async fn optional_json<T: DeserializeOwned + Default>(request: Request) -> Result<T, ApiError> {
    if request.headers().contains_key(header::CONTENT_TYPE) {
        let sutazai_kit::http::Json(body) = sutazai_kit::http::Json::<T>::from_request(request, &()).await?;
        return Ok(body);
    }
    // A body without a type is refused (as the kit does); reading at most a few bytes is enough
    // to tell it from an empty one.
    match to_bytes(request.into_body(), 64).await {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        _ => Err(ApiError::new(ServiceErrorCode::BadRequest, "expected `Content-Type: application/json`")),
    }
}

/// One step of a cleanup.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OptimizeActionView {
    /// quarantine_file, compress_file, drop_caches, remove_container or remove_image.
    kind: String,
    /// A file path, container id or image id.
    target: String,
    /// planned (dry run), performed, skipped or failed.
    outcome: String,
    /// Freed when performed, or that would be freed when planned.
    reclaimed_bytes: u64,
    detail: Option<String>,
    /// Set when the file went to the quarantine; restore it with this id.
    quarantine_id: Option<String>,
}

/// What a cleanup did, or would do on a dry run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OptimizeView {
    kind: String,
    dry_run: bool,
    /// In the order they were (or would be) taken.
    actions: Vec<OptimizeActionView>,
    reclaimed_bytes: u64,
}

impl From<pb::OptimizeResponse> for OptimizeView {
    fn from(response: pb::OptimizeResponse) -> Self {
        Self {
            kind: optimize_kind_name(response.kind).to_owned(),
            dry_run: response.dry_run,
            actions: response
                .actions
                .into_iter()
                .map(|action| OptimizeActionView {
                    kind: action_kind_name(action.kind).to_owned(),
                    outcome: action_outcome_name(action.outcome).to_owned(),
                    detail: (!action.detail.is_empty()).then_some(action.detail),
                    quarantine_id: (!action.quarantine_id.is_empty()).then_some(action.quarantine_id),
                    target: action.target,
                    reclaimed_bytes: action.reclaimed_bytes,
                })
                .collect(),
            reclaimed_bytes: response.reclaimed_bytes,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/hardware/optimize/{kind}", tag = "hardware",
    params(("kind" = String, Path, description = "storage, duplicates, logs, memory or docker")),
    request_body = Option<OptimizeBody>,
    responses((status = 200, body = OptimizeView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn optimize(
    State(state): State<AppState>,
    principal: Principal,
    client_ip: ClientIp,
    Path(kind_name): Path<String>,
    request: Request,
) -> Result<Json<OptimizeView>, ApiError> {
    require_admin(&principal)?;
    // An unknown cleanup is an unknown path, as if each had its own route.
    let kind = optimize_kind(&kind_name)
        .ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, format!("unknown cleanup `{kind_name}`")))?;
    let body = optional_json::<OptimizeBody>(request).await?;
    let request = optimize_request(kind, &kind_name, body, principal.name.clone())?;
    let audit_path = request.path.clone();
    let audit_detail = json!({
        "kind": kind_name,
        "dry_run": request.dry_run,
        "days_old": request.days_old,
        "label": request.label,
    });
    let outcome = state.downstreams.call(HARDWARE, state.downstreams.hardware().optimize(request)).await;
    let mut detail = audit_detail;
    if let (Ok(response), Some(fields)) = (&outcome, detail.as_object_mut()) {
        fields.insert("actions".to_owned(), json!(response.actions.len()));
        fields.insert("reclaimed_bytes".to_owned(), json!(response.reclaimed_bytes));
    }
    let action = format!("hardware_optimize_{kind_name}");
    state
        .audit
        .record(AuditRecord {
            actor: Some(&principal.name),
            action: &action,
            target: audit_path.as_deref(),
            ip: client_ip.0,
            outcome: if outcome.is_ok() { "success" } else { "failure" },
            detail,
        })
        .await;
    Ok(Json(outcome?.into()))
}

/// A file moved aside by a cleanup, restorable until it is purged.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QuarantineEntryView {
    id: String,
    original_path: String,
    size_bytes: u64,
    /// Of the content, checked on restore.
    sha256: String,
    /// The cleanup that moved it.
    reason: String,
    quarantined_at: Option<DateTime<Utc>>,
    /// When it is deleted for good.
    purge_at: Option<DateTime<Utc>>,
}

impl From<pb::QuarantineEntry> for QuarantineEntryView {
    fn from(entry: pb::QuarantineEntry) -> Self {
        Self {
            reason: optimize_kind_name(entry.reason).to_owned(),
            quarantined_at: time(entry.quarantined_at.as_ref()),
            purge_at: time(entry.purge_at.as_ref()),
            id: entry.id,
            original_path: entry.original_path,
            size_bytes: entry.size_bytes,
            sha256: entry.sha256,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/hardware/quarantine", tag = "hardware",
    params(("skip" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200), (status = 401), (status = 422), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn list_quarantine(
    State(state): State<AppState>,
    principal: Principal,
    page: Page,
) -> Result<Json<PageOf<QuarantineEntryView>>, ApiError> {
    // File paths under the allowed roots are not every user's business.
    require_admin(&principal)?;
    let request = pb::ListQuarantineRequest {
        page: Some(pb::PageRequest {
            skip: u32::try_from(page.skip).unwrap_or(u32::MAX),
            limit: u32::try_from(page.limit).unwrap_or(1000),
        }),
    };
    let response =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().list_quarantine(request)).await?;
    let total = response.page.map(|info| i64::try_from(info.total).unwrap_or(i64::MAX)).unwrap_or(0);
    Ok(Json(PageOf::new(response.entries.into_iter().map(QuarantineEntryView::from).collect(), total, page)))
}

#[utoipa::path(post, path = "/api/v1/hardware/quarantine/{id}/restore", tag = "hardware", params(("id" = String, Path)),
    responses((status = 200, body = QuarantineEntryView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 409), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn restore_quarantine(
    State(state): State<AppState>,
    principal: Principal,
    client_ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Json<QuarantineEntryView>, ApiError> {
    require_admin(&principal)?;
    let quarantine_id = parse_uuid("id", &id)?.to_string();
    let request = pb::RestoreQuarantineRequest {
        quarantine_id: quarantine_id.clone(),
        requested_by: principal.name.clone(),
    };
    let outcome =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().restore_quarantine(request)).await;
    let original_path = outcome
        .as_ref()
        .ok()
        .and_then(|response| response.entry.as_ref())
        .map(|entry| entry.original_path.clone());
    state
        .audit
        .record(AuditRecord {
            actor: Some(&principal.name),
            action: "quarantine_restore",
            target: Some(&quarantine_id),
            ip: client_ip.0,
            outcome: if outcome.is_ok() { "success" } else { "failure" },
            detail: json!({"original_path": original_path}),
        })
        .await;
    let entry = outcome?
        .entry
        .ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "hardware answered without the entry"))?;
    Ok(Json(entry.into()))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn body(json: serde_json::Value) -> OptimizeBody {
        serde_json::from_value(json).unwrap()
    }

    fn build(kind: &str, json: serde_json::Value) -> Result<pb::OptimizeRequest, ApiError> {
        let optimize = optimize_kind(kind).unwrap();
        optimize_request(optimize, kind, body(json), "admin".to_owned())
    }

    #[test]
    fn dry_run_unless_explicitly_false() {
        assert_eq!(build("logs", json!({})).unwrap().dry_run, Some(true));
        assert_eq!(build("logs", json!({"dry_run": true})).unwrap().dry_run, Some(true));
        assert_eq!(build("logs", json!({"dry_run": false})).unwrap().dry_run, Some(false));
    }

    #[test]
    fn fields_are_checked_per_cleanup() {
        let detail = |kind: &str, json| build(kind, json).unwrap_err().detail().to_owned();
        assert!(detail("logs", json!({"days_old": -1})).starts_with("days_old: "));
        assert_eq!(build("logs", json!({"days_old": 0})).unwrap().days_old, Some(0));
        assert!(detail("memory", json!({"days_old": 3})).starts_with("days_old: does not apply"));
        assert!(detail("duplicates", json!({})).starts_with("path: is required"));
        assert!(detail("docker", json!({})).starts_with("label: is required"));
        assert!(detail("storage", json!({"label": "x"})).starts_with("label: does not apply"));
        assert!(detail("memory", json!({"path": "/tmp"})).starts_with("path: does not apply"));
        assert_eq!(
            build("storage", json!({"path": "/tmp\u{0}x"})).unwrap_err().code(),
            ServiceErrorCode::BadRequest
        );
        assert_eq!(
            build("docker", json!({"label": "sutazai.cleanup=true"})).unwrap().label.as_deref(),
            Some("sutazai.cleanup=true")
        );
        assert!(serde_json::from_value::<OptimizeBody>(json!({"dry_run": "no"})).is_err());
        assert!(optimize_kind("everything").is_none());
    }

    #[tokio::test]
    async fn empty_body_is_the_default() {
        let request = Request::builder().uri("/").body(Body::empty()).unwrap();
        let parsed: OptimizeBody = optional_json(request).await.unwrap();
        assert!(parsed.dry_run.is_none() && parsed.path.is_none());

        let untyped = Request::builder().uri("/").body(Body::from("{\"dry_run\":false}")).unwrap();
        let error = optional_json::<OptimizeBody>(untyped).await.unwrap_err();
        assert_eq!(error.code(), ServiceErrorCode::BadRequest);

        let typed = Request::builder()
            .uri("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"dry_run\":false}"))
            .unwrap();
        assert_eq!(optional_json::<OptimizeBody>(typed).await.unwrap().dry_run, Some(false));
    }

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
