//! The conventions of Ollama's OpenAI-compatible layer (`/v1/...`): its error object
//! `{"error":{"message","type","param":null,"code":null}}` with the type Ollama derives from the
//! status, JSON written by Go's encoder (a trailing newline, `application/json`), completion ids
//! and the `owned_by` of a model.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::scripting::ScriptedFailure;
use super::wire::{OllamaError, retry_after_header};

/// The content type Ollama's OpenAI middleware sets on JSON answers and errors.
pub(super) const OPENAI_JSON_CONTENT_TYPE: &str = "application/json";
pub(super) const EVENT_STREAM_CONTENT_TYPE: &str = "text/event-stream";

/// Every chunk and completion names this fingerprint.
pub(super) const SYSTEM_FINGERPRINT: &str = "fp_ollama";

/// An error answered in the OpenAI shape.
#[derive(Debug)]
pub(super) struct OpenAiError {
    status: StatusCode,
    message: String,
}

impl OpenAiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The error object on its own, as it appears in a body or, mid-stream, on a line.
    pub(super) fn body(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": error_type(self.status),
                "param": null,
                "code": null,
            }
        })
    }
}

/// `openai.NewError`: only 400 and 404 get their own type.
fn error_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid_request_error",
        StatusCode::NOT_FOUND => "not_found_error",
        _ => "api_error",
    }
}

/// The native handler's error, passed through the middleware's `writeError`.
impl From<OllamaError> for OpenAiError {
    fn from(error: OllamaError) -> Self {
        let (status, message) = error.into_parts();
        Self { status, message }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        openai_json_response(self.status, &self.body())
    }
}

/// A scripted failure in the OpenAI shape, keeping its `Retry-After`.
pub(super) fn scripted_failure_response(failure: ScriptedFailure) -> Response {
    let mut response = OpenAiError::new(failure.status, failure.message).into_response();
    if let Some(retry_after) = failure.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, retry_after_header(retry_after));
    }
    response
}

/// A JSON body as Go's `json.Encoder` writes it: followed by a newline.
pub(super) fn openai_json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(OPENAI_JSON_CONTENT_TYPE))],
        format!("{body}\n"),
    )
        .into_response()
}

/// `chatcmpl-<0..999>`, as Ollama numbers its completions.
pub(super) fn completion_id() -> String {
    let random = uuid::Uuid::new_v4().as_u128() % 999;
    format!("chatcmpl-{random}")
}

/// The namespace of a model name, Ollama's `owned_by`: `library` for a bare name.
pub(super) fn owned_by(model_name: &str) -> String {
    let without_tag = match model_name.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => model_name,
    };
    let segments: Vec<&str> = without_tag.split('/').collect();
    match segments.len() {
        0 | 1 => "library".to_owned(),
        count => segments[count - 2].to_owned(),
    }
}

/// A `usage` object.
pub(super) fn usage_json(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}
