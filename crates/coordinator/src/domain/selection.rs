//! Picking the agent for one task: the strategies, as pure functions of the agents' state.

use std::cmp::Ordering;

use sutazai_types::AgentId;

use crate::domain::agent::Agent;
use crate::domain::strategy::StrategyKind;
use crate::domain::task::Capabilities;

/// What a pick needs beyond the agents.
#[derive(Debug, Clone, Copy)]
pub struct Pick<'a> {
    /// The strategy.
    pub kind: StrategyKind,
    /// What the task needs.
    pub required: &'a Capabilities,
    /// An agent to use only when no other is eligible (the one that just lost the task).
    pub avoid: Option<AgentId>,
    /// The round-robin cursor: the agent picked last.
    pub cursor: Option<AgentId>,
}

/// The agent to assign to among `agents` (ordered by id), or `None` when none is eligible.
pub fn select_agent<'a>(agents: impl IntoIterator<Item = &'a Agent>, pick: Pick<'_>) -> Option<AgentId> {
    let eligible: Vec<&Agent> = agents.into_iter().filter(|agent| agent.is_eligible(pick.required)).collect();
    debug_assert!(eligible.windows(2).all(|pair| pair[0].id < pair[1].id), "agents must be ordered by id");
    let has_other = eligible.iter().any(|agent| Some(agent.id) != pick.avoid);
    let candidates = eligible.into_iter().filter(|agent| !has_other || Some(agent.id) != pick.avoid);
    match pick.kind {
        StrategyKind::CapabilityMatch => candidates
            .min_by(|left, right| {
                extra_capabilities(left, pick.required)
                    .cmp(&extra_capabilities(right, pick.required))
                    .then_with(|| left.compare_assigned_load(right))
                    .then(left.id.cmp(&right.id))
            })
            .map(|agent| agent.id),
        StrategyKind::LeastLoaded | StrategyKind::Priority => candidates
            .min_by(|left, right| left.compare_assigned_load(right).then(left.id.cmp(&right.id)))
            .map(|agent| agent.id),
        StrategyKind::RoundRobin => next_in_turn(candidates, pick.cursor),
    }
}

/// Capabilities an agent has that the task does not need: the cost of using a generalist.
fn extra_capabilities(agent: &Agent, required: &Capabilities) -> usize {
    agent.capabilities.len().saturating_sub(required.len())
}

/// The first candidate after `cursor` in id order, wrapping around.
fn next_in_turn<'a>(candidates: impl Iterator<Item = &'a Agent>, cursor: Option<AgentId>) -> Option<AgentId> {
    let mut first = None;
    for agent in candidates {
        if first.is_none() {
            first = Some(agent.id);
        }
        if cursor.is_none_or(|cursor| agent.id.cmp(&cursor) == Ordering::Greater) {
            return Some(agent.id);
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::agent::tests::agent;

    fn pick(kind: StrategyKind, required: &Capabilities) -> Pick<'_> {
        Pick { kind, required, avoid: None, cursor: None }
    }

    fn id(value: u128) -> AgentId {
        AgentId(uuid::Uuid::from_u128(value))
    }

    #[test]
    fn capability_match_prefers_the_closest_fit_then_the_least_loaded() {
        let mut agents =
            vec![agent(1, &["gpu", "python", "rust"], 4), agent(2, &["gpu"], 1), agent(3, &["gpu"], 1)];
        let gpu = Capabilities::new(["gpu"]);
        assert_eq!(select_agent(&agents, pick(StrategyKind::CapabilityMatch, &gpu)), Some(id(2)));
        agents[1].active = 1;
        assert_eq!(select_agent(&agents, pick(StrategyKind::CapabilityMatch, &gpu)), Some(id(3)));
        agents[2].active = 1;
        // Only the generalist is left.
        assert_eq!(select_agent(&agents, pick(StrategyKind::CapabilityMatch, &gpu)), Some(id(1)));
        let rust = Capabilities::new(["rust"]);
        assert_eq!(select_agent(&agents[1..], pick(StrategyKind::CapabilityMatch, &rust)), None);
    }

    #[test]
    fn least_loaded_uses_assigned_share_then_id() {
        let mut agents = vec![agent(1, &[], 2), agent(2, &[], 4), agent(3, &[], 4)];
        agents[0].active = 1;
        agents[1].active = 1;
        let none = Capabilities::default();
        assert_eq!(select_agent(&agents, pick(StrategyKind::LeastLoaded, &none)), Some(id(3)));
        agents[2].active = 1;
        assert_eq!(select_agent(&agents, pick(StrategyKind::LeastLoaded, &none)), Some(id(2)));
    }

    #[test]
    fn round_robin_rotates_over_eligible_agents() {
        let mut agents = vec![agent(1, &[], 5), agent(2, &[], 5), agent(3, &["gpu"], 5)];
        let none = Capabilities::default();
        let mut cursor = None;
        let mut picked = Vec::new();
        for _ in 0..6 {
            let next =
                select_agent(&agents, Pick { cursor, ..pick(StrategyKind::RoundRobin, &none) }).unwrap();
            picked.push(next);
            cursor = Some(next);
        }
        assert_eq!(picked, [id(1), id(2), id(3), id(1), id(2), id(3)]);
        // A full agent is skipped without breaking the rotation.
        agents[1].active = 5;
        let next =
            select_agent(&agents, Pick { cursor: Some(id(1)), ..pick(StrategyKind::RoundRobin, &none) });
        assert_eq!(next, Some(id(3)));
    }

    #[test]
    fn the_previous_agent_is_used_only_when_alone() {
        let agents = vec![agent(1, &[], 1), agent(2, &[], 1)];
        let none = Capabilities::default();
        let avoid_first = Pick { avoid: Some(id(1)), ..pick(StrategyKind::LeastLoaded, &none) };
        assert_eq!(select_agent(&agents, avoid_first), Some(id(2)));
        assert_eq!(select_agent(&agents[..1], avoid_first), Some(id(1)));
    }
}
