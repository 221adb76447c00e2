//! Why a pending task waits, in the words the orchestrator shows as the task's `queued_reason`.

use crate::domain::agent::Agent;
use crate::domain::task::Capabilities;

/// The reason when every online agent that could run the task has all its slots filled.
pub const ALL_CAPABLE_AGENTS_BUSY: &str = "every capable agent is busy";
/// The reason when no agent ever registered (or every one was forgotten).
pub const NO_AGENTS_REGISTERED: &str = "no agents are registered";
/// The reason for a task with no requirements when no agent is online.
pub const NO_AGENT_ONLINE: &str = "no agent is online";

/// Why a task needing `required` whose owner has `owner_active` tasks assigned cannot be placed,
/// given that the last dispatch pass left it pending.
pub fn waiting_reason<'a>(
    agents: impl IntoIterator<Item = &'a Agent>,
    required: &Capabilities,
    owner_active: u32,
    owner_cap: Option<u32>,
) -> String {
    let mut registered = false;
    let mut capable_online = false;
    for agent in agents {
        registered = true;
        if agent.takes_tasks() && agent.can_run(required) {
            capable_online = true;
            break;
        }
    }
    if !registered {
        return NO_AGENTS_REGISTERED.to_owned();
    }
    if !capable_online {
        if required.is_empty() {
            return NO_AGENT_ONLINE.to_owned();
        }
        return format!("no online agent has capabilities {required}");
    }
    if let Some(cap) = owner_cap
        && owner_active >= cap
    {
        return format!("the owner already has {owner_active} tasks assigned (max_active_per_owner {cap})");
    }
    ALL_CAPABLE_AGENTS_BUSY.to_owned()
}

#[cfg(test)]
mod tests {
    use sutazai_types::AgentStatus;

    use super::*;
    use crate::domain::agent::tests::agent;

    #[test]
    fn reasons_in_order_of_precedence() {
        let gpu = Capabilities::new(["gpu", "cuda"]);
        assert_eq!(waiting_reason(&[], &gpu, 0, None), NO_AGENTS_REGISTERED);
        let mut agents = vec![agent(1, &["python"], 1)];
        assert_eq!(waiting_reason(&agents, &gpu, 0, None), "no online agent has capabilities [cuda, gpu]");
        agents[0].status = AgentStatus::Offline;
        assert_eq!(waiting_reason(&agents, &Capabilities::default(), 0, None), NO_AGENT_ONLINE);
        agents.push(agent(2, &["gpu", "cuda"], 1));
        agents[1].active = 1;
        assert_eq!(waiting_reason(&agents, &gpu, 0, None), ALL_CAPABLE_AGENTS_BUSY);
        assert_eq!(
            waiting_reason(&agents, &gpu, 2, Some(2)),
            "the owner already has 2 tasks assigned (max_active_per_owner 2)"
        );
        agents[1].status = AgentStatus::Draining;
        assert_eq!(waiting_reason(&agents, &gpu, 0, None), "no online agent has capabilities [cuda, gpu]");
    }
}
