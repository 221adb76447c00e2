//! The timers: agents that fell silent, assignments not started within their lease, and the
//! periodic dropping of records nothing needs any more.

use chrono::{DateTime, Utc};
use sutazai_types::{AgentId, AgentStatus, TaskId};

use super::{ATTEMPT_RETENTION, DispatchState, HOUSEKEEPING_INTERVAL, SeenAttempt};
use crate::domain::changes::{Changes, ReassignCause};
use crate::domain::task::PendingTask;

impl DispatchState {
    /// Applies every timer due at `now`.
    pub fn expire(&mut self, now: DateTime<Utc>, changes: &mut Changes) {
        let silent: Vec<AgentId> = self
            .agents
            .values()
            .filter(|agent| agent.status != AgentStatus::Offline && agent.silent_deadline <= now)
            .map(|agent| agent.id)
            .collect();
        for agent_id in silent {
            self.mark_offline(agent_id, changes);
        }
        while let Some((deadline, task_id)) = self.lease_deadlines.first().copied() {
            if deadline > now {
                break;
            }
            tracing::info!(%task_id, "assignment lease expired, re-assigning");
            self.take_back(
                task_id,
                "assignment lease expired".to_owned(),
                ReassignCause::LeaseExpired,
                changes,
            );
        }
        if now >= self.next_housekeeping {
            self.housekeeping(now, changes);
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
        }
    }

    /// The agent is offline: every task it holds, started or not, goes to the next attempt.
    fn mark_offline(&mut self, agent_id: AgentId, changes: &mut Changes) {
        let Some(agent) = self.agents.get_mut(&agent_id) else { return };
        agent.status = AgentStatus::Offline;
        changes.agents.insert(agent_id);
        let mut held: Vec<(chrono::DateTime<Utc>, TaskId)> = self
            .assignments
            .values()
            .filter(|assignment| assignment.agent_id == agent_id)
            .map(|assignment| (assignment.assigned_at, assignment.spec.task_id))
            .collect();
        tracing::warn!(%agent_id, held = held.len(), "agent went silent, marked offline");
        // In the order they were assigned, so the log and the outbox read chronologically.
        held.sort_unstable();
        for (_, task_id) in held {
            self.take_back(
                task_id,
                format!("agent {agent_id} went offline"),
                ReassignCause::AgentOffline,
                changes,
            );
        }
    }

    /// Takes a task back from its agent with the next attempt. It returns to its old place in the
    /// pending queue; the dispatch pass that follows re-assigns it (the `Assigned` carries
    /// `reason`), preferring another agent, or publishes why it waits.
    fn take_back(&mut self, task_id: TaskId, reason: String, cause: ReassignCause, changes: &mut Changes) {
        let Some(assignment) = self.assignments.remove(&task_id) else { return };
        self.release(&assignment);
        let attempt = assignment.attempt.saturating_add(1);
        self.attempts.insert(
            task_id,
            SeenAttempt { attempt, expires_at: assignment.spec.deadline + ATTEMPT_RETENTION },
        );
        changes.attempts.insert(task_id);
        self.pending.requeue(PendingTask {
            spec: assignment.spec,
            attempt,
            // The orchestrator cleared the task's waiting reason when it was assigned.
            waiting_reason: String::new(),
            reassign_reason: reason,
            previous_agent: Some(assignment.agent_id),
        });
        changes.tasks.insert(task_id);
        changes.reassignments.push(cause);
    }

    /// Drops expired attempt records of tasks the coordinator no longer holds, and offline agents
    /// that hold nothing and have been silent for `forget_offline_after`.
    fn housekeeping(&mut self, now: DateTime<Utc>, changes: &mut Changes) {
        let expired: Vec<TaskId> = self
            .attempts
            .iter()
            .filter(|(task_id, seen)| {
                seen.expires_at <= now
                    && !self.assignments.contains_key(task_id)
                    && self.pending.get(**task_id).is_none()
            })
            .map(|(task_id, _)| *task_id)
            .collect();
        for task_id in expired {
            self.attempts.remove(&task_id);
            changes.attempts.insert(task_id);
        }
        let forgotten: Vec<AgentId> = self
            .agents
            .values()
            .filter(|agent| {
                agent.status == AgentStatus::Offline
                    && agent.active == 0
                    && agent.last_heartbeat + self.limits.forget_offline_after <= now
            })
            .map(|agent| agent.id)
            .collect();
        for agent_id in forgotten {
            tracing::info!(%agent_id, "forgetting long-offline agent");
            self.agents.remove(&agent_id);
            changes.agents.insert(agent_id);
        }
    }
}
