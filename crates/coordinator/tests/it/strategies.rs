//! The strategies pick agents as documented.

use sutazai_coordinator::domain::strategy::StrategyKind;
use sutazai_types::AgentId;

use crate::{Backing, FakeAgent, TestCoordinator, settings, task};

#[tokio::test]
async fn round_robin_over_three_agents_gives_one_each() {
    let backing = Backing::new().await;
    let mut round_robin = settings();
    round_robin.strategy = StrategyKind::RoundRobin;
    let coordinator = TestCoordinator::start(&backing, round_robin).await;
    let mut agents = Vec::new();
    for name in ["one", "two", "three"] {
        agents.push(FakeAgent::start(&backing, name, &[], 3).await);
    }
    coordinator.wait_online(&backing.service_token(), 3).await;
    for _ in 0..3 {
        backing.ready(&task(5, "alice", &[])).await;
    }
    for agent in &mut agents {
        agent.expect_assignment().await;
    }
    for agent in &mut agents {
        agent.expect_no_assignment(std::time::Duration::from_millis(100)).await;
    }
    drop(agents);
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn least_loaded_fills_by_share_of_slots() {
    let backing = Backing::new().await;
    let mut least_loaded = settings();
    least_loaded.strategy = StrategyKind::LeastLoaded;
    let coordinator = TestCoordinator::start(&backing, least_loaded).await;
    // Ids are time-ordered: `small` sorts first and wins ties.
    let mut small = FakeAgent::start(&backing, "small", &[], 2).await;
    let mut large = FakeAgent::start(&backing, "large", &[], 4).await;
    coordinator.wait_online(&backing.service_token(), 2).await;
    let mut picked: Vec<AgentId> = Vec::new();
    for _ in 0..4 {
        backing.ready(&task(5, "alice", &[])).await;
        // One at a time, so each pick sees the load the previous one left.
        let assigned = tokio::select! {
            assigned = small.expect_assignment() => assigned,
            assigned = large.expect_assignment() => assigned,
        };
        picked.push(assigned.agent_id);
    }
    // 0/2 = 0/4 (tie: small), then 1/2 > 0/4, 1/2 > 1/4, 1/2 = 2/4 (tie: small).
    assert_eq!(picked, [small.id, large.id, large.id, small.id]);
    drop((small, large));
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn capability_match_never_picks_an_agent_lacking_the_capability() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let mut generalist = FakeAgent::start(&backing, "generalist", &["gpu", "python", "rust"], 4).await;
    let mut python = FakeAgent::start(&backing, "python", &["python"], 4).await;
    coordinator.wait_online(&backing.service_token(), 2).await;
    for _ in 0..3 {
        let gpu_task = task(5, "alice", &["gpu"]);
        backing.ready(&gpu_task).await;
        assert_eq!(generalist.expect_assignment().await.task_id, gpu_task.task_id);
    }
    // The closest fit keeps the generalist free.
    let python_task = task(5, "alice", &["python"]);
    backing.ready(&python_task).await;
    assert_eq!(python.expect_assignment().await.task_id, python_task.task_id);
    python.expect_no_assignment(std::time::Duration::from_millis(100)).await;
    drop((generalist, python));
    coordinator.stop().await;
    backing.cleanup().await;
}
