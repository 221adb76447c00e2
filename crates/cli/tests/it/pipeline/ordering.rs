//! Dispatch order through real agents: with one idle single-slot agent, queued tasks start by
//! priority (highest first), and tasks of equal priority in submission order.

use serde_json::json;
use sutazai_proto::v1 as pb;

use super::{PATIENCE, Pipeline, task_request, time_of};

/// Submits a noop task per priority (while no agent runs), then starts one single-slot noop
/// agent; returns the positions of the submissions in the order their tasks started.
async fn start_order(priorities: &[u32]) -> Vec<usize> {
    let mut pipeline = Pipeline::start().await;
    let mut submitted = Vec::new();
    for (index, priority) in priorities.iter().enumerate() {
        let payload = json!({"index": index});
        let task = pipeline.submit(task_request("alice", "noop", payload, *priority, &["noop"])).await;
        submitted.push(task.id);
    }
    pipeline.wait_pending(priorities.len() as u64).await;
    pipeline.worker(&["noop"]).await;
    sutazai_testkit::wait_for("every task to succeed", PATIENCE, || async {
        pipeline.tasks(pb::TaskStatus::Succeeded).await.len() == priorities.len()
    })
    .await;

    let started = pipeline.observed.started();
    assert_eq!(started.len(), priorities.len(), "{started:?}");
    let mut order = Vec::new();
    for report in &started {
        assert_eq!(report.attempt, 1);
        let task_id = report.task_id.to_string();
        order.push(submitted.iter().position(|id| *id == task_id).unwrap());
    }
    // The agent's own clock agrees, and each task records its start and a single attempt.
    assert!(started.windows(2).all(|pair| pair[0].started_at <= pair[1].started_at), "{started:?}");
    for task_id in &submitted {
        let task = pipeline.task(task_id).await;
        assert_eq!(task.attempt, 1);
        assert!(time_of(task.started_at.as_ref()) <= time_of(task.finished_at.as_ref()));
    }
    pipeline.finish().await;
    order
}

#[tokio::test]
async fn priorities_one_three_two_run_three_two_one() {
    assert_eq!(start_order(&[1, 3, 2]).await, [1, 2, 0]);
}

#[tokio::test]
async fn equal_priorities_run_in_submission_order() {
    // Five tasks at priority 4 interleaved with two at 6 and one at 1.
    let order = start_order(&[4, 6, 4, 4, 1, 6, 4, 4]).await;
    assert_eq!(order, [1, 5, 0, 2, 3, 6, 7, 4]);
}
