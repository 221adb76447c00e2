//! The task pipeline's topology, in one place so the orchestrator, the coordinator and the agents
//! cannot disagree about a name (the original bound no queue to the key it published to).
//!
//! ```text
//! orchestrator --task.ready.v1 / task.cancelled.v1--> sutazai.tasks --> coordinator.tasks
//! coordinator  --task.assigned.v1.<agent>----------> sutazai.tasks --> agent.<agent>, orchestrator.results
//! coordinator  --task.waiting.v1-------------------> sutazai.tasks --> orchestrator.results
//! agent        --task.started/succeeded/failed.v1--> sutazai.tasks --> orchestrator.results, coordinator.tasks
//! orchestrator --task.cancelled.v1-----------------> sutazai.tasks --> agent.* (every agent), coordinator.tasks
//! agent        --agent.registered/heartbeat/draining.v1--> sutazai.agents --> coordinator.agents
//! orchestrator --final task.failed.v1 of an exhausted task--> coordinator.tasks.dlx --> coordinator.tasks.dead
//! ```

use sutazai_types::AgentId;
use sutazai_types::messages::{AGENTS_EXCHANGE, TASKS_EXCHANGE, agent_queue, assigned_routing_key};

use crate::topology::{QueueSpec, Topology};

/// The coordinator's queue of ready tasks and task outcomes (it frees agent slots on outcomes).
pub const COORDINATOR_TASKS_QUEUE: &str = "coordinator.tasks";
/// The coordinator's queue of agent registrations and heartbeats.
pub const COORDINATOR_AGENTS_QUEUE: &str = "coordinator.agents";
/// The orchestrator's queue of assignments, waits and agent outcomes.
pub const ORCHESTRATOR_RESULTS_QUEUE: &str = "orchestrator.results";
/// Highest AMQP priority on `coordinator.tasks` (task priorities are 0..=9).
pub const MAX_PRIORITY: u8 = 9;
/// An agent's queue outlives a lost connection by this much, so a reconnecting agent finds its
/// assignments; then the broker deletes it (the coordinator has re-assigned its tasks by then).
pub const AGENT_QUEUE_EXPIRES_MS: u64 = 10 * 60 * 1000;

/// `coordinator.tasks`: ready tasks, withdrawals and outcomes. Its dead-letter queue
/// (`coordinator.tasks.dead`) is where the orchestrator dead-letters exhausted tasks.
pub fn coordinator_tasks_queue() -> QueueSpec {
    QueueSpec::new(COORDINATOR_TASKS_QUEUE)
        .bind(TASKS_EXCHANGE, "task.ready.v1")
        .bind(TASKS_EXCHANGE, "task.cancelled.v1")
        .bind(TASKS_EXCHANGE, "task.started.v1")
        .bind(TASKS_EXCHANGE, "task.succeeded.v1")
        .bind(TASKS_EXCHANGE, "task.failed.v1")
        .with_max_priority(MAX_PRIORITY)
}

/// `coordinator.agents`: every agent message.
pub fn coordinator_agents_queue() -> QueueSpec {
    QueueSpec::new(COORDINATOR_AGENTS_QUEUE).bind(AGENTS_EXCHANGE, "agent.#")
}

/// `orchestrator.results`: assignments (any agent), waits and outcomes.
pub fn orchestrator_results_queue() -> QueueSpec {
    QueueSpec::new(ORCHESTRATOR_RESULTS_QUEUE)
        .bind(TASKS_EXCHANGE, "task.assigned.v1.*")
        .bind(TASKS_EXCHANGE, "task.waiting.v1")
        .bind(TASKS_EXCHANGE, "task.started.v1")
        .bind(TASKS_EXCHANGE, "task.succeeded.v1")
        .bind(TASKS_EXCHANGE, "task.failed.v1")
}

/// `agent.<id>`: the agent's assignments and every withdrawal (an agent ignores withdrawals of
/// tasks it does not run).
pub fn agent_tasks_queue(agent_id: AgentId) -> QueueSpec {
    QueueSpec::new(agent_queue(agent_id))
        .bind(TASKS_EXCHANGE, assigned_routing_key(agent_id))
        .bind(TASKS_EXCHANGE, "task.cancelled.v1")
        .with_expires_ms(AGENT_QUEUE_EXPIRES_MS)
}

/// The exchanges every pipeline service declares.
pub fn exchanges() -> Topology {
    Topology::default().exchange(TASKS_EXCHANGE).exchange(AGENTS_EXCHANGE)
}

/// Everything the orchestrator declares (it also declares the coordinator's queue, so a task
/// submitted before the coordinator ever started is not dropped by an unbound exchange).
pub fn orchestrator_topology() -> Topology {
    exchanges().queue(orchestrator_results_queue()).queue(coordinator_tasks_queue())
}

/// Everything the coordinator declares (it also declares the orchestrator's results queue, so
/// assignments made while the orchestrator was never started are kept).
pub fn coordinator_topology() -> Topology {
    exchanges()
        .queue(coordinator_tasks_queue())
        .queue(coordinator_agents_queue())
        .queue(orchestrator_results_queue())
}

/// Everything one agent declares: the shared queues it publishes into and its own queue.
pub fn agent_topology(agent_id: AgentId) -> Topology {
    coordinator_topology().queue(agent_tasks_queue(agent_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_key_has_a_consumer() {
        let agent = AgentId::new();
        let topology = agent_topology(agent);
        let bound = |key: &str| {
            topology.queues.iter().any(|queue| {
                queue.bindings.iter().any(|(_, pattern)| crate::pipeline::tests::matches(pattern, key))
            })
        };
        for key in [
            "task.ready.v1",
            "task.cancelled.v1",
            "task.started.v1",
            "task.succeeded.v1",
            "task.failed.v1",
            "task.waiting.v1",
            "agent.heartbeat.v1",
            "agent.registered.v1",
            "agent.draining.v1",
        ] {
            assert!(bound(key), "{key} reaches no queue");
        }
        assert!(bound(&assigned_routing_key(agent)));
    }

    // AMQP topic matching: `*` is one word, `#` zero or more.
    pub(super) fn matches(pattern: &str, key: &str) -> bool {
        fn go(pattern: &[&str], key: &[&str]) -> bool {
            match (pattern.split_first(), key.split_first()) {
                (None, None) => true,
                (Some((&"#", rest)), _) => go(rest, key) || (!key.is_empty() && go(pattern, &key[1..])),
                (Some((&"*", rest)), Some((_, key_rest))) => go(rest, key_rest),
                (Some((word, rest)), Some((key_word, key_rest))) => word == key_word && go(rest, key_rest),
                _ => false,
            }
        }
        let pattern: Vec<&str> = pattern.split('.').collect();
        let key: Vec<&str> = key.split('.').collect();
        go(&pattern, &key)
    }
}
