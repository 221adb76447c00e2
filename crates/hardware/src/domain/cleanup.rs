//! The kinds of cleanup, shared by the planner, the quarantine manifest and the audit trail.

use serde::{Deserialize, Serialize};

/// One kind of cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupKind {
    /// Temp and cache files older than `days_old`.
    Storage,
    /// All but one file of each duplicate group.
    Duplicates,
    /// Compress `*.log` older than `days_old`.
    Logs,
    /// Drop the page cache when privileged.
    Memory,
    /// Stopped containers and dangling images carrying a label.
    Docker,
}

impl CleanupKind {
    /// The lowercase name used in logs and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Storage => "storage",
            Self::Duplicates => "duplicates",
            Self::Logs => "logs",
            Self::Memory => "memory",
            Self::Docker => "docker",
        }
    }
}
