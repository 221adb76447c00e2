//! The public scripting vocabulary: what the fake model answers ([`ScriptedReply`]), how a
//! request fails instead ([`ScriptedFailure`]) and what the fake saw ([`RecordedRequest`]).

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

/// One HTTP request the fake received on an `/api/...` or `/v1/...` route, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `"POST"`.
    pub method: String,
    /// Request path without the query string, e.g. `"/api/chat"` or `"/v1/chat/completions"`.
    pub path: String,
    /// Headers with lower-case names, in the order received (values that are not UTF-8 are
    /// converted lossily).
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Value::Null` for an empty body and `Value::String` holding the
    /// raw text when the body is not valid JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of the header `name` (case-insensitive), if the request carried it.
    pub fn header(&self, name: &str) -> Option<&str> {
        for (header_name, header_value) in &self.headers {
            if header_name.eq_ignore_ascii_case(name) {
                return Some(header_value);
            }
        }
        None
    }
}

/// What the fake model answers to one `/api/chat`, `/api/generate` or `/v1/chat/completions`
/// request.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedReply {
    pub(super) text: String,
    pub(super) tool_calls: Vec<ScriptedToolCall>,
    pub(super) done_reason: String,
    pub(super) stream_error: Option<ScriptedStreamError>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScriptedToolCall {
    pub(super) function_name: String,
    pub(super) arguments: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScriptedStreamError {
    pub(super) after_chunks: usize,
    pub(super) message: String,
}

impl ScriptedReply {
    /// A reply with this text, finishing with `done_reason` `"stop"`.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), tool_calls: Vec::new(), done_reason: "stop".to_owned(), stream_error: None }
    }

    /// Adds a tool call to the assistant message (`/api/chat` only; `/api/generate` ignores it).
    /// It is sent as `{"id":"call_…","function":{"index":i,"name":…,"arguments":…}}`, in a
    /// `done: false` chunk after the text chunks when streaming, in `message.tool_calls` when not.
    pub fn with_tool_call(mut self, function_name: impl Into<String>, arguments: Value) -> Self {
        self.tool_calls.push(ScriptedToolCall { function_name: function_name.into(), arguments });
        self
    }

    /// Overrides the final `done_reason` (e.g. `"length"`).
    pub fn with_done_reason(mut self, done_reason: impl Into<String>) -> Self {
        self.done_reason = done_reason.into();
        self
    }

    /// Makes the generation fail after `after_chunks` chunks, as a crashing runner does: a
    /// streaming response then ends with the line `{"error":"<message>"}` and no `done: true`
    /// line; a non-streaming response is a 500 with that error body.
    pub fn with_stream_error_after(mut self, after_chunks: usize, message: impl Into<String>) -> Self {
        self.stream_error = Some(ScriptedStreamError { after_chunks, message: message.into() });
        self
    }
}

impl From<&str> for ScriptedReply {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for ScriptedReply {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

/// An error answer the fake gives instead of handling a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedFailure {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) retry_after: Option<Duration>,
}

impl ScriptedFailure {
    /// A failure with `status` and the message Ollama sends for it: 503 gets the scheduler's
    /// queue-full text, 500 a runner crash, 429 `"rate limit exceeded"`, any other status its
    /// lower-case reason phrase.
    pub fn new(status: StatusCode) -> Self {
        let message = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                // Ollama's ErrMaxQueue text, two spaces included.
                "server busy, please try again.  maximum pending requests exceeded".to_owned()
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                "llama runner process has terminated: exit status 2".to_owned()
            }
            StatusCode::TOO_MANY_REQUESTS => "rate limit exceeded".to_owned(),
            other => other.canonical_reason().map_or_else(|| "unknown error".to_owned(), str::to_lowercase),
        };
        Self { status, message, retry_after: None }
    }

    /// Replaces the `error` text of the body.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds a `Retry-After` header in whole seconds, rounded up.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }
}
