//! Ollama's wire conventions shared by every endpoint: the `{"error": "..."}` body and its
//! statuses, JSON bodies and their decoding, timestamps, nanosecond durations and `omitempty`
//! counters.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::scripting::ScriptedFailure;

pub(super) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
pub(super) const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// An error answered with Ollama's body `{"error": "..."}`.
#[derive(Debug)]
pub(super) struct OllamaError {
    status: StatusCode,
    message: String,
}

impl OllamaError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn model_required() -> Self {
        Self::bad_request("model is required")
    }

    pub(super) fn model_not_found(requested_name: &str) -> Self {
        let quoted_name = Value::String(requested_name.to_owned()).to_string();
        Self::new(StatusCode::NOT_FOUND, format!("model {quoted_name} not found, try pulling it first"))
    }

    /// The status and the error text, for the OpenAI-compatible routes to word differently.
    pub(super) fn into_parts(self) -> (StatusCode, String) {
        (self.status, self.message)
    }

    /// The answer to a request whose scripted wait was cut short by [`super::FakeOllama`]
    /// shutting down.
    pub(super) fn shutting_down() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server shutting down")
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        json_response(self.status, &json!({ "error": self.message }))
    }
}

impl IntoResponse for ScriptedFailure {
    fn into_response(self) -> Response {
        let mut response = OllamaError::new(self.status, self.message).into_response();
        if let Some(retry_after) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, retry_after_header(retry_after));
        }
        response
    }
}

/// `Retry-After` in whole seconds, rounded up.
pub(super) fn retry_after_header(retry_after: Duration) -> HeaderValue {
    let whole_seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    HeaderValue::from(whole_seconds)
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE))], body.to_string())
        .into_response()
}

pub(super) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, OllamaError> {
    // Go's decoder reports an empty body as io.EOF, which Ollama turns into this message.
    if is_blank(body) {
        return Err(OllamaError::bad_request("missing request body"));
    }
    serde_json::from_slice(body).map_err(|error| OllamaError::bad_request(error.to_string()))
}

/// Empty or whitespace only: what Ollama treats as no body at all.
pub(super) fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

pub(super) fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

pub(super) fn ollama_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(super) fn now_timestamp() -> String {
    ollama_timestamp(Utc::now())
}

pub(super) fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Ollama's metrics are `omitempty`: a zero counter is left out, not sent as 0.
pub(super) fn insert_nonzero(object: &mut Map<String, Value>, key: &str, value: u64) {
    if value != 0 {
        object.insert(key.to_owned(), Value::from(value));
    }
}
