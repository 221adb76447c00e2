//! `POST /api/chat` and `POST /api/generate`: decoding the request, the model check, the
//! load/unload answer to a request without input, and choosing the reply (scripted or echoed)
//! that [`super::generation`] sends.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::generation::{Endpoint, Generation, GenerationInput, answer_object, respond};
use super::routes::ReceivedAt;
use super::scripting::ScriptedReply;
use super::state::Shared;
use super::wire::{OllamaError, count_words, json_response, parse_body};

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    stream: Option<bool>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    keep_alive: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: String,
}

#[derive(Debug, Deserialize)]
struct GenerateRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    system: String,
    stream: Option<bool>,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    keep_alive: Option<Value>,
}

/// What `/api/chat` and `/api/generate` have in common once their bodies are decoded.
#[derive(Debug)]
struct CompletionRequest<'a> {
    endpoint: Endpoint,
    model: &'a str,
    /// The text the model echoes when no reply is scripted; `None` when the request has no
    /// input (no messages, no prompt) and only loads or unloads the model.
    echo_text: Option<&'a str>,
    /// The prompt for `/api/generate`'s `context`; `None` for chat and raw mode.
    prompt_text: Option<String>,
    prompt_word_count: usize,
    format: Option<&'a Value>,
    options: Option<&'a Value>,
    keep_alive: Option<&'a Value>,
    stream: Option<bool>,
}

pub(super) async fn chat(
    State(shared): State<Arc<Shared>>,
    Extension(received_at): Extension<ReceivedAt>,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let request: ChatRequest = parse_body(&body)?;
    let mut last_user_text = "";
    let mut prompt_word_count = 0;
    for message in &request.messages {
        prompt_word_count += count_words(&message.content);
        if message.role == "user" {
            last_user_text = &message.content;
        }
    }
    let completion = CompletionRequest {
        endpoint: Endpoint::Chat,
        model: &request.model,
        echo_text: (!request.messages.is_empty()).then_some(last_user_text),
        prompt_text: None,
        prompt_word_count,
        format: request.format.as_ref(),
        options: request.options.as_ref(),
        keep_alive: request.keep_alive.as_ref(),
        stream: request.stream,
    };
    complete(shared, received_at, completion).await
}

pub(super) async fn generate(
    State(shared): State<Arc<Shared>>,
    Extension(received_at): Extension<ReceivedAt>,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let request: GenerateRequest = parse_body(&body)?;
    let completion = CompletionRequest {
        endpoint: Endpoint::Generate,
        model: &request.model,
        echo_text: (!request.prompt.is_empty()).then_some(request.prompt.as_str()),
        // Raw mode returns no context in Ollama either.
        prompt_text: (!request.raw).then(|| format!("{} {}", request.system, request.prompt)),
        prompt_word_count: count_words(&request.system) + count_words(&request.prompt),
        format: request.format.as_ref(),
        options: request.options.as_ref(),
        keep_alive: request.keep_alive.as_ref(),
        stream: request.stream,
    };
    complete(shared, received_at, completion).await
}

async fn complete(
    shared: Arc<Shared>,
    received_at: ReceivedAt,
    request: CompletionRequest<'_>,
) -> Result<Response, OllamaError> {
    shared.lock().check_model_installed(request.model)?;
    let Some(echo_text) = request.echo_text else {
        return Ok(load_or_unload_response(request.endpoint, request.model, request.keep_alive));
    };
    let (reply, chunk_delay) = take_reply(&shared, echo_text, request.format);
    let generation = Generation::new(GenerationInput {
        endpoint: request.endpoint,
        model: request.model.to_owned(),
        reply,
        num_predict: num_predict(request.options),
        prompt_text: request.prompt_text,
        prompt_word_count: request.prompt_word_count,
        received_at,
        chunk_delay,
    });
    Ok(respond(shared, generation, request.stream.unwrap_or(true)).await)
}

/// Pops the next scripted reply or builds the default echo; also returns the chunk delay so
/// the lock is taken once.
pub(super) fn take_reply(
    shared: &Shared,
    echo_text: &str,
    format: Option<&Value>,
) -> (ScriptedReply, Duration) {
    let mut script = shared.lock();
    let reply = script.replies.pop_front().unwrap_or_else(|| {
        let wants_json = format.is_some_and(|format| match format {
            Value::Null => false,
            Value::String(text) => !text.is_empty(),
            _ => true,
        });
        if wants_json {
            ScriptedReply::text(json!({ "echo": echo_text }).to_string())
        } else {
            ScriptedReply::text(echo_text)
        }
    });
    (reply, script.chunk_delay)
}

/// Ollama's answer to a chat without messages or a generate without prompt: the model is
/// loaded (or, with `keep_alive: 0`, unloaded) and a single object comes back even when
/// streaming was asked for.
fn load_or_unload_response(endpoint: Endpoint, model: &str, keep_alive: Option<&Value>) -> Response {
    let done_reason = if keep_alive.is_some_and(is_zero_keep_alive) { "unload" } else { "load" };
    let mut response_object = answer_object(endpoint, model, "", None, true);
    response_object.insert("done_reason".to_owned(), Value::String(done_reason.to_owned()));
    json_response(StatusCode::OK, &Value::Object(response_object))
}

/// `keep_alive` is a number of seconds or a Go duration string; zero means "unload now".
pub(super) fn is_zero_keep_alive(keep_alive: &Value) -> bool {
    match keep_alive {
        Value::Number(seconds) => seconds.as_f64() == Some(0.0),
        Value::String(duration) => {
            let digits = duration.trim_end_matches(|character: char| character.is_ascii_alphabetic());
            !digits.is_empty() && digits.parse::<f64>().ok() == Some(0.0)
        }
        _ => false,
    }
}

fn num_predict(options: Option<&Value>) -> Option<usize> {
    positive_limit(options?.get("num_predict")?.as_i64()?)
}

/// A token limit as Ollama reads it: -1 (and any negative) or 0 means "no limit".
pub(super) fn positive_limit(limit: i64) -> Option<usize> {
    usize::try_from(limit).ok().filter(|limit| *limit > 0)
}
