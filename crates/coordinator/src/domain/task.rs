//! Tasks as the coordinator holds them: what a task needs from an agent, a pending task waiting
//! for one, and an assignment leased to one.

use std::fmt;

use chrono::{DateTime, Utc};
use sutazai_types::messages::TaskReady;
use sutazai_types::{AgentId, Priority, TaskId};

/// A set of capabilities: sorted and without duplicates, so two sets that list the same names in
/// another order are equal (tasks needing the same set share a dispatch queue).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Capabilities(Vec<String>);

impl Capabilities {
    /// The set of `names`, trimmed; empty names are dropped.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut sorted: Vec<String> = names
            .into_iter()
            .map(|name| name.as_ref().trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        Self(sorted)
    }

    /// The names, sorted.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|held| held.as_str().cmp(name)).is_ok()
    }

    /// Whether every capability of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Capabilities) -> bool {
        // Both are sorted: one merge pass.
        let mut others = other.0.iter();
        'required: for required in &self.0 {
            for held in others.by_ref() {
                match held.cmp(required) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => continue 'required,
                    std::cmp::Ordering::Greater => return false,
                }
            }
            return false;
        }
        true
    }
}

impl fmt::Display for Capabilities {
    /// `[gpu, python]`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "[{}]", self.0.join(", "))
    }
}

/// What stays the same about a task across its attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// The task.
    pub task_id: TaskId,
    /// The orchestrator's task type, handed to the agent.
    pub task_type: String,
    /// 0 (lowest) ..= 9.
    pub priority: Priority,
    /// What an agent needs (all of it) to run the task.
    pub capabilities: Capabilities,
    /// The user or service client the task belongs to.
    pub owner: String,
    /// The input, handed to the agent unchanged.
    pub payload: serde_json::Value,
    /// When the whole task times out.
    pub deadline: DateTime<Utc>,
    /// Arrival order within a priority.
    pub enqueued_at: DateTime<Utc>,
    /// The owner-fairness turn within the priority, given on first arrival (see `pending`).
    pub fair_tag: u64,
    /// The W3C `traceparent` of the delivery that made the attempt ready: the assignment is
    /// published later, from the dispatcher, and continues this trace rather than starting one.
    pub traceparent: Option<String>,
}

impl TaskSpec {
    /// The spec of a ready message delivered in the trace of `traceparent`; the fairness tag is
    /// given when it is queued.
    pub fn from_ready(ready: TaskReady, traceparent: Option<String>) -> Self {
        Self {
            task_id: ready.task_id,
            task_type: ready.task_type,
            priority: ready.priority,
            capabilities: Capabilities::new(&ready.capabilities),
            owner: ready.owner,
            payload: ready.payload,
            deadline: ready.deadline,
            enqueued_at: ready.enqueued_at,
            fair_tag: 0,
            traceparent,
        }
    }
}

/// A task waiting for an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingTask {
    /// The task.
    pub spec: TaskSpec,
    /// The attempt the next assignment carries.
    pub attempt: u32,
    /// The reason last published in a `Waiting` ("" when none was).
    pub waiting_reason: String,
    /// Why the next assignment is a re-assignment ("" for a first assignment).
    pub reassign_reason: String,
    /// The agent that lost the task; the next assignment prefers any other eligible agent.
    pub previous_agent: Option<AgentId>,
}

/// A task leased to an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The task.
    pub spec: TaskSpec,
    /// The attempt the agent runs.
    pub attempt: u32,
    /// The agent.
    pub agent_id: AgentId,
    /// When it was assigned.
    pub assigned_at: DateTime<Utc>,
    /// Re-assigned when not started by then; `None` once the agent reported `Started`, after
    /// which only the agent going offline takes the task away.
    pub lease_deadline: Option<DateTime<Utc>>,
}

impl Assignment {
    /// Whether the agent reported that it started the attempt.
    pub fn started(&self) -> bool {
        self.lease_deadline.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_a_sorted_set() {
        let capabilities = Capabilities::new(["python", "gpu", " gpu ", ""]);
        assert_eq!(capabilities.names(), ["gpu", "python"]);
        assert_eq!(capabilities.to_string(), "[gpu, python]");
        assert_eq!(capabilities, Capabilities::new(["gpu", "python"]));
        assert!(capabilities.contains("gpu"));
        assert!(!capabilities.contains("rust"));
    }

    #[test]
    fn subsets() {
        let agent = Capabilities::new(["a", "c", "e"]);
        assert!(Capabilities::default().is_subset_of(&agent));
        assert!(Capabilities::new(["a", "e"]).is_subset_of(&agent));
        assert!(Capabilities::new(["c"]).is_subset_of(&agent));
        assert!(!Capabilities::new(["b"]).is_subset_of(&agent));
        assert!(!Capabilities::new(["a", "f"]).is_subset_of(&agent));
        assert!(!Capabilities::new(["a"]).is_subset_of(&Capabilities::default()));
    }
}
