//! Applying task and agent messages to the state.

use chrono::{DateTime, Utc};
use sutazai_types::messages::{
    AgentHeartbeat, AgentRegistered, TaskFailed, TaskMessage, TaskReady, TaskStarted,
};
use sutazai_types::{AgentId, AgentStatus, TaskId};

use super::{ATTEMPT_RETENTION, DispatchState, SeenAttempt, TOMBSTONE_RETENTION, WITHDRAWN};
use crate::domain::agent::Agent;
use crate::domain::changes::Changes;
use crate::domain::strategy::StoredStrategy;
use crate::domain::task::{Capabilities, PendingTask, TaskSpec};

/// The agent id of a refusal: no agent ran the attempt, the coordinator refused it.
pub const NO_AGENT: AgentId = AgentId(uuid::Uuid::nil());

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// With a result.
    Succeeded,
    /// With an error.
    Failed,
}

impl DispatchState {
    /// A task is ready (first attempt or a retry). Ignored when its attempt is not newer than
    /// the last seen; refused with a `Failed` when the pending queue is full; queued otherwise.
    pub fn on_ready(
        &mut self,
        ready: TaskReady,
        traceparent: Option<String>,
        now: DateTime<Utc>,
        changes: &mut Changes,
    ) {
        let task_id = ready.task_id;
        if self.attempts.get(&task_id).is_some_and(|seen| seen.attempt >= ready.attempt) {
            tracing::debug!(%task_id, attempt = ready.attempt, "stale ready ignored");
            changes.stale += 1;
            return;
        }
        // A retry can overtake the outcome of the attempt before it (they travel on different
        // queues): the older attempt is over either way.
        if self.pending.remove(task_id).is_some() {
            changes.tasks.insert(task_id);
        }
        if let Some(assignment) = self.assignments.remove(&task_id) {
            self.release(&assignment);
            changes.tasks.insert(task_id);
        }
        self.attempts.insert(
            task_id,
            SeenAttempt { attempt: ready.attempt, expires_at: ready.deadline + ATTEMPT_RETENTION },
        );
        changes.attempts.insert(task_id);
        if self.pending.len() >= self.limits.pending_capacity {
            tracing::warn!(%task_id, capacity = self.limits.pending_capacity, "pending queue full, task refused");
            changes.refused += 1;
            changes.messages.push(TaskMessage::Failed(TaskFailed {
                task_id,
                attempt: ready.attempt,
                agent_id: NO_AGENT,
                error: format!("pending queue full (capacity {})", self.limits.pending_capacity),
                retryable: false,
                finished_at: now,
            }));
            return;
        }
        let attempt = ready.attempt;
        let retagged = self.pending.enqueue_new(PendingTask {
            spec: TaskSpec::from_ready(ready, traceparent),
            attempt,
            waiting_reason: String::new(),
            reassign_reason: String::new(),
            previous_agent: None,
        });
        changes.tasks.insert(task_id);
        changes.tasks.extend(retagged);
    }

    /// The agent started the attempt: its lease no longer runs out (only the agent going offline
    /// takes the task away now).
    pub fn on_started(&mut self, started: &TaskStarted, changes: &mut Changes) {
        let Some(assignment) = self.assignments.get_mut(&started.task_id) else { return };
        if assignment.attempt != started.attempt || assignment.agent_id != started.agent_id {
            return;
        }
        if let Some(deadline) = assignment.lease_deadline.take() {
            self.lease_deadlines.remove(&(deadline, started.task_id));
            changes.tasks.insert(started.task_id);
        }
    }

    /// The agent finished the attempt: its slot is free and the task leaves the coordinator.
    /// An outcome of another attempt or agent leaves the task alone; it frees the agent's slot
    /// only if the agent was running that attempt without an assignment.
    pub fn on_finished(
        &mut self,
        task_id: TaskId,
        attempt: u32,
        agent_id: AgentId,
        outcome: Outcome,
        changes: &mut Changes,
    ) {
        let matches = self
            .assignments
            .get(&task_id)
            .is_some_and(|assignment| assignment.attempt == attempt && assignment.agent_id == agent_id);
        if !matches {
            if let Some(agent) = self.agents.get_mut(&agent_id)
                && agent.finished_untracked()
            {
                changes.agents.insert(agent_id);
            }
            return;
        }
        let Some(assignment) = self.assignments.remove(&task_id) else { return };
        self.release(&assignment);
        changes.tasks.insert(task_id);
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            match outcome {
                Outcome::Succeeded => agent.tasks_succeeded += 1,
                Outcome::Failed => agent.tasks_failed += 1,
            }
            changes.agents.insert(agent_id);
        }
        if outcome == Outcome::Succeeded {
            // A succeeded task is terminal: no Ready follows, and a redelivered one is caught by
            // the inbox.
            self.attempts.remove(&task_id);
            changes.attempts.insert(task_id);
        }
    }

    /// The task was withdrawn: it leaves the queue or frees its agent's slot, and a Ready for
    /// it that arrives later is ignored.
    pub fn on_cancelled(&mut self, task_id: TaskId, now: DateTime<Utc>, changes: &mut Changes) {
        let mut expires_at = now + TOMBSTONE_RETENTION;
        if let Some(pending) = self.pending.remove(task_id) {
            expires_at = expires_at.max(pending.spec.deadline + ATTEMPT_RETENTION);
            changes.tasks.insert(task_id);
        }
        if let Some(assignment) = self.assignments.remove(&task_id) {
            expires_at = expires_at.max(assignment.spec.deadline + ATTEMPT_RETENTION);
            self.release(&assignment);
            changes.tasks.insert(task_id);
        }
        self.attempts.insert(task_id, SeenAttempt { attempt: WITHDRAWN, expires_at });
        changes.attempts.insert(task_id);
    }

    /// An agent (re)registered: it is online with what it announced. Its assignments stay: a
    /// restarted worker finds them redelivered on its queue.
    pub fn on_registered(&mut self, registered: AgentRegistered, now: DateTime<Utc>, changes: &mut Changes) {
        let silent_deadline = now + self.limits.offline_after;
        let capabilities = Capabilities::new(&registered.capabilities);
        match self.agents.get_mut(&registered.agent_id) {
            Some(agent) => {
                agent.name = registered.name;
                agent.capabilities = capabilities;
                agent.slots = registered.slots;
                agent.version = registered.version;
                agent.status = AgentStatus::Online;
                agent.last_heartbeat = now;
                agent.silent_deadline = silent_deadline;
            }
            None => {
                let agent = Agent {
                    id: registered.agent_id,
                    name: registered.name,
                    capabilities,
                    slots: registered.slots,
                    status: AgentStatus::Online,
                    running: 0,
                    last_heartbeat: now,
                    version: registered.version,
                    tasks_succeeded: 0,
                    tasks_failed: 0,
                    registered_at: now,
                    active: 0,
                    silent_deadline,
                    untracked: 0,
                };
                self.agents.insert(agent.id, agent);
            }
        }
        changes.agents.insert(registered.agent_id);
    }

    /// An agent is alive. A heartbeat brings an offline agent back online (a draining one stays
    /// draining); one from an agent that never registered is ignored, since its capabilities are
    /// unknown. Returns whether the agent is known.
    pub fn on_heartbeat(
        &mut self,
        heartbeat: &AgentHeartbeat,
        now: DateTime<Utc>,
        changes: &mut Changes,
    ) -> bool {
        let Some(agent) = self.agents.get_mut(&heartbeat.agent_id) else { return false };
        agent.report_running(heartbeat.running);
        agent.slots = heartbeat.slots;
        agent.last_heartbeat = now;
        agent.silent_deadline = now + self.limits.offline_after;
        if agent.status == AgentStatus::Offline {
            agent.status = AgentStatus::Online;
        }
        changes.agents.insert(heartbeat.agent_id);
        true
    }

    /// An agent is stopping: it keeps its tasks and gets no new ones. Returns whether it is known.
    pub fn on_draining(&mut self, agent_id: AgentId, now: DateTime<Utc>, changes: &mut Changes) -> bool {
        let Some(agent) = self.agents.get_mut(&agent_id) else { return false };
        agent.status = AgentStatus::Draining;
        agent.last_heartbeat = now;
        agent.silent_deadline = now + self.limits.offline_after;
        changes.agents.insert(agent_id);
        true
    }

    /// An admin set the strategy; it applies from the next dispatch pass.
    pub fn set_strategy(&mut self, strategy: StoredStrategy, changes: &mut Changes) {
        self.pending.set_fair_ordering(strategy.strategy.fair_ordering());
        self.strategy = strategy;
        changes.strategy = true;
    }
}
