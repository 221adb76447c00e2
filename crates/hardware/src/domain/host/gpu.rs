//! GPUs, as `nvidia-smi` reports them. Without that executable on the PATH the list is empty:
//! a device node such as /dev/nvidia0 says nothing about utilisation or memory, so it is not
//! taken as evidence of anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The query: one CSV line per GPU, no header, no units.
const QUERY: &str = "--query-gpu=index,name,uuid,utilization.gpu,memory.total,memory.used,temperature.gpu";
/// Longest wait for `nvidia-smi`; a wedged driver must not hang the metrics.
const TIMEOUT: Duration = Duration::from_secs(5);
const BYTES_PER_MIB: u64 = 1024 * 1024;

/// One GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuMetrics {
    /// As nvidia-smi numbers it.
    pub index: u32,
    /// Product name.
    pub name: String,
    /// `GPU-...`.
    pub uuid: String,
    /// Percent.
    pub utilization_percent: f64,
    /// Bytes.
    pub memory_total_bytes: u64,
    /// Bytes.
    pub memory_used_bytes: u64,
    /// Unset when the driver does not report it.
    pub temperature_celsius: Option<f64>,
}

/// The executable, if it is on the PATH.
fn find_nvidia_smi() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|directory| directory.join("nvidia-smi")).find(|candidate| {
        std::fs::metadata(candidate)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    })
}

/// Queries the GPUs; empty when there is no nvidia-smi or it fails.
pub async fn query_gpus() -> Vec<GpuMetrics> {
    let Some(executable) = find_nvidia_smi() else { return Vec::new() };
    run_query(&executable).await
}

async fn run_query(executable: &Path) -> Vec<GpuMetrics> {
    let mut command = tokio::process::Command::new(executable);
    command.arg(QUERY).arg("--format=csv,noheader,nounits").kill_on_drop(true);
    match tokio::time::timeout(TIMEOUT, command.output()).await {
        Ok(Ok(output)) if output.status.success() => parse_gpus(&String::from_utf8_lossy(&output.stdout)),
        Ok(Ok(output)) => {
            tracing::warn!(status = %output.status, "nvidia-smi failed; reporting no gpus");
            Vec::new()
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "nvidia-smi could not run; reporting no gpus");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("nvidia-smi timed out; reporting no gpus");
            Vec::new()
        }
    }
}

/// Parses nvidia-smi's CSV; lines that do not parse are left out. Unsupported fields read
/// `[N/A]` or `[Not Supported]`.
pub fn parse_gpus(csv: &str) -> Vec<GpuMetrics> {
    csv.lines().filter_map(parse_gpu_line).collect()
}

fn parse_gpu_line(line: &str) -> Option<GpuMetrics> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [index, name, uuid, utilization, total, used, temperature] = fields.as_slice() else {
        return None;
    };
    let mebibytes = |text: &str| text.parse::<u64>().ok().map(|value| value.saturating_mul(BYTES_PER_MIB));
    Some(GpuMetrics {
        index: index.parse().ok()?,
        name: (*name).to_owned(),
        uuid: (*uuid).to_owned(),
        utilization_percent: utilization.parse().unwrap_or(0.0),
        memory_total_bytes: mebibytes(total).unwrap_or(0),
        memory_used_bytes: mebibytes(used).unwrap_or(0),
        temperature_celsius: temperature.parse().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_csv() {
        let gpus = parse_gpus(
            "0, NVIDIA A100-SXM4-40GB, GPU-1234, 37, 40960, 1024, 41\n1, Tesla T4, GPU-5678, [N/A], 15360, 0, [Not Supported]\ngarbage\n",
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA A100-SXM4-40GB");
        assert_eq!(gpus[0].memory_total_bytes, 40960 * BYTES_PER_MIB);
        assert_eq!(gpus[0].temperature_celsius, Some(41.0));
        assert_eq!(gpus[1].utilization_percent, 0.0);
        assert_eq!(gpus[1].temperature_celsius, None);
    }

    #[tokio::test]
    async fn runs_the_executable_it_is_given() {
        #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
        use std::os::unix::fs::PermissionsExt;
        let base = crate::domain::test_support::TempDir::new();
        let script = base.path().join("nvidia-smi");
        std::fs::write(&script, "#!/bin/sh\necho '0, Test GPU, GPU-abc, 5, 2048, 512, 30'\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let gpus = run_query(&script).await;
        assert_eq!(gpus.len(), 1);
        assert_eq!((gpus[0].uuid.as_str(), gpus[0].memory_used_bytes), ("GPU-abc", 512 * BYTES_PER_MIB));
        assert!(run_query(&base.path().join("missing")).await.is_empty());
    }
}
