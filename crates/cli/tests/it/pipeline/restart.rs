//! The coordinator killed and rebuilt with 100 pending tasks: after the restart a single-slot
//! agent runs every one of them exactly once, by priority, then in submission order.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::future::join_all;
use serde_json::json;
use sutazai_proto::v1 as pb;
use sutazai_types::messages::TaskStarted;

use super::{PATIENCE, Pipeline, json_of, statuses, task_request, time_of};

const TASKS: usize = 100;

#[tokio::test]
async fn a_restarted_coordinator_runs_100_pending_tasks_once_each_in_order() {
    let mut pipeline = Pipeline::start().await;
    let began = Instant::now();
    let mut submitted = Vec::with_capacity(TASKS);
    for index in 0..TASKS {
        let priority = [2, 7, 4, 9, 0][index % 5];
        let payload = json!({"index": index});
        let task = pipeline.submit(task_request("alice", "noop", payload, priority, &["noop"])).await;
        submitted.push((task.id, priority));
    }
    pipeline.wait_pending(TASKS as u64).await;
    let pending_after = began.elapsed();
    pipeline.stop_coordinator().await;

    pipeline.start_coordinator().await;
    assert_eq!(pipeline.pending_stats().await.pending, TASKS as u64);
    pipeline.worker(&["noop"]).await;
    sutazai_testkit::wait_for("every task to succeed", PATIENCE * 3, || async {
        pipeline.tasks(pb::TaskStatus::Succeeded).await.len() == TASKS
    })
    .await;
    println!("{TASKS} tasks pending after {pending_after:?}, all succeeded after {:?}", began.elapsed());

    // None lost, none doubled: one attempt each, one success each, with the payload echoed.
    let tasks: HashMap<String, pb::Task> = pipeline
        .tasks(pb::TaskStatus::Unspecified)
        .await
        .into_iter()
        .map(|task| (task.id.clone(), task))
        .collect();
    assert_eq!(tasks.len(), TASKS);
    let events = join_all(submitted.iter().map(|(task_id, _)| pipeline.events(task_id))).await;
    for (index, (task_id, _)) in submitted.iter().enumerate() {
        let task = &tasks[task_id];
        assert_eq!(task.attempt, 1, "task {index}");
        assert_eq!(json_of(task.result.as_ref()), json!({"output": {"index": index}}));
        assert!(time_of(task.started_at.as_ref()) <= time_of(task.finished_at.as_ref()));
        assert_eq!(
            statuses(&events[index]),
            [
                pb::TaskStatus::Queued,
                pb::TaskStatus::Assigned,
                pb::TaskStatus::Running,
                pb::TaskStatus::Succeeded
            ],
            "task {index}"
        );
    }
    // Each task started once, in the order of priority, then submission. A report is published
    // at least once (the agent republishes until RabbitMQ confirms it), so a second copy of the
    // same report can appear under load: copies are folded, a second attempt or agent is not.
    let mut started: Vec<TaskStarted> = Vec::new();
    for report in pipeline.observed.started() {
        match started.iter().find(|seen| seen.task_id == report.task_id) {
            Some(seen) => assert_eq!(*seen, report, "a task started twice"),
            None => started.push(report),
        }
    }
    assert_eq!(started.len(), TASKS, "a task did not start");
    let mut started_order = Vec::with_capacity(TASKS);
    for report in &started {
        assert_eq!(report.attempt, 1);
        let task_id = report.task_id.to_string();
        started_order.push(submitted.iter().position(|(id, _)| *id == task_id).unwrap());
    }
    let mut expected: Vec<usize> = (0..TASKS).collect();
    expected.sort_by_key(|index| (std::cmp::Reverse(submitted[*index].1), *index));
    assert_eq!(started_order, expected);
    pipeline.finish().await;
}
