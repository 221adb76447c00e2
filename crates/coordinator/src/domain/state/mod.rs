//! The dispatcher's state and its transitions, without I/O: pending tasks, assignments, agents,
//! the highest attempt seen per task and the strategy. Every transition takes the current time
//! and records what it changed in [`Changes`], which the store persists (with the outbox
//! messages) in one transaction.
//!
//! - `messages`: applying task and agent messages (ready, outcomes, withdrawals, liveness);
//! - `liveness`: the timers (silent agents, assignment leases, housekeeping);
//! - `dispatch`: the pass that assigns pending tasks and keeps their waiting reasons current.

mod dispatch;
mod liveness;
mod messages;
#[cfg(test)]
mod tests;

pub use messages::{NO_AGENT, Outcome};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sutazai_types::{AgentId, AgentStatus, TaskId};

use crate::domain::agent::Agent;
use crate::domain::pending::PendingQueue;
use crate::domain::strategy::{CONFIGURED_BY, DispatchStrategy, StoredStrategy};
use crate::domain::task::{Assignment, PendingTask};

/// How long after a task's deadline its highest attempt is remembered (no Ready comes later:
/// the orchestrator has failed the task by then).
pub const ATTEMPT_RETENTION: chrono::Duration = chrono::Duration::hours(1);
/// How long a withdrawal of a task the coordinator never saw is remembered, in case its Ready
/// arrives after it.
pub const TOMBSTONE_RETENTION: chrono::Duration = chrono::Duration::hours(1);
/// How often expired attempt records and long-offline agents are dropped.
pub const HOUSEKEEPING_INTERVAL: chrono::Duration = chrono::Duration::minutes(10);
/// The attempt recorded for a withdrawn task: no Ready is newer.
pub const WITHDRAWN: u32 = u32::MAX;

/// The configured timings and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Silence after which an agent is offline.
    pub offline_after: chrono::Duration,
    /// Most pending tasks; a Ready beyond it is refused.
    pub pending_capacity: usize,
    /// An offline agent holding no task is forgotten after this long.
    pub forget_offline_after: chrono::Duration,
}

/// The highest attempt seen for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenAttempt {
    /// The attempt ([`WITHDRAWN`] once the task was withdrawn).
    pub attempt: u32,
    /// When the record may be dropped.
    pub expires_at: DateTime<Utc>,
}

/// A task as stored: pending or assigned.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredTask {
    /// Waiting for an agent.
    Pending(PendingTask),
    /// Leased to an agent.
    Assigned(Assignment),
}

/// Everything the store holds, to rebuild the state from.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The strategy an admin set, if any.
    pub strategy: Option<StoredStrategy>,
    /// Pending and assigned tasks.
    pub tasks: Vec<StoredTask>,
    /// Agents, with `active` and `silent_deadline` to be recomputed.
    pub agents: Vec<Agent>,
    /// Highest attempts seen.
    pub attempts: Vec<(TaskId, SeenAttempt)>,
}

/// A borrowed view of one task's row.
#[derive(Debug, Clone, Copy)]
pub enum TaskRow<'a> {
    /// Pending.
    Pending(&'a PendingTask),
    /// Assigned.
    Assigned(&'a Assignment),
}

/// What is waiting, for `GetPendingStats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingStats {
    /// Pending tasks.
    pub pending: u64,
    /// The bound of the pending queue.
    pub pending_capacity: u64,
    /// `(priority, count)` of non-empty priorities, highest first.
    pub by_priority: Vec<(u8, u64)>,
    /// Pending tasks no online agent has the capabilities for.
    pub unassignable: u64,
    /// Tasks assigned and not finished.
    pub assigned: u64,
    /// Arrival of the oldest pending task.
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// The dispatcher's state.
#[derive(Debug)]
pub struct DispatchState {
    limits: Limits,
    strategy: StoredStrategy,
    pending: PendingQueue,
    assignments: HashMap<TaskId, Assignment>,
    /// Unstarted assignments by lease deadline.
    lease_deadlines: BTreeSet<(DateTime<Utc>, TaskId)>,
    /// By id: round-robin and every tie-break go in id order.
    agents: BTreeMap<AgentId, Agent>,
    owner_active: HashMap<String, u32>,
    attempts: HashMap<TaskId, SeenAttempt>,
    round_robin_cursor: Option<AgentId>,
    next_housekeeping: DateTime<Utc>,
}

impl DispatchState {
    /// An empty state with the configured strategy.
    pub fn new(limits: Limits, configured: DispatchStrategy, now: DateTime<Utc>) -> Self {
        Self::restore(limits, configured, Snapshot::default(), now)
    }

    /// The state a snapshot describes.
    ///
    /// Everything heard before the restart gets a fresh grace of `offline_after`: the heartbeats
    /// and `Started` messages that queued up while the coordinator was down are consumed first,
    /// rather than every agent being declared offline and every lease expired on the spot.
    pub fn restore(
        limits: Limits,
        configured: DispatchStrategy,
        snapshot: Snapshot,
        now: DateTime<Utc>,
    ) -> Self {
        let strategy = snapshot.strategy.unwrap_or_else(|| StoredStrategy {
            strategy: configured,
            updated_at: None,
            updated_by: CONFIGURED_BY.to_owned(),
        });
        let grace_end = now + limits.offline_after;
        let mut state = Self {
            limits,
            pending: PendingQueue::new(strategy.strategy.fair_ordering()),
            strategy,
            assignments: HashMap::new(),
            lease_deadlines: BTreeSet::new(),
            agents: BTreeMap::new(),
            owner_active: HashMap::new(),
            attempts: snapshot.attempts.into_iter().collect(),
            round_robin_cursor: None,
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
        };
        for mut agent in snapshot.agents {
            agent.active = 0;
            agent.silent_deadline = (agent.last_heartbeat + limits.offline_after).max(grace_end);
            state.agents.insert(agent.id, agent);
        }
        for task in snapshot.tasks {
            match task {
                StoredTask::Pending(pending) => state.pending.requeue(pending),
                StoredTask::Assigned(mut assignment) => {
                    assignment.lease_deadline =
                        assignment.lease_deadline.map(|deadline| deadline.max(grace_end));
                    state.restore_assignment(assignment, now, grace_end);
                }
            }
        }
        state.pending.finish_restore();
        for agent in state.agents.values_mut() {
            let running = agent.running;
            agent.report_running(running);
        }
        state
    }

    fn restore_assignment(&mut self, assignment: Assignment, now: DateTime<Utc>, grace_end: DateTime<Utc>) {
        // Agents holding tasks are never forgotten; should the row be missing anyway, a stand-in
        // that goes offline unless the agent speaks up takes the tasks back through the usual path.
        let agent = self.agents.entry(assignment.agent_id).or_insert_with(|| {
            tracing::warn!(
                agent_id = %assignment.agent_id,
                task_id = %assignment.spec.task_id,
                "task assigned to an agent with no stored row; a stand-in with no slots holds it"
            );
            Agent {
                id: assignment.agent_id,
                name: "unknown".to_owned(),
                capabilities: crate::domain::task::Capabilities::default(),
                slots: 0,
                status: AgentStatus::Online,
                running: 0,
                last_heartbeat: now,
                version: String::new(),
                tasks_succeeded: 0,
                tasks_failed: 0,
                registered_at: now,
                active: 0,
                silent_deadline: grace_end,
                untracked: 0,
            }
        });
        agent.active += 1;
        *self.owner_active.entry(assignment.spec.owner.clone()).or_insert(0) += 1;
        if let Some(deadline) = assignment.lease_deadline {
            self.lease_deadlines.insert((deadline, assignment.spec.task_id));
        }
        self.assignments.insert(assignment.spec.task_id, assignment);
    }

    /// The strategy in force.
    pub fn strategy(&self) -> &StoredStrategy {
        &self.strategy
    }

    /// The configured limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Every agent, by id.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// One agent.
    pub fn agent(&self, agent_id: AgentId) -> Option<&Agent> {
        self.agents.get(&agent_id)
    }

    /// One task's row, if the coordinator holds the task.
    pub fn task(&self, task_id: TaskId) -> Option<TaskRow<'_>> {
        if let Some(assignment) = self.assignments.get(&task_id) {
            return Some(TaskRow::Assigned(assignment));
        }
        self.pending.get(task_id).map(TaskRow::Pending)
    }

    /// The highest attempt seen for a task.
    pub fn seen_attempt(&self, task_id: TaskId) -> Option<SeenAttempt> {
        self.attempts.get(&task_id).copied()
    }

    /// Pending tasks.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Pending tasks per priority value.
    pub fn pending_by_priority(&self) -> [u64; 10] {
        self.pending.counts_by_priority()
    }

    /// Assigned tasks.
    pub fn assigned_len(&self) -> usize {
        self.assignments.len()
    }

    /// What is waiting and why.
    pub fn pending_stats(&self) -> PendingStats {
        let counts = self.pending.counts_by_priority();
        let mut by_priority = Vec::new();
        for priority in (0..counts.len()).rev() {
            if counts[priority] > 0 {
                by_priority.push((u8::try_from(priority).unwrap_or(u8::MAX), counts[priority]));
            }
        }
        let mut unassignable = 0;
        for (capabilities, size) in self.pending.groups() {
            let runnable =
                self.agents.values().any(|agent| agent.takes_tasks() && agent.can_run(capabilities));
            if !runnable {
                unassignable += size as u64;
            }
        }
        PendingStats {
            pending: self.pending.len() as u64,
            pending_capacity: self.limits.pending_capacity as u64,
            by_priority,
            unassignable,
            assigned: self.assignments.len() as u64,
            oldest_pending_at: self.pending.tasks().map(|task| task.spec.enqueued_at).min(),
        }
    }

    /// When the next timer is due: an agent falls silent, a lease runs out, or housekeeping.
    /// Nothing else wakes the dispatcher, so with no agents it sleeps.
    pub fn next_deadline(&self) -> DateTime<Utc> {
        let mut next = self.next_housekeeping;
        for agent in self.agents.values() {
            if agent.status != AgentStatus::Offline {
                next = next.min(agent.silent_deadline);
            }
        }
        if let Some((deadline, _)) = self.lease_deadlines.first() {
            next = next.min(*deadline);
        }
        next
    }

    /// Frees the slot and the owner's share an assignment held.
    fn release(&mut self, assignment: &Assignment) {
        if let Some(deadline) = assignment.lease_deadline {
            self.lease_deadlines.remove(&(deadline, assignment.spec.task_id));
        }
        if let Some(agent) = self.agents.get_mut(&assignment.agent_id) {
            agent.active = agent.active.saturating_sub(1);
        }
        if let Some(active) = self.owner_active.get_mut(&assignment.spec.owner) {
            *active = active.saturating_sub(1);
            if *active == 0 {
                self.owner_active.remove(&assignment.spec.owner);
            }
        }
    }
}
