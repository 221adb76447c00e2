//! Stored rows and their conversion to the domain; a value the domain rejects is a corrupt row.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sutazai_types::{AgentId, AgentStatus, Priority, TaskId};
use uuid::Uuid;

use super::StoreError;
use crate::domain::agent::Agent;
use crate::domain::state::StoredTask;
use crate::domain::strategy::{DispatchStrategy, StoredStrategy, StrategyKind};
use crate::domain::task::{Assignment, Capabilities, PendingTask, TaskSpec};

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(format!("{what} {value} out of range")))
}

/// A `tasks` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TaskRow {
    task_id: Uuid,
    task_type: String,
    priority: i16,
    capabilities: Json<Vec<String>>,
    owner: String,
    payload: serde_json::Value,
    deadline: DateTime<Utc>,
    enqueued_at: DateTime<Utc>,
    fair_tag: i64,
    attempt: i64,
    agent_id: Option<Uuid>,
    assigned_at: Option<DateTime<Utc>>,
    lease_deadline: Option<DateTime<Utc>>,
    started: bool,
    waiting_reason: String,
    reassign_reason: String,
    previous_agent: Option<Uuid>,
    traceparent: Option<String>,
}

impl TaskRow {
    pub(super) fn into_domain(self) -> Result<StoredTask, StoreError> {
        let priority = u8::try_from(self.priority)
            .ok()
            .and_then(|value| Priority::try_from(value).ok())
            .ok_or_else(|| corrupt(format!("task {} priority {}", self.task_id, self.priority)))?;
        let spec = TaskSpec {
            task_id: TaskId(self.task_id),
            task_type: self.task_type,
            priority,
            capabilities: Capabilities::new(&self.capabilities.0),
            owner: self.owner,
            payload: self.payload,
            deadline: self.deadline,
            enqueued_at: self.enqueued_at,
            fair_tag: u64::try_from(self.fair_tag).map_err(|_| corrupt("negative fair_tag"))?,
            traceparent: self.traceparent,
        };
        let attempt = to_u32(self.attempt, "attempt")?;
        let Some(agent_id) = self.agent_id else {
            return Ok(StoredTask::Pending(PendingTask {
                spec,
                attempt,
                waiting_reason: self.waiting_reason,
                reassign_reason: self.reassign_reason,
                previous_agent: self.previous_agent.map(AgentId),
            }));
        };
        let lease_deadline = match (self.started, self.lease_deadline) {
            (true, _) => None,
            (false, Some(deadline)) => Some(deadline),
            (false, None) => return Err(corrupt(format!("task {} unstarted without a lease", spec.task_id))),
        };
        Ok(StoredTask::Assigned(Assignment {
            attempt,
            agent_id: AgentId(agent_id),
            assigned_at: self.assigned_at.unwrap_or(spec.enqueued_at),
            lease_deadline,
            spec,
        }))
    }
}

/// An `agents` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AgentRow {
    agent_id: Uuid,
    name: String,
    capabilities: Json<Vec<String>>,
    slots: i64,
    status: String,
    running: i64,
    last_heartbeat: DateTime<Utc>,
    version: String,
    tasks_succeeded: i64,
    tasks_failed: i64,
    registered_at: DateTime<Utc>,
}

impl AgentRow {
    pub(super) fn into_domain(self) -> Result<Agent, StoreError> {
        let status: AgentStatus = self
            .status
            .parse()
            .map_err(|_| corrupt(format!("agent {} status {}", self.agent_id, self.status)))?;
        Ok(Agent {
            id: AgentId(self.agent_id),
            name: self.name,
            capabilities: Capabilities::new(&self.capabilities.0),
            slots: to_u32(self.slots, "slots")?,
            status,
            running: to_u32(self.running, "running")?,
            last_heartbeat: self.last_heartbeat,
            version: self.version,
            tasks_succeeded: u64::try_from(self.tasks_succeeded).unwrap_or(0),
            tasks_failed: u64::try_from(self.tasks_failed).unwrap_or(0),
            registered_at: self.registered_at,
            // Recomputed from the assignments on restore.
            active: 0,
            silent_deadline: self.last_heartbeat,
            untracked: 0,
        })
    }
}

/// The `strategy` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct StrategyRow {
    kind: String,
    owner_fairness: bool,
    max_active_per_owner: i64,
    assignment_lease_s: i64,
    updated_by: String,
    updated_at: DateTime<Utc>,
}

impl StrategyRow {
    pub(super) fn into_domain(self) -> Result<StoredStrategy, StoreError> {
        let kind: StrategyKind =
            self.kind.parse().map_err(|_| corrupt(format!("strategy kind {}", self.kind)))?;
        Ok(StoredStrategy {
            strategy: DispatchStrategy {
                kind,
                owner_fairness: self.owner_fairness,
                max_active_per_owner: to_u32(self.max_active_per_owner, "max_active_per_owner")?,
                assignment_lease_s: to_u32(self.assignment_lease_s, "assignment_lease_s")?,
            },
            updated_at: Some(self.updated_at),
            updated_by: self.updated_by,
        })
    }
}
