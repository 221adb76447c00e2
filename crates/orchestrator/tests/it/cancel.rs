//! Cancelling: queued or running tasks become cancelled and the coordinator and agent are told;
//! a finished task is a conflict.

use serde_json::json;
use sutazai_proto::v1 as pb;
use sutazai_types::AgentId;
use tonic::Code;

use crate::{TestOrchestrator, assert_status, assigned, id_of, started};

#[tokio::test]
async fn cancel_while_queued_withdraws_the_task() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let cancelled = app.cancel(&app.user("alice"), &task.id, "alice", "cancelled by alice").await.unwrap();
    assert_eq!(cancelled.status, i32::from(pb::TaskStatus::Cancelled));
    assert_eq!(cancelled.error, "cancelled by alice");
    assert!(cancelled.finished_at.is_some());
    let withdrawal = app.coordinator_tasks.cancelled(id_of(&task)).await;
    assert_eq!(withdrawal.reason, "cancelled by alice");
    let last = app.events(&task.id).await.pop().unwrap();
    assert_eq!((last.sequence, last.previous_status), (2, i32::from(pb::TaskStatus::Queued)));
    app.finish().await;
}

#[tokio::test]
async fn cancel_while_running_tells_the_agent() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let agent = AgentId::new();
    app.deliver(assigned(id_of(&task), 1, agent, "")).await;
    app.deliver(started(id_of(&task), 1, agent)).await;
    let cancelled = app.cancel(&app.admin(), &task.id, "", "operator stop").await.unwrap();
    assert_eq!(cancelled.status, i32::from(pb::TaskStatus::Cancelled));
    let withdrawal = app.coordinator_tasks.cancelled(id_of(&task)).await;
    assert_eq!(withdrawal.reason, "operator stop");
    // Withdrawals overtake queued work on the coordinator's priority queue.
    let received = app
        .coordinator_tasks
        .wait("the cancelled message", |message| {
            matches!(message, sutazai_types::messages::TaskMessage::Cancelled(_))
        })
        .await;
    assert_eq!(received.priority, Some(9));
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM orchestrator.attempts WHERE task_id = $1")
        .bind(id_of(&task).as_uuid())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(outcome, "cancelled");
    app.finish().await;
}

#[tokio::test]
async fn cancel_of_a_finished_task_is_a_conflict() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    app.run_to_success(id_of(&task), 1, json!({"output": "done"})).await;
    assert_status(
        app.cancel(&app.user("alice"), &task.id, "alice", "too late").await,
        Code::AlreadyExists,
        "task is already succeeded",
    );
    let cancelled_again = app.submit_simple("alice", json!({})).await;
    app.cancel(&app.user("alice"), &cancelled_again.id, "", "once").await.unwrap();
    assert_status(
        app.cancel(&app.user("alice"), &cancelled_again.id, "", "twice").await,
        Code::AlreadyExists,
        "task is already cancelled",
    );
    app.finish().await;
}
