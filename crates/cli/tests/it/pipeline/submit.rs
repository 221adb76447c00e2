//! One task through the whole pipeline: submitted over gRPC, dispatched by the coordinator, run
//! by a summarizer agent against the fake Ollama, its output and prompt stored with the task.

use serde_json::json;
use sutazai_proto::v1 as pb;

use super::{MODEL, Pipeline, SUMMARIZER_PERSONA, json_of, statuses, task_request, time_of};

#[tokio::test]
async fn a_summarize_task_succeeds_with_the_model_output_and_every_transition() {
    let mut pipeline = Pipeline::start().await;
    let agents = pipeline.worker(&["summarizer"]).await;
    let summarizer = agents.agent("summarizer");
    pipeline.ollama.script_reply("A quick fox jumped over a lazy dog.");
    let text = "The quick brown fox jumps over the lazy dog, twice, on a Tuesday.";
    let submitted =
        pipeline.submit(task_request("alice", "summarize", json!({"text": text}), 5, &["summarizer"])).await;
    assert_eq!(submitted.status, i32::from(pb::TaskStatus::Queued));
    assert_eq!(submitted.attempt, 0);

    let task = pipeline.wait_status(&submitted.id, pb::TaskStatus::Succeeded).await;
    assert_eq!(task.attempt, 1);
    assert_eq!(task.assigned_agent, summarizer.to_string());
    assert_eq!(task.error, "");
    let result = json_of(task.result.as_ref());
    assert_eq!(result["output"], "A quick fox jumped over a lazy dog.", "{result}");
    assert_eq!(result["model"], MODEL, "{result}");
    // The prompt is stored with the task exactly as the model was sent it.
    let chats: Vec<_> =
        pipeline.ollama.requests().into_iter().filter(|request| request.path == "/api/chat").collect();
    assert_eq!(chats.len(), 1);
    assert_eq!(result["prompt"], chats[0].body["messages"], "{result}");
    let prompt = result["prompt"].as_array().unwrap();
    assert_eq!(prompt[0], json!({"role": "system", "content": SUMMARIZER_PERSONA}));
    assert_eq!(prompt[1]["role"], "user");
    assert!(prompt[1]["content"].as_str().unwrap().contains(text), "{result}");

    let created = time_of(task.created_at.as_ref());
    let started = time_of(task.started_at.as_ref());
    let finished = time_of(task.finished_at.as_ref());
    assert!(created <= started && started <= finished, "{created} {started} {finished}");

    let events = pipeline.events(&task.id).await;
    assert_eq!(
        statuses(&events),
        [
            pb::TaskStatus::Queued,
            pb::TaskStatus::Assigned,
            pb::TaskStatus::Running,
            pb::TaskStatus::Succeeded
        ]
    );
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
    for pair in events.windows(2) {
        assert_eq!(pair[1].previous_status, pair[0].status);
        assert!(
            time_of(pair[0].occurred_at.as_ref()) <= time_of(pair[1].occurred_at.as_ref()),
            "timestamps go back: {events:#?}"
        );
    }
    assert_eq!(time_of(events[0].occurred_at.as_ref()), created);
    assert_eq!(time_of(events[2].occurred_at.as_ref()), started);
    assert_eq!(time_of(events[3].occurred_at.as_ref()), finished);
    for event in &events[1..] {
        assert_eq!((event.attempt, event.agent_id.as_str()), (1, summarizer.to_string().as_str()));
    }
    pipeline.finish().await;
}
