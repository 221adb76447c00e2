//! The router: which handler serves which path, Gin's 404 for everything else, and the
//! middleware that records every `/api/...` and `/v1/...` request and applies the scripted
//! latency and failures before its handler runs (failures on `/v1/...` in the OpenAI shape).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::completion::{chat, generate};
use super::embed::{embed, embeddings_legacy};
use super::openai_chat::chat_completions;
use super::openai_models::{embeddings as openai_embeddings, list_models as openai_list_models};
use super::openai_wire::{OpenAiError, scripted_failure_response};
use super::scripting::RecordedRequest;
use super::state::{InFlight, Shared};
use super::tags::{list_models, version};
use super::wire::{OllamaError, is_blank};

/// Large enough for base64 images in multimodal requests; Ollama itself sets no limit.
const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024 * 1024;

/// When the request reached the fake, before the scripted latency; handlers report the time
/// since then as `load_duration` and `total_duration`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReceivedAt(pub(super) Instant);

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let api_routes = Router::new()
        .route("/api/tags", get(list_models))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/embed", post(embed))
        .route("/api/embeddings", post(embeddings_legacy))
        .route("/api/version", get(version))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/models", get(openai_list_models))
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), record_and_apply_script))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES));
    Router::new()
        .route("/", get(root))
        .merge(api_routes)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(shared)
}

/// Records the request, waits the scripted latency and answers a scripted failure if one is
/// queued — for every `/api/...` and `/v1/...` route, before its handler runs.
async fn record_and_apply_script(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let received_at = Instant::now();
    let _in_flight = InFlight::enter(&shared);
    let (mut parts, body) = request.into_parts();
    let body_bytes = match axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES).await {
        Ok(body_bytes) => body_bytes,
        Err(error) => return OllamaError::bad_request(error.to_string()).into_response(),
    };
    tracing::debug!(method = %parts.method, path = parts.uri.path(), "fake ollama received request");
    // The failure is taken at arrival, not after the latency, so concurrent requests fail in
    // the order they were sent.
    let (latency, failure) = {
        let mut script = shared.lock();
        script.requests.push(record_request(&parts, &body_bytes));
        (script.latency, script.failures.pop_front())
    };
    let is_openai_route = parts.uri.path().starts_with("/v1/");
    if !shared.sleep(latency).await {
        let error = OllamaError::shutting_down();
        return if is_openai_route {
            OpenAiError::from(error).into_response()
        } else {
            error.into_response()
        };
    }
    if let Some(failure) = failure {
        return if is_openai_route { scripted_failure_response(failure) } else { failure.into_response() };
    }
    parts.extensions.insert(ReceivedAt(received_at));
    next.run(Request::from_parts(parts, Body::from(body_bytes))).await
}

fn record_request(parts: &Parts, body_bytes: &Bytes) -> RecordedRequest {
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        headers.push((name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()));
    }
    let body = if is_blank(body_bytes) {
        Value::Null
    } else {
        serde_json::from_slice(body_bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body_bytes).into_owned()))
    };
    RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers,
        body,
    }
}

async fn root() -> &'static str {
    "Ollama is running"
}

/// Gin's default answer for an unknown route or method, which is what Ollama sends.
async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found")
}
