//! Retries: retryable failures wait longer each time, then the task fails with the error and the
//! dead-letter queue holds it; a non-retryable failure fails at once; re-assignments cost no
//! retry; a task that cannot be requeued does not hold up the others.

use std::time::{Duration, Instant};

use serde_json::json;
use sutazai_proto::v1 as pb;
use sutazai_types::AgentId;
use sutazai_types::messages::TaskMessage;

use crate::{TestOrchestrator, assigned, failed, id_of, task_request};

#[tokio::test]
async fn retryable_failures_back_off_with_growing_delays_then_dead_letter() {
    // Delays of 100, 200 and 400 ms (±20 %) before attempts 2, 3 and 4. Sweeps ten seconds apart:
    // each retry is published by the wake-up at its own due time.
    let app = TestOrchestrator::start_with(|settings| settings.sweep_interval_ms = 10_000).await;
    let task = app.submit_simple("alice", json!({"text": "doc"})).await;
    let task_id = id_of(&task);
    let agent = AgentId::new();
    let mut gaps = Vec::new();
    let mut failed_at: Option<Instant> = None;
    for attempt in 1..=4 {
        let (ready, received) = app.coordinator_tasks.ready(task_id, attempt).await;
        assert_eq!(ready.attempt, attempt);
        if let Some(failed_at) = failed_at {
            gaps.push(received.at.duration_since(failed_at));
        }
        app.deliver(assigned(task_id, attempt, agent, "")).await;
        failed_at = Some(Instant::now());
        app.publish(failed(task_id, attempt, agent, "model overloaded", true)).await;
    }
    let task = app.wait_status(&task.id, pb::TaskStatus::Failed).await;
    assert_eq!((task.error.as_str(), task.attempt), ("model overloaded", 4));
    assert!(gaps[0] >= Duration::from_millis(80), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(160) && gaps[1] > gaps[0], "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(320) && gaps[2] > gaps[1], "{gaps:?}");
    assert!(gaps[2] < Duration::from_millis(2000), "{gaps:?}");

    let events = app.events(&task.id).await;
    let retry_details: Vec<&str> = events
        .iter()
        .filter(|event| event.status == i32::from(pb::TaskStatus::Retrying))
        .map(|event| event.detail.as_str())
        .collect();
    assert_eq!(retry_details.len(), 3);
    assert!(
        retry_details[0].starts_with("attempt 1 failed: model overloaded; retry 1 after "),
        "{retry_details:?}"
    );
    assert_eq!(events.last().unwrap().detail, "attempt 4 failed: model overloaded (no retries left)");

    // The final failure is dead-lettered; the earlier ones were not.
    let mut dead = Vec::new();
    crate::wait_for_dead_letters(&app, &mut dead, 1).await;
    assert!(
        matches!(&dead[..], [TaskMessage::Failed(failure)] if failure.task_id == task_id && failure.attempt == 4)
    );
    app.finish().await;
}

#[tokio::test]
async fn a_non_retryable_failure_fails_at_once() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let task_id = id_of(&task);
    let agent = AgentId::new();
    app.deliver(assigned(task_id, 1, agent, "")).await;
    app.deliver(failed(task_id, 1, agent, "payload is not a document", false)).await;
    let task = app.get(&app.admin(), &task.id, "").await.unwrap();
    assert_eq!(task.status, i32::from(pb::TaskStatus::Failed));
    assert_eq!(task.error, "payload is not a document");
    assert_eq!(
        app.events(&task.id).await.last().unwrap().detail,
        "attempt 1 failed: payload is not a document (not retryable)"
    );
    let mut dead = Vec::new();
    crate::wait_for_dead_letters(&app, &mut dead, 1).await;
    assert_eq!(app.coordinator_tasks.ready_count(task_id), 1);
    app.finish().await;
}

#[tokio::test]
async fn reassignments_cost_no_retry_and_no_backoff() {
    let app = TestOrchestrator::start_with(|settings| settings.sweep_interval_ms = 10_000).await;
    let mut request = task_request("alice", "summarize", json!({}));
    request.max_retries = Some(1);
    let task = app.submit(&app.user("alice"), request).await.unwrap().task.unwrap();
    let task_id = id_of(&task);
    // Two agents went silent and the coordinator re-assigned the task twice before it failed.
    app.deliver(assigned(task_id, 1, AgentId::new(), "")).await;
    app.deliver(assigned(task_id, 2, AgentId::new(), "agent went offline")).await;
    let third = AgentId::new();
    app.deliver(assigned(task_id, 3, third, "agent went offline")).await;
    app.deliver(failed(task_id, 3, third, "model overloaded", true)).await;
    // The first failure: retried after the first delay (100 ms ±20 %), not the third's.
    let retrying = app.get(&app.admin(), &task.id, "").await.unwrap();
    assert_eq!(retrying.status, i32::from(pb::TaskStatus::Retrying));
    let detail = app.events(&task.id).await.pop().unwrap().detail;
    let delay_ms: u64 = detail
        .strip_prefix("attempt 3 failed: model overloaded; retry 1 after ")
        .and_then(|rest| rest.strip_suffix("ms"))
        .unwrap_or_else(|| panic!("{detail}"))
        .parse()
        .unwrap();
    assert!((80..=120).contains(&delay_ms), "{detail}");
    app.coordinator_tasks.ready(task_id, 4).await;
    // The second failure exhausts the one retry.
    let fourth = AgentId::new();
    app.deliver(assigned(task_id, 4, fourth, "")).await;
    app.deliver(failed(task_id, 4, fourth, "model overloaded", true)).await;
    let task = app.get(&app.admin(), &task.id, "").await.unwrap();
    assert_eq!((task.status, task.attempt), (i32::from(pb::TaskStatus::Failed), 4));
    app.finish().await;
}

#[tokio::test]
async fn a_task_that_cannot_be_requeued_does_not_hold_up_the_others() {
    let app = TestOrchestrator::start_with(|settings| settings.sweep_interval_ms = 200).await;
    let poisoned = app.submit_simple("alice", json!({})).await;
    let healthy = app.submit_simple("alice", json!({})).await;
    // Postgres refuses to requeue the first task, as it would a row it cannot store.
    sqlx::query(&format!(
        "CREATE FUNCTION orchestrator.refuse_requeue() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.id = '{}' AND NEW.status = 'queued' THEN RAISE EXCEPTION 'refused'; END IF;
             RETURN NEW;
         END $$",
        poisoned.id
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_requeue BEFORE UPDATE ON orchestrator.tasks
         FOR EACH ROW EXECUTE FUNCTION orchestrator.refuse_requeue()",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // The poisoned task's retry (after 100 ms ±20 %) is due well before the healthy one's, so
    // every pass meets it first.
    let agent = AgentId::new();
    for task in [&poisoned, &healthy] {
        app.deliver(assigned(id_of(task), 1, agent, "")).await;
        app.deliver(failed(id_of(task), 1, agent, "model overloaded", true)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    app.coordinator_tasks.ready(id_of(&healthy), 2).await;
    app.wait_status(&healthy.id, pb::TaskStatus::Queued).await;
    let stuck = app.get(&app.admin(), &poisoned.id, "").await.unwrap();
    assert_eq!(stuck.status, i32::from(pb::TaskStatus::Retrying));
    assert_eq!(app.coordinator_tasks.ready_count(id_of(&poisoned)), 1);
    app.finish().await;
}
