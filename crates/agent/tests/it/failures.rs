//! Failed attempts: whether another attempt could succeed decides `retryable`, and the error says
//! what went wrong.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sutazai_types::TaskId;
use sutazai_types::messages::{TaskAssigned, TaskFailed, TaskMessage};

use crate::{Options, TestWorker, closed_port_url, spawn, spawn_with};

async fn failure(worker: &TestWorker, task_id: TaskId) -> TaskFailed {
    match worker.observer.outcome(task_id).await {
        TaskMessage::Failed(failed) => failed,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_llm_fails_the_attempt_retryably() {
    let worker =
        spawn_with(Options { llm_url: Some(closed_port_url()), ..Options::profiles(&["coder"]) }).await;
    let assigned = worker.assign("coder", json!({"spec": "anything"})).await;

    let failed = failure(&worker, assigned.task_id).await;
    assert!(failed.retryable, "{failed:?}");
    assert!(failed.error.starts_with("llm provider unavailable"), "{}", failed.error);
    assert_eq!(failed.attempt, 1);
    // The outcome was published, so the assignment was acknowledged.
    assert!(worker.take_from_queue("coder").await.is_none());
    worker.finish().await;
}

#[tokio::test]
async fn a_bad_payload_fails_without_retry_naming_the_field() {
    let worker = spawn(&["coder", "summarizer"]).await;
    let missing = worker.assign("coder", json!({"language": "go"})).await;
    let failed = failure(&worker, missing.task_id).await;
    assert!(!failed.retryable);
    assert_eq!(failed.error, "payload field `spec` is required");

    let mistyped = worker.assign("summarizer", json!({"documents": [{"title": "no text"}]})).await;
    let failed = failure(&worker, mistyped.task_id).await;
    assert!(!failed.retryable);
    assert_eq!(failed.error, "payload field `documents[0].text` is required");
    assert!(worker.chats().is_empty(), "no LLM call for an unusable payload");
    worker.finish().await;
}

#[tokio::test]
async fn the_profile_timeout_fails_retryably_and_a_passed_deadline_does_not() {
    let worker = spawn(&["hasty-coder"]).await;
    worker.ollama.set_latency(Duration::from_secs(3));
    let slow = worker.assign("hasty-coder", json!({"spec": "slowly"})).await;
    let failed = failure(&worker, slow.task_id).await;
    assert!(failed.retryable);
    assert_eq!(failed.error, "the attempt did not finish within the profile's timeout of 1000 ms");

    worker.ollama.set_latency(Duration::ZERO);
    let late = TaskAssigned {
        task_id: TaskId::new(),
        attempt: 2,
        agent_id: worker.agent("hasty-coder"),
        task_type: "code".into(),
        payload: json!({"spec": "too late"}),
        owner: "owner-1".into(),
        deadline: Utc::now() - chrono::Duration::seconds(1),
        reason: "agent went offline".into(),
    };
    worker.publish_assignment(&late).await;
    let failed = failure(&worker, late.task_id).await;
    assert!(!failed.retryable);
    assert_eq!(failed.error, "the task's deadline passed before the attempt finished");
    assert_eq!(failed.attempt, 2);
    worker.finish().await;
}

#[tokio::test]
async fn a_task_type_the_profile_does_not_take_fails_without_retry() {
    let worker = spawn(&["typed-noop"]).await;
    let accepted = worker.assign_task("typed-noop", TaskId::new(), 1, "owner-1", json!({})).await;
    // `assign_task` uses the profile name as the task type; typed-noop takes only `bench`.
    let failed = failure(&worker, accepted.task_id).await;
    assert!(!failed.retryable);
    assert_eq!(failed.error, "profile `typed-noop` does not take tasks of type `typed-noop`; it takes bench");

    let mut bench = accepted.clone();
    bench.task_id = TaskId::new();
    bench.task_type = "bench".into();
    worker.publish_assignment(&bench).await;
    assert!(matches!(worker.observer.outcome(bench.task_id).await, TaskMessage::Succeeded(_)));
    worker.finish().await;
}
