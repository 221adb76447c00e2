//! Host metrics: CPU (per core, load, pressure), memory, swap, disks, network interfaces, GPUs
//! and the busiest processes, from `sysinfo` and `/proc`.
//!
//! CPU and process usage are rates: they need two samples some time apart. One [`HostSampler`]
//! lives for the whole service; a background task refreshes its CPU, process and network
//! counters every [`REFRESH_INTERVAL`], so a metrics request reads usage over the last interval
//! instead of sleeping. All of it is blocking `/proc` reading and runs on the blocking pool.

pub mod gpu;
pub mod pressure;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sysinfo::{
    CpuRefreshKind, Disks, MemoryRefreshKind, Networks, ProcessRefreshKind, ProcessesToUpdate, System,
    UpdateKind, Users,
};

use self::gpu::GpuMetrics;
use self::pressure::{PressureResource, PressureStall, read_pressure};

/// How often the background task refreshes CPU, process and network counters.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);
/// Processes listed when the request says 0.
pub const DEFAULT_TOP_PROCESSES: usize = 10;
/// Most processes one answer lists.
pub const MAX_TOP_PROCESSES: usize = 1000;

/// One sample of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMetrics {
    /// When it was taken.
    pub collected_at: DateTime<Utc>,
    /// The host name.
    pub hostname: String,
    /// Seconds since boot.
    pub uptime_s: u64,
    /// CPU.
    pub cpu: CpuMetrics,
    /// Memory.
    pub memory: MemoryMetrics,
    /// Swap.
    pub swap: SwapMetrics,
    /// Mounted disks.
    pub disks: Vec<DiskMetrics>,
    /// Network interfaces, by name.
    pub networks: Vec<NetworkMetrics>,
    /// GPUs; empty without nvidia-smi.
    pub gpus: Vec<GpuMetrics>,
    /// By CPU use, highest first.
    pub top_processes: Vec<ProcessMetrics>,
}

/// CPU use.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuMetrics {
    /// Average over all cores, 0..=100.
    pub usage_percent: f64,
    /// Each core.
    pub cores: Vec<CoreMetrics>,
    /// Load averages.
    pub load_average_1m: f64,
    /// Load averages.
    pub load_average_5m: f64,
    /// Load averages.
    pub load_average_15m: f64,
    /// PSI; unset where unavailable.
    pub pressure: Option<PressureStall>,
}

/// One core.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreMetrics {
    /// Position in the kernel's list.
    pub index: u32,
    /// 0..=100.
    pub usage_percent: f64,
    /// Current frequency.
    pub frequency_mhz: u64,
}

/// Memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryMetrics {
    /// Installed.
    pub total_bytes: u64,
    /// In use.
    pub used_bytes: u64,
    /// Available to new allocations without swapping, page cache included.
    pub available_bytes: u64,
    /// PSI; unset where unavailable.
    pub pressure: Option<PressureStall>,
}

/// Swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapMetrics {
    /// Configured.
    pub total_bytes: u64,
    /// In use.
    pub used_bytes: u64,
}

/// One mounted disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskMetrics {
    /// Device, e.g. `/dev/sda1`.
    pub name: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// e.g. `ext4`.
    pub file_system: String,
    /// Size.
    pub total_bytes: u64,
    /// Free for unprivileged users.
    pub available_bytes: u64,
    /// Removable media.
    pub removable: bool,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkMetrics {
    /// Interface name.
    pub name: String,
    /// Since the interface came up.
    pub received_bytes: u64,
    /// Since the interface came up.
    pub transmitted_bytes: u64,
    /// Over the last refresh interval.
    pub received_bytes_per_s: u64,
    /// Over the last refresh interval.
    pub transmitted_bytes_per_s: u64,
}

/// One process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessMetrics {
    /// Process id.
    pub pid: u32,
    /// Executable name.
    pub name: String,
    /// Of one core, so may exceed 100.
    pub cpu_percent: f64,
    /// Resident memory.
    pub memory_bytes: u64,
    /// Owner; empty when unknown.
    pub user: String,
}

/// The long-lived sampler: one `System` whose counters are refreshed periodically.
#[derive(Debug)]
pub struct HostSampler {
    system: System,
    networks: Networks,
    users: Users,
    last_refresh: Instant,
    /// Time between the last two refreshes: the window the usage figures cover.
    window: Duration,
    refreshes: u64,
}

impl HostSampler {
    /// Takes the first sample.
    pub fn new() -> Result<Self, sysinfo::Error> {
        let mut sampler = Self {
            system: System::new()?,
            networks: Networks::new_with_refreshed_list()?,
            users: Users::new_with_refreshed_list()?,
            last_refresh: Instant::now(),
            window: Duration::ZERO,
            refreshes: 0,
        };
        sampler.refresh();
        Ok(sampler)
    }

    /// Refreshes the rate counters (CPU, processes, networks).
    pub fn refresh(&mut self) {
        self.system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage().with_frequency());
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_user(UpdateKind::OnlyIfNotSet)
                .without_tasks(),
        );
        self.networks.refresh(true);
        let now = Instant::now();
        self.window = now.duration_since(self.last_refresh);
        self.last_refresh = now;
        self.refreshes += 1;
    }

    /// Whether usage figures are meaningful: two refreshes at least the minimum interval apart.
    pub fn has_usage(&self) -> bool {
        self.refreshes >= 2 && self.window >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL
    }

    /// Average use over all cores in the last window, 0..=100.
    pub fn cpu_usage_percent(&self) -> f64 {
        f64::from(self.system.global_cpu_usage())
    }

    /// The current sample, with the `top` busiest processes.
    pub fn snapshot(&mut self, top: usize, gpus: Vec<GpuMetrics>) -> HostMetrics {
        self.system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        self.users.refresh();
        let load = System::load_average().ok();
        let window_s = self.window.as_secs_f64();
        let per_second = |bytes: u64| if window_s > 0.0 { (bytes as f64 / window_s) as u64 } else { 0 };
        let cores = self
            .system
            .cpus()
            .iter()
            .enumerate()
            .map(|(index, cpu)| CoreMetrics {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                usage_percent: f64::from(cpu.usage()),
                frequency_mhz: cpu.frequency(),
            })
            .collect();
        let mut networks: Vec<NetworkMetrics> = self
            .networks
            .iter()
            .map(|(name, data)| NetworkMetrics {
                name: name.to_string_lossy().into_owned(),
                received_bytes: data.total_received(),
                transmitted_bytes: data.total_transmitted(),
                received_bytes_per_s: per_second(data.received()),
                transmitted_bytes_per_s: per_second(data.transmitted()),
            })
            .collect();
        networks.sort_by(|left, right| left.name.cmp(&right.name));
        HostMetrics {
            collected_at: Utc::now(),
            hostname: System::host_name().unwrap_or_default(),
            uptime_s: System::uptime().unwrap_or(0),
            cpu: CpuMetrics {
                usage_percent: f64::from(self.system.global_cpu_usage()),
                cores,
                load_average_1m: load.as_ref().map_or(0.0, |load| load.one),
                load_average_5m: load.as_ref().map_or(0.0, |load| load.five),
                load_average_15m: load.as_ref().map_or(0.0, |load| load.fifteen),
                pressure: read_pressure(PressureResource::Cpu),
            },
            memory: MemoryMetrics {
                total_bytes: self.system.total_memory(),
                used_bytes: self.system.used_memory(),
                available_bytes: self.system.available_memory(),
                pressure: read_pressure(PressureResource::Memory),
            },
            swap: SwapMetrics { total_bytes: self.system.total_swap(), used_bytes: self.system.used_swap() },
            disks: disks(),
            networks,
            gpus,
            top_processes: self.top_processes(top),
        }
    }

    fn top_processes(&self, top: usize) -> Vec<ProcessMetrics> {
        let mut processes: Vec<ProcessMetrics> = self
            .system
            .processes()
            .values()
            .filter(|process| process.thread_kind().is_none())
            .map(|process| ProcessMetrics {
                pid: process.pid().as_u32(),
                name: process.name().to_string_lossy().into_owned(),
                cpu_percent: f64::from(process.cpu_usage()),
                memory_bytes: process.memory(),
                user: process
                    .user_id()
                    .and_then(|uid| self.users.get_user_by_id(uid))
                    .map(|user| user.name().to_owned())
                    .unwrap_or_default(),
            })
            .collect();
        processes.sort_by(|left, right| {
            right
                .cpu_percent
                .total_cmp(&left.cpu_percent)
                .then_with(|| right.memory_bytes.cmp(&left.memory_bytes))
        });
        processes.truncate(top);
        processes
    }
}

fn disks() -> Vec<DiskMetrics> {
    let Ok(disks) = Disks::new_with_refreshed_list() else { return Vec::new() };
    disks
        .iter()
        .map(|disk| DiskMetrics {
            name: disk.name().to_string_lossy().into_owned(),
            mount_point: disk.mount_point().display().to_string(),
            file_system: disk.file_system().to_string_lossy().into_owned(),
            total_bytes: disk.total_space(),
            available_bytes: disk.available_space(),
            removable: disk.is_removable(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn a_sample_of_this_host() {
        let mut sampler = HostSampler::new().unwrap();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        sampler.refresh();
        assert!(sampler.has_usage());
        let metrics = sampler.snapshot(5, Vec::new());
        assert_eq!(metrics.cpu.cores.len(), std::thread::available_parallelism().unwrap().get());
        assert!(metrics.memory.total_bytes > 0);
        assert!(metrics.memory.available_bytes <= metrics.memory.total_bytes);
        assert_eq!(metrics.top_processes.len(), 5);
        assert!(metrics.top_processes.windows(2).all(|pair| pair[0].cpu_percent >= pair[1].cpu_percent));
        assert!(metrics.networks.iter().any(|network| network.name == "lo"));
        assert_eq!(metrics.cpu.pressure.is_some(), std::path::Path::new("/proc/pressure/cpu").exists());
    }
}
