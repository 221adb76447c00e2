//! Dispatch order: priority, arrival within a priority, owners in turn, the owner cap.

use std::time::Duration;

use sutazai_types::messages::TaskMessage;

use crate::{Backing, FakeAgent, TestCoordinator, settings, task};

#[tokio::test]
async fn priorities_one_three_two_run_three_two_one() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.service_token();
    let tasks = [task(1, "alice", &[]), task(3, "alice", &[]), task(2, "alice", &[])];
    for ready in &tasks {
        backing.ready(ready).await;
    }
    coordinator.wait_pending(&token, 3).await;
    let mut agent = FakeAgent::start(&backing, "worker", &[], 1).await;
    for expected in [&tasks[1], &tasks[2], &tasks[0]] {
        let assigned = agent.expect_assignment().await;
        assert_eq!((assigned.task_id, assigned.attempt), (expected.task_id, 1));
        agent.expect_no_assignment(Duration::from_millis(50)).await;
        agent.succeeded(&assigned).await;
    }
    agent.expect_no_assignment(Duration::from_millis(200)).await;
    drop(agent);
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn equal_priorities_run_in_arrival_order() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.service_token();
    let tasks: Vec<_> = (0..5).map(|_| task(4, "alice", &[])).collect();
    // Published in reverse: the order is the tasks' enqueued_at, not the delivery order.
    for ready in tasks.iter().rev() {
        backing.ready(ready).await;
    }
    coordinator.wait_pending(&token, 5).await;
    let mut agent = FakeAgent::start(&backing, "worker", &[], 1).await;
    for expected in &tasks {
        let assigned = agent.expect_assignment().await;
        assert_eq!(assigned.task_id, expected.task_id);
        agent.succeeded(&assigned).await;
    }
    drop(agent);
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn one_owners_flood_does_not_starve_another() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.service_token();
    let flood: Vec<_> = (0..20).map(|_| task(5, "flooder", &[])).collect();
    for ready in &flood {
        backing.ready(ready).await;
    }
    let small: Vec<_> = (0..2).map(|_| task(5, "bob", &[])).collect();
    for ready in &small {
        backing.ready(ready).await;
    }
    coordinator.wait_pending(&token, 22).await;
    let mut agent = FakeAgent::start(&backing, "worker", &[], 1).await;
    let mut owners = Vec::new();
    for _ in 0..4 {
        let assigned = agent.expect_assignment().await;
        owners.push(assigned.owner.clone());
        agent.succeeded(&assigned).await;
    }
    // Owners alternate: bob's two tasks are among the first four, not after the twenty.
    assert_eq!(owners, ["flooder", "bob", "flooder", "bob"]);
    drop(agent);
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn an_owner_at_its_cap_waits_while_others_run() {
    let backing = Backing::new().await;
    let mut capped = settings();
    capped.max_active_per_owner = 1;
    let coordinator = TestCoordinator::start(&backing, capped).await;
    let mut results = backing.results().await;
    let mut agent = FakeAgent::start(&backing, "worker", &[], 3).await;
    coordinator.wait_online(&backing.service_token(), 1).await;
    let first = task(5, "alice", &[]);
    let second = task(5, "alice", &[]);
    let other = task(5, "bob", &[]);
    backing.ready(&first).await;
    let first_assigned = agent.expect_assignment().await;
    assert_eq!(first_assigned.task_id, first.task_id);
    backing.ready(&second).await;
    let reason = results
        .expect("waiting", |message| match message {
            TaskMessage::Waiting(waiting) if waiting.task_id == second.task_id => Some(waiting.reason),
            _ => None,
        })
        .await;
    assert_eq!(reason, "the owner already has 1 tasks assigned (max_active_per_owner 1)");
    backing.ready(&other).await;
    let assigned = agent.expect_assignment().await;
    assert_eq!(assigned.task_id, other.task_id);
    agent.expect_no_assignment(Duration::from_millis(100)).await;
    agent.succeeded(&first_assigned).await;
    assert_eq!(agent.expect_assignment().await.task_id, second.task_id);
    drop(agent);
    coordinator.stop().await;
    backing.cleanup().await;
}
