//! Submission: the task, its first event and its `Ready` message are stored together; invalid
//! submissions are refused naming the field.

use serde_json::json;
use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{TestOrchestrator, assert_status, id_of, json_of, task_request};

#[tokio::test]
async fn submit_stores_a_queued_task_its_first_event_and_publishes_ready() {
    let app = TestOrchestrator::start().await;
    let payload = json!({"text": "a long document", "max_words": 20});
    let mut request = task_request("alice", "summarize", payload.clone());
    request.priority = 7;
    request.capabilities = vec!["llm".to_owned()];
    request.timeout_s = Some(600);
    let response = app.submit(&app.user("alice"), request).await.unwrap();
    assert!(response.created);
    let task = response.task.unwrap();
    assert_eq!(task.status, i32::from(pb::TaskStatus::Queued));
    assert_eq!((task.priority, task.attempt, task.max_retries, task.timeout_s), (7, 0, 3, 600));
    assert_eq!(json_of(task.payload.as_ref()), payload);
    assert_eq!(task.owner, "alice");

    let events = app.events(&task.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].sequence, events[0].status), (1, i32::from(pb::TaskStatus::Queued)));
    assert_eq!(events[0].previous_status, i32::from(pb::TaskStatus::Unspecified));

    let (ready, received) = app.coordinator_tasks.ready(id_of(&task), 1).await;
    assert_eq!(ready.payload, payload);
    assert_eq!((ready.task_type.as_str(), ready.owner.as_str()), ("summarize", "alice"));
    assert_eq!(ready.capabilities, ["llm"]);
    assert_eq!(ready.priority.value(), 7);
    // The AMQP priority is the task's, so the coordinator's queue serves urgent tasks first.
    assert_eq!(received.priority, Some(7));
    let deadline_s = (ready.deadline - ready.enqueued_at).num_seconds();
    assert!((599..=600).contains(&deadline_s), "{deadline_s}");
    // The event log is history: rows cannot be changed.
    let rewrite =
        sqlx::query("UPDATE orchestrator.task_events SET detail = 'rewritten'").execute(&app.pool).await;
    assert!(rewrite.unwrap_err().to_string().contains("task_events is append-only"));
    app.finish().await;
}

#[tokio::test]
async fn invalid_submissions_name_the_field() {
    let app = TestOrchestrator::start().await;
    let alice = app.user("alice");
    let large = json!({"text": "x".repeat(5000)});
    let large_bytes = serde_json::to_vec(&large).unwrap().len();
    let cases = [
        (
            pb::SubmitTaskRequest { priority: 10, ..task_request("alice", "summarize", json!({})) },
            "priority: must be between 0 and 9",
        ),
        (task_request("alice", " ", json!({})), "task_type: must be 1 to 100 characters"),
        (
            task_request("alice", "summarize", large),
            &format!("payload: is {large_bytes} bytes, more than the limit of 4096 bytes") as &str,
        ),
        (task_request("", "summarize", json!({})), "owner: is required"),
        (
            pb::SubmitTaskRequest { max_retries: Some(50), ..task_request("alice", "summarize", json!({})) },
            "max_retries: must be at most 20",
        ),
    ];
    for (request, message) in cases {
        assert_status(app.submit(&alice, request).await, Code::InvalidArgument, message);
    }
    // A user token cannot submit for someone else, and no token is no entry.
    assert_status(
        app.submit(&alice, task_request("bob", "summarize", json!({}))).await,
        Code::PermissionDenied,
        "a user token may only act for its own subject",
    );
    let anonymous = app.rpc.clone().submit_task(task_request("alice", "summarize", json!({}))).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orchestrator.tasks").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0);
    app.finish().await;
}
