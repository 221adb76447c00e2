//! Agents as the coordinator sees them: what they can run, how many slots they have and how many
//! the coordinator has filled, and whether they are alive.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use sutazai_types::{AgentId, AgentStatus};

use crate::domain::task::Capabilities;

/// A registered agent worker profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// The agent.
    pub id: AgentId,
    /// Its profile name, e.g. `coder`.
    pub name: String,
    /// What it can run.
    pub capabilities: Capabilities,
    /// Tasks it runs at once.
    pub slots: u32,
    /// Whether it takes work.
    pub status: AgentStatus,
    /// Tasks running according to its last heartbeat. Slots are counted from the coordinator's
    /// own assignments, which a heartbeat in flight cannot contradict; only what the agent runs
    /// beyond them counts as well (see `untracked`).
    pub running: u32,
    /// When it was last heard from (registration or heartbeat), by the coordinator's clock.
    pub last_heartbeat: DateTime<Utc>,
    /// The runtime version it reported.
    pub version: String,
    /// Attempts it finished with a result.
    pub tasks_succeeded: u64,
    /// Attempts it finished with an error.
    pub tasks_failed: u64,
    /// When it first registered.
    pub registered_at: DateTime<Utc>,
    /// Tasks the coordinator has assigned to it and not seen finish.
    pub active: u32,
    /// It is marked offline when nothing is heard from it by then.
    pub silent_deadline: DateTime<Utc>,
    /// Attempts it runs that the coordinator has not assigned to it: its last heartbeat's
    /// `running` beyond `active`. These are attempts taken back from it while it was silent,
    /// which it still runs once its heartbeats resume; they fill slots until it reports them
    /// finished (or a heartbeat shows them gone), so it is not given more than it can run.
    pub untracked: u32,
}

impl Agent {
    /// Slots filled neither by an assignment nor by an attempt it runs without one.
    pub fn free_slots(&self) -> u32 {
        self.slots.saturating_sub(self.active.saturating_add(self.untracked))
    }

    /// Records the `running` count of a heartbeat: what it runs beyond its assignments is
    /// untracked. (A heartbeat sent before an assignment reached the agent reports less than
    /// `active`, which changes nothing.)
    pub fn report_running(&mut self, running: u32) {
        self.running = running;
        self.untracked = running.saturating_sub(self.active);
    }

    /// It reported the outcome of an attempt it no longer holds (taken back from it): if that
    /// attempt filled an untracked slot, the slot is free. Returns whether one was.
    pub fn finished_untracked(&mut self) -> bool {
        if self.untracked == 0 {
            return false;
        }
        self.untracked -= 1;
        true
    }

    /// Whether new tasks may go to it (draining and offline agents take none).
    pub fn takes_tasks(&self) -> bool {
        self.status == AgentStatus::Online
    }

    /// Whether it has every capability in `required`.
    pub fn can_run(&self, required: &Capabilities) -> bool {
        required.is_subset_of(&self.capabilities)
    }

    /// Whether a task needing `required` may be assigned to it now.
    pub fn is_eligible(&self, required: &Capabilities) -> bool {
        self.takes_tasks() && self.free_slots() > 0 && self.can_run(required)
    }

    /// Utilisation from its last heartbeat, 0.0 ..= 1.0.
    pub fn reported_load(&self) -> f64 {
        if self.slots == 0 { 0.0 } else { (f64::from(self.running) / f64::from(self.slots)).min(1.0) }
    }

    /// Compares `active / slots` exactly (no floating point: two agents at 1/3 and 2/6 tie).
    pub fn compare_assigned_load(&self, other: &Agent) -> Ordering {
        let own = u64::from(self.active) * u64::from(other.slots.max(1));
        let theirs = u64::from(other.active) * u64::from(self.slots.max(1));
        own.cmp(&theirs)
    }
}

/// Which agents a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// Only agents in this status.
    pub status: Option<AgentStatus>,
    /// Only agents with this capability.
    pub capability: Option<String>,
}

impl AgentFilter {
    /// Whether `agent` passes.
    pub fn matches(&self, agent: &Agent) -> bool {
        self.status.is_none_or(|status| agent.status == status)
            && self.capability.as_deref().is_none_or(|capability| agent.capabilities.contains(capability))
    }
}

/// Items a page holds when the request says 0.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Most items a page may hold.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentPage {
    /// The agents on the page, by name then id.
    pub agents: Vec<Agent>,
    /// Agents matching the filter in total.
    pub total: u64,
    /// The limit applied.
    pub limit: u32,
}

/// The page of `agents` passing `filter`, ordered by name then id. `limit` 0 means the default;
/// the caller has checked it is at most [`MAX_PAGE_LIMIT`].
pub fn agent_page<'a>(
    agents: impl IntoIterator<Item = &'a Agent>,
    filter: &AgentFilter,
    skip: u32,
    limit: u32,
) -> AgentPage {
    let limit = if limit == 0 { DEFAULT_PAGE_LIMIT } else { limit };
    let mut matching: Vec<&Agent> = agents.into_iter().filter(|agent| filter.matches(agent)).collect();
    matching.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
    let total = matching.len() as u64;
    let page = matching.into_iter().skip(skip as usize).take(limit as usize).cloned().collect::<Vec<Agent>>();
    AgentPage { agents: page, total, limit }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An online agent with `slots` slots, registered now.
    pub(crate) fn agent(id: u128, capabilities: &[&str], slots: u32) -> Agent {
        let now = Utc::now();
        Agent {
            id: AgentId(uuid::Uuid::from_u128(id)),
            name: format!("agent-{id}"),
            capabilities: Capabilities::new(capabilities),
            slots,
            status: AgentStatus::Online,
            running: 0,
            last_heartbeat: now,
            version: "1".to_owned(),
            tasks_succeeded: 0,
            tasks_failed: 0,
            registered_at: now,
            active: 0,
            silent_deadline: now + chrono::Duration::seconds(15),
            untracked: 0,
        }
    }

    #[test]
    fn eligibility() {
        let mut worker = agent(1, &["gpu", "python"], 2);
        assert!(worker.is_eligible(&Capabilities::new(["gpu"])));
        assert!(!worker.is_eligible(&Capabilities::new(["rust"])));
        worker.active = 2;
        assert!(!worker.is_eligible(&Capabilities::default()));
        worker.active = 1;
        worker.status = AgentStatus::Draining;
        assert!(!worker.is_eligible(&Capabilities::default()));
    }

    #[test]
    fn attempts_run_without_an_assignment_fill_slots() {
        let mut worker = agent(1, &[], 3);
        worker.active = 1;
        // Back from a silence with the two attempts taken from it still running.
        worker.report_running(3);
        assert_eq!((worker.untracked, worker.free_slots()), (2, 0));
        assert!(worker.finished_untracked());
        assert_eq!(worker.free_slots(), 1);
        // A heartbeat that has not seen the latest assignment yet reports fewer than assigned.
        worker.active = 3;
        worker.report_running(1);
        assert_eq!((worker.untracked, worker.free_slots()), (0, 0));
        assert!(!worker.finished_untracked());
    }

    #[test]
    fn load_compares_exactly() {
        let mut third = agent(1, &[], 3);
        third.active = 1;
        let mut two_sixths = agent(2, &[], 6);
        two_sixths.active = 2;
        assert_eq!(third.compare_assigned_load(&two_sixths), Ordering::Equal);
        two_sixths.active = 1;
        assert_eq!(third.compare_assigned_load(&two_sixths), Ordering::Greater);
    }

    #[test]
    fn pages_by_name_then_id() {
        let mut agents = vec![agent(3, &["a"], 1), agent(1, &["b"], 1), agent(2, &["a"], 1)];
        agents[0].name = "coder".to_owned();
        agents[1].name = "coder".to_owned();
        agents[2].name = "alpha".to_owned();
        agents[1].status = AgentStatus::Offline;
        let page = agent_page(&agents, &AgentFilter::default(), 0, 0);
        let ids: Vec<AgentId> = page.agents.iter().map(|agent| agent.id).collect();
        assert_eq!(ids, [agents[2].id, agents[1].id, agents[0].id]);
        assert_eq!((page.total, page.limit), (3, DEFAULT_PAGE_LIMIT));
        let page = agent_page(&agents, &AgentFilter::default(), 1, 1);
        assert_eq!(page.agents[0].id, agents[1].id);
        assert_eq!(page.total, 3);
        let filter = AgentFilter { status: Some(AgentStatus::Online), capability: Some("a".to_owned()) };
        let page = agent_page(&agents, &filter, 0, 10);
        assert_eq!(page.agents.len(), 2);
        let filter = AgentFilter { status: Some(AgentStatus::Offline), capability: None };
        assert_eq!(agent_page(&agents, &filter, 0, 10).total, 1);
    }
}
