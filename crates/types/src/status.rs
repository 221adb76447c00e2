//! Task and agent states and the task priority, shared by the orchestrator, the coordinator, the
//! agents and the gateway.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a task is in its life. `Succeeded`, `Failed` and `Cancelled` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Accepted and waiting for an agent.
    Queued,
    /// Leased to an agent that has not reported a start yet.
    Assigned,
    /// An agent reported that it started the current attempt.
    Running,
    /// The last attempt failed with a retryable error; the next attempt waits for its backoff.
    Retrying,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error after its last attempt.
    Failed,
    /// Cancelled by its owner or an admin.
    Cancelled,
}

impl TaskStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [TaskStatus; 7] = [
        Self::Queued,
        Self::Assigned,
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The lowercase name used in JSON, SQL and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Assigned => "assigned",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// A terminal task never changes again; late results for it are ignored.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A string that is not a task status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for TaskStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

/// Whether an agent takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Heartbeating and accepting tasks.
    Online,
    /// Missed its heartbeats; its leased tasks are re-assigned.
    Offline,
    /// Finishing its current tasks and accepting no new ones.
    Draining,
}

impl AgentStatus {
    /// The lowercase name used in JSON and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Draining => "draining",
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::Online, Self::Offline, Self::Draining]
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

/// Task priority 0 (lowest) to 9 (highest). Parsing rejects anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

/// A priority outside 0..=9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("priority must be between 0 and 9, got {0}")]
pub struct PriorityOutOfRange(pub u8);

impl Priority {
    /// The highest priority.
    pub const MAX: Priority = Priority(9);
    /// The default priority of a task that states none.
    pub const NORMAL: Priority = Priority(5);

    /// The numeric value, 0..=9.
    pub fn value(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

impl TryFrom<u8> for Priority {
    type Error = PriorityOutOfRange;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        if value <= Self::MAX.0 { Ok(Self(value)) } else { Err(PriorityOutOfRange(value)) }
    }
}

impl From<Priority> for u8 {
    fn from(priority: Priority) -> Self {
        priority.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states() {
        let terminal: Vec<_> = TaskStatus::ALL.into_iter().filter(|status| status.is_terminal()).collect();
        assert_eq!(terminal, [TaskStatus::Succeeded, TaskStatus::Failed, TaskStatus::Cancelled]);
    }

    #[test]
    fn status_names_round_trip() {
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>().unwrap(), status);
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{status}\""));
        }
        assert_eq!("done".parse::<TaskStatus>(), Err(UnknownStatus("done".into())));
    }

    #[test]
    fn priority_bounds() {
        assert_eq!(Priority::try_from(9).unwrap().value(), 9);
        assert_eq!(Priority::try_from(10), Err(PriorityOutOfRange(10)));
        assert!(serde_json::from_str::<Priority>("12").is_err());
        assert_eq!(serde_json::from_str::<Priority>("3").unwrap().value(), 3);
    }
}
