//! `POST /v1/chat/completions`: Ollama's compatibility layer over `/api/chat` — the request
//! translated to a native chat, the answer as one `chat.completion` object or, with
//! `"stream": true`, as `chat.completion.chunk` server-sent events ended by `data: [DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::completion::{positive_limit, take_reply};
use super::generation::{Endpoint, Generation, GenerationInput, StreamEvent};
use super::openai_wire::{
    EVENT_STREAM_CONTENT_TYPE, OpenAiError, SYSTEM_FINGERPRINT, completion_id, openai_json_response,
    usage_json,
};
use super::routes::ReceivedAt;
use super::state::Shared;
use super::wire::{count_words, is_blank};

#[derive(Debug, Deserialize)]
struct ChatCompletionRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<CompletionMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    response_format: Option<ResponseFormat>,
}

#[derive(Debug, Deserialize)]
struct CompletionMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct ResponseFormat {
    #[serde(default, rename = "type")]
    format_type: String,
}

/// The text parts of one message, as `FromChatRequest` splits them.
fn message_texts(content: &Value) -> Result<Vec<&str>, OpenAiError> {
    match content {
        Value::String(text) => Ok(vec![text.as_str()]),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(text)) => texts.push(text),
                    (Some("image_url"), _) => {}
                    _ => return Err(OpenAiError::bad_request("invalid message format")),
                }
            }
            Ok(texts)
        }
        other => {
            Err(OpenAiError::bad_request(format!("invalid message content type: {}", go_type_name(other))))
        }
    }
}

/// What Go's `%T` prints for a decoded JSON value.
fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

pub(super) async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    Extension(received_at): Extension<ReceivedAt>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    // Gin's binding reports an empty body as Go's io.EOF.
    if is_blank(&body) {
        return Err(OpenAiError::bad_request("EOF"));
    }
    let request: ChatCompletionRequest =
        serde_json::from_slice(&body).map_err(|error| OpenAiError::bad_request(error.to_string()))?;
    if request.messages.is_empty() {
        return Err(OpenAiError::bad_request("[] is too short - 'messages'"));
    }
    let mut last_user_text = String::new();
    let mut prompt_word_count = 0;
    for message in &request.messages {
        for text in message_texts(&message.content)? {
            prompt_word_count += count_words(text);
            if message.role == "user" {
                text.clone_into(&mut last_user_text);
            }
        }
    }
    shared.lock().check_model_installed(&request.model)?;
    let format = request.response_format.as_ref().and_then(|format| {
        matches!(format.format_type.trim().to_ascii_lowercase().as_str(), "json_object" | "json_schema")
            .then(|| Value::String("json".to_owned()))
    });
    let (reply, chunk_delay) = take_reply(&shared, &last_user_text, format.as_ref());
    let generation = Generation::new(GenerationInput {
        endpoint: Endpoint::Chat,
        model: request.model,
        reply,
        num_predict: request.max_tokens.and_then(positive_limit),
        prompt_text: None,
        prompt_word_count,
        received_at,
        chunk_delay,
    });
    if request.stream {
        let include_usage = request.stream_options.is_some_and(|options| options.include_usage);
        return Ok(event_stream_response(shared, generation, include_usage));
    }
    whole_completion(&shared, &generation).await
}

async fn whole_completion(shared: &Shared, generation: &Generation) -> Result<Response, OpenAiError> {
    if !shared.sleep(generation.generation_time()).await {
        return Err(OpenAiError::new(StatusCode::SERVICE_UNAVAILABLE, "server shutting down"));
    }
    if let Some(message) = generation.stream_error_message() {
        return Err(OpenAiError::new(StatusCode::INTERNAL_SERVER_ERROR, message));
    }
    let tool_calls = openai_tool_calls(generation.tool_calls());
    let mut message = json!({ "role": "assistant", "content": generation.content() });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls.clone());
    }
    let finish_reason = if tool_calls.is_empty() { generation.done_reason() } else { "tool_calls" };
    let completion = json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": generation.model(),
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason }],
        "usage": usage_json(generation.prompt_eval_count(), generation.eval_count()),
    });
    Ok(openai_json_response(StatusCode::OK, &completion))
}

#[derive(Debug)]
struct EventStreamState {
    shared: Arc<Shared>,
    generation: Generation,
    events: VecDeque<StreamEvent>,
    id: String,
    created: u64,
    include_usage: bool,
    is_first_event: bool,
    /// Frames already decided (the usage chunk and `[DONE]` after the last content chunk).
    pending_frames: VecDeque<String>,
}

fn event_stream_response(shared: Arc<Shared>, generation: Generation, include_usage: bool) -> Response {
    let state = EventStreamState {
        events: generation.stream_events(),
        shared,
        generation,
        id: completion_id(),
        created: unix_now(),
        include_usage,
        is_first_event: true,
        pending_frames: VecDeque::new(),
    };
    let frames = futures_util::stream::unfold(state, |mut state| async move {
        if let Some(frame) = state.pending_frames.pop_front() {
            return Some((Ok::<String, Infallible>(frame), state));
        }
        let event = state.events.pop_front()?;
        if !state.is_first_event && !state.shared.sleep(state.generation.chunk_delay()).await {
            return None;
        }
        state.is_first_event = false;
        let frame = state.frame_for(event);
        Some((Ok(frame), state))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM_CONTENT_TYPE))],
        Body::from_stream(frames),
    )
        .into_response()
}

impl EventStreamState {
    fn frame_for(&mut self, event: StreamEvent) -> String {
        match event {
            StreamEvent::Content(text) => {
                self.chunk_frame(json!({ "role": "assistant", "content": text }), None)
            }
            StreamEvent::ToolCalls => {
                let tool_calls = openai_tool_calls(self.generation.tool_calls());
                self.chunk_frame(
                    json!({ "role": "assistant", "content": "", "tool_calls": tool_calls }),
                    None,
                )
            }
            // The native error line reaches the middleware after the 200 status went out, so the
            // client sees the error object on its own line, without `data:` and without
            // `[DONE]`.
            StreamEvent::Error(message) => {
                format!("{}\n", OpenAiError::new(StatusCode::INTERNAL_SERVER_ERROR, message).body())
            }
            StreamEvent::Done => {
                let finish_reason = if self.generation.tool_calls().is_empty() {
                    self.generation.done_reason().to_owned()
                } else {
                    "tool_calls".to_owned()
                };
                if self.include_usage {
                    let usage = usage_json(self.generation.prompt_eval_count(), self.generation.eval_count());
                    let mut usage_chunk = self.chunk_object(Value::Array(Vec::new()));
                    usage_chunk["usage"] = usage;
                    self.pending_frames.push_back(format!("data: {usage_chunk}\n\n"));
                }
                self.pending_frames.push_back("data: [DONE]\n\n".to_owned());
                self.chunk_frame(json!({ "role": "assistant", "content": "" }), Some(finish_reason))
            }
        }
    }

    fn chunk_object(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.generation.model(),
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        })
    }

    fn chunk_frame(&self, delta: Value, finish_reason: Option<String>) -> String {
        let chunk =
            self.chunk_object(json!([{ "index": 0, "delta": delta, "finish_reason": finish_reason }]));
        format!("data: {chunk}\n\n")
    }
}

/// Native tool calls in the OpenAI form: `type: "function"` and the arguments as a JSON string.
fn openai_tool_calls(native_tool_calls: &[Value]) -> Vec<Value> {
    let mut tool_calls = Vec::with_capacity(native_tool_calls.len());
    for native in native_tool_calls {
        let function = &native["function"];
        tool_calls.push(json!({
            "id": native["id"],
            "index": function["index"],
            "type": "function",
            "function": { "name": function["name"], "arguments": function["arguments"].to_string() },
        }));
    }
    tool_calls
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since_epoch| since_epoch.as_secs())
}
