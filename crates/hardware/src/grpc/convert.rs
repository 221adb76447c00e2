//! Domain results to proto messages, and the proto enums to domain kinds.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sutazai_proto::v1 as pb;

use crate::domain::cleanup::CleanupKind;
use crate::domain::duplicates::DuplicateReport;
use crate::domain::host::HostMetrics;
use crate::domain::host::pressure::PressureStall;
use crate::domain::large_files::LargeFiles;
use crate::domain::optimize::{ActionKind, ActionOutcome, CleanupAction, CleanupReport};
use crate::domain::storage::StorageAnalysis;
use crate::error::HardwareError;
use crate::store::quarantine::QuarantineEntry;

pub(crate) fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn system_timestamp(time: SystemTime) -> prost_types::Timestamp {
    timestamp(DateTime::<Utc>::from(time))
}

/// The cleanup a proto kind names; unspecified is a validation error naming `kind`.
pub(crate) fn cleanup_kind(kind: i32) -> Result<CleanupKind, HardwareError> {
    match pb::OptimizeKind::try_from(kind) {
        Ok(pb::OptimizeKind::Storage) => Ok(CleanupKind::Storage),
        Ok(pb::OptimizeKind::Duplicates) => Ok(CleanupKind::Duplicates),
        Ok(pb::OptimizeKind::Logs) => Ok(CleanupKind::Logs),
        Ok(pb::OptimizeKind::Memory) => Ok(CleanupKind::Memory),
        Ok(pb::OptimizeKind::Docker) => Ok(CleanupKind::Docker),
        Ok(pb::OptimizeKind::Unspecified) | Err(_) => {
            Err(HardwareError::validation("kind", "must be one of storage, duplicates, logs, memory, docker"))
        }
    }
}

fn optimize_kind(kind: CleanupKind) -> pb::OptimizeKind {
    match kind {
        CleanupKind::Storage => pb::OptimizeKind::Storage,
        CleanupKind::Duplicates => pb::OptimizeKind::Duplicates,
        CleanupKind::Logs => pb::OptimizeKind::Logs,
        CleanupKind::Memory => pb::OptimizeKind::Memory,
        CleanupKind::Docker => pb::OptimizeKind::Docker,
    }
}

fn pressure(stall: PressureStall) -> pb::PressureStall {
    pb::PressureStall {
        some_avg10: stall.some_avg10,
        some_avg60: stall.some_avg60,
        some_avg300: stall.some_avg300,
        full_avg10: stall.full_avg10,
        full_avg60: stall.full_avg60,
        full_avg300: stall.full_avg300,
    }
}

pub(crate) fn host_metrics(metrics: HostMetrics) -> pb::HostMetrics {
    pb::HostMetrics {
        collected_at: Some(timestamp(metrics.collected_at)),
        hostname: metrics.hostname,
        uptime_s: metrics.uptime_s,
        cpu: Some(pb::CpuMetrics {
            usage_percent: metrics.cpu.usage_percent,
            cores: metrics
                .cpu
                .cores
                .into_iter()
                .map(|core| pb::CoreMetrics {
                    index: core.index,
                    usage_percent: core.usage_percent,
                    frequency_mhz: core.frequency_mhz,
                })
                .collect(),
            load_average_1m: metrics.cpu.load_average_1m,
            load_average_5m: metrics.cpu.load_average_5m,
            load_average_15m: metrics.cpu.load_average_15m,
            pressure: metrics.cpu.pressure.map(pressure),
        }),
        memory: Some(pb::MemoryMetrics {
            total_bytes: metrics.memory.total_bytes,
            used_bytes: metrics.memory.used_bytes,
            available_bytes: metrics.memory.available_bytes,
            pressure: metrics.memory.pressure.map(pressure),
        }),
        swap: Some(pb::SwapMetrics {
            total_bytes: metrics.swap.total_bytes,
            used_bytes: metrics.swap.used_bytes,
        }),
        disks: metrics
            .disks
            .into_iter()
            .map(|disk| pb::DiskMetrics {
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
            .map(|network| pb::NetworkInterfaceMetrics {
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
            .map(|gpu| pb::GpuMetrics {
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
            .map(|process| pb::ProcessMetrics {
                pid: process.pid,
                name: process.name,
                cpu_percent: process.cpu_percent,
                memory_bytes: process.memory_bytes,
                user: process.user,
            })
            .collect(),
    }
}

pub(crate) fn storage(analysis: StorageAnalysis) -> pb::AnalyzeStorageResponse {
    pb::AnalyzeStorageResponse {
        path: analysis.path.to_string_lossy().into_owned(),
        total_size_bytes: analysis.total_size_bytes,
        file_count: analysis.file_count,
        directory_count: analysis.directory_count,
        by_extension: analysis
            .by_extension
            .into_iter()
            .map(|usage| pb::ExtensionUsage {
                extension: usage.extension,
                file_count: usage.file_count,
                size_bytes: usage.size_bytes,
            })
            .collect(),
        by_size: analysis
            .by_size
            .into_iter()
            .map(|bucket| pb::SizeBucket {
                min_size_bytes: bucket.min_size_bytes,
                max_size_bytes: bucket.max_size_bytes,
                file_count: bucket.file_count,
                size_bytes: bucket.size_bytes,
            })
            .collect(),
        by_age: analysis
            .by_age
            .into_iter()
            .map(|bucket| pb::AgeBucket {
                min_age_days: bucket.min_age_days,
                max_age_days: bucket.max_age_days,
                file_count: bucket.file_count,
                size_bytes: bucket.size_bytes,
            })
            .collect(),
        skipped_count: analysis.skipped_count,
        truncated: analysis.truncated,
    }
}

pub(crate) fn duplicates(report: DuplicateReport) -> pb::FindDuplicatesResponse {
    pb::FindDuplicatesResponse {
        reclaimable_bytes: report.reclaimable_bytes,
        files_scanned: report.files_scanned,
        truncated: report.truncated,
        groups: report
            .groups
            .into_iter()
            .map(|group| pb::DuplicateGroup {
                size_bytes: group.size_bytes,
                sha256: group.sha256,
                paths: group.files.into_iter().map(|file| file.path.to_string_lossy().into_owned()).collect(),
            })
            .collect(),
    }
}

pub(crate) fn large_files(found: LargeFiles) -> pb::FindLargeFilesResponse {
    pb::FindLargeFilesResponse {
        truncated: found.truncated,
        files: found
            .files
            .into_iter()
            .map(|file| pb::LargeFile {
                path: file.path.to_string_lossy().into_owned(),
                size_bytes: file.size_bytes,
                modified_at: Some(system_timestamp(file.modified)),
            })
            .collect(),
    }
}

fn action_kind(kind: ActionKind) -> pb::OptimizeActionKind {
    match kind {
        ActionKind::QuarantineFile => pb::OptimizeActionKind::QuarantineFile,
        ActionKind::CompressFile => pb::OptimizeActionKind::CompressFile,
        ActionKind::DropCaches => pb::OptimizeActionKind::DropCaches,
        ActionKind::RemoveContainer => pb::OptimizeActionKind::RemoveContainer,
        ActionKind::RemoveImage => pb::OptimizeActionKind::RemoveImage,
    }
}

fn action_outcome(outcome: ActionOutcome) -> pb::OptimizeActionOutcome {
    match outcome {
        ActionOutcome::Planned => pb::OptimizeActionOutcome::Planned,
        ActionOutcome::Performed => pb::OptimizeActionOutcome::Performed,
        ActionOutcome::Skipped => pb::OptimizeActionOutcome::Skipped,
        ActionOutcome::Failed => pb::OptimizeActionOutcome::Failed,
    }
}

fn action(action: CleanupAction) -> pb::OptimizeAction {
    pb::OptimizeAction {
        kind: action_kind(action.kind).into(),
        target: action.target,
        outcome: action_outcome(action.outcome).into(),
        reclaimed_bytes: action.reclaimed_bytes,
        detail: action.detail,
        quarantine_id: action.quarantine_id.map(|id| id.to_string()).unwrap_or_default(),
    }
}

pub(crate) fn cleanup_report(report: CleanupReport) -> pb::OptimizeResponse {
    let reclaimed_bytes = report.reclaimed_bytes();
    pb::OptimizeResponse {
        kind: optimize_kind(report.kind).into(),
        dry_run: report.dry_run,
        actions: report.actions.into_iter().map(action).collect(),
        reclaimed_bytes,
    }
}

pub(crate) fn quarantine_entry(entry: QuarantineEntry) -> pb::QuarantineEntry {
    pb::QuarantineEntry {
        id: entry.id.to_string(),
        original_path: entry.original_path,
        size_bytes: entry.size_bytes,
        sha256: entry.sha256,
        reason: optimize_kind(entry.reason).into(),
        quarantined_at: Some(timestamp(entry.quarantined_at)),
        purge_at: Some(timestamp(entry.purge_at)),
    }
}
