//! The `memory` cleanup: reports memory use and drops the page cache, only when the service runs
//! as root and may write `/proc/sys/vm/drop_caches`; otherwise the step is skipped with the
//! reason. Writing `1` drops clean page cache only: dirty pages, dentries and inodes stay, so no
//! data is lost and the cache refills on demand.

use std::fs;
use std::io::{self, Write};

use super::{ActionKind, ActionOutcome, CleanupAction, Step, StepTarget};

/// The kernel's knob.
pub const DROP_CACHES_PATH: &str = "/proc/sys/vm/drop_caches";
const BYTES_PER_KIB: u64 = 1024;
const BYTES_PER_MIB: u64 = 1024 * 1024;

/// The `/proc/meminfo` figures the cleanup reports, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryInfo {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable`.
    pub available_bytes: u64,
    /// `Cached`: the page cache (shared memory included).
    pub cached_bytes: u64,
    /// `Shmem`: counted in `Cached` but not droppable.
    pub shmem_bytes: u64,
    /// `Dirty`: not droppable until written back.
    pub dirty_bytes: u64,
}

impl MemoryInfo {
    /// Parses `/proc/meminfo` text.
    pub fn parse(text: &str) -> Self {
        let mut info = Self::default();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(value)) = (parts.next(), parts.next()) else { continue };
            let bytes = value.parse::<u64>().unwrap_or(0).saturating_mul(BYTES_PER_KIB);
            match name {
                "MemTotal:" => info.total_bytes = bytes,
                "MemAvailable:" => info.available_bytes = bytes,
                "Cached:" => info.cached_bytes = bytes,
                "Shmem:" => info.shmem_bytes = bytes,
                "Dirty:" => info.dirty_bytes = bytes,
                _ => {}
            }
        }
        info
    }

    /// Reads `/proc/meminfo`.
    pub fn read() -> io::Result<Self> {
        Ok(Self::parse(&fs::read_to_string("/proc/meminfo")?))
    }

    /// Page cache that dropping would free: clean, unshared pages.
    pub fn droppable_bytes(&self) -> u64 {
        self.cached_bytes.saturating_sub(self.shmem_bytes).saturating_sub(self.dirty_bytes)
    }
}

/// The effective uid from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Why the page cache cannot be dropped, if it cannot. Opening the knob for writing writes
/// nothing; it is the honest test of the permission (a read-only /proc in a container fails it).
pub fn drop_caches_refusal() -> Option<String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Some(format!("skipped: the service runs as uid {uid}, not root")),
        None => return Some("skipped: the service's uid is unknown".to_owned()),
    }
    match fs::OpenOptions::new().write(true).open(DROP_CACHES_PATH) {
        Ok(_) => None,
        Err(error) => Some(format!("skipped: no write access to {DROP_CACHES_PATH} ({})", error.kind())),
    }
}

/// Plans the memory cleanup: one drop-caches step, blocked when unprivileged.
pub fn plan_memory() -> io::Result<Step> {
    let info = MemoryInfo::read()?;
    let detail = format!(
        "memory total {} MiB, available {} MiB, page cache {} MiB of which about {} MiB is clean and droppable",
        info.total_bytes / BYTES_PER_MIB,
        info.available_bytes / BYTES_PER_MIB,
        info.cached_bytes / BYTES_PER_MIB,
        info.droppable_bytes() / BYTES_PER_MIB,
    );
    Ok(Step {
        kind: ActionKind::DropCaches,
        target: StepTarget::PageCache,
        reclaim_estimate: info.droppable_bytes(),
        blocked: drop_caches_refusal().map(|reason| format!("{reason}; {detail}")),
        detail,
    })
}

/// Executes the drop-caches step; reports what the page cache shrank by.
pub fn execute_memory(step: &Step) -> CleanupAction {
    let report = |outcome: ActionOutcome, reclaimed_bytes: u64, detail: String| CleanupAction {
        kind: step.kind,
        target: step.target_text(),
        outcome,
        reclaimed_bytes,
        detail,
        quarantine_id: None,
    };
    if let Some(reason) = &step.blocked {
        return report(ActionOutcome::Skipped, 0, reason.clone());
    }
    let dropped = (|| {
        let before = MemoryInfo::read()?;
        fs::OpenOptions::new().write(true).open(DROP_CACHES_PATH)?.write_all(b"1\n")?;
        let after = MemoryInfo::read()?;
        Ok::<_, io::Error>(before.cached_bytes.saturating_sub(after.cached_bytes))
    })();
    match dropped {
        Ok(reclaimed) => {
            report(ActionOutcome::Performed, reclaimed, format!("page cache dropped; {}", step.detail))
        }
        Err(error) => {
            tracing::error!(%error, "dropping the page cache failed");
            report(ActionOutcome::Failed, 0, format!("dropping the page cache failed: {}", error.kind()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_parsed() {
        let info = MemoryInfo::parse(
            "MemTotal:       16000000 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\nCached:  4000 kB\nShmem: 1000 kB\nDirty: 500 kB\n",
        );
        assert_eq!(info.total_bytes, 16_000_000 * 1024);
        assert_eq!(info.available_bytes, 8_000_000 * 1024);
        assert_eq!(info.droppable_bytes(), 2500 * 1024);
    }
}
