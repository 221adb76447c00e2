//! An agent's life: registration and heartbeats, a task's messages in order with its attempt,
//! slots, acknowledging only after the outcome, and draining on shutdown.

use std::time::Duration;

use serde_json::json;
use sutazai_types::TaskId;
use sutazai_types::messages::{AgentMessage, TaskMessage};

use crate::{Options, Seen, spawn, spawn_with};

#[tokio::test]
async fn each_profile_registers_and_heartbeats() {
    let worker = spawn(&["noop", "coder"]).await;
    let noop = worker.agent("noop");
    let coder = worker.agent("coder");
    assert_ne!(noop, coder, "each profile is an agent of its own");

    let registered = worker
        .observer
        .wait_for(
            "noop's registration",
            |seen| matches!(seen, Seen::Agent(AgentMessage::Registered(message)) if message.agent_id == noop),
        )
        .await;
    let Seen::Agent(AgentMessage::Registered(registered)) = registered else { unreachable!() };
    assert_eq!(registered.name, "noop");
    assert_eq!(registered.capabilities, ["noop", "bench"]);
    assert_eq!(registered.slots, 4);
    assert_eq!(registered.version, env!("CARGO_PKG_VERSION"));
    worker
        .observer
        .wait_for("coder's registration", |seen| {
            matches!(
                seen,
                Seen::Agent(AgentMessage::Registered(message)) if message.agent_id == coder && message.slots == 2
            )
        })
        .await;

    // Heartbeats every 200 ms: a second's worth is several.
    let heartbeats = worker
        .observer
        .all(
            Duration::from_secs(1),
            |seen| matches!(seen, Seen::Agent(AgentMessage::Heartbeat(beat)) if beat.agent_id == noop),
        )
        .await;
    assert!(heartbeats.len() >= 3, "{heartbeats:?}");
    for heartbeat in heartbeats {
        let Seen::Agent(AgentMessage::Heartbeat(beat)) = heartbeat else { unreachable!() };
        assert_eq!((beat.running, beat.slots), (0, 4));
    }
    let health = reqwest::get(format!("http://{}/readyz", worker.address)).await.unwrap();
    assert_eq!(health.status(), 200);
    let report: serde_json::Value = health.json().await.unwrap();
    assert_eq!(report["checks"]["rabbitmq"]["status"], "ok", "{report}");
    assert_eq!(report["checks"]["llm"]["status"], "ok", "{report}");
    worker.finish().await;
}

#[tokio::test]
async fn noop_starts_then_succeeds_with_its_payload_and_the_attempt() {
    let worker = spawn(&["noop"]).await;
    let task_id = TaskId::new();
    let payload = json!({"n": 7, "items": ["a", "b"]});
    worker.assign_task("noop", task_id, 3, "owner-1", payload.clone()).await;

    let outcome = worker.observer.outcome(task_id).await;
    let TaskMessage::Succeeded(succeeded) = outcome else { panic!("{outcome:?}") };
    assert_eq!(succeeded.attempt, 3);
    assert_eq!(succeeded.agent_id, worker.agent("noop"));
    assert_eq!(succeeded.result, json!({"output": payload}));
    let started_at = worker.observer.position(|seen| {
        matches!(seen.task(), Some(TaskMessage::Started(started)) if started.task_id == task_id && started.attempt == 3)
    });
    let succeeded_at = worker.observer.position(
        |seen| matches!(seen.task(), Some(TaskMessage::Succeeded(message)) if message.task_id == task_id),
    );
    assert!(started_at.unwrap() < succeeded_at.unwrap(), "started before succeeded");
    // Acknowledged: nothing is left in the agent's queue.
    assert!(worker.take_from_queue("noop").await.is_none());
    worker.finish().await;
}

#[tokio::test]
async fn a_two_slot_profile_runs_two_tasks_at_once_and_no_more() {
    let worker = spawn(&["coder"]).await;
    worker.ollama.set_latency(Duration::from_millis(600));
    let mut tasks = Vec::new();
    for index in 0..3 {
        tasks.push(worker.assign("coder", json!({"spec": format!("function number {index}")})).await);
    }
    for task in &tasks {
        let outcome = worker.observer.outcome(task.task_id).await;
        assert!(matches!(outcome, TaskMessage::Succeeded(_)), "{outcome:?}");
    }
    assert_eq!(
        worker.ollama.max_concurrent_requests(),
        2,
        "two slots, two calls at once (the LLM allows four)"
    );
    let busy = worker
        .observer
        .all(
            Duration::ZERO,
            |seen| matches!(seen, Seen::Agent(AgentMessage::Heartbeat(beat)) if beat.running == 2),
        )
        .await;
    assert!(!busy.is_empty(), "a heartbeat reported both slots in use");
    worker.finish().await;
}

#[tokio::test]
async fn a_redelivered_assignment_is_not_run_a_second_time() {
    let worker = spawn(&["coder"]).await;
    worker.ollama.set_latency(Duration::from_millis(500));
    let assigned = worker.assign("coder", json!({"spec": "one"})).await;
    // The same assignment again, as the broker hands it back after a lost connection, while the
    // first delivery is still running (the coder has a free slot for it).
    worker.observer.started(assigned.task_id).await;
    worker.publish_assignment(&assigned).await;

    worker.observer.outcome(assigned.task_id).await;
    let about_the_task = worker
        .observer
        .all(Duration::from_millis(1500), |seen| {
            seen.task().is_some_and(|message| {
                message.task_id() == assigned.task_id && !matches!(message, TaskMessage::Assigned(_))
            })
        })
        .await;
    let kinds: Vec<&str> =
        about_the_task.iter().filter_map(|seen| seen.task()).map(TaskMessage::routing_key).collect();
    assert_eq!(kinds, ["task.started.v1", "task.succeeded.v1"]);
    assert_eq!(worker.chats().len(), 1, "one run, one LLM call");
    assert!(worker.take_from_queue("coder").await.is_none(), "both deliveries acknowledged");
    worker.finish().await;
}

#[tokio::test]
async fn an_agent_stopped_mid_task_leaves_the_assignment_in_its_queue() {
    let mut worker = spawn_with(Options { drain_timeout_ms: 200, ..Options::profiles(&["coder"]) }).await;
    worker.ollama.set_latency(Duration::from_secs(5));
    let assigned = worker.assign("coder", json!({"spec": "never finished"})).await;
    worker.observer.started(assigned.task_id).await;

    // The drain timeout passes long before the LLM answers: the attempt is abandoned.
    worker.stop().await;
    let outcomes = worker
        .observer
        .all(Duration::from_millis(500), |seen| {
            matches!(seen.task(), Some(TaskMessage::Succeeded(_) | TaskMessage::Failed(_)))
        })
        .await;
    assert!(outcomes.is_empty(), "{outcomes:?}");
    let (message, redelivered) =
        worker.take_from_queue("coder").await.expect("the assignment is still queued");
    assert_eq!(message, TaskMessage::Assigned(assigned));
    assert!(redelivered, "it was delivered once and handed back unacknowledged");
    worker.finish().await;
}

#[tokio::test]
async fn shutdown_drains_a_running_task_before_stopping() {
    let mut worker = spawn(&["coder"]).await;
    let agent_id = worker.agent("coder");
    worker.ollama.set_latency(Duration::from_millis(1500));
    let assigned = worker.assign("coder", json!({"spec": "finish me"})).await;
    worker.observer.started(assigned.task_id).await;

    worker.stop().await;
    // `stop` returned once the worker stopped; what it published arrives within moments.
    worker.observer.all(Duration::from_millis(300), |_| false).await;
    let draining = worker.observer.position(
        |seen| matches!(seen, Seen::Agent(AgentMessage::Draining(message)) if message.agent_id == agent_id),
    );
    let succeeded = worker.observer.position(|seen| {
        matches!(seen.task(), Some(TaskMessage::Succeeded(message)) if message.task_id == assigned.task_id)
    });
    assert!(draining.expect("draining announced") < succeeded.expect("the task finished"));
    assert!(worker.take_from_queue("coder").await.is_none(), "the assignment was acknowledged");
    worker.finish().await;
}
