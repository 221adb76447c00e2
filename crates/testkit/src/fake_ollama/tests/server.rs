//! What every route shares: installed models, bad bodies, scripted failures and latency,
//! request recording, the non-API routes and shutdown.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};

use super::{post_json, send, send_raw, started_with_model};
use crate::fake_ollama::state::canonical_model_name;
use crate::fake_ollama::wire::JSON_CONTENT_TYPE;
use crate::fake_ollama::{FAKE_OLLAMA_VERSION, FakeOllama, ScriptedFailure};

#[tokio::test]
async fn tags_lists_added_models_newest_first_with_ollama_fields() {
    let fake = FakeOllama::start().await;
    fake.add_model("llama3.2:1b");
    fake.add_model("nomic-embed-text");
    fake.add_model("llama3.2:1b");

    let response = send(&fake, Method::GET, "/api/tags", "").await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.content_type, JSON_CONTENT_TYPE);
    let models = response.json()["models"].as_array().expect("models array").clone();
    let names: Vec<&str> = models.iter().map(|model| model["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["nomic-embed-text:latest", "llama3.2:1b"]);
    let llama = &models[1];
    assert_eq!(llama["model"], "llama3.2:1b");
    assert_eq!(llama["size"], 600_000_000);
    assert_eq!(llama["digest"].as_str().expect("digest").len(), 64);
    assert!(llama["modified_at"].as_str().expect("modified_at").ends_with('Z'));
    assert_eq!(
        llama["details"],
        json!({
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "1B",
            "quantization_level": "Q4_K_M",
        })
    );
}

#[tokio::test]
async fn unknown_model_answers_404_with_ollamas_error_on_every_endpoint() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.script_reply("kept for later");

    let chat = post_json(
        &fake,
        "/api/chat",
        json!({"model": "mistral", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let generate = post_json(&fake, "/api/generate", json!({"model": "mistral", "prompt": "hi"})).await;
    let embed = post_json(&fake, "/api/embed", json!({"model": "mistral", "input": "hi"})).await;

    for response in [chat, generate, embed] {
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.content_type, JSON_CONTENT_TYPE);
        assert_eq!(response.body, r#"{"error":"model \"mistral\" not found, try pulling it first"}"#);
    }
    assert_eq!(fake.pending_replies(), 1);
}

#[tokio::test]
async fn removed_model_is_no_longer_served() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.remove_model("llama3.2:1b");

    let response = post_json(&fake, "/api/generate", json!({"model": "llama3.2:1b", "prompt": "hi"})).await;

    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.json(), json!({"error": "model \"llama3.2:1b\" not found, try pulling it first"}));
}

#[tokio::test]
async fn malformed_missing_and_modelless_bodies_answer_400() {
    let fake = started_with_model("llama3.2:1b").await;

    let malformed = send(&fake, Method::POST, "/api/chat", "{not json").await;
    let missing = send(&fake, Method::POST, "/api/chat", "").await;
    let wrong_type = post_json(&fake, "/api/chat", json!({"model": "llama3.2:1b", "messages": "hi"})).await;
    let no_model =
        post_json(&fake, "/api/chat", json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    let bad_input = post_json(&fake, "/api/embed", json!({"model": "llama3.2:1b", "input": [1, 2]})).await;

    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.json()["error"].as_str().expect("error text").contains("key must be a string"));
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json(), json!({"error": "missing request body"}));
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert!(wrong_type.json()["error"].as_str().expect("error text").contains("invalid type"));
    assert_eq!(no_model.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_model.json(), json!({"error": "model is required"}));
    assert_eq!(bad_input.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_input.json(), json!({"error": "invalid input type"}));
}

#[tokio::test]
async fn fail_next_answers_the_status_then_recovers_with_the_scripted_reply() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.script_reply("recovered");
    fake.fail_next(2, StatusCode::INTERNAL_SERVER_ERROR);
    let request = json!({
        "model": "llama3.2:1b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": false
    });

    let first = post_json(&fake, "/api/chat", request.clone()).await;
    let second = post_json(&fake, "/api/chat", request.clone()).await;
    let third = post_json(&fake, "/api/chat", request).await;

    for failed in [&first, &second] {
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failed.content_type, JSON_CONTENT_TYPE);
        assert_eq!(failed.json(), json!({"error": "llama runner process has terminated: exit status 2"}));
    }
    assert_eq!(third.status, StatusCode::OK);
    assert_eq!(third.json()["message"]["content"], "recovered");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn busy_and_throttled_failures_carry_ollamas_text_and_retry_after() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.fail_next(1, StatusCode::SERVICE_UNAVAILABLE);
    fake.throttle_next(1, Duration::from_millis(1500));
    fake.fail_next_with(1, ScriptedFailure::new(StatusCode::BAD_GATEWAY).with_message("upstream gone"));

    let busy = send(&fake, Method::GET, "/api/tags", "").await;
    let throttled = send(&fake, Method::GET, "/api/tags", "").await;
    let custom = send(&fake, Method::GET, "/api/tags", "").await;
    let healthy = send(&fake, Method::GET, "/api/tags", "").await;

    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        busy.json(),
        json!({"error": "server busy, please try again.  maximum pending requests exceeded"})
    );
    assert_eq!(busy.retry_after, None);
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.retry_after.as_deref(), Some("2"));
    assert_eq!(throttled.json(), json!({"error": "rate limit exceeded"}));
    assert_eq!(custom.status, StatusCode::BAD_GATEWAY);
    assert_eq!(custom.json(), json!({"error": "upstream gone"}));
    assert_eq!(healthy.status, StatusCode::OK);
}

#[tokio::test]
async fn latency_delays_the_first_byte() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.set_latency(Duration::from_millis(200));

    let started = Instant::now();
    let response = send_raw(
        &fake,
        Method::POST,
        "/api/chat",
        &json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;

    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.expect("body").to_bytes();
    let final_line: Value = serde_json::from_slice(
        body.split(|byte| *byte == b'\n').rfind(|line| !line.is_empty()).expect("final line"),
    )
    .expect("json");
    assert!(final_line["load_duration"].as_u64().expect("load_duration") >= 200_000_000);
}

#[tokio::test]
async fn requests_are_recorded_with_path_headers_and_body() {
    let fake = started_with_model("llama3.2:1b").await;
    let chat_body =
        json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}], "stream": false});

    send(&fake, Method::GET, "/api/tags", "").await;
    post_json(&fake, "/api/chat", chat_body.clone()).await;
    send(&fake, Method::POST, "/api/chat", "{oops").await;
    send(&fake, Method::GET, "/", "").await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "GET / is not an /api route and is not recorded");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/api/tags");
    assert_eq!(requests[0].body, Value::Null);
    assert_eq!(requests[1].path, "/api/chat");
    assert_eq!(requests[1].body, chat_body);
    assert_eq!(requests[1].header("Content-Type"), Some("application/json"));
    assert_eq!(requests[2].body, Value::String("{oops".to_owned()));
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn root_version_and_unknown_routes_answer_like_ollama() {
    let fake = FakeOllama::start().await;

    let root = send(&fake, Method::GET, "/", "").await;
    let version = send(&fake, Method::GET, "/api/version", "").await;
    let unknown = send(&fake, Method::GET, "/api/nope", "").await;
    let wrong_method = send(&fake, Method::GET, "/api/chat", "").await;

    assert_eq!((root.status, root.body.as_str()), (StatusCode::OK, "Ollama is running"));
    assert_eq!(version.json(), json!({"version": FAKE_OLLAMA_VERSION}));
    assert_eq!((unknown.status, unknown.body.as_str()), (StatusCode::NOT_FOUND, "404 page not found"));
    assert_eq!(wrong_method.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let fake = FakeOllama::start().await;
    let addr = fake.addr();

    fake.shutdown().await;

    let connection = tokio::net::TcpStream::connect(addr).await;
    assert_eq!(
        connection.expect_err("nothing listens any more").kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

#[test]
fn model_names_get_latest_tag_only_when_untagged() {
    assert_eq!(canonical_model_name("llama3.2"), "llama3.2:latest");
    assert_eq!(canonical_model_name("llama3.2:1b"), "llama3.2:1b");
    assert_eq!(
        canonical_model_name("registry.local:5000/team/model"),
        "registry.local:5000/team/model:latest"
    );
}
