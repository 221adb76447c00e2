//! What one step of the dispatcher changed: the rows the store rewrites from the state as it now
//! is, the messages the outbox publishes, and the counts the metrics record.

use std::collections::BTreeSet;

use sutazai_types::messages::TaskMessage;
use sutazai_types::{AgentId, TaskId};

/// Why a task was taken back from its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassignCause {
    /// The agent stopped heartbeating.
    AgentOffline,
    /// The agent did not start the attempt within the assignment lease.
    LeaseExpired,
}

impl ReassignCause {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentOffline => "agent_offline",
            Self::LeaseExpired => "lease_expired",
        }
    }
}

/// The changes of one step.
///
/// Rows are named, not described: the store writes each named task, agent and attempt record
/// as the state now holds it (or deletes it when the state no longer does), so however many
/// times a row changed within a step, it is written once.
#[derive(Debug, Default)]
pub struct Changes {
    /// Tasks whose row changed.
    pub tasks: BTreeSet<TaskId>,
    /// Agents whose row changed.
    pub agents: BTreeSet<AgentId>,
    /// Tasks whose highest-seen attempt changed.
    pub attempts: BTreeSet<TaskId>,
    /// The strategy was set.
    pub strategy: bool,
    /// Messages to publish through the outbox, in order.
    pub messages: Vec<TaskMessage>,
    /// Assignments made.
    pub assignments: u64,
    /// Tasks taken back from their agents, and why.
    pub reassignments: Vec<ReassignCause>,
    /// Ready tasks refused because the pending queue was full.
    pub refused: u64,
    /// Ready messages ignored because their attempt was not newer than the last one seen.
    pub stale: u64,
}

impl Changes {
    /// Whether anything must be written.
    pub fn needs_write(&self) -> bool {
        !(self.tasks.is_empty()
            && self.agents.is_empty()
            && self.attempts.is_empty()
            && !self.strategy
            && self.messages.is_empty())
    }
}
