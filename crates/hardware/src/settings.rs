//! `[hardware]`: the hardware service's settings. Every key is documented in
//! `hardware.default.toml` next to this crate's manifest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sutazai_kit::config::{ConfigIssues, Validate, key};

/// Longest scan bound accepted: a request must finish well within a client's patience.
const MAX_SCAN_DURATION_MS: u64 = 600_000;

/// Settings of the hardware role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareSettings {
    /// Where the role listens (HTTP and gRPC).
    pub listen: SocketAddr,
    /// The auth service: JWKS at `/.well-known/jwks.json`.
    pub auth_url: String,
    /// Directories request paths must resolve under. Default: the system temp directory and
    /// `./data`.
    #[serde(default = "default_allowed_roots")]
    pub allowed_roots: Vec<PathBuf>,
    /// Where cleanups move files; never scanned.
    pub quarantine_dir: PathBuf,
    /// How long a quarantined file stays restorable.
    pub quarantine_ttl_s: u64,
    /// Most files one scan visits before it answers `truncated`.
    pub scan_max_files: u64,
    /// Longest a scan runs before it answers `truncated`.
    pub scan_max_duration_ms: u64,
    /// Whether the docker cleanup may talk to `/var/run/docker.sock`.
    pub docker_enabled: bool,
}

/// The system temp directory (`$TMPDIR`, else `/tmp`) and `./data`.
pub fn default_allowed_roots() -> Vec<PathBuf> {
    vec![std::env::temp_dir(), PathBuf::from("./data")]
}

impl HardwareSettings {
    /// How long a quarantined file stays restorable.
    pub fn quarantine_ttl(&self) -> Duration {
        Duration::from_secs(self.quarantine_ttl_s)
    }

    /// The scan time bound.
    pub fn scan_max_duration(&self) -> Duration {
        Duration::from_millis(self.scan_max_duration_ms)
    }
}

impl Validate for HardwareSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            issues.push(key(prefix, "auth_url"), "must be an http:// or https:// URL");
        }
        if self.allowed_roots.is_empty() {
            issues.push(key(prefix, "allowed_roots"), "must name at least one directory");
        }
        for root in &self.allowed_roots {
            let text = root.to_string_lossy();
            if text.trim().is_empty() {
                issues.push(key(prefix, "allowed_roots"), "an entry is empty");
            } else if root.components().all(|component| component == std::path::Component::RootDir) {
                // The original guard used `/` as its base and so allowed everything.
                issues
                    .push(key(prefix, "allowed_roots"), "`/` is never an allowed root; name the directories");
            }
        }
        if self.quarantine_dir.as_os_str().is_empty() {
            issues.push(key(prefix, "quarantine_dir"), "must not be empty");
        }
        if self.quarantine_ttl_s == 0 {
            issues.push(key(prefix, "quarantine_ttl_s"), "must be greater than 0");
        }
        if self.scan_max_files == 0 {
            issues.push(key(prefix, "scan_max_files"), "must be greater than 0");
        }
        if !(1..=MAX_SCAN_DURATION_MS).contains(&self.scan_max_duration_ms) {
            issues.push(
                key(prefix, "scan_max_duration_ms"),
                format!("must be between 1 and {MAX_SCAN_DURATION_MS}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn settings() -> HardwareSettings {
        HardwareSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 11110)),
            auth_url: "http://127.0.0.1:10054".into(),
            allowed_roots: default_allowed_roots(),
            quarantine_dir: PathBuf::from("./data/quarantine"),
            quarantine_ttl_s: 604_800,
            scan_max_files: 1_000_000,
            scan_max_duration_ms: 8_000,
            docker_enabled: false,
        }
    }

    fn issue_keys(settings: &HardwareSettings) -> Vec<String> {
        let mut issues = ConfigIssues::default();
        settings.validate("hardware", &mut issues);
        match issues.into_result() {
            Ok(()) => Vec::new(),
            Err(sutazai_kit::config::ConfigError::Invalid(issues)) => {
                issues.into_iter().map(|issue| issue.key).collect()
            }
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn each_issue_names_its_key() {
        assert!(issue_keys(&settings()).is_empty());
        let broken = HardwareSettings {
            auth_url: "ftp://x".into(),
            allowed_roots: vec![PathBuf::from("/")],
            quarantine_ttl_s: 0,
            scan_max_files: 0,
            scan_max_duration_ms: 0,
            ..settings()
        };
        assert_eq!(
            issue_keys(&broken),
            vec![
                "hardware.auth_url",
                "hardware.allowed_roots",
                "hardware.quarantine_ttl_s",
                "hardware.scan_max_files",
                "hardware.scan_max_duration_ms"
            ]
        );
        assert_eq!(
            issue_keys(&HardwareSettings { allowed_roots: Vec::new(), ..settings() }),
            vec!["hardware.allowed_roots"]
        );
    }
}
