//! No agents at all: the task waits as queued with the coordinator's reason while the pipeline
//! sleeps (measured), and fails when its timeout passes.

use std::time::Duration;

use serde_json::json;
use sutazai_proto::v1 as pb;

use super::{Pipeline, task_request};

/// CPU time this process's threads have run so far: the sum of the first field of each
/// thread's `/proc/self/task/<tid>/schedstat` (nanoseconds on a CPU, user and system).
fn process_cpu() -> Duration {
    let mut total_ns: u64 = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = entry.unwrap().path().join("schedstat");
        // A thread that exited between listing and reading has nothing left to count.
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        total_ns += text.split_whitespace().next().unwrap().parse::<u64>().unwrap();
    }
    Duration::from_nanos(total_ns)
}

#[tokio::test]
async fn with_no_agents_a_task_waits_with_a_reason_on_an_idle_pipeline_then_times_out() {
    let pipeline = Pipeline::start().await;
    let mut request = task_request("alice", "summarize", json!({"text": "nobody reads this"}), 5, &[]);
    request.timeout_s = Some(2);
    let submitted = pipeline.submit(request).await;
    let waiting = pipeline
        .wait_task(&submitted.id, "the task's queued reason", |task| !task.queued_reason.is_empty())
        .await;
    assert_eq!(waiting.status, i32::from(pb::TaskStatus::Queued));
    assert_eq!(waiting.queued_reason, "no agents are registered");
    assert_eq!(waiting.attempt, 0);

    // The whole process — orchestrator, coordinator, their pools and broker connections — while
    // the task waits: no busy loop anywhere.
    let window = Duration::from_secs(1);
    let before = process_cpu();
    tokio::time::sleep(window).await;
    let used = process_cpu().saturating_sub(before);
    println!("cpu over {window:?} with one queued task and no agent: {used:?}");
    assert!(used < window / 20, "the idle pipeline used {used:?} of cpu in {window:?}");

    let failed = pipeline.wait_status(&submitted.id, pb::TaskStatus::Failed).await;
    assert_eq!(failed.error, "timed out after 2s");
    let created = super::time_of(failed.created_at.as_ref());
    let finished = super::time_of(failed.finished_at.as_ref());
    assert!(finished - created >= chrono::Duration::seconds(2), "failed {} early", finished - created);
    let events = pipeline.events(&submitted.id).await;
    assert_eq!(super::statuses(&events), [pb::TaskStatus::Queued, pb::TaskStatus::Failed]);
    // The coordinator was told and dropped it.
    pipeline.wait_pending(0).await;
    pipeline.finish().await;
}
