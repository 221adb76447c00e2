//! An agent whose broker connection drops mid-task: the coordinator calls it offline, the task
//! moves to another agent with the next attempt, exactly one result is applied, and a late result
//! of the old attempt is ignored.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sutazai_proto::v1 as pb;
use sutazai_testkit::fake_ollama::FakeOllama;
use sutazai_types::messages::{TaskAssigned, TaskMessage, TaskSucceeded};

use super::{MODEL, Pipeline, WorkerOptions, json_of, statuses, task_request};

#[tokio::test]
async fn a_task_of_an_agent_cut_off_mid_task_is_reassigned_and_applied_once() {
    let mut pipeline = Pipeline::start().await;
    // Agent A's model takes far longer than the test: its attempt is running when it is cut off.
    let slow_ollama = FakeOllama::start().await;
    slow_ollama.add_model(MODEL);
    slow_ollama.set_latency(Duration::from_secs(60));
    let first = pipeline
        .start_worker(WorkerOptions {
            llm_url: Some(slow_ollama.base_url()),
            cuttable: true,
            ..WorkerOptions::profiles(&["summarizer"])
        })
        .await;
    let agent_a = first.agent("summarizer");
    pipeline.wait_online(1).await;
    let submitted = pipeline
        .submit(task_request("alice", "summarize", json!({"text": "a long report"}), 5, &["summarizer"]))
        .await;
    let running = pipeline.wait_status(&submitted.id, pb::TaskStatus::Running).await;
    assert_eq!((running.attempt, running.assigned_agent.as_str()), (1, agent_a.to_string().as_str()));
    sutazai_testkit::wait_for("agent A to call its model", super::PATIENCE, || async {
        !slow_ollama.requests().is_empty()
    })
    .await;

    let second = pipeline.worker(&["summarizer"]).await;
    let agent_b = second.agent("summarizer");
    pipeline.wait_online(2).await;
    pipeline.ollama.script_reply("the summary of agent B");
    pipeline.cut_off(&first).await;

    let task = pipeline.wait_status(&submitted.id, pb::TaskStatus::Succeeded).await;
    assert_eq!((task.attempt, task.assigned_agent.as_str()), (2, agent_b.to_string().as_str()));
    let result = json_of(task.result.as_ref());
    assert_eq!(result["output"], "the summary of agent B");
    let events = pipeline.events(&task.id).await;
    assert_eq!(
        statuses(&events),
        [
            pb::TaskStatus::Queued,
            pb::TaskStatus::Assigned,
            pb::TaskStatus::Running,
            pb::TaskStatus::Assigned,
            pb::TaskStatus::Running,
            pb::TaskStatus::Succeeded,
        ],
        "{events:#?}"
    );
    assert_eq!((events[3].attempt, events[3].agent_id.as_str()), (2, agent_b.to_string().as_str()));
    // The coordinator moved it because A went silent. (The event's detail says so too unless B's
    // `Started` was applied before the coordinator's `Assigned`, which it then implies.)
    let moved: Vec<TaskAssigned> = pipeline
        .observed
        .all()
        .into_iter()
        .filter_map(|message| match message {
            TaskMessage::Assigned(assigned) if assigned.task_id.to_string() == task.id => Some(assigned),
            _ => None,
        })
        .collect();
    assert_eq!(moved.len(), 2, "{moved:?}");
    assert_eq!((moved[0].attempt, moved[0].agent_id, moved[0].reason.as_str()), (1, agent_a, ""));
    let reason = format!("agent {agent_a} went offline");
    assert_eq!((moved[1].attempt, moved[1].agent_id, &moved[1].reason), (2, agent_b, &reason));
    assert_eq!(events[5].attempt, 2);

    // Agent A comes back with the outcome of its old attempt: ignored, nothing changes.
    let late = TaskMessage::Succeeded(TaskSucceeded {
        task_id: submitted.id.parse().unwrap(),
        attempt: 1,
        agent_id: agent_a,
        result: json!({"output": "the stale summary of agent A", "model": MODEL}),
        finished_at: Utc::now(),
    });
    let message_id = pipeline.publish(&late).await;
    pipeline.wait_handled_by_orchestrator(&message_id).await;
    let after = pipeline.task(&task.id).await;
    assert_eq!(json_of(after.result.as_ref()), result);
    assert_eq!((after.status, after.attempt), (i32::from(pb::TaskStatus::Succeeded), 2));
    assert_eq!(after.finished_at, task.finished_at);
    assert_eq!(pipeline.events(&task.id).await, events);
    let succeeded =
        events.iter().filter(|event| event.status == i32::from(pb::TaskStatus::Succeeded)).count();
    assert_eq!(succeeded, 1);
    // The attempts agree: the first ended when the task moved, only the second has a result.
    let attempts: Vec<(i32, Option<String>, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT attempt, outcome, result FROM orchestrator.attempts WHERE task_id = $1 ORDER BY attempt",
    )
    .bind(uuid::Uuid::parse_str(&task.id).unwrap())
    .fetch_all(&pipeline.pool)
    .await
    .unwrap();
    assert_eq!(
        attempts,
        [(1, Some("reassigned".to_owned()), None), (2, Some("succeeded".to_owned()), Some(result))]
    );
    pipeline.finish().await;
}
