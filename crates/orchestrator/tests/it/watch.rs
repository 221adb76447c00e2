//! WatchTaskEvents: the history after a sequence, then live events, ending at the terminal one.

use std::time::Duration;

use serde_json::json;
use sutazai_proto::v1 as pb;
use sutazai_types::AgentId;

use crate::{PATIENCE, TestOrchestrator, assigned, authed, id_of, started, succeeded};

async fn watch(
    app: &TestOrchestrator,
    task_id: &str,
    after_sequence: u64,
) -> tonic::Streaming<pb::WatchTaskEventsResponse> {
    let request =
        pb::WatchTaskEventsRequest { task_id: task_id.to_owned(), owner: "alice".to_owned(), after_sequence };
    app.rpc.clone().watch_task_events(authed(request, &app.user("alice"))).await.unwrap().into_inner()
}

async fn next(stream: &mut tonic::Streaming<pb::WatchTaskEventsResponse>) -> Option<(u64, i32)> {
    let message = tokio::time::timeout(PATIENCE, stream.message()).await.unwrap().unwrap();
    message.map(|response| {
        let event = response.event.unwrap();
        (event.sequence, event.status)
    })
}

#[tokio::test]
async fn watch_replays_then_follows_and_ends_at_the_terminal_event() {
    use pb::TaskStatus::*;
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let (task_id, agent) = (id_of(&task), AgentId::new());
    app.deliver(assigned(task_id, 1, agent, "")).await;
    let mut stream = watch(&app, &task.id, 0).await;
    assert_eq!(next(&mut stream).await, Some((1, Queued as i32)));
    assert_eq!(next(&mut stream).await, Some((2, Assigned as i32)));
    // Nothing more yet: the stream waits.
    assert!(tokio::time::timeout(Duration::from_millis(200), stream.message()).await.is_err());
    app.publish(started(task_id, 1, agent)).await;
    assert_eq!(next(&mut stream).await, Some((3, Running as i32)));
    app.publish(succeeded(task_id, 1, agent, json!({"output": 1}))).await;
    assert_eq!(next(&mut stream).await, Some((4, Succeeded as i32)));
    assert_eq!(next(&mut stream).await, None);

    // Resuming: the rest of the history, or nothing after the end.
    let mut resumed = watch(&app, &task.id, 2).await;
    assert_eq!(next(&mut resumed).await, Some((3, Running as i32)));
    assert_eq!(next(&mut resumed).await, Some((4, Succeeded as i32)));
    assert_eq!(next(&mut resumed).await, None);
    let mut after_end = watch(&app, &task.id, 4).await;
    assert_eq!(next(&mut after_end).await, None);
    app.finish().await;
}
