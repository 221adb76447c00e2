//! A task whose model is always down: every attempt fails retryably, the orchestrator waits
//! longer before each retry, then fails the task with the agent's error and dead-letters it.

use serde_json::json;
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::TaskStatus::{Assigned, Failed, Queued, Retrying, Running};
use sutazai_types::messages::TaskMessage;

use super::{PATIENCE, Pipeline, WorkerOptions, closed_port_url, statuses, task_request, time_of};

/// The delay a retrying event announces (`...; retry N after <ms>ms`).
fn announced_delay_ms(detail: &str) -> i64 {
    let after = detail.rsplit_once(" after ").unwrap().1;
    after.strip_suffix("ms").unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_always_failing_task_is_retried_with_growing_delays_then_failed_and_dead_lettered() {
    // Delays of 100, 300 and 900 ms (±20 %): far enough apart that a busy machine cannot blur them.
    let mut pipeline = Pipeline::start_with(|settings| settings.retry_multiplier = 3.0).await;
    let agents = pipeline
        .start_worker(WorkerOptions {
            llm_url: Some(closed_port_url()),
            ..WorkerOptions::profiles(&["summarizer"])
        })
        .await;
    let mut request =
        task_request("alice", "summarize", json!({"text": "never summarized"}), 5, &["summarizer"]);
    request.max_retries = Some(3);
    let submitted = pipeline.submit(request).await;

    let task = pipeline.wait_status(&submitted.id, pb::TaskStatus::Failed).await;
    assert_eq!(task.attempt, 4);
    assert_eq!(task.assigned_agent, agents.agent("summarizer").to_string());
    let events = pipeline.events(&task.id).await;
    assert_eq!(
        statuses(&events),
        [
            Queued, Assigned, Running, Retrying, Queued, Assigned, Running, Retrying, Queued, Assigned,
            Running, Retrying, Queued, Assigned, Running, Failed
        ],
        "{events:#?}"
    );
    // Each retry waits the delay its event announces, and each delay is longer than the last.
    let mut announced = Vec::new();
    let mut waited = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if event.status != i32::from(Retrying) {
            continue;
        }
        let delay_ms = announced_delay_ms(&event.detail);
        let requeued = &events[index + 1];
        let waited_ms =
            (time_of(requeued.occurred_at.as_ref()) - time_of(event.occurred_at.as_ref())).num_milliseconds();
        assert!(waited_ms >= delay_ms, "retried after {waited_ms} ms, before its delay of {delay_ms} ms");
        announced.push(delay_ms);
        waited.push(waited_ms);
    }
    assert!(announced.windows(2).all(|pair| pair[0] < pair[1]), "delays do not grow: {announced:?}");
    assert!(waited.windows(2).all(|pair| pair[0] < pair[1]), "gaps do not grow: {waited:?}");
    for (retry, delay_ms) in announced.iter().enumerate() {
        let nominal_ms = 100 * 3_i64.pow(retry as u32);
        assert!((nominal_ms * 8 / 10..=nominal_ms * 12 / 10).contains(delay_ms), "{announced:?}");
    }
    println!("retry delays announced {announced:?} ms, waited {waited:?} ms");

    // The task carries the error of its last attempt, as the agent reported it.
    let last_failure = pipeline
        .observed
        .all()
        .into_iter()
        .find_map(|message| match message {
            TaskMessage::Failed(failed) if failed.task_id.to_string() == task.id && failed.attempt == 4 => {
                Some(failed)
            }
            _ => None,
        })
        .unwrap();
    assert!(last_failure.retryable);
    assert_eq!(task.error, last_failure.error);
    assert!(!task.error.is_empty());
    assert!(events[15].detail.contains(&task.error), "{:?}", events[15].detail);

    // The final failure is in the dead-letter queue.
    let taken = std::sync::Mutex::new(Vec::new());
    sutazai_testkit::wait_for("the dead letter", PATIENCE, || async {
        let mut arrived = pipeline.dead_letters().await;
        let mut taken = taken.lock().unwrap();
        taken.append(&mut arrived);
        !taken.is_empty()
    })
    .await;
    let dead = taken.into_inner().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let TaskMessage::Failed(dead_letter) = &dead[0] else { panic!("not a failure: {dead:?}") };
    assert_eq!(dead_letter.task_id.to_string(), task.id);
    assert_eq!((dead_letter.attempt, dead_letter.error.as_str()), (4, task.error.as_str()));
    pipeline.finish().await;
}
