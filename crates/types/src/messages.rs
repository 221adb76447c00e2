//! The AMQP message bodies. Every message is one variant of a tagged enum; the tag carries the
//! version (`task.ready.v1`), so a consumer can reject a message it does not understand instead of
//! misreading it, and a v2 can be added beside v1 while both are in flight.
//!
//! The tag doubles as the routing key (`<aggregate>.<event>.v1`, see DESIGN.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AgentId, Priority, TaskId};

/// Exchange carrying task life-cycle messages.
pub const TASKS_EXCHANGE: &str = "sutazai.tasks";
/// Exchange carrying agent registration and heartbeats.
pub const AGENTS_EXCHANGE: &str = "sutazai.agents";

/// Messages about a task, published by the orchestrator, the coordinator and the agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum TaskMessage {
    /// The orchestrator accepted a task (or a retry is due) and it waits for an agent.
    #[serde(rename = "task.ready.v1")]
    Ready(TaskReady),
    /// The coordinator leased the task to an agent.
    #[serde(rename = "task.assigned.v1")]
    Assigned(TaskAssigned),
    /// The agent started the attempt.
    #[serde(rename = "task.started.v1")]
    Started(TaskStarted),
    /// The agent finished the attempt with a result.
    #[serde(rename = "task.succeeded.v1")]
    Succeeded(TaskSucceeded),
    /// The agent finished the attempt with an error.
    #[serde(rename = "task.failed.v1")]
    Failed(TaskFailed),
    /// The task was withdrawn (cancelled, timed out, or its workflow stopped); the coordinator
    /// forgets it and the agent running it stops.
    #[serde(rename = "task.cancelled.v1")]
    Cancelled(TaskCancelled),
    /// The coordinator cannot assign the task yet; `reason` says why (shown as `queued_reason`).
    #[serde(rename = "task.waiting.v1")]
    Waiting(TaskWaiting),
}

impl TaskMessage {
    /// The routing key of this message: its versioned tag.
    pub fn routing_key(&self) -> &'static str {
        match self {
            Self::Ready(_) => "task.ready.v1",
            Self::Assigned(_) => "task.assigned.v1",
            Self::Started(_) => "task.started.v1",
            Self::Succeeded(_) => "task.succeeded.v1",
            Self::Failed(_) => "task.failed.v1",
            Self::Cancelled(_) => "task.cancelled.v1",
            Self::Waiting(_) => "task.waiting.v1",
        }
    }

    /// The task the message is about.
    pub fn task_id(&self) -> TaskId {
        match self {
            Self::Ready(message) => message.task_id,
            Self::Assigned(message) => message.task_id,
            Self::Started(message) => message.task_id,
            Self::Succeeded(message) => message.task_id,
            Self::Failed(message) => message.task_id,
            Self::Cancelled(message) => message.task_id,
            Self::Waiting(message) => message.task_id,
        }
    }
}

/// A task waiting for an agent: everything the coordinator needs to queue, match and assign it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReady {
    pub task_id: TaskId,
    pub task_type: String,
    pub priority: Priority,
    /// Capabilities an agent needs (all of them) to run the task.
    pub capabilities: Vec<String>,
    /// The user id or service client id the task belongs to (for owner fairness).
    pub owner: String,
    /// The attempt the coordinator should assign (1 for the first).
    pub attempt: u32,
    /// The task's input, handed to the agent unchanged.
    pub payload: serde_json::Value,
    /// When the whole task times out (submission + timeout); the orchestrator fails it then.
    pub deadline: DateTime<Utc>,
    /// When the task (or this retry) became ready; FIFO order within a priority.
    pub enqueued_at: DateTime<Utc>,
}

/// A task leased to one agent. Published with the routing key
/// [`TaskAssigned::routing_key`] (`task.assigned.v1.<agent id>`), so it reaches that agent's
/// queue and the orchestrator (bound to `task.assigned.v1.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAssigned {
    pub task_id: TaskId,
    pub attempt: u32,
    pub agent_id: AgentId,
    pub task_type: String,
    pub payload: serde_json::Value,
    pub owner: String,
    /// The task's own deadline: the agent gives up on the attempt after it.
    pub deadline: DateTime<Utc>,
    /// Why the coordinator made this assignment when it is a re-assignment (e.g. "agent
    /// 0193… went offline"); empty for a first assignment.
    #[serde(default)]
    pub reason: String,
}

impl TaskAssigned {
    /// `task.assigned.v1.<agent id>`.
    pub fn routing_key(&self) -> String {
        assigned_routing_key(self.agent_id)
    }
}

/// The routing key that delivers an assignment to `agent_id`'s queue.
pub fn assigned_routing_key(agent_id: AgentId) -> String {
    format!("task.assigned.v1.{agent_id}")
}

/// An agent started an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStarted {
    pub task_id: TaskId,
    pub attempt: u32,
    pub agent_id: AgentId,
    pub started_at: DateTime<Utc>,
}

/// An attempt produced a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSucceeded {
    pub task_id: TaskId,
    pub attempt: u32,
    pub agent_id: AgentId,
    pub result: serde_json::Value,
    pub finished_at: DateTime<Utc>,
}

/// An attempt failed. `retryable` says whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFailed {
    pub task_id: TaskId,
    pub attempt: u32,
    pub agent_id: AgentId,
    pub error: String,
    pub retryable: bool,
    pub finished_at: DateTime<Utc>,
}

/// A task was withdrawn before an agent finished it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCancelled {
    pub task_id: TaskId,
    pub reason: String,
}

/// The coordinator holds a task it cannot assign yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskWaiting {
    pub task_id: TaskId,
    pub attempt: u32,
    /// E.g. "no online agent has capability gpu" or "every capable agent is busy".
    pub reason: String,
}

/// Messages about agents, published by agent workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum AgentMessage {
    /// A worker started a profile and can take tasks.
    #[serde(rename = "agent.registered.v1")]
    Registered(AgentRegistered),
    /// A worker is alive; sent every heartbeat interval.
    #[serde(rename = "agent.heartbeat.v1")]
    Heartbeat(AgentHeartbeat),
    /// A worker is stopping; it finishes its tasks and takes no new ones.
    #[serde(rename = "agent.draining.v1")]
    Draining(AgentDraining),
}

impl AgentMessage {
    /// The routing key of this message: its versioned tag.
    pub fn routing_key(&self) -> &'static str {
        match self {
            Self::Registered(_) => "agent.registered.v1",
            Self::Heartbeat(_) => "agent.heartbeat.v1",
            Self::Draining(_) => "agent.draining.v1",
        }
    }
}

/// A worker profile announcing itself. Its queue is [`agent_queue`] of its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRegistered {
    pub agent_id: AgentId,
    pub name: String,
    pub capabilities: Vec<String>,
    /// How many tasks it runs at once.
    pub slots: u32,
    pub version: String,
}

/// The logical name of the queue an agent consumes its assignments (and cancellations) from.
pub fn agent_queue(agent_id: AgentId) -> String {
    format!("agent.{agent_id}")
}

/// A worker profile's liveness and load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentHeartbeat {
    pub agent_id: AgentId,
    /// Tasks running now.
    pub running: u32,
    pub slots: u32,
    pub sent_at: DateTime<Utc>,
}

/// A worker profile going away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDraining {
    pub agent_id: AgentId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_is_the_routing_key() {
        let message = TaskMessage::Cancelled(TaskCancelled { task_id: TaskId::new(), reason: "user".into() });
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["kind"], message.routing_key());
        assert_eq!(serde_json::from_value::<TaskMessage>(json).unwrap(), message);
    }

    #[test]
    fn unknown_version_is_rejected() {
        let json = serde_json::json!({"kind": "task.cancelled.v9", "task_id": TaskId::new(), "reason": "x"});
        assert!(serde_json::from_value::<TaskMessage>(json).is_err());
    }

    #[test]
    fn agent_heartbeat_round_trip() {
        let message = AgentMessage::Heartbeat(AgentHeartbeat {
            agent_id: AgentId::new(),
            running: 1,
            slots: 4,
            sent_at: Utc::now(),
        });
        let text = serde_json::to_string(&message).unwrap();
        assert!(text.contains("\"kind\":\"agent.heartbeat.v1\""));
        assert_eq!(serde_json::from_str::<AgentMessage>(&text).unwrap(), message);
    }
}
