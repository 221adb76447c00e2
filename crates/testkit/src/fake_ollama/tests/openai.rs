//! The OpenAI-compatible layer: `/v1/models`, `/v1/chat/completions` whole and streamed,
//! `/v1/embeddings`, and errors in the OpenAI shape.

use std::time::Duration;

use axum::http::StatusCode;
use hyper::Method;
use serde_json::{Value, json};

use super::{TextResponse, post_json, send, started_with_model};
use crate::fake_ollama::openai_wire::{EVENT_STREAM_CONTENT_TYPE, OPENAI_JSON_CONTENT_TYPE};
use crate::fake_ollama::{DEFAULT_EMBEDDING_DIMENSION, FakeOllama, ScriptedReply, fake_embedding};

fn user_chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The `data:` payloads of a server-sent event body, which must consist of `data:` frames only.
fn sse_data(response: &TextResponse) -> Vec<String> {
    assert_eq!(response.content_type, EVENT_STREAM_CONTENT_TYPE);
    assert!(response.body.ends_with("\n\n"), "frames end with a blank line: {:?}", response.body);
    let mut payloads = Vec::new();
    for frame in response.body.trim_end_matches("\n\n").split("\n\n") {
        let payload = frame.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data frame: {frame:?}"));
        payloads.push(payload.to_owned());
    }
    payloads
}

fn chunk_json(payload: &str) -> Value {
    serde_json::from_str(payload).expect("each chunk is json")
}

#[tokio::test]
async fn models_are_listed_newest_first_with_their_namespace() {
    let fake = FakeOllama::start().await;
    let empty = send(&fake, Method::GET, "/v1/models", "").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json(), json!({"object": "list", "data": null}));

    fake.add_model("llama3.2:1b");
    fake.add_model("myorg/custom:7b");
    let response = send(&fake, Method::GET, "/v1/models", "").await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.content_type, OPENAI_JSON_CONTENT_TYPE);
    assert!(response.body.ends_with("}\n"));
    let body = response.json();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().expect("data array");
    let summary: Vec<(&str, &str, &str)> = data
        .iter()
        .map(|model| {
            (
                model["id"].as_str().expect("id"),
                model["object"].as_str().expect("object"),
                model["owned_by"].as_str().expect("owned_by"),
            )
        })
        .collect();
    assert_eq!(summary, [("myorg/custom:7b", "model", "myorg"), ("llama3.2:1b", "model", "library")]);
    assert!(data[0]["created"].as_i64().expect("created") > 1_700_000_000);
}

#[tokio::test]
async fn a_whole_completion_has_the_chat_completion_shape() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.script_reply("Hello there");

    let response =
        post_json(&fake, "/v1/chat/completions", user_chat("llama3.2:1b", "hi there friend")).await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.content_type, OPENAI_JSON_CONTENT_TYPE);
    let body = response.json();
    assert!(body["id"].as_str().expect("id").starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "llama3.2:1b");
    assert_eq!(body["system_fingerprint"], "fp_ollama");
    assert_eq!(
        body["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}])
    );
    assert_eq!(body["usage"], json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}));
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].body["messages"][0]["content"], "hi there friend");
}

#[tokio::test]
async fn without_a_scripted_reply_the_last_user_message_is_echoed_and_max_tokens_cuts_it() {
    let fake = started_with_model("llama3.2").await;
    let mut request = user_chat("llama3.2", "one two three four");
    request["max_tokens"] = json!(2);

    let body = post_json(&fake, "/v1/chat/completions", request).await.json();

    assert_eq!(body["choices"][0]["message"]["content"], "one two");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn a_stream_is_chunk_events_then_usage_then_done() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.set_chunk_delay(Duration::from_millis(5));
    let reply = "line one\nline two";
    fake.script_reply(reply);
    let mut request = user_chat("llama3.2:1b", "two lines please");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});

    let response = post_json(&fake, "/v1/chat/completions", request).await;

    assert_eq!(response.status, StatusCode::OK);
    let payloads = sse_data(&response);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> =
        payloads[..payloads.len() - 1].iter().map(|payload| chunk_json(payload)).collect();
    let (usage_chunk, content_chunks) = chunks.split_last().expect("a usage chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}));
    let mut text = String::new();
    for (position, chunk) in content_chunks.iter().enumerate() {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], content_chunks[0]["id"]);
        assert_eq!(chunk["choices"][0]["delta"]["role"], "assistant");
        let is_last = position == content_chunks.len() - 1;
        let expected_reason = if is_last { json!("stop") } else { Value::Null };
        assert_eq!(chunk["choices"][0]["finish_reason"], expected_reason);
        assert!(chunk.get("usage").is_none());
        text.push_str(chunk["choices"][0]["delta"]["content"].as_str().expect("content"));
    }
    assert_eq!(text, reply);
    assert!(content_chunks.iter().any(|chunk| chunk["choices"][0]["delta"]["content"] == "\nline"));
}

#[tokio::test]
async fn a_stream_without_include_usage_has_no_usage_chunk() {
    let fake = started_with_model("llama3.2").await;
    let mut request = user_chat("llama3.2", "hello");
    request["stream"] = json!(true);

    let payloads = sse_data(&post_json(&fake, "/v1/chat/completions", request).await);

    assert_eq!(payloads.len(), 3, "{payloads:?}");
    assert_eq!(chunk_json(&payloads[0])["choices"][0]["delta"]["content"], "hello");
    assert_eq!(chunk_json(&payloads[1])["choices"][0]["finish_reason"], "stop");
    assert_eq!(payloads[2], "[DONE]");
}

#[tokio::test]
async fn a_stream_error_is_a_bare_error_line_without_done() {
    let fake = started_with_model("llama3.2").await;
    fake.script_reply(
        ScriptedReply::text("partial answer here").with_stream_error_after(1, "runner crashed"),
    );
    let mut request = user_chat("llama3.2", "hi");
    request["stream"] = json!(true);

    let response = post_json(&fake, "/v1/chat/completions", request).await;

    assert_eq!(response.status, StatusCode::OK);
    let (first_frame, error_line) = response.body.split_once("\n\n").expect("one data frame");
    assert_eq!(
        chunk_json(first_frame.strip_prefix("data: ").expect("data frame"))["choices"][0]["delta"]["content"],
        "partial"
    );
    let error_object = error_line.strip_suffix('\n').expect("the error line ends the body");
    assert!(!error_object.contains('\n') && !error_line.contains("[DONE]"));
    assert_eq!(
        serde_json::from_str::<Value>(error_object).expect("json error object"),
        json!({"error": {"message": "runner crashed", "type": "api_error", "param": null, "code": null}})
    );
}

#[tokio::test]
async fn unknown_models_answer_404_in_the_openai_shape() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.script_reply("kept");
    let expected = json!({"error": {
        "message": "model \"mistral\" not found, try pulling it first",
        "type": "not_found_error",
        "param": null,
        "code": null,
    }});

    let chat = post_json(&fake, "/v1/chat/completions", user_chat("mistral", "hi")).await;
    let embeddings = post_json(&fake, "/v1/embeddings", json!({"model": "mistral", "input": "hi"})).await;

    for response in [chat, embeddings] {
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.content_type, OPENAI_JSON_CONTENT_TYPE);
        assert!(response.body.ends_with("}\n"), "go's encoder ends the body with a newline");
        assert_eq!(response.json(), expected);
    }
    assert_eq!(fake.pending_replies(), 1);
}

#[tokio::test]
async fn bad_requests_answer_400_invalid_request_error() {
    let fake = started_with_model("llama3.2").await;

    let no_messages =
        post_json(&fake, "/v1/chat/completions", json!({"model": "llama3.2", "messages": []})).await;
    let bad_content = post_json(
        &fake,
        "/v1/chat/completions",
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": 2}]}),
    )
    .await;
    let null_input = post_json(&fake, "/v1/embeddings", json!({"model": "llama3.2"})).await;

    for (response, message) in [
        (no_messages, "[] is too short - 'messages'"),
        (bad_content, "invalid message content type: float64"),
        (null_input, "invalid input"),
    ] {
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            response.json(),
            json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
        );
    }
}

#[tokio::test]
async fn scripted_failures_keep_their_status_and_retry_after() {
    let fake = started_with_model("llama3.2").await;
    fake.throttle_next(1, Duration::from_millis(1_500));
    fake.fail_next(1, StatusCode::SERVICE_UNAVAILABLE);

    let throttled = post_json(&fake, "/v1/chat/completions", user_chat("llama3.2", "hi")).await;
    let unavailable = post_json(&fake, "/v1/chat/completions", user_chat("llama3.2", "hi")).await;
    let served = post_json(&fake, "/v1/chat/completions", user_chat("llama3.2", "hi")).await;

    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.retry_after.as_deref(), Some("2"));
    assert_eq!(throttled.json()["error"]["type"], "api_error");
    assert_eq!(throttled.json()["error"]["message"], "rate limit exceeded");
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        unavailable.json()["error"]["message"],
        "server busy, please try again.  maximum pending requests exceeded"
    );
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn embeddings_are_the_deterministic_vectors_in_the_openai_list() {
    let fake = started_with_model("all-minilm").await;

    let response =
        post_json(&fake, "/v1/embeddings", json!({"model": "all-minilm", "input": ["a cat sat", "dogs"]}))
            .await;

    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "all-minilm");
    assert_eq!(body["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    for (index, text) in ["a cat sat", "dogs"].into_iter().enumerate() {
        assert_eq!(data[index]["object"], "embedding");
        assert_eq!(data[index]["index"], index);
        let vector: Vec<f32> = serde_json::from_value(data[index]["embedding"].clone()).expect("floats");
        assert_eq!(vector.len(), DEFAULT_EMBEDDING_DIMENSION);
        assert_eq!(vector, fake_embedding(text, DEFAULT_EMBEDDING_DIMENSION));
    }

    let single =
        post_json(&fake, "/v1/embeddings", json!({"model": "all-minilm", "input": "one"})).await.json();
    assert_eq!(single["data"].as_array().expect("data").len(), 1);
    let base64 = post_json(
        &fake,
        "/v1/embeddings",
        json!({"model": "all-minilm", "input": "one", "encoding_format": "base64", "dimensions": 1}),
    )
    .await
    .json();
    assert_eq!(base64["data"][0]["embedding"].as_str().expect("base64 text").len(), 8);
}
