//! Withdrawals (`Cancelled`): a running attempt is abandoned and nothing more is published for it;
//! an assignment arriving after its withdrawal never starts.

use std::time::Duration;

use serde_json::json;
use sutazai_types::TaskId;
use sutazai_types::messages::{AgentMessage, TaskMessage};

use crate::{Seen, spawn};

#[tokio::test]
async fn a_withdrawn_task_stops_mid_run_and_publishes_nothing_more() {
    let worker = spawn(&["coder"]).await;
    let agent_id = worker.agent("coder");
    // Every call (the model list, then the chat) waits 5 s: far longer than the test looks.
    worker.ollama.set_latency(Duration::from_secs(5));
    let assigned = worker.assign("coder", json!({"spec": "long work"})).await;
    worker.observer.started(assigned.task_id).await;
    worker
        .observer
        .wait_for("a heartbeat showing the task running", |seen| {
            matches!(
                seen,
                Seen::Agent(AgentMessage::Heartbeat(beat)) if beat.agent_id == agent_id && beat.running == 1
            )
        })
        .await;

    let cancelled_at = tokio::time::Instant::now();
    worker.cancel(assigned.task_id).await;
    // The slot is free again long before the LLM would have answered.
    let mark = worker.observer.mark();
    worker
        .observer
        .wait_for_since(mark, "a heartbeat showing the slot free", |seen| {
            matches!(
                seen,
                Seen::Agent(AgentMessage::Heartbeat(beat)) if beat.agent_id == agent_id && beat.running == 0
            )
        })
        .await;
    assert!(cancelled_at.elapsed() < Duration::from_millis(1500), "freed before the LLM answered");
    let outcomes = worker
        .observer
        .all(Duration::from_secs(3), |seen| {
            matches!(seen.task(), Some(TaskMessage::Succeeded(message)) if message.task_id == assigned.task_id)
                || matches!(seen.task(), Some(TaskMessage::Failed(message)) if message.task_id == assigned.task_id)
        })
        .await;
    assert!(outcomes.is_empty(), "{outcomes:?}");
    assert!(worker.take_from_queue("coder").await.is_none(), "assignment and withdrawal acknowledged");

    // The agent goes on working.
    worker.ollama.set_latency(Duration::ZERO);
    let next = worker.assign("coder", json!({"spec": "short work"})).await;
    assert!(matches!(worker.observer.outcome(next.task_id).await, TaskMessage::Succeeded(_)));
    worker.finish().await;
}

#[tokio::test]
async fn an_assignment_arriving_after_its_withdrawal_never_starts() {
    let worker = spawn(&["noop"]).await;
    let task_id = TaskId::new();
    worker.cancel(task_id).await;
    worker.assign_task("noop", task_id, 1, "owner-1", json!({"late": true})).await;
    // A later task on the same agent is done, so the earlier one was looked at and dropped.
    let later = worker.assign("noop", json!({"n": 2})).await;
    worker.observer.outcome(later.task_id).await;

    let about_the_task = worker
        .observer
        .all(Duration::from_millis(500), |seen| {
            matches!(seen.task(), Some(TaskMessage::Started(message)) if message.task_id == task_id)
                || matches!(seen.task(), Some(TaskMessage::Succeeded(message)) if message.task_id == task_id)
        })
        .await;
    assert!(about_the_task.is_empty(), "{about_the_task:?}");
    assert!(worker.take_from_queue("noop").await.is_none());
    worker.finish().await;
}
