//! `/api/chat` and `/api/generate`: scripted and echoed replies, streaming, load/unload,
//! `num_predict`, stream errors and tool calls.

use std::time::Duration;

use axum::http::{StatusCode, header};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};

use super::{TextResponse, concatenated_chat_content, post_json, send_raw, started_with_model};
use crate::fake_ollama::ScriptedReply;
use crate::fake_ollama::completion::is_zero_keep_alive;
use crate::fake_ollama::generation::split_into_chunks;
use crate::fake_ollama::wire::{JSON_CONTENT_TYPE, NDJSON_CONTENT_TYPE};

#[tokio::test]
async fn chat_without_streaming_returns_the_scripted_reply_with_counters() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.script_reply("The sky is blue.");

    let response = post_json(
        &fake,
        "/api/chat",
        json!({
            "model": "llama3.2:1b",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "why is the sky blue?"}
            ],
            "stream": false,
            "options": {"temperature": 0}
        }),
    )
    .await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.content_type, JSON_CONTENT_TYPE);
    let body = response.json();
    assert_eq!(body["model"], "llama3.2:1b");
    assert_eq!(body["message"], json!({"role": "assistant", "content": "The sky is blue."}));
    assert_eq!(body["done"], true);
    assert_eq!(body["done_reason"], "stop");
    assert_eq!(body["prompt_eval_count"], 7);
    assert_eq!(body["eval_count"], 4);
    for duration_field in ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"] {
        assert!(body[duration_field].as_u64().expect(duration_field) > 0, "{duration_field}");
    }
    assert_eq!(fake.pending_replies(), 0);
}

#[tokio::test]
async fn chat_streams_by_default_as_ndjson_chunks_that_rebuild_the_reply() {
    let fake = started_with_model("llama3.2").await;
    fake.set_chunk_delay(Duration::from_millis(20));
    let reply = "Rayleigh scattering makes the sky blue.";
    fake.script_reply(reply);

    let response = send_raw(
        &fake,
        Method::POST,
        "/api/chat",
        &json!({"model": "llama3.2", "messages": [{"role": "user", "content": "why?"}]}).to_string(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], NDJSON_CONTENT_TYPE);
    let mut body = response.into_body();
    let mut frame_count = 0;
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            frame_count += 1;
            text.push_str(std::str::from_utf8(&data).expect("utf-8"));
        }
    }
    let lines = TextResponse {
        status: StatusCode::OK,
        content_type: NDJSON_CONTENT_TYPE.to_owned(),
        retry_after: None,
        body: text,
    }
    .ndjson_lines();

    // Six words, then the final line; with a delay between lines they arrive one by one.
    assert_eq!(lines.len(), 7);
    assert!(frame_count > 1, "the response arrived in {frame_count} frame(s)");
    assert_eq!(concatenated_chat_content(&lines), reply);
    let (final_line, partial_lines) = lines.split_last().expect("lines");
    for partial in partial_lines {
        assert_eq!(partial["done"], false);
        assert_eq!(partial["model"], "llama3.2");
        assert_eq!(partial["message"]["role"], "assistant");
        assert!(partial.get("done_reason").is_none());
    }
    assert_eq!(final_line["done"], true);
    assert_eq!(final_line["done_reason"], "stop");
    assert_eq!(final_line["message"], json!({"role": "assistant", "content": ""}));
    assert_eq!(final_line["eval_count"], 6);
    assert_eq!(final_line["prompt_eval_count"], 1);
    assert!(final_line["eval_duration"].as_u64().expect("eval_duration") >= 100_000_000);
}

#[tokio::test]
async fn chat_without_a_scripted_reply_echoes_the_last_user_message() {
    let fake = started_with_model("llama3.2:1b").await;

    let response = post_json(
        &fake,
        "/api/chat",
        json!({
            "model": "LLAMA3.2:1B",
            "messages": [
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": "second question"}
            ],
            "stream": false
        }),
    )
    .await;

    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(body["model"], "LLAMA3.2:1B");
    assert_eq!(body["message"]["content"], "second question");
}

#[tokio::test]
async fn chat_with_format_and_no_scripted_reply_answers_valid_json() {
    let fake = started_with_model("llama3.2:1b").await;

    let response = post_json(
        &fake,
        "/api/chat",
        json!({
            "model": "llama3.2:1b",
            "messages": [{"role": "user", "content": "say \"hi\""}],
            "format": "json",
            "stream": false
        }),
    )
    .await;

    let content = response.json()["message"]["content"].as_str().expect("content").to_owned();
    assert_eq!(serde_json::from_str::<Value>(&content).expect("json reply"), json!({"echo": "say \"hi\""}));
}

#[tokio::test]
async fn generate_streams_response_chunks_and_returns_context() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.script_reply("Because of scattering");

    let streamed = post_json(
        &fake,
        "/api/generate",
        json!({"model": "llama3.2:1b", "prompt": "Why is the sky blue?", "system": "Be brief."}),
    )
    .await;
    let whole =
        post_json(&fake, "/api/generate", json!({"model": "llama3.2:1b", "prompt": "Why?", "stream": false}))
            .await;

    assert_eq!(streamed.content_type, NDJSON_CONTENT_TYPE);
    let lines = streamed.ndjson_lines();
    assert_eq!(lines.len(), 4);
    let text: String = lines.iter().map(|line| line["response"].as_str().expect("response")).collect();
    assert_eq!(text, "Because of scattering");
    let final_line = lines.last().expect("final line");
    assert_eq!(final_line["done"], true);
    assert_eq!(final_line["done_reason"], "stop");
    assert_eq!(final_line["prompt_eval_count"], 7);
    assert_eq!(final_line["eval_count"], 3);
    assert_eq!(final_line["context"].as_array().expect("context").len(), 10);
    assert!(final_line.get("message").is_none());

    let body = whole.json();
    assert_eq!(body["response"], "Why?");
    assert_eq!(body["done"], true);
}

#[tokio::test]
async fn empty_messages_or_prompt_load_and_keep_alive_zero_unloads() {
    let fake = started_with_model("llama3.2:1b").await;

    let load = post_json(&fake, "/api/chat", json!({"model": "llama3.2:1b", "messages": []})).await;
    let unload = post_json(&fake, "/api/generate", json!({"model": "llama3.2:1b", "keep_alive": 0})).await;

    assert_eq!(load.content_type, JSON_CONTENT_TYPE);
    let load_body = load.json();
    assert_eq!(load_body["done_reason"], "load");
    assert_eq!(load_body["message"], json!({"role": "assistant", "content": ""}));
    assert_eq!(unload.json()["done_reason"], "unload");
}

#[tokio::test]
async fn num_predict_truncates_and_reports_length() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.script_reply("one two three four five");

    let response = post_json(
        &fake,
        "/api/chat",
        json!({
            "model": "llama3.2:1b",
            "messages": [{"role": "user", "content": "count"}],
            "options": {"num_predict": 2},
            "stream": false
        }),
    )
    .await;

    let body = response.json();
    assert_eq!(body["message"]["content"], "one two");
    assert_eq!(body["done_reason"], "length");
    assert_eq!(body["eval_count"], 2);
}

#[tokio::test]
async fn stream_error_ends_the_stream_with_an_error_line() {
    let fake = started_with_model("llama3.2:1b").await;
    fake.script_reply(ScriptedReply::text("one two three").with_stream_error_after(2, "out of memory"));
    fake.script_reply(ScriptedReply::text("one two three").with_stream_error_after(2, "out of memory"));
    let request = json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]});

    let streamed = post_json(&fake, "/api/chat", request.clone()).await;
    let mut whole_request = request;
    whole_request["stream"] = Value::Bool(false);
    let whole = post_json(&fake, "/api/chat", whole_request).await;

    let lines = streamed.ndjson_lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["message"]["content"], "one");
    assert_eq!(lines[1]["message"]["content"], " two");
    assert_eq!(lines[2], json!({"error": "out of memory"}));
    assert_eq!(whole.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(whole.json(), json!({"error": "out of memory"}));
}

#[tokio::test]
async fn scripted_tool_calls_appear_in_the_message() {
    let fake = started_with_model("llama3.2:1b").await;
    let reply = ScriptedReply::text("").with_tool_call("get_weather", json!({"city": "Paris"}));
    fake.script_reply(reply.clone());
    fake.script_reply(reply);
    let request = json!({
        "model": "llama3.2:1b",
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "stream": false
    });

    let whole = post_json(&fake, "/api/chat", request.clone()).await;
    let mut streaming_request = request;
    streaming_request["stream"] = Value::Bool(true);
    let streamed = post_json(&fake, "/api/chat", streaming_request).await;

    let message = &whole.json()["message"];
    assert_eq!(message["content"], "");
    let tool_call = &message["tool_calls"][0];
    assert!(tool_call["id"].as_str().expect("id").starts_with("call_"));
    assert_eq!(
        tool_call["function"],
        json!({"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}})
    );
    let lines = streamed.ndjson_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["done"], false);
    assert_eq!(lines[0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(lines[1]["done"], true);
}

#[test]
fn chunks_rebuild_the_text_exactly() {
    for text in ["", "one", "Hello world", "  leading and trailing  ", "line\nbreak\ttab", "héllo wörld"] {
        let chunks = split_into_chunks(text);
        assert_eq!(chunks.concat(), text);
    }
    assert_eq!(split_into_chunks("Hello big world"), ["Hello", " big", " world"]);
}

#[test]
fn keep_alive_zero_is_recognized_in_both_encodings() {
    assert!(is_zero_keep_alive(&json!(0)));
    assert!(is_zero_keep_alive(&json!("0")));
    assert!(is_zero_keep_alive(&json!("0s")));
    assert!(!is_zero_keep_alive(&json!("5m")));
    assert!(!is_zero_keep_alive(&json!(-1)));
}
