//! The host metrics route: one sample of CPU, memory, disks, networks, GPUs and top processes.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::ApiError;
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::{query_count, query_error};
use crate::downstream::HARDWARE;
use crate::http::AppState;
use crate::http::tasks::time;

/// Most processes a metrics sample lists.
const MAX_TOP_PROCESSES: u32 = 100;

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
    let top_processes = query_count("top_processes", query.top_processes.as_deref(), MAX_TOP_PROCESSES)?;
    let request = pb::GetMetricsRequest { top_processes };
    let response =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().get_metrics(request)).await?;
    let metrics = response
        .metrics
        .ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "hardware answered without metrics"))?;
    Ok(Json(metrics.into()))
}
