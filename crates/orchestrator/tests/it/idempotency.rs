//! Idempotency keys: one task per owner and key, even under concurrent submissions.

use serde_json::json;

use crate::{TestOrchestrator, id_of, task_request};

#[tokio::test]
async fn the_same_key_returns_the_first_task() {
    let app = TestOrchestrator::start().await;
    let mut request = task_request("alice", "summarize", json!({"text": "one"}));
    request.idempotency_key = "order-42".to_owned();
    let first = app.submit(&app.user("alice"), request.clone()).await.unwrap();
    // A retried request with a different body still gets the first task, unchanged.
    request.payload = Some(sutazai_proto::json::to_proto_value(&json!({"text": "two"})));
    let second = app.submit(&app.user("alice"), request.clone()).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.task, second.task);
    // Keys are per owner.
    request.owner = "bob".to_owned();
    let bobs = app.submit(&app.user("bob"), request).await.unwrap();
    assert!(bobs.created);
    assert_ne!(bobs.task.as_ref().unwrap().id, first.task.as_ref().unwrap().id);

    app.coordinator_tasks.ready(id_of(first.task.as_ref().unwrap()), 1).await;
    assert_eq!(app.coordinator_tasks.ready_count(id_of(first.task.as_ref().unwrap())), 1);
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orchestrator.tasks").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 2);
    app.finish().await;
}

#[tokio::test]
async fn concurrent_submissions_with_one_key_create_one_task() {
    let app = TestOrchestrator::start().await;
    let mut request = task_request("alice", "summarize", json!({"text": "once"}));
    request.idempotency_key = "burst".to_owned();
    let token = app.user("alice");
    let submissions = (0..8).map(|_| app.submit(&token, request.clone()));
    let responses: Vec<_> =
        futures_util::future::join_all(submissions).await.into_iter().map(Result::unwrap).collect();
    let created = responses.iter().filter(|response| response.created).count();
    assert_eq!(created, 1);
    let ids: std::collections::HashSet<_> =
        responses.iter().map(|response| response.task.as_ref().unwrap().id.clone()).collect();
    assert_eq!(ids.len(), 1);
    let (tasks, events, outbox): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM orchestrator.tasks), (SELECT count(*) FROM orchestrator.task_events),
             (SELECT count(*) FROM orchestrator.outbox)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((tasks, events, outbox), (1, 1, 1));
    app.finish().await;
}
