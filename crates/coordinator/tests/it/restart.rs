//! A restart keeps every pending task, in the same order, and assigns each exactly once.

use std::collections::HashSet;
use std::time::Duration;

use sutazai_types::TaskId;

use crate::{Backing, FakeAgent, TestCoordinator, settings, task};

#[tokio::test]
async fn a_restarted_coordinator_assigns_100_pending_tasks_once_each_in_order() {
    let backing = Backing::new().await;
    let token = backing.service_token();
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let mut tasks = Vec::new();
    for index in 0..100u8 {
        // Mixed priorities, arriving interleaved; the owner is one, so the order is exactly
        // priority then arrival.
        let ready = task([2, 7, 4, 9, 0][usize::from(index % 5)], "alice", &[]);
        backing.ready(&ready).await;
        tasks.push(ready);
    }
    coordinator.wait_pending(&token, 100).await;
    coordinator.stop().await;

    let restarted = TestCoordinator::start(&backing, settings()).await;
    assert_eq!(restarted.pending_stats(&token).await.pending, 100);
    let mut agent = FakeAgent::start(&backing, "worker", &[], 100).await;
    let mut assigned_order: Vec<TaskId> = Vec::new();
    for _ in 0..100 {
        let assigned = agent.expect_assignment().await;
        assert_eq!(assigned.attempt, 1);
        assigned_order.push(assigned.task_id);
    }
    agent.expect_no_assignment(Duration::from_millis(300)).await;
    let unique: HashSet<TaskId> = assigned_order.iter().copied().collect();
    assert_eq!(unique.len(), 100, "a task was assigned twice");
    let mut expected = tasks.clone();
    expected.sort_by(|left, right| {
        right
            .priority
            .cmp(&left.priority)
            .then(left.enqueued_at.cmp(&right.enqueued_at))
            .then(left.task_id.cmp(&right.task_id))
    });
    let expected: Vec<TaskId> = expected.iter().map(|ready| ready.task_id).collect();
    assert_eq!(assigned_order, expected);
    drop(agent);
    restarted.stop().await;
    backing.cleanup().await;
}
