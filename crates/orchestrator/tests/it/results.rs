//! Applying reports: a task runs to success with every transition recorded; late, duplicate and
//! post-cancel reports never overwrite; the coordinator's take-backs and refusals are followed.

use std::time::Duration;

use serde_json::json;
use sutazai_orchestrator::domain::fencing::NO_AGENT;
use sutazai_orchestrator::service::results::Applied;
use sutazai_proto::v1 as pb;
use sutazai_types::AgentId;
use sutazai_types::messages::{TaskMessage, TaskWaiting};

use crate::{TestOrchestrator, assigned, failed, id_of, json_of, started, succeeded};

fn waiting(task_id: sutazai_types::TaskId, attempt: u32, reason: &str) -> TaskMessage {
    TaskMessage::Waiting(TaskWaiting { task_id, attempt, reason: reason.to_owned() })
}

#[tokio::test]
async fn a_task_runs_to_success_with_ordered_timestamped_events() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({"text": "doc"})).await;
    let task_id = id_of(&task);
    let agent = AgentId::new();
    let result =
        json!({"output": "a summary", "model": "smollm2", "prompt": [{"role": "user", "content": "doc"}]});
    // The coordinator cannot place it yet: the reason shows on the queued task, and goes once it
    // is assigned.
    let reason = "no online agent has capabilities [llm]";
    app.deliver(TaskMessage::Waiting(TaskWaiting { task_id, attempt: 1, reason: reason.to_owned() })).await;
    let waiting = app.get(&app.user("alice"), &task.id, "alice").await.unwrap();
    assert_eq!((waiting.status, waiting.queued_reason.as_str()), (i32::from(pb::TaskStatus::Queued), reason));
    app.deliver(assigned(task_id, 1, agent, "")).await;
    let running_before = app.wait_status(&task.id, pb::TaskStatus::Assigned).await;
    assert_eq!((running_before.attempt, running_before.assigned_agent.clone()), (1, agent.to_string()));
    assert!(running_before.queued_reason.is_empty());
    app.deliver(started(task_id, 1, agent)).await;
    app.wait_status(&task.id, pb::TaskStatus::Running).await;
    app.deliver(succeeded(task_id, 1, agent, result.clone())).await;
    let done = app.wait_status(&task.id, pb::TaskStatus::Succeeded).await;
    assert_eq!(json_of(done.result.as_ref()), result);
    assert!(done.error.is_empty());
    let (started_at, finished_at) = (done.started_at.unwrap(), done.finished_at.unwrap());
    assert!(started_at.seconds <= finished_at.seconds);

    let events = app.events(&task.id).await;
    let transitions: Vec<(u64, i32, i32, u32)> = events
        .iter()
        .map(|event| (event.sequence, event.previous_status, event.status, event.attempt))
        .collect();
    use pb::TaskStatus::*;
    assert_eq!(
        transitions,
        [
            (1, Unspecified as i32, Queued as i32, 0),
            (2, Queued as i32, Assigned as i32, 1),
            (3, Assigned as i32, Running as i32, 1),
            (4, Running as i32, Succeeded as i32, 1),
        ]
    );
    let times: Vec<_> = events.iter().map(|event| event.occurred_at.unwrap()).collect();
    assert!(
        times.windows(2).all(|pair| (pair[0].seconds, pair[0].nanos) <= (pair[1].seconds, pair[1].nanos))
    );
    assert_eq!(events[1].agent_id, agent.to_string());
    // The prompt and the output are kept with the attempt too.
    let (outcome, stored): (String, serde_json::Value) = sqlx::query_as(
        "SELECT outcome, result FROM orchestrator.attempts WHERE task_id = $1 AND attempt = 1",
    )
    .bind(task_id.as_uuid())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((outcome.as_str(), stored), ("succeeded", result));
    app.finish().await;
}

#[tokio::test]
async fn a_late_result_of_a_reassigned_attempt_is_ignored() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let task_id = id_of(&task);
    let (lost, replacement) = (AgentId::new(), AgentId::new());
    app.deliver(assigned(task_id, 1, lost, "")).await;
    app.deliver(started(task_id, 1, lost)).await;
    // The coordinator re-assigns the task of the agent that went silent.
    app.deliver(assigned(task_id, 2, replacement, "agent went offline")).await;
    let reassigned = app.wait_status(&task.id, pb::TaskStatus::Assigned).await;
    assert_eq!((reassigned.attempt, reassigned.assigned_agent), (2, replacement.to_string()));

    // The lost agent's result arrives late: ignored, nothing changes.
    app.deliver(succeeded(task_id, 1, lost, json!({"output": "stale"}))).await;
    let unchanged = app.get(&app.admin(), &task.id, "").await.unwrap();
    assert_eq!((unchanged.status, unchanged.attempt), (i32::from(pb::TaskStatus::Assigned), 2));
    assert!(unchanged.result.is_none());

    app.deliver(succeeded(task_id, 2, replacement, json!({"output": "fresh"}))).await;
    let done = app.wait_status(&task.id, pb::TaskStatus::Succeeded).await;
    assert_eq!(json_of(done.result.as_ref()), json!({"output": "fresh"}));
    let events = app.events(&task.id).await;
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[3].detail, "attempt 2: agent went offline");
    // The outcome overtook its attempt's `Started`: the start it implies is recorded first.
    assert_eq!((events[4].status, events[4].attempt), (i32::from(pb::TaskStatus::Running), 2));
    assert!(done.started_at.is_some());
    assert_eq!(
        app.attempt_outcomes(task_id).await,
        [(1, "reassigned".to_owned()), (2, "succeeded".to_owned())]
    );
    app.finish().await;
}

#[tokio::test]
async fn a_redelivered_message_is_applied_once() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let task_id = id_of(&task);
    let agent = AgentId::new();
    // The broker delivers the same message (same id) twice.
    let message = assigned(task_id, 1, agent, "");
    app.publish_with_id(message.clone(), "assignment-1").await;
    app.publish_with_id(message.clone(), "assignment-1").await;
    app.processed("assignment-1").await;
    app.wait_status(&task.id, pb::TaskStatus::Assigned).await;
    // Applying it again directly shows why nothing happened the second time.
    assert_eq!(app.orchestrator.apply_report("assignment-1", message).await.unwrap(), Applied::Duplicate);
    // An assignment after a report implied it is recognised, not applied twice.
    let other = app.submit_simple("alice", json!({})).await;
    app.deliver(started(id_of(&other), 1, agent)).await;
    app.deliver(assigned(id_of(&other), 1, agent, "")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.events(&task.id).await.len(), 2);
    let other_statuses: Vec<i32> = app.events(&other.id).await.iter().map(|event| event.status).collect();
    use pb::TaskStatus::*;
    assert_eq!(other_statuses, [Queued as i32, Assigned as i32, Running as i32]);
    app.finish().await;
}

#[tokio::test]
async fn a_result_after_cancel_is_ignored() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let task_id = id_of(&task);
    let agent = AgentId::new();
    app.deliver(assigned(task_id, 1, agent, "")).await;
    app.deliver(started(task_id, 1, agent)).await;
    app.cancel(&app.user("alice"), &task.id, "alice", "changed my mind").await.unwrap();
    app.deliver(succeeded(task_id, 1, agent, json!({"output": "too late"}))).await;
    let task = app.get(&app.admin(), &task.id, "").await.unwrap();
    assert_eq!(task.status, i32::from(pb::TaskStatus::Cancelled));
    assert_eq!(task.error, "changed my mind");
    assert!(task.result.is_none());
    let last = app.events(&task.id).await.pop().unwrap();
    assert_eq!(last.status, i32::from(pb::TaskStatus::Cancelled));
    app.finish().await;
}

#[tokio::test]
async fn a_newer_attempt_of_a_task_a_late_result_ended_is_withdrawn() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let task_id = id_of(&task);
    let (lost, replacement) = (AgentId::new(), AgentId::new());
    app.deliver(assigned(task_id, 1, lost, "")).await;
    app.deliver(started(task_id, 1, lost)).await;
    // The lost agent's result overtakes the coordinator's re-assignment: the task ends with it.
    app.deliver(succeeded(task_id, 1, lost, json!({"output": "late but fine"}))).await;
    app.wait_status(&task.id, pb::TaskStatus::Succeeded).await;
    assert!(
        app.coordinator_tasks
            .all()
            .iter()
            .all(|received| !matches!(received.message, TaskMessage::Cancelled(_)))
    );
    // The coordinator, which ignores the old attempt's outcome, holds attempt 2: it is withdrawn.
    app.deliver(assigned(task_id, 2, replacement, "agent went offline")).await;
    let withdrawal = app.coordinator_tasks.cancelled(task_id).await;
    assert_eq!(withdrawal.reason, "task already succeeded");
    let done = app.get(&app.admin(), &task.id, "").await.unwrap();
    assert_eq!((done.status, done.attempt), (i32::from(pb::TaskStatus::Succeeded), 1));
    assert_eq!(json_of(done.result.as_ref()), json!({"output": "late but fine"}));
    assert_eq!(
        app.orchestrator
            .apply_report("again", waiting(task_id, 2, "all 1 capable agents are busy"))
            .await
            .unwrap(),
        Applied::Withdrawn
    );
    app.finish().await;
}

#[tokio::test]
async fn a_wait_for_the_next_attempt_queues_a_running_task_again() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let task_id = id_of(&task);
    let (lost, replacement) = (AgentId::new(), AgentId::new());
    app.deliver(assigned(task_id, 1, lost, "")).await;
    app.deliver(started(task_id, 1, lost)).await;
    app.wait_status(&task.id, pb::TaskStatus::Running).await;
    // The agent went silent; the coordinator took the task back and has no agent for attempt 2.
    let reason = "all 1 capable agents are busy";
    app.deliver(waiting(task_id, 2, reason)).await;
    let queued = app.get(&app.admin(), &task.id, "").await.unwrap();
    assert_eq!(
        (queued.status, queued.attempt, queued.queued_reason.as_str()),
        (i32::from(pb::TaskStatus::Queued), 1, reason)
    );
    let last = app.events(&task.id).await.pop().unwrap();
    assert_eq!(
        (last.previous_status, last.status, last.detail.as_str()),
        (
            i32::from(pb::TaskStatus::Running),
            i32::from(pb::TaskStatus::Queued),
            "attempt 1 taken back by the coordinator; attempt 2 waits: all 1 capable agents are busy"
        )
    );
    // The abandoned attempt's late result is fenced off.
    app.deliver(succeeded(task_id, 1, lost, json!({"output": "stale"}))).await;
    let unchanged = app.get(&app.admin(), &task.id, "").await.unwrap();
    assert_eq!(unchanged.status, i32::from(pb::TaskStatus::Queued));
    assert!(unchanged.result.is_none());
    // Attempt 2 runs as usual.
    app.deliver(assigned(task_id, 2, replacement, "agent went offline")).await;
    app.deliver(succeeded(task_id, 2, replacement, json!({"output": "fresh"}))).await;
    let done = app.wait_status(&task.id, pb::TaskStatus::Succeeded).await;
    assert_eq!((done.attempt, json_of(done.result.as_ref())), (2, json!({"output": "fresh"})));
    assert_eq!(
        app.attempt_outcomes(task_id).await,
        [(1, "reassigned".to_owned()), (2, "succeeded".to_owned())]
    );
    app.finish().await;
}

#[tokio::test]
async fn a_refusal_fails_the_task_without_an_assignment() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let task_id = id_of(&task);
    let error = "pending queue full (capacity 1)";
    app.deliver(failed(task_id, 1, NO_AGENT, error, false)).await;
    let refused = app.wait_status(&task.id, pb::TaskStatus::Failed).await;
    assert_eq!((refused.error.as_str(), refused.attempt), (error, 0));
    assert!(refused.assigned_agent.is_empty() && refused.started_at.is_none());
    let events: Vec<(i32, String)> =
        app.events(&task.id).await.into_iter().map(|event| (event.status, event.detail)).collect();
    assert_eq!(
        events,
        [
            (i32::from(pb::TaskStatus::Queued), "submitted".to_owned()),
            (i32::from(pb::TaskStatus::Failed), format!("refused by the coordinator: {error}")),
        ]
    );
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM orchestrator.attempts WHERE task_id = $1")
        .bind(task_id.as_uuid())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0);
    let mut dead = Vec::new();
    crate::wait_for_dead_letters(&app, &mut dead, 1).await;
    assert!(matches!(&dead[..], [TaskMessage::Failed(refusal)] if refusal.task_id == task_id));
    app.finish().await;
}

#[tokio::test]
async fn old_inbox_records_are_purged() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    app.deliver(assigned(id_of(&task), 1, AgentId::new(), "")).await;
    sqlx::query(
        "INSERT INTO orchestrator.inbox (consumer, message_id, processed_at)
         VALUES ('orchestrator.results', 'two-days-old', now() - interval '2 days'),
                ('someone.else', 'not-ours', now() - interval '2 days')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let purged = app.orchestrator.purge_handled_reports(Duration::from_secs(24 * 3600)).await.unwrap();
    assert_eq!(purged, 1);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM orchestrator.inbox ORDER BY message_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"not-ours".to_owned()) && !left.contains(&"two-days-old".to_owned()));
    app.finish().await;
}

#[tokio::test]
async fn nul_characters_in_an_agent_error_do_not_lose_the_outcome() {
    let app = TestOrchestrator::start().await;
    let task = app.submit_simple("alice", json!({})).await;
    let task_id = id_of(&task);
    let agent = AgentId::new();
    app.deliver(assigned(task_id, 1, agent, "")).await;
    // Postgres stores no NUL in text: the error is stored without it rather than refused.
    app.deliver(failed(task_id, 1, agent, "bad\0 input", false)).await;
    let failed = app.wait_status(&task.id, pb::TaskStatus::Failed).await;
    assert_eq!(failed.error, "bad input");
    app.finish().await;
}

#[tokio::test]
async fn reports_that_arrive_together_are_applied_in_one_transaction_each_on_its_own_terms() {
    let app = TestOrchestrator::start().await;
    let first = id_of(&app.submit_simple("alice", json!({"text": "one"})).await);
    let second = id_of(&app.submit_simple("alice", json!({"text": "two"})).await);
    let agent = AgentId::new();
    let id = |label: &str| format!("batch-{label}-{}", uuid::Uuid::now_v7());
    let (assigned_first, started_first) = (id("a1"), id("s1"));
    let batch = vec![
        (0, assigned_first.clone(), assigned(first, 1, agent, "")),
        // The same message again within the batch: applied once.
        (1, assigned_first, assigned(first, 1, agent, "")),
        (2, started_first, started(first, 1, agent)),
        (3, id("a2"), assigned(second, 2, agent, "agent went offline")),
        // A late report of the attempt before: fenced, the rest of the batch unaffected.
        (4, id("s2"), succeeded(second, 1, agent, json!({"output": "stale"}))),
        (5, id("unknown"), started(sutazai_types::TaskId::new(), 1, agent)),
    ];
    let mut outcomes = app.orchestrator.apply_reports(batch).await.unwrap();
    outcomes.sort_by_key(|(position, _)| *position);
    let outcomes: Vec<Applied> = outcomes.into_iter().map(|(_, outcome)| outcome).collect();
    assert!(
        matches!(
            outcomes[..],
            [
                Applied::Applied,
                Applied::Duplicate,
                Applied::Applied,
                Applied::Applied,
                Applied::Ignored(_),
                Applied::UnknownTask
            ]
        ),
        "{outcomes:?}"
    );
    let first = app.get(&app.admin(), &first.to_string(), "").await.unwrap();
    assert_eq!(first.status, i32::from(pb::TaskStatus::Running));
    let second = app.get(&app.admin(), &second.to_string(), "").await.unwrap();
    assert_eq!((second.status, second.attempt), (i32::from(pb::TaskStatus::Assigned), 2));
    assert!(second.result.is_none());
    assert_eq!(
        app.events(&first.id).await.len(),
        3,
        "queued, assigned, running: the duplicate added nothing"
    );
    app.finish().await;
}
