//! Duplicate scan of one directory with the service's own code path (the same walker, passes and
//! worker pool as `FindDuplicates`), printing one JSON line for `bench/hardware.sh`:
//! `{files, groups, duplicate_files, duplicate_bytes, seconds, peak_rss_kb}`.
//!
//! `cargo run --release -p sutazai-hardware --example dupes_bench -- DIR`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sutazai_hardware::domain::duplicates::find_duplicates;
use sutazai_hardware::domain::paths::AllowedRoots;
use sutazai_hardware::domain::pool::default_workers;
use sutazai_hardware::domain::walk::ScanLimits;

/// No bound worth hitting in a benchmark: the whole tree is scanned.
const MAX_FILES: u64 = u64::MAX;
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// `VmHWM` of this process, in KiB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let Some(directory) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: dupes_bench DIR");
        return ExitCode::from(2);
    };
    let roots = AllowedRoots::resolve_configured(std::slice::from_ref(&directory), Vec::new());
    let start = match directory.to_str().map(|text| roots.resolve(text.as_bytes())) {
        Some(Ok(start)) => start,
        Some(Err(error)) => {
            eprintln!("dupes_bench: {error}");
            return ExitCode::FAILURE;
        }
        None => {
            eprintln!("dupes_bench: the directory is not UTF-8");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let limits = ScanLimits::starting_now(MAX_FILES, MAX_DURATION);
    let report = find_duplicates(&start, &[], &limits, 1, default_workers());
    let seconds = started.elapsed().as_secs_f64();
    let duplicate_files: usize = report.groups.iter().map(|group| group.files.len() - 1).sum();
    println!(
        "{}",
        serde_json::json!({
            "files": report.files_scanned,
            "groups": report.groups.len(),
            "duplicate_files": duplicate_files,
            "duplicate_bytes": report.reclaimable_bytes,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "peak_rss_kb": peak_rss_kb(),
            "truncated": report.truncated,
        })
    );
    ExitCode::SUCCESS
}
