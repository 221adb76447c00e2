//! Chat, streaming chat, batch and the model list, through `sutazai-llm`. LLM failures are errors
//! with their status (unknown model 400 listing the models, unreachable 503), never a 200 with an
//! error text. Every exchange is stored in the caller's conversation history. A chat may answer
//! from the documents of a vector collection (`rag`, in [`rag`]).

mod rag;

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::{ApiError, Problem};
use sutazai_llm::{CachePolicy, ChatChunk, ChatMessage, ChatRequest, ChatRole, LlmError, Usage};
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;
use uuid::Uuid;

use self::rag::{Passage, RagOptions, Retrieval};
use super::AppState;
use super::sse::{json_event, sse_from};

/// Largest prompt or message, in bytes (API.md: 32 KiB).
const MAX_TEXT_BYTES: usize = 32 * 1024;
/// Most prompts in one batch.
const MAX_BATCH_PROMPTS: usize = 50;
/// Batch prompts answered at once; the rest queue (the LLM is the bottleneck anyway).
const BATCH_CONCURRENCY: usize = 4;

/// The HTTP error of an LLM failure.
pub(crate) fn llm_error(error: LlmError) -> ApiError {
    match error.code() {
        ServiceErrorCode::Internal => ApiError::internal(&error),
        ServiceErrorCode::TooManyRequests => {
            let retry_after = match &error {
                LlmError::RateLimited { retry_after_s } => retry_after_s.unwrap_or(1),
                _ => 1,
            };
            ApiError::new(ServiceErrorCode::TooManyRequests, error.to_string()).with_retry_after(retry_after)
        }
        code => ApiError::new(code, error.to_string()),
    }
}

/// A message in a request.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageBody {
    /// `system`, `user` or `assistant`.
    #[schema(value_type = String)]
    role: ChatRole,
    content: String,
}

/// `POST /api/v1/chat` and `/api/v1/chat/stream`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatBody {
    /// The conversation so far (or use `message` for a single user turn).
    #[serde(default)]
    messages: Vec<MessageBody>,
    /// A single user turn.
    message: Option<String>,
    /// Model name; the configured default when absent.
    model: Option<String>,
    /// Agent profile to answer as (not available yet).
    agent: Option<String>,
    temperature: Option<f32>,
    /// Nucleus sampling mass (0 < top_p <= 1).
    top_p: Option<f32>,
    /// Sample among the `top_k` likeliest tokens (0 = no limit; Ollama and the embedded models).
    top_k: Option<u32>,
    max_tokens: Option<u32>,
    /// Sampling seed, for reproducible answers (where the provider supports it).
    seed: Option<u64>,
    /// `false` bypasses the response cache.
    #[serde(default = "default_true")]
    use_cache: bool,
    /// Continue this conversation (one of the caller's).
    conversation_id: Option<Uuid>,
    /// Answer from the documents of a vector collection: the passages nearest to the last user
    /// message are put in the prompt and returned as `passages`.
    rag: Option<RagOptions>,
}

fn default_true() -> bool {
    true
}

/// The answer of `POST /api/v1/chat`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChatAnswer {
    #[schema(value_type = Object)]
    message: ChatMessage,
    model: String,
    cached: bool,
    #[schema(value_type = Object)]
    usage: Usage,
    latency_ms: u64,
    conversation_id: Uuid,
    /// With `rag`: the passages put in the prompt, in the order given (best first); `[]` when
    /// none was found. Absent without `rag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    passages: Option<Vec<Passage>>,
}

fn check_sampling(temperature: Option<f32>, max_tokens: Option<u32>) -> Result<(), ApiError> {
    if temperature.is_some_and(|temperature| !(0.0..=2.0).contains(&temperature)) {
        return Err(ApiError::validation("temperature", "must be between 0 and 2"));
    }
    if max_tokens.is_some_and(|max_tokens| !(1..=32_768).contains(&max_tokens)) {
        return Err(ApiError::validation("max_tokens", "must be between 1 and 32768"));
    }
    Ok(())
}

/// Validates the body into an LLM request.
fn chat_request(body: &ChatBody) -> Result<ChatRequest, ApiError> {
    if body.agent.is_some() {
        return Err(ApiError::validation("agent", "answering as an agent profile is not available yet"));
    }
    check_sampling(body.temperature, body.max_tokens)?;
    if body.top_p.is_some_and(|top_p| top_p.is_nan() || top_p <= 0.0 || top_p > 1.0) {
        return Err(ApiError::validation("top_p", "must be greater than 0 and at most 1"));
    }
    let mut messages: Vec<ChatMessage> = body
        .messages
        .iter()
        .map(|message| ChatMessage { role: message.role, content: message.content.clone() })
        .collect();
    if let Some(text) = &body.message {
        messages.push(ChatMessage::user(text.clone()));
    }
    if messages.is_empty() {
        return Err(ApiError::validation("messages", "give `messages` or `message`"));
    }
    if let Some(index) = messages.iter().position(|message| message.content.len() > MAX_TEXT_BYTES) {
        return Err(ApiError::validation(format!("messages[{index}].content"), "is longer than 32 KiB"));
    }
    Ok(ChatRequest {
        model: body.model.clone().unwrap_or_default(),
        messages,
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        max_tokens: body.max_tokens,
        seed: body.seed,
        ..ChatRequest::default()
    })
}

/// The retrieval `rag` asks for, checked against the request.
fn check_rag(body: &ChatBody, request: &ChatRequest) -> Result<Option<Retrieval>, ApiError> {
    body.rag.as_ref().map(|options| options.check(request)).transpose()
}

/// With a retrieval, its passages and the request the model gets, with the passages in it;
/// without, no passages and the caller's request itself.
async fn retrieve_passages(
    state: &AppState,
    principal: &Principal,
    retrieval: Option<&Retrieval>,
    request: &ChatRequest,
) -> Result<(Option<Vec<Passage>>, ChatRequest), ApiError> {
    let Some(retrieval) = retrieval else { return Ok((None, request.clone())) };
    let passages = rag::retrieve(state, principal, retrieval).await?;
    let prompted = rag::with_passages(request, &passages);
    Ok((Some(passages), prompted))
}

/// A conversation to continue must be the caller's: another user's is a 404, before any LLM call.
async fn check_conversation(
    state: &AppState,
    principal: &Principal,
    id: Option<Uuid>,
) -> Result<(), ApiError> {
    let Some(id) = id else { return Ok(()) };
    let found =
        state.conversations.get(&principal.subject, id).await.map_err(|error| ApiError::internal(&error))?;
    found.map(|_| ()).ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, "conversation not found"))
}

/// Stores the new turns of an exchange; a conversation id that is not the caller's is a 404.
async fn remember(
    state: &AppState,
    principal: &Principal,
    conversation_id: Option<Uuid>,
    model: &str,
    request: &ChatRequest,
    answer: &ChatMessage,
) -> Result<Uuid, ApiError> {
    // A continued conversation already holds the earlier turns; store the last request turn.
    let new_turns: Vec<&ChatMessage> = match conversation_id {
        Some(_) => request.messages.last().into_iter().collect(),
        None => request.messages.iter().collect(),
    };
    let mut rows: Vec<(String, String)> = new_turns
        .into_iter()
        .map(|message| (message.role.as_str().to_owned(), message.content.clone()))
        .collect();
    rows.push((answer.role.as_str().to_owned(), answer.content.clone()));
    let stored = state
        .conversations
        .append(&principal.subject, conversation_id, model, &rows)
        .await
        .map_err(|error| ApiError::internal(&error))?;
    stored.ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, "conversation not found"))
}

#[utoipa::path(post, path = "/api/v1/chat", tag = "chat", request_body = ChatBody,
    responses((status = 200, body = ChatAnswer), (status = 400, description = "unknown model"),
        (status = 403, description = "`rag` without the `vectors:read` scope"),
        (status = 404, description = "unknown conversation or `rag.collection`"), (status = 422),
        (status = 503, description = "LLM or vector service unreachable")), security(("bearer" = [])))]
pub(crate) async fn chat(
    State(state): State<AppState>,
    principal: Principal,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<ChatBody>,
) -> Result<Json<ChatAnswer>, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "chat")?;
    let request = chat_request(&body)?;
    let retrieval = check_rag(&body, &request)?;
    check_conversation(&state, &principal, body.conversation_id).await?;
    let started = Instant::now();
    let (passages, prompted) = retrieve_passages(&state, &principal, retrieval.as_ref(), &request).await?;
    let outcome =
        state.llm.chat(prompted, CachePolicy::from_use_cache(body.use_cache)).await.map_err(llm_error)?;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let response = outcome.response;
    let conversation_id =
        remember(&state, &principal, body.conversation_id, &response.model, &request, &response.message)
            .await?;
    Ok(Json(ChatAnswer {
        message: response.message,
        model: response.model,
        cached: outcome.cached,
        usage: response.usage,
        latency_ms,
        conversation_id,
        passages,
    }))
}

#[utoipa::path(post, path = "/api/v1/chat/stream", tag = "chat", request_body = ChatBody,
    responses((status = 200, description = "text/event-stream: with `rag`, first `event: passages` with `data: {\"passages\": [{\"id\", \"score\", \"text\"}]}`; then `data: {\"delta\"}` frames, then `event: done` with usage, or `event: error`"),
        (status = 400), (status = 403), (status = 404), (status = 422), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn chat_stream(
    State(state): State<AppState>,
    principal: Principal,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<ChatBody>,
) -> Result<Response, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "chat")?;
    let mut request = chat_request(&body)?;
    let retrieval = check_rag(&body, &request)?;
    check_conversation(&state, &principal, body.conversation_id).await?;
    // Errors known before the first token (unknown model, unknown collection, LLM down) are
    // ordinary error responses. Streams are never served from the cache: `use_cache` does not
    // apply to them.
    let model = state.llm.available_model(&request.model).await.map_err(llm_error)?;
    request.model = model.clone();
    let started = Instant::now();
    let (passages, prompted) = retrieve_passages(&state, &principal, retrieval.as_ref(), &request).await?;
    let mut chunks = state.llm.chat_stream(prompted).await.map_err(llm_error)?;
    let conversation_id = body.conversation_id;
    let events = sse_from(move |sender| async move {
        // The passages come first, so a client can show its sources while the answer streams.
        if let Some(passages) = &passages
            && sender.send(json_event(Some("passages"), &json!({"passages": passages}))).await.is_err()
        {
            return;
        }
        let mut answer = String::new();
        while let Some(item) = chunks.next().await {
            match item {
                Ok(ChatChunk::Delta(delta)) => {
                    answer.push_str(&delta);
                    // JSON frames keep newlines inside a token intact.
                    if sender.send(json_event(None, &json!({"delta": delta}))).await.is_err() {
                        return;
                    }
                }
                Ok(ChatChunk::Done { usage, finish_reason }) => {
                    let message = ChatMessage::assistant(answer.clone());
                    let stored =
                        remember(&state, &principal, conversation_id, &model, &request, &message).await;
                    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let done = json!({
                        "model": model, "usage": usage, "finish_reason": finish_reason, "latency_ms": latency_ms,
                        "conversation_id": stored.as_ref().ok(),
                    });
                    let _ = sender.send(json_event(Some("done"), &done)).await;
                    return;
                }
                Err(error) => {
                    let api_error = llm_error(error);
                    let problem = Problem::new(api_error.code(), api_error.detail());
                    let _ = sender
                        .send(json_event(Some("error"), &serde_json::to_value(problem).unwrap_or_default()))
                        .await;
                    return;
                }
            }
        }
        let problem = Problem::new(ServiceErrorCode::Unavailable, "the model stream ended without finishing");
        let _ =
            sender.send(json_event(Some("error"), &serde_json::to_value(problem).unwrap_or_default())).await;
    });
    Ok(events)
}

/// `POST /api/v1/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchBody {
    /// Up to 50 prompts of at most 32 KiB each; any prose is fine (quotes, newlines, SQL words).
    prompts: Vec<String>,
    model: Option<String>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    #[serde(default = "default_true")]
    use_cache: bool,
}

/// One result of a batch, in prompt order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResult {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    error: Option<Value>,
    #[serde(skip)]
    failure_code: Option<ServiceErrorCode>,
}

#[utoipa::path(post, path = "/api/v1/batch", tag = "chat", request_body = BatchBody,
    responses((status = 200), (status = 400, description = "too many prompts or unknown model"), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn batch(
    State(state): State<AppState>,
    principal: Principal,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<BatchBody>,
) -> Result<Json<Value>, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "chat")?;
    if body.prompts.len() > MAX_BATCH_PROMPTS {
        return Err(ApiError::new(
            ServiceErrorCode::BadRequest,
            format!("too many prompts: at most {MAX_BATCH_PROMPTS}"),
        ));
    }
    if body.prompts.is_empty() {
        return Err(ApiError::validation("prompts", "give at least one prompt"));
    }
    if let Some(index) = body.prompts.iter().position(|prompt| prompt.len() > MAX_TEXT_BYTES) {
        return Err(ApiError::validation(format!("prompts[{index}]"), "is longer than 32 KiB"));
    }
    check_sampling(body.temperature, body.max_tokens)?;
    // Resolve the model once, so an unknown one is a 400 for the whole batch, not 50 item errors.
    let model =
        state.llm.available_model(body.model.as_deref().unwrap_or_default()).await.map_err(llm_error)?;
    let requests: Vec<ChatRequest> = body
        .prompts
        .iter()
        .map(|prompt| ChatRequest {
            model: model.clone(),
            messages: vec![ChatMessage::user(prompt.clone())],
            temperature: body.temperature,
            max_tokens: body.max_tokens,
            ..ChatRequest::default()
        })
        .collect();
    let llm = std::sync::Arc::clone(&state.llm);
    let cache_policy = CachePolicy::from_use_cache(body.use_cache);
    let results: Vec<BatchResult> = futures_util::stream::iter(requests.into_iter().enumerate())
        .map(|(index, request)| {
            let llm = std::sync::Arc::clone(&llm);
            async move {
                match llm.chat(request, cache_policy).await {
                    Ok(outcome) => BatchResult {
                        index,
                        response: Some(outcome.response.message.content),
                        cached: Some(outcome.cached),
                        usage: Some(outcome.response.usage),
                        error: None,
                        failure_code: None,
                    },
                    Err(error) => {
                        let api_error = llm_error(error);
                        BatchResult {
                            index,
                            response: None,
                            cached: None,
                            usage: None,
                            error: Some(json!({"code": api_error.code(), "detail": api_error.detail()})),
                            failure_code: Some(api_error.code()),
                        }
                    }
                }
            }
        })
        .buffered(BATCH_CONCURRENCY)
        .collect()
        .await;
    // The model list may still be cached while the LLM is down: a batch in which nothing could be
    // answered is the LLM's failure, not a 200 full of errors.
    let nothing_answered = results.iter().all(|result| result.response.is_none());
    if nothing_answered
        && let Some(code) = results.iter().find_map(|result| result.failure_code)
        && matches!(code, ServiceErrorCode::Unavailable | ServiceErrorCode::Timeout)
    {
        return Err(ApiError::new(code, "the LLM answered none of the prompts"));
    }
    Ok(Json(json!({"model": model, "results": results})))
}

#[utoipa::path(get, path = "/api/v1/models", tag = "chat",
    responses((status = 200), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn models(
    State(state): State<AppState>,
    _principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let models = state.llm.list_models().await.map_err(llm_error)?;
    Ok(Json(json!({"models": models, "default": state.llm.default_model()})))
}
