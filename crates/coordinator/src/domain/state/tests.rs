//! The state machine, driven step by step with a fake clock.

use chrono::{DateTime, Duration, Utc};
use sutazai_types::messages::{AgentHeartbeat, AgentRegistered, TaskMessage, TaskReady, TaskStarted};
use sutazai_types::{AgentId, AgentStatus, Priority, TaskId};

use super::*;
use crate::domain::changes::{Changes, ReassignCause};
use crate::domain::reasons::{ALL_CAPABLE_AGENTS_BUSY, NO_AGENTS_REGISTERED};
use crate::domain::state::messages::{NO_AGENT, Outcome};
use crate::domain::strategy::StrategyKind;

fn origin() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap()
}

fn limits() -> Limits {
    Limits {
        offline_after: Duration::milliseconds(500),
        pending_capacity: 100,
        forget_offline_after: Duration::hours(24),
    }
}

fn strategy(kind: StrategyKind) -> DispatchStrategy {
    DispatchStrategy { kind, owner_fairness: true, max_active_per_owner: 0, assignment_lease_s: 30 }
}

fn task_id(value: u128) -> TaskId {
    TaskId(uuid::Uuid::from_u128(value))
}

fn agent_id(value: u128) -> AgentId {
    AgentId(uuid::Uuid::from_u128(value))
}

fn ready(id: u128, priority: u8, owner: &str, arrival_ms: i64, capabilities: &[&str]) -> TaskReady {
    TaskReady {
        task_id: task_id(id),
        task_type: "noop".to_owned(),
        priority: Priority::try_from(priority).unwrap(),
        capabilities: capabilities.iter().map(|name| (*name).to_owned()).collect(),
        owner: owner.to_owned(),
        attempt: 1,
        payload: serde_json::json!({"n": id}),
        deadline: origin() + Duration::hours(1),
        enqueued_at: origin() + Duration::milliseconds(arrival_ms),
    }
}

fn registered(id: u128, capabilities: &[&str], slots: u32) -> AgentRegistered {
    AgentRegistered {
        agent_id: agent_id(id),
        name: format!("agent-{id}"),
        capabilities: capabilities.iter().map(|name| (*name).to_owned()).collect(),
        slots,
        version: "1".to_owned(),
    }
}

/// A state with `kind`, stepped with an explicit clock.
struct Harness {
    state: DispatchState,
    now: DateTime<Utc>,
}

impl Harness {
    fn new(kind: StrategyKind) -> Self {
        Self { state: DispatchState::new(limits(), strategy(kind), origin()), now: origin() }
    }

    /// Runs one step the way the dispatcher does: apply, expire, dispatch.
    fn step(&mut self, apply: impl FnOnce(&mut DispatchState, DateTime<Utc>, &mut Changes)) -> Changes {
        let mut changes = Changes::default();
        apply(&mut self.state, self.now, &mut changes);
        self.state.expire(self.now, &mut changes);
        self.state.dispatch(self.now, &mut changes);
        changes
    }

    fn ready(&mut self, message: TaskReady) -> Changes {
        self.step(|state, now, changes| state.on_ready(message, None, now, changes))
    }

    fn register(&mut self, message: AgentRegistered) -> Changes {
        self.step(|state, now, changes| state.on_registered(message, now, changes))
    }

    fn heartbeat(&mut self, id: u128) -> Changes {
        let heartbeat = AgentHeartbeat { agent_id: agent_id(id), running: 0, slots: 1, sent_at: self.now };
        self.step(|state, now, changes| {
            state.on_heartbeat(&heartbeat, now, changes);
        })
    }

    fn finish(&mut self, id: u128, attempt: u32, agent: u128) -> Changes {
        self.step(|state, _, changes| {
            state.on_finished(task_id(id), attempt, agent_id(agent), Outcome::Succeeded, changes);
        })
    }

    fn advance(&mut self, by: Duration) -> Changes {
        self.now += by;
        self.step(|_, _, _| {})
    }
}

fn assigned(changes: &Changes) -> Vec<(u128, u32, u128, String)> {
    changes
        .messages
        .iter()
        .filter_map(|message| match message {
            TaskMessage::Assigned(assigned) => Some((
                assigned.task_id.0.as_u128(),
                assigned.attempt,
                assigned.agent_id.0.as_u128(),
                assigned.reason.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn waiting(changes: &Changes) -> Vec<(u128, String)> {
    changes
        .messages
        .iter()
        .filter_map(|message| match message {
            TaskMessage::Waiting(waiting) => Some((waiting.task_id.0.as_u128(), waiting.reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn priorities_run_highest_first_on_one_slot() {
    let mut harness = Harness::new(StrategyKind::CapabilityMatch);
    for (id, priority) in [(1, 1), (2, 3), (3, 2)] {
        let changes = harness.ready(ready(id, priority, "a", i64::try_from(id).unwrap(), &[]));
        assert_eq!(waiting(&changes), [(id, NO_AGENTS_REGISTERED.to_owned())]);
    }
    let changes = harness.register(registered(10, &[], 1));
    assert_eq!(assigned(&changes), [(2, 1, 10, String::new())]);
    // The others first waited for an agent to register, now for this one to be free.
    let busy = ALL_CAPABLE_AGENTS_BUSY.to_owned();
    assert_eq!(waiting(&changes), [(3, busy.clone()), (1, busy)]);
    assert_eq!(assigned(&harness.finish(2, 1, 10)), [(3, 1, 10, String::new())]);
    assert_eq!(assigned(&harness.finish(3, 1, 10)), [(1, 1, 10, String::new())]);
    assert!(assigned(&harness.finish(1, 1, 10)).is_empty());
    assert_eq!(harness.state.agent(agent_id(10)).unwrap().tasks_succeeded, 3);
}

#[test]
fn waiting_reasons_are_published_when_they_change() {
    let mut harness = Harness::new(StrategyKind::CapabilityMatch);
    harness.register(registered(10, &["python"], 1));
    let changes = harness.ready(ready(1, 5, "a", 0, &["gpu"]));
    assert_eq!(waiting(&changes), [(1, "no online agent has capabilities [gpu]".to_owned())]);
    // Nothing relevant changed: no new Waiting.
    assert!(waiting(&harness.heartbeat(10)).is_empty());
    let changes = harness.register(registered(11, &["gpu"], 1));
    assert_eq!(assigned(&changes), [(1, 1, 11, String::new())]);
    // Queued behind a busy agent from the start: an ordinary backlog, not announced.
    let changes = harness.ready(ready(2, 5, "a", 1, &["gpu"]));
    assert!(waiting(&changes).is_empty());
    // Its reason changes when the only capable agent goes silent, and that is announced.
    let changes = harness.advance(Duration::hours(1));
    assert!(
        waiting(&changes).contains(&(2, "no online agent has capabilities [gpu]".to_owned())),
        "{:?}",
        waiting(&changes)
    );
}

#[test]
fn a_silent_agent_goes_offline_and_its_tasks_move_on() {
    let mut harness = Harness::new(StrategyKind::LeastLoaded);
    harness.register(registered(10, &[], 1));
    assert_eq!(assigned(&harness.ready(ready(1, 5, "a", 0, &[]))), [(1, 1, 10, String::new())]);
    harness.register(registered(11, &[], 1));
    harness.now += Duration::milliseconds(300);
    harness.heartbeat(11);
    harness.now += Duration::milliseconds(300);
    let changes = harness.heartbeat(11);
    assert_eq!(harness.state.agent(agent_id(10)).unwrap().status, AgentStatus::Offline);
    let reason = format!("agent {} went offline", agent_id(10));
    assert_eq!(assigned(&changes), [(1, 2, 11, reason)]);
    assert_eq!(changes.reassignments, [ReassignCause::AgentOffline]);
    // A late result of the first attempt changes nothing.
    assert!(!harness.finish(1, 1, 10).tasks.contains(&task_id(1)));
    assert_eq!(harness.state.seen_attempt(task_id(1)).unwrap().attempt, 2);
}

#[test]
fn a_task_with_nowhere_to_go_waits_at_its_old_place() {
    let mut harness = Harness::new(StrategyKind::CapabilityMatch);
    harness.register(registered(10, &[], 1));
    harness.ready(ready(1, 5, "a", 0, &[]));
    harness.ready(ready(2, 5, "a", 1, &[]));
    let changes = harness.advance(Duration::milliseconds(600));
    assert!(assigned(&changes).is_empty());
    assert_eq!(waiting(&changes).len(), 2, "{changes:?}");
    assert_eq!(waiting(&changes)[0].1, "no agent is online");
    let changes = harness.register(registered(11, &[], 1));
    let reason = format!("agent {} went offline", agent_id(10));
    assert_eq!(assigned(&changes), [(1, 2, 11, reason)]);
}

#[test]
fn leases_expire_unless_started() {
    let mut harness = Harness::new(StrategyKind::LeastLoaded);
    harness.state.strategy.strategy.assignment_lease_s = 1;
    harness.register(registered(10, &[], 1));
    harness.register(registered(11, &[], 1));
    let changes = harness.ready(ready(1, 5, "a", 0, &[]));
    assert_eq!(assigned(&changes)[0].2, 10);
    harness.ready(ready(2, 5, "a", 1, &[]));
    harness.step(|state, now, changes| {
        state.on_started(
            &TaskStarted { task_id: task_id(2), attempt: 1, agent_id: agent_id(11), started_at: now },
            changes,
        );
    });
    for _ in 0..3 {
        harness.now += Duration::milliseconds(400);
        let changes = harness.step(|state, now, changes| {
            for id in [10, 11] {
                let heartbeat = AgentHeartbeat { agent_id: agent_id(id), running: 0, slots: 1, sent_at: now };
                state.on_heartbeat(&heartbeat, now, changes);
            }
        });
        if !changes.reassignments.is_empty() {
            assert_eq!(changes.reassignments, [ReassignCause::LeaseExpired]);
            // Agent 10 is the only one with a free slot, so it gets the task back despite the
            // preference for another agent.
            assert_eq!(assigned(&changes), [(1, 2, 10, "assignment lease expired".to_owned())]);
            return;
        }
    }
    panic!("the lease never expired");
}

#[test]
fn cancel_frees_the_slot_and_fences_a_late_ready() {
    let mut harness = Harness::new(StrategyKind::LeastLoaded);
    harness.register(registered(10, &[], 1));
    harness.ready(ready(1, 5, "a", 0, &[]));
    harness.ready(ready(2, 5, "a", 1, &[]));
    let changes = harness.step(|state, now, changes| state.on_cancelled(task_id(1), now, changes));
    assert_eq!(assigned(&changes), [(2, 1, 10, String::new())]);
    harness.step(|state, now, changes| state.on_cancelled(task_id(3), now, changes));
    let changes = harness.ready(ready(3, 5, "a", 2, &[]));
    assert_eq!(changes.stale, 1);
    assert_eq!(harness.state.pending_len(), 0);
}

#[test]
fn a_full_queue_refuses_with_a_failed() {
    let mut harness = Harness::new(StrategyKind::LeastLoaded);
    harness.state.limits.pending_capacity = 2;
    harness.ready(ready(1, 5, "a", 0, &[]));
    harness.ready(ready(2, 5, "a", 1, &[]));
    let changes = harness.ready(ready(3, 5, "a", 2, &[]));
    assert_eq!(changes.refused, 1);
    let TaskMessage::Failed(failed) = &changes.messages[0] else { panic!("{changes:?}") };
    assert_eq!((failed.agent_id, failed.retryable), (NO_AGENT, false));
    assert_eq!(failed.error, "pending queue full (capacity 2)");
    assert_eq!(harness.state.pending_len(), 2);
}

#[test]
fn stale_and_newer_attempts() {
    let mut harness = Harness::new(StrategyKind::LeastLoaded);
    harness.ready(ready(1, 5, "a", 0, &[]));
    assert_eq!(harness.ready(ready(1, 5, "a", 0, &[])).stale, 1);
    let mut retry = ready(1, 5, "a", 10, &[]);
    retry.attempt = 2;
    assert_eq!(harness.ready(retry).stale, 0);
    assert_eq!(harness.state.pending_len(), 1);
    let TaskRow::Pending(pending) = harness.state.task(task_id(1)).unwrap() else { panic!() };
    assert_eq!(pending.attempt, 2);
}

#[test]
fn owner_cap_holds_back_only_that_owner() {
    let mut harness = Harness::new(StrategyKind::LeastLoaded);
    harness.state.strategy.strategy.max_active_per_owner = 1;
    harness.register(registered(10, &[], 4));
    harness.ready(ready(1, 5, "a", 0, &[]));
    let changes = harness.ready(ready(2, 5, "a", 1, &[]));
    assert!(assigned(&changes).is_empty());
    assert_eq!(
        waiting(&changes),
        [(2, "the owner already has 1 tasks assigned (max_active_per_owner 1)".to_owned())]
    );
    assert_eq!(assigned(&harness.ready(ready(3, 5, "b", 2, &[]))), [(3, 1, 10, String::new())]);
    assert_eq!(assigned(&harness.finish(1, 1, 10)), [(2, 1, 10, String::new())]);
}

#[test]
fn round_robin_spreads_one_each() {
    let mut harness = Harness::new(StrategyKind::RoundRobin);
    for id in [10, 11, 12] {
        harness.register(registered(id, &[], 3));
    }
    let mut agents = Vec::new();
    for id in 1..=3 {
        agents.extend(
            assigned(&harness.ready(ready(id, 5, "a", i64::try_from(id).unwrap(), &[])))
                .into_iter()
                .map(|a| a.2),
        );
    }
    assert_eq!(agents, [10, 11, 12]);
}

#[test]
fn restore_rebuilds_order_slots_and_grace() {
    let mut harness = Harness::new(StrategyKind::CapabilityMatch);
    harness.register(registered(10, &[], 1));
    for id in 1..=5 {
        harness.ready(ready(id, u8::try_from(id % 3).unwrap(), "a", i64::try_from(id).unwrap(), &[]));
    }
    let mut snapshot = Snapshot::default();
    for task_number in 1..=5 {
        match harness.state.task(task_id(task_number)).unwrap() {
            TaskRow::Pending(pending) => snapshot.tasks.push(StoredTask::Pending(pending.clone())),
            TaskRow::Assigned(assignment) => snapshot.tasks.push(StoredTask::Assigned(assignment.clone())),
        }
    }
    snapshot.agents = harness.state.agents().cloned().collect();
    // Restarted an hour later: the agent's last heartbeat is old, but it gets a grace period.
    let later = harness.now + Duration::hours(1);
    let mut restored = Harness {
        state: DispatchState::restore(limits(), strategy(StrategyKind::CapabilityMatch), snapshot, later),
        now: later,
    };
    assert_eq!(restored.state.agent(agent_id(10)).unwrap().active, 1);
    assert_eq!(restored.state.agent(agent_id(10)).unwrap().status, AgentStatus::Online);
    assert!(restored.advance(Duration::milliseconds(100)).reassignments.is_empty());
    let first = assigned(&harness.finish(2, 1, 10));
    let after = assigned(&restored.finish(2, 1, 10));
    assert_eq!(first, after);
}

#[test]
fn idle_without_agents_means_no_timer_but_housekeeping() {
    let mut harness = Harness::new(StrategyKind::CapabilityMatch);
    for id in 1..=50 {
        harness.ready(ready(id, 5, "a", i64::try_from(id).unwrap(), &[]));
    }
    assert_eq!(harness.state.next_deadline(), origin() + HOUSEKEEPING_INTERVAL);
}

#[test]
fn a_draining_agent_keeps_its_tasks_and_gets_no_new_ones() {
    let mut harness = Harness::new(StrategyKind::LeastLoaded);
    harness.register(registered(10, &[], 2));
    assert_eq!(assigned(&harness.ready(ready(1, 5, "a", 0, &[]))).len(), 1);
    harness.step(|state, now, changes| {
        assert!(state.on_draining(agent_id(10), now, changes));
    });
    let changes = harness.ready(ready(2, 5, "a", 1, &[]));
    assert!(assigned(&changes).is_empty());
    assert_eq!(waiting(&changes), [(2, "no agent is online".to_owned())]);
    // Heartbeats keep it alive but draining; its task finishes normally.
    harness.now += Duration::milliseconds(300);
    harness.heartbeat(10);
    assert_eq!(harness.state.agent(agent_id(10)).unwrap().status, AgentStatus::Draining);
    assert!(harness.finish(1, 1, 10).tasks.contains(&task_id(1)));
    assert_eq!(harness.state.assigned_len(), 0);
}

#[test]
fn setting_the_strategy_takes_effect_for_the_next_pass() {
    let mut harness = Harness::new(StrategyKind::CapabilityMatch);
    for id in 1..=3 {
        harness.ready(ready(id, 5, "flood", i64::try_from(id).unwrap(), &[]));
    }
    harness.ready(ready(100, 5, "other", 100, &[]));
    let strict = StoredStrategy {
        strategy: strategy(StrategyKind::Priority),
        updated_at: Some(harness.now),
        updated_by: "admin".to_owned(),
    };
    let changes = harness.step(|state, _, changes| state.set_strategy(strict.clone(), changes));
    assert!(changes.strategy);
    assert_eq!(harness.state.strategy(), &strict);
    // Strict priority ignores owner turns: arrival order (fair order would be 1, 100, 2, 3).
    let mut order = vec![assigned(&harness.register(registered(10, &[], 1)))[0].0];
    while let Some(&last) = order.last() {
        let next = assigned(&harness.finish(last, 1, 10));
        let Some(&(id, ..)) = next.first() else { break };
        order.push(id);
    }
    assert_eq!(order, [1, 2, 3, 100]);
}

#[test]
fn an_agent_back_from_silence_is_not_given_more_than_it_runs() {
    let mut harness = Harness::new(StrategyKind::CapabilityMatch);
    harness.register(registered(10, &[], 2));
    harness.ready(ready(1, 5, "a", 0, &[]));
    let changes = harness.ready(ready(2, 5, "a", 1, &[]));
    assert_eq!(harness.state.agent(agent_id(10)).unwrap().active, 2, "{changes:?}");
    // Silent past `offline_after`: both tasks are taken back and wait for attempt 2.
    let changes = harness.advance(Duration::milliseconds(600));
    assert_eq!(changes.reassignments.len(), 2);
    assert_eq!(harness.state.pending_len(), 2);
    // Its heartbeats resume: it still runs both old attempts, so it has no free slot.
    let heartbeat = AgentHeartbeat { agent_id: agent_id(10), running: 2, slots: 2, sent_at: harness.now };
    let changes = harness.step(|state, now, changes| {
        state.on_heartbeat(&heartbeat, now, changes);
    });
    assert_eq!(harness.state.agent(agent_id(10)).unwrap().status, AgentStatus::Online);
    assert!(assigned(&changes).is_empty(), "{changes:?}");
    // It reports one old attempt finished (ignored as a result): that slot is free again.
    let changes = harness.finish(1, 1, 10);
    assert_eq!(assigned(&changes).len(), 1, "{changes:?}");
    assert_eq!(harness.state.agent(agent_id(10)).unwrap().free_slots(), 0);
}

#[test]
fn an_assignment_without_its_agent_row_is_held_by_a_logged_stand_in() {
    let logs = sutazai_testkit::captured_logs("warn");
    let mut harness = Harness::new(StrategyKind::CapabilityMatch);
    harness.register(registered(10, &[], 1));
    harness.ready(ready(1, 5, "a", 0, &[]));
    let TaskRow::Assigned(assignment) = harness.state.task(task_id(1)).unwrap() else { panic!() };
    let snapshot = Snapshot { tasks: vec![StoredTask::Assigned(assignment.clone())], ..Snapshot::default() };
    let restored =
        DispatchState::restore(limits(), strategy(StrategyKind::CapabilityMatch), snapshot, harness.now);
    let stand_in = restored.agent(agent_id(10)).unwrap();
    assert_eq!((stand_in.name.as_str(), stand_in.slots, stand_in.active), ("unknown", 0, 1));
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs.lines().any(|line| line.contains("WARN")
            && line.contains("agent with no stored row")
            && line.contains(&agent_id(10).to_string())),
        "{logs}"
    );
}
