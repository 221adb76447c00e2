//! Host capacity, for the pools whose configured capacity is 0: cores this process may use
//! × 1000 millicores, MemTotal from /proc/meminfo, and the GPUs `nvidia-smi -L` lists.
//!
//! The hardware service reports the same facts, but the arbitrator reads them itself: capacity
//! is needed once at start, and a gRPC dependency would only add a way for it not to start.

use std::time::Duration;

use crate::domain::resource::{Catalog, ResourceKey, ResourceKind};
use crate::settings::ArbitratorSettings;

/// How long `nvidia-smi -L` may take before the host counts as having no usable GPU.
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(5);

/// The pools of `settings` with their capacities, detecting the host's where configured as 0.
pub async fn catalog(settings: &ArbitratorSettings) -> Result<Catalog, String> {
    let cpu = match settings.cpu_millicores {
        0 => cpu_millicores(),
        configured => configured,
    };
    let memory = match settings.memory_bytes {
        0 => memory_bytes().await,
        configured => configured,
    };
    let gpus = match settings.gpus {
        0 => gpu_count().await,
        configured => configured,
    };
    let mut catalog = Catalog::new();
    let unnamed = |kind| ResourceKey::new(kind, "").map_err(|error| error.to_string());
    catalog.insert(unnamed(ResourceKind::Cpu)?, cpu);
    catalog.insert(unnamed(ResourceKind::Memory)?, memory);
    catalog.insert(unnamed(ResourceKind::Gpu)?, gpus);
    for (kind, pools) in
        [(ResourceKind::LlmSlots, &settings.llm_slots), (ResourceKind::Custom, &settings.custom)]
    {
        for (name, capacity) in pools.entries() {
            let resource =
                ResourceKey::new(kind, name.clone()).map_err(|error| format!("`{name}`: {error}"))?;
            catalog.insert(resource, *capacity);
        }
    }
    tracing::info!(
        cpu_millicores = cpu,
        memory_bytes = memory,
        gpus,
        pools = catalog.len(),
        "arbitrator capacity"
    );
    Ok(catalog)
}

fn cpu_millicores() -> u64 {
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    u64::try_from(cores).unwrap_or(1).saturating_mul(1000)
}

async fn memory_bytes() -> u64 {
    match tokio::fs::read_to_string("/proc/meminfo").await {
        Ok(text) => mem_total_bytes(&text).unwrap_or_else(|| {
            tracing::warn!("/proc/meminfo has no MemTotal line; memory capacity is 0");
            0
        }),
        Err(error) => {
            tracing::warn!(%error, "cannot read /proc/meminfo; memory capacity is 0");
            0
        }
    }
}

/// `MemTotal:       16318480 kB` in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

async fn gpu_count() -> u64 {
    let mut command = tokio::process::Command::new("nvidia-smi");
    command.arg("-L").kill_on_drop(true).stdin(std::process::Stdio::null());
    let output = match tokio::time::timeout(NVIDIA_SMI_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => return 0,
        Ok(Err(error)) => {
            tracing::warn!(%error, "nvidia-smi could not run; gpu capacity is 0");
            return 0;
        }
        Err(_) => {
            tracing::warn!(
                timeout_s = NVIDIA_SMI_TIMEOUT.as_secs(),
                "nvidia-smi did not answer; gpu capacity is 0"
            );
            return 0;
        }
    };
    if !output.status.success() {
        // Installed but no driver or no device: nothing to lease.
        tracing::warn!(status = %output.status, "nvidia-smi -L failed; gpu capacity is 0");
        return 0;
    }
    listed_gpus(&String::from_utf8_lossy(&output.stdout))
}

/// Devices in `nvidia-smi -L` output: one `GPU <n>: <name> (UUID: ...)` line each (MIG
/// instances are indented under their GPU and not counted as devices).
fn listed_gpus(listing: &str) -> u64 {
    let count = listing.lines().filter(|line| line.starts_with("GPU ")).count();
    u64::try_from(count).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let meminfo = "MemTotal:       16318480 kB\nMemFree:         1024 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(16_318_480 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn gpus_are_counted_from_the_listing() {
        let listing = "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\n  MIG 1g.5gb Device 0: (UUID: MIG-1)\n\
                       GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2)\n";
        assert_eq!(listed_gpus(listing), 2);
        assert_eq!(listed_gpus("No devices found.\n"), 0);
    }

    #[test]
    fn cpu_is_cores_times_a_thousand() {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap();
        assert_eq!(cpu_millicores(), cores as u64 * 1000);
    }

    #[tokio::test]
    async fn this_host_has_memory() {
        assert!(memory_bytes().await > 0);
    }
}
