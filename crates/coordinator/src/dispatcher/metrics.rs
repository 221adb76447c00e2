//! The dispatcher's metrics, recorded after each committed step. Labels are bounded: a priority
//! (0..=9), an agent status, a re-assignment cause; never an owner or a task.

use sutazai_types::AgentStatus;

use crate::domain::changes::Changes;
use crate::domain::state::DispatchState;

const PRIORITY_LABELS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Counts what a step did and sets the gauges from the state it left.
pub(super) fn record_step(changes: &Changes, state: &DispatchState) {
    metrics::counter!("coordinator_assignments_total").increment(changes.assignments);
    for cause in &changes.reassignments {
        metrics::counter!("coordinator_reassignments_total", "reason" => cause.as_str()).increment(1);
    }
    metrics::counter!("coordinator_refused_tasks_total").increment(changes.refused);
    metrics::counter!("coordinator_stale_ready_total").increment(changes.stale);
    record_state(state);
}

/// Sets the gauges: pending tasks per priority, assigned tasks, agents per status.
pub(super) fn record_state(state: &DispatchState) {
    let pending = state.pending_by_priority();
    for (label, count) in PRIORITY_LABELS.iter().zip(pending) {
        metrics::gauge!("coordinator_pending_tasks", "priority" => *label).set(count as f64);
    }
    metrics::gauge!("coordinator_assigned_tasks").set(state.assigned_len() as f64);
    let mut by_status = [0u32; 3];
    for agent in state.agents() {
        let index = match agent.status {
            AgentStatus::Online => 0,
            AgentStatus::Draining => 1,
            AgentStatus::Offline => 2,
        };
        by_status[index] += 1;
    }
    for (status, count) in
        [AgentStatus::Online, AgentStatus::Draining, AgentStatus::Offline].into_iter().zip(by_status)
    {
        metrics::gauge!("coordinator_agents", "status" => status.as_str()).set(f64::from(count));
    }
}
