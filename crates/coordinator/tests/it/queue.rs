//! The pending queue: withdrawals, waiting reasons, the bound.

use std::time::Duration;

use sutazai_coordinator::NO_AGENT;
use sutazai_types::messages::TaskMessage;

use crate::{Backing, FakeAgent, TestCoordinator, settings, task};

#[tokio::test]
async fn cancel_removes_a_pending_task_and_frees_an_assigned_ones_slot() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.service_token();
    let mut agent = FakeAgent::start(&backing, "worker", &[], 1).await;
    coordinator.wait_online(&token, 1).await;
    let running = task(5, "alice", &[]);
    let queued = task(5, "alice", &[]);
    backing.ready(&running).await;
    assert_eq!(agent.expect_assignment().await.task_id, running.task_id);
    backing.ready(&queued).await;
    coordinator.wait_pending(&token, 1).await;
    backing.cancel(queued.task_id).await;
    coordinator.wait_pending(&token, 0).await;
    backing.cancel(running.task_id).await;
    let next = task(5, "alice", &[]);
    backing.ready(&next).await;
    // The cancelled task's slot is free again; the withdrawn queued task never runs.
    assert_eq!(agent.expect_assignment().await.task_id, next.task_id);
    agent.expect_no_assignment(Duration::from_millis(150)).await;
    assert_eq!(coordinator.pending_stats(&token).await.assigned, 1);
    drop(agent);
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn a_task_no_online_agent_can_run_waits_with_the_reason() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.service_token();
    let mut results = backing.results().await;
    let mut agent = FakeAgent::start(&backing, "python", &["python"], 2).await;
    coordinator.wait_online(&token, 1).await;
    let gpu_task = task(5, "alice", &["gpu", "cuda"]);
    backing.ready(&gpu_task).await;
    let waiting = results
        .expect("waiting", |message| match message {
            TaskMessage::Waiting(waiting) => Some(waiting),
            _ => None,
        })
        .await;
    assert_eq!((waiting.task_id, waiting.attempt), (gpu_task.task_id, 1));
    assert_eq!(waiting.reason, "no online agent has capabilities [cuda, gpu]");
    let stats = coordinator.pending_stats(&token).await;
    assert_eq!((stats.pending, stats.unassignable), (1, 1));
    agent.expect_no_assignment(Duration::from_millis(100)).await;
    drop(agent);
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn a_full_queue_refuses_new_work_with_a_clear_error() {
    let backing = Backing::new().await;
    let mut small = settings();
    small.pending_capacity = 2;
    let coordinator = TestCoordinator::start(&backing, small).await;
    let token = backing.service_token();
    let mut results = backing.results().await;
    for _ in 0..2 {
        backing.ready(&task(5, "alice", &[])).await;
    }
    coordinator.wait_pending(&token, 2).await;
    let refused = task(5, "alice", &[]);
    backing.ready(&refused).await;
    let failed = results
        .expect("failed", |message| match message {
            TaskMessage::Failed(failed) => Some(failed),
            _ => None,
        })
        .await;
    assert_eq!((failed.task_id, failed.attempt, failed.agent_id), (refused.task_id, 1, NO_AGENT));
    assert_eq!(failed.error, "pending queue full (capacity 2)");
    assert!(!failed.retryable);
    assert_eq!(coordinator.pending_stats(&token).await.pending, 2);
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn old_inbox_records_are_purged_and_recent_ones_kept() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.service_token();
    backing.ready(&task(5, "alice", &[])).await;
    coordinator.wait_pending(&token, 1).await;
    let pool = sqlx::PgPool::connect(backing.database.url()).await.unwrap();
    sqlx::query(
        "INSERT INTO coordinator.inbox (consumer, message_id, processed_at)
         VALUES ('coordinator.tasks', 'old', now() - interval '2 days')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let options =
        sutazai_kit::postgres::connect_options(&backing.database.settings(), "coordinator").unwrap();
    let coordinator_pool = sqlx::PgPool::connect_with(options).await.unwrap();
    let purged =
        sutazai_coordinator::store::janitor::purge_inbox(&coordinator_pool, Duration::from_secs(24 * 3600))
            .await
            .unwrap();
    assert_eq!(purged, 1);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM coordinator.inbox").fetch_all(&pool).await.unwrap();
    assert_eq!(left.len(), 1, "the recent Ready's record is kept");
    assert_ne!(left[0], "old");
    pool.close().await;
    coordinator_pool.close().await;
    coordinator.stop().await;
    backing.cleanup().await;
}
