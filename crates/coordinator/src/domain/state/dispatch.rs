//! The dispatch pass: pending tasks in order, each to the agent the strategy picks, until no
//! pending task can be placed; then the waiting reasons of those left behind.

use chrono::{DateTime, Utc};
use sutazai_types::messages::{TaskAssigned, TaskMessage, TaskWaiting};

use super::DispatchState;
use crate::domain::changes::Changes;
use crate::domain::pending::Decision;
use crate::domain::reasons::waiting_reason;
use crate::domain::selection::{Pick, select_agent};
use crate::domain::strategy::StrategyKind;
use crate::domain::task::Assignment;

impl DispatchState {
    /// Assigns every pending task that can be placed now, and publishes a `Waiting` for each
    /// task left pending whose reason changed.
    pub fn dispatch(&mut self, now: DateTime<Utc>, changes: &mut Changes) {
        if self.pending.is_empty() {
            return;
        }
        let strategy = self.strategy.strategy;
        let owner_cap = strategy.owner_cap();
        let mut free_slots: u64 = self
            .agents
            .values()
            .filter(|agent| agent.takes_tasks())
            .map(|agent| u64::from(agent.free_slots()))
            .sum();
        if free_slots > 0 {
            let agents = &mut self.agents;
            let owner_active = &mut self.owner_active;
            let cursor = &mut self.round_robin_cursor;
            let taken = self.pending.dispatch(|task| {
                if free_slots == 0 {
                    return Decision::Stop;
                }
                let owner_assigned = owner_active.get(&task.spec.owner).copied().unwrap_or(0);
                if owner_cap.is_some_and(|cap| owner_assigned >= cap) {
                    return Decision::Skip;
                }
                let pick = Pick {
                    kind: strategy.kind,
                    required: &task.spec.capabilities,
                    avoid: task.previous_agent,
                    cursor: *cursor,
                };
                let Some(agent_id) = select_agent(agents.values(), pick) else {
                    return Decision::Skip;
                };
                // Counted now, so the rest of the pass sees the slot filled.
                if let Some(agent) = agents.get_mut(&agent_id) {
                    agent.active += 1;
                }
                *owner_active.entry(task.spec.owner.clone()).or_insert(0) += 1;
                free_slots -= 1;
                if strategy.kind == StrategyKind::RoundRobin {
                    *cursor = Some(agent_id);
                }
                Decision::Take(agent_id)
            });
            let lease_deadline = now + strategy.assignment_lease();
            for (task, agent_id) in taken {
                let task_id = task.spec.task_id;
                changes.messages.push(TaskMessage::Assigned(TaskAssigned {
                    task_id,
                    attempt: task.attempt,
                    agent_id,
                    task_type: task.spec.task_type.clone(),
                    payload: task.spec.payload.clone(),
                    owner: task.spec.owner.clone(),
                    deadline: task.spec.deadline,
                    reason: task.reassign_reason,
                }));
                self.lease_deadlines.insert((lease_deadline, task_id));
                self.assignments.insert(
                    task_id,
                    Assignment {
                        spec: task.spec,
                        attempt: task.attempt,
                        agent_id,
                        assigned_at: now,
                        lease_deadline: Some(lease_deadline),
                    },
                );
                changes.tasks.insert(task_id);
                changes.assignments += 1;
            }
        }
        let agents = &self.agents;
        let owner_active = &self.owner_active;
        let reason_changes = self.pending.refresh_reasons(|capabilities, owner| {
            let owner_assigned = owner_active.get(owner).copied().unwrap_or(0);
            waiting_reason(agents.values(), capabilities, owner_assigned, owner_cap)
        });
        for change in reason_changes {
            changes.tasks.insert(change.task_id);
            changes.messages.push(TaskMessage::Waiting(TaskWaiting {
                task_id: change.task_id,
                attempt: change.attempt,
                reason: change.reason,
            }));
        }
    }
}
