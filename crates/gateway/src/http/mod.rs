//! The public REST API (API.md): routes, shared state, the OpenAPI document and Swagger UI.

mod admin;
mod agents;
mod chat;
mod conversations;
mod hardware;
mod health;
pub(crate) mod openapi;
mod paging;
mod resources;
mod sse;
mod tasks;
mod vectors;
mod workflows;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::{get, post};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use sutazai_kit::auth::TokenVerifier;
use sutazai_kit::breaker::BreakerRegistry;
use sutazai_kit::ratelimit::RateLimit;
use sutazai_llm::LlmClient;

use crate::downstream::Downstreams;
use crate::store::conversations::ConversationStore;
use sutazai_kit::audit::AuditLog;

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub(crate) struct HandlerSettings {
    pub(crate) auth_url: String,
    pub(crate) health_check_timeout: Duration,
}

/// What handlers share; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) settings: Arc<HandlerSettings>,
    pub(crate) verifier: Arc<TokenVerifier>,
    pub(crate) llm: Arc<LlmClient>,
    pub(crate) pool: PgPool,
    pub(crate) redis: ConnectionManager,
    pub(crate) conversations: ConversationStore,
    pub(crate) audit: AuditLog,
    pub(crate) downstreams: Arc<Downstreams>,
    pub(crate) breakers: Arc<BreakerRegistry>,
    pub(crate) http: reqwest::Client,
    pub(crate) rate_limiter: sutazai_kit::ratelimit::SlidingWindowLimiter,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AppState").field("settings", &self.settings).finish()
    }
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.verifier)
    }
}

/// Every route of the gateway (the operational ones come from the kit's service router).
pub(crate) fn routes(state: AppState, rate_limit: RateLimit) -> Router {
    let api = Router::new()
        .route("/health", get(health::health))
        .route("/api/v1/health/detailed", get(health::detailed))
        .route("/api/v1/health/circuit-breakers", get(health::breakers))
        .route("/api/v1/health/circuit-breakers/reset", post(health::reset_breakers))
        .route("/api/v1/chat", post(chat::chat))
        .route("/api/v1/chat/stream", post(chat::chat_stream))
        .route("/api/v1/batch", post(chat::batch))
        .route("/api/v1/models", get(chat::models))
        .route("/api/v1/conversations", get(conversations::list))
        .route("/api/v1/conversations/{id}", get(conversations::get).delete(conversations::delete))
        .route("/api/v1/tasks", post(tasks::submit_task).get(tasks::list_tasks))
        .route("/api/v1/tasks/{id}", get(tasks::get_task))
        .route("/api/v1/tasks/{id}/cancel", post(tasks::cancel_task))
        .route("/api/v1/tasks/{id}/events", get(tasks::task_events))
        .route("/api/v1/workflows", post(workflows::submit_workflow))
        .route("/api/v1/workflows/{id}", get(workflows::get_workflow))
        .route("/api/v1/agents", get(agents::list_agents))
        .route("/api/v1/agents/{id}", get(agents::get_agent))
        .route("/api/v1/coordinator/strategy", get(agents::get_strategy).put(agents::set_strategy))
        .route("/api/v1/cache/stats", get(admin::cache_stats))
        .route("/api/v1/cache/clear", post(admin::cache_clear))
        .route("/api/v1/audit", get(admin::audit))
        .merge(vectors::routes())
        .merge(hardware::routes())
        .merge(resources::routes());
    // The limiter budgets per principal, so the token is read (identify) before it runs.
    let state_for_identify = state.clone();
    let api = rate_limit.layer(api).layer(from_fn_with_state(state_for_identify, identify)).with_state(state);
    api.merge(openapi::routes())
}

/// Verifies a bearer token when one is sent and leaves the principal in the request, so the
/// rate limiter can budget per user, and forwards it on downstream calls; an invalid token is
/// left for the handler to refuse.
async fn identify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Ok(token) = sutazai_kit::auth::bearer_token(request.headers())
        && let Ok(principal) = state.verifier.verify(token).await
    {
        let token = token.to_owned();
        request.extensions_mut().insert(principal);
        return crate::downstream::forwarding_caller_token(&token, next.run(request)).await;
    }
    next.run(request).await
}
