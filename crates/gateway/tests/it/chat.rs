//! Chat, streaming, batch, models and conversations through the fake Ollama.

use serde_json::{Value, json};

use crate::{MODEL, platform, problem};

#[tokio::test]
async fn chat_answers_and_remembers_the_conversation() {
    let platform = platform().await;
    let token = platform.user("chatter").await;
    platform.ollama.script_reply("Paris is the capital of France.");
    let response =
        platform.post("/api/v1/chat", &token, json!({"message": "What is the capital of France?"})).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["message"], json!({"role": "assistant", "content": "Paris is the capital of France."}));
    assert_eq!(answer["model"], MODEL);
    assert_eq!(answer["cached"], false);
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(answer["latency_ms"].is_u64());

    let conversation_id = answer["conversation_id"].as_str().unwrap();
    let listed: Value = platform.get("/api/v1/conversations", &token).await.json().await.unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["title"], "What is the capital of France?");
    let conversation: Value =
        platform.get(&format!("/api/v1/conversations/{conversation_id}"), &token).await.json().await.unwrap();
    let roles: Vec<&str> =
        conversation["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"]);

    let other = platform.user("snooper").await;
    let foreign = platform.get(&format!("/api/v1/conversations/{conversation_id}"), &other).await;
    assert_eq!(foreign.status(), 404, "another user's conversation is invisible");
    let hijack = platform
        .post("/api/v1/chat", &other, json!({"message": "hi", "conversation_id": conversation_id}))
        .await;
    assert_eq!(hijack.status(), 404);
    let deleted = platform
        .client
        .delete(platform.url(&format!("/api/v1/conversations/{conversation_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
}

#[tokio::test]
async fn unknown_model_is_400_listing_the_models() {
    let platform = platform().await;
    let token = platform.user("modeluser").await;
    let response = platform.post("/api/v1/chat", &token, json!({"message": "hi", "model": "gpt-9"})).await;
    assert_eq!(response.status(), 400);
    let body = problem(response).await;
    assert!(body["detail"].as_str().unwrap().contains(MODEL), "{body}");
    let models: Value = platform.get("/api/v1/models", &token).await.json().await.unwrap();
    assert_eq!(models["default"], MODEL);
    assert_eq!(models["models"][0]["name"], MODEL);
}

#[tokio::test]
async fn llm_down_is_503_not_200() {
    let platform = platform().await;
    let token = platform.user("downuser").await;
    // The model list is cached first, so the failures below come from the generations themselves.
    assert_eq!(platform.get("/api/v1/models", &token).await.status(), 200);
    platform.ollama.fail_next(100, sutazai_testkit::fake_ollama::StatusCode::SERVICE_UNAVAILABLE);
    let response = platform.post("/api/v1/chat", &token, json!({"message": "hi", "use_cache": false})).await;
    assert_eq!(response.status(), 503);
    assert_eq!(problem(response).await["code"], "unavailable");
    let batch =
        platform.post("/api/v1/batch", &token, json!({"prompts": ["a", "b"], "use_cache": false})).await;
    assert_eq!(batch.status(), 503, "a batch the LLM could not answer at all is not a 200");
}

#[tokio::test]
async fn prompts_sharing_a_long_prefix_get_their_own_cached_answers() {
    let platform = platform().await;
    let token = platform.user("cacheuser").await;
    let prefix = "x".repeat(300);
    platform.ollama.script_reply("answer one");
    platform.ollama.script_reply("answer two");
    let first: Value = platform
        .post("/api/v1/chat", &token, json!({"message": format!("{prefix} first")}))
        .await
        .json()
        .await
        .unwrap();
    let second: Value = platform
        .post("/api/v1/chat", &token, json!({"message": format!("{prefix} second")}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["message"]["content"], "answer one");
    assert_eq!(second["message"]["content"], "answer two");
    let again: Value = platform
        .post("/api/v1/chat", &token, json!({"message": format!("{prefix} first")}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["message"]["content"], "answer one");
    assert_eq!(again["cached"], true);
    let bypass: Value = platform
        .post("/api/v1/chat", &token, json!({"message": format!("{prefix} first"), "use_cache": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bypass["cached"], false);
}

#[tokio::test]
async fn batch_limits_and_free_prose() {
    let platform = platform().await;
    let token = platform.user("batcher").await;
    let too_many: Vec<String> = (0..51).map(|index| format!("prompt {index}")).collect();
    let response = platform.post("/api/v1/batch", &token, json!({"prompts": too_many})).await;
    assert_eq!(response.status(), 400);
    assert!(problem(response).await["detail"].as_str().unwrap().starts_with("too many prompts"));

    let prose = "He said \"select * from users;\" —\nthen 'drop' it.\n\tDone.";
    let response = platform
        .post("/api/v1/batch", &token, json!({"prompts": [prose, "second"], "use_cache": false}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["index"], 0);
    assert_eq!(results[0]["response"], prose, "the fake echoes the prompt: it arrived intact");
    assert_eq!(results[1]["response"], "second");
    let oversized = platform.post("/api/v1/batch", &token, json!({"prompts": ["x".repeat(33 * 1024)]})).await;
    assert_eq!(oversized.status(), 422);
    assert_eq!(problem(oversized).await["field"], "prompts[0]");
}

#[tokio::test]
async fn stream_frames_are_json_and_done_carries_usage() {
    let platform = platform().await;
    let token = platform.user("streamer").await;
    platform.ollama.script_reply("first line\nsecond line");
    let response = platform.post("/api/v1/chat/stream", &token, json!({"message": "two lines please"})).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let mut deltas = String::new();
    let mut done: Option<Value> = None;
    let mut event_name = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event_name = Some(name.to_owned());
        } else if let Some(data) = line.strip_prefix("data: ") {
            let frame: Value = serde_json::from_str(data).unwrap_or_else(|_| panic!("frame is JSON: {data}"));
            match event_name.take().as_deref() {
                Some("done") => done = Some(frame),
                Some(other) => panic!("unexpected event {other}: {frame}"),
                None => deltas.push_str(frame["delta"].as_str().unwrap()),
            }
        }
    }
    assert_eq!(deltas, "first line\nsecond line", "a token containing a newline survives");
    let done = done.expect("a done event");
    assert!(done["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{done}");
    assert_eq!(done["model"], MODEL);

    let unknown =
        platform.post("/api/v1/chat/stream", &token, json!({"message": "hi", "model": "nope"})).await;
    assert_eq!(unknown.status(), 400, "known before streaming: an ordinary error response");
}
