//! Timeouts: a task not finished by its deadline fails and is withdrawn; one that cannot be timed
//! out does not hold up the others.

use std::time::Instant;

use serde_json::json;
use sutazai_proto::v1 as pb;

use crate::{TestOrchestrator, id_of, task_request};

#[tokio::test]
async fn a_task_past_its_deadline_fails_and_is_withdrawn() {
    // Sweeps ten seconds apart: only the wake-up at the task's own deadline can fail it in time.
    let app = TestOrchestrator::start_with(|settings| settings.sweep_interval_ms = 10_000).await;
    let mut request = task_request("alice", "summarize", json!({}));
    request.timeout_s = Some(1);
    let submitted_at = Instant::now();
    let task = app.submit(&app.user("alice"), request).await.unwrap().task.unwrap();
    let failed = app.wait_status(&task.id, pb::TaskStatus::Failed).await;
    let elapsed = submitted_at.elapsed();
    assert!(elapsed.as_millis() >= 900 && elapsed.as_millis() < 2500, "{elapsed:?}");
    assert_eq!(failed.error, "timed out after 1s");
    let withdrawal = app.coordinator_tasks.cancelled(id_of(&task)).await;
    assert_eq!(withdrawal.reason, "timed out after 1s");
    let last = app.events(&task.id).await.pop().unwrap();
    assert_eq!(
        (last.status, last.detail.as_str()),
        (i32::from(pb::TaskStatus::Failed), "timed out after 1s")
    );
    app.finish().await;
}

#[tokio::test]
async fn a_task_that_cannot_time_out_does_not_hold_up_the_others() {
    let app = TestOrchestrator::start_with(|settings| settings.sweep_interval_ms = 200).await;
    let submit = |timeout_s| {
        let mut request = task_request("alice", "summarize", json!({}));
        request.timeout_s = Some(timeout_s);
        request
    };
    // The poisoned task's deadline comes first, so every sweep meets it first.
    let poisoned = app.submit(&app.user("alice"), submit(1)).await.unwrap().task.unwrap();
    let healthy = app.submit(&app.user("alice"), submit(2)).await.unwrap().task.unwrap();
    sqlx::query(&format!(
        "CREATE FUNCTION orchestrator.refuse_timeout() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.id = '{}' THEN RAISE EXCEPTION 'refused'; END IF;
             RETURN NEW;
         END $$",
        poisoned.id
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_timeout BEFORE UPDATE ON orchestrator.tasks
         FOR EACH ROW EXECUTE FUNCTION orchestrator.refuse_timeout()",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let failed = app.wait_status(&healthy.id, pb::TaskStatus::Failed).await;
    assert_eq!(failed.error, "timed out after 2s");
    let stuck = app.get(&app.admin(), &poisoned.id, "").await.unwrap();
    assert_eq!(stuck.status, i32::from(pb::TaskStatus::Queued));
    let pass = app.orchestrator.time_out_overdue_tasks().await.unwrap();
    assert_eq!((pass.found, pass.failed), (1, 1));
    app.finish().await;
}
