//! Cancelling through the pipeline: a queued task leaves the coordinator's queue, a running one
//! is abandoned by its agent (which then publishes nothing for it and takes the next task), and
//! a finished task cannot be cancelled (conflict, 409 at the gateway).

use std::time::Duration;

use serde_json::json;
use sutazai_proto::v1 as pb;
use sutazai_types::messages::TaskMessage;
use tonic::Code;

use super::{Pipeline, json_of, status_of, task_request};

#[tokio::test]
async fn a_queued_task_is_cancelled_and_leaves_the_coordinator() {
    let mut pipeline = Pipeline::start().await;
    pipeline.worker(&["noop"]).await;
    pipeline.wait_online(1).await;
    let submitted = pipeline.submit(task_request("alice", "render", json!({}), 5, &["gpu"])).await;
    let waiting = pipeline
        .wait_task(&submitted.id, "the task's queued reason", |task| !task.queued_reason.is_empty())
        .await;
    assert_eq!(waiting.status, i32::from(pb::TaskStatus::Queued));
    assert_eq!(waiting.queued_reason, "no online agent has capabilities [gpu]");
    assert_eq!(pipeline.pending_stats().await.pending, 1);

    let cancelled = pipeline.cancel(&submitted.id, "alice", "not needed any more").await.unwrap();
    assert_eq!(cancelled.status, i32::from(pb::TaskStatus::Cancelled));
    assert_eq!(cancelled.error, "not needed any more");
    assert!(cancelled.finished_at.is_some());
    let events = pipeline.events(&submitted.id).await;
    let last = events.last().unwrap();
    assert_eq!(
        (events.len(), status_of(last.previous_status), last.detail.as_str()),
        (2, pb::TaskStatus::Queued, "not needed any more")
    );
    pipeline.wait_pending(0).await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_running_task_is_cancelled_and_its_agent_abandons_it() {
    let mut pipeline = Pipeline::start().await;
    let agents = pipeline.worker(&["summarizer"]).await;
    // The first attempt's model call takes longer than the test.
    pipeline.ollama.set_latency(Duration::from_secs(20));
    let first = pipeline
        .submit(task_request("alice", "summarize", json!({"text": "slow"}), 5, &["summarizer"]))
        .await;
    pipeline.wait_status(&first.id, pb::TaskStatus::Running).await;
    sutazai_testkit::wait_for("the model call", super::PATIENCE, || async {
        !pipeline.ollama.requests().is_empty()
    })
    .await;

    let cancelled = pipeline.cancel(&first.id, "", "operator stop").await.unwrap();
    assert_eq!(cancelled.status, i32::from(pb::TaskStatus::Cancelled));
    assert_eq!(cancelled.error, "operator stop");
    let cancelled_events = pipeline.events(&first.id).await;
    assert_eq!(status_of(cancelled_events.last().unwrap().previous_status), pb::TaskStatus::Running);

    // The agent has one slot: the next task can only run once the first attempt was abandoned
    // (its model call would hold the slot for 20 s).
    pipeline.ollama.set_latency(Duration::ZERO);
    pipeline.ollama.script_reply("the second summary");
    let second = pipeline
        .submit(task_request("alice", "summarize", json!({"text": "quick"}), 5, &["summarizer"]))
        .await;
    let done = pipeline.wait_status(&second.id, pb::TaskStatus::Succeeded).await;
    assert_eq!(done.assigned_agent, agents.agent("summarizer").to_string());
    assert_eq!(json_of(done.result.as_ref())["output"], "the second summary");

    // Nothing came from the abandoned attempt, and the cancelled task is unchanged.
    let from_first: Vec<TaskMessage> = pipeline
        .observed
        .all()
        .into_iter()
        .filter(|message| match message {
            TaskMessage::Succeeded(outcome) => outcome.task_id.to_string() == first.id,
            TaskMessage::Failed(outcome) => outcome.task_id.to_string() == first.id,
            _ => false,
        })
        .collect();
    assert!(from_first.is_empty(), "the abandoned attempt reported {from_first:?}");
    let first_now = pipeline.task(&first.id).await;
    assert_eq!(first_now.status, i32::from(pb::TaskStatus::Cancelled));
    assert_eq!(first_now.result, None);
    assert_eq!(pipeline.events(&first.id).await, cancelled_events);

    // A finished task cannot be cancelled: a conflict (the gateway answers 409).
    let refused = pipeline.cancel(&second.id, "alice", "too late").await.unwrap_err();
    assert_eq!((refused.code(), refused.message()), (Code::AlreadyExists, "task is already succeeded"));
    let refused = pipeline.cancel(&first.id, "", "twice").await.unwrap_err();
    assert_eq!((refused.code(), refused.message()), (Code::AlreadyExists, "task is already cancelled"));
    pipeline.finish().await;
}
