//! Admin endpoints: the LLM response cache and the audit log.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::{ApiError, ClientIp, Page, PageOf};
use utoipa::ToSchema;

use super::AppState;
use sutazai_kit::audit::{AuditEntry, AuditRecord};

#[utoipa::path(get, path = "/api/v1/cache/stats", tag = "cache",
    responses((status = 200)), security(("bearer" = [])))]
pub(crate) async fn cache_stats(
    State(state): State<AppState>,
    _principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let stats = state.llm.cache_stats().await.map_err(super::chat::llm_error)?;
    Ok(Json(
        json!({"hits": stats.hits, "misses": stats.misses, "hit_rate": stats.hit_rate(), "keys": stats.keys}),
    ))
}

/// `POST /api/v1/cache/clear`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearCache {
    /// A glob within the cache's own keys (`*` for all of them).
    pattern: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/cache/clear", tag = "cache", request_body = ClearCache,
    responses((status = 200), (status = 403)), security(("bearer" = [])))]
pub(crate) async fn cache_clear(
    State(state): State<AppState>,
    principal: Principal,
    client_ip: ClientIp,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    sutazai_kit::auth::require_admin(&principal)?;
    // The body is optional: no body clears every cached answer.
    let request: ClearCache = if body.is_empty() {
        ClearCache::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| ApiError::validation("pattern", error.to_string()))?
    };
    let pattern = request.pattern;
    let outcome = state.llm.clear_cache(pattern.as_deref()).await;
    state
        .audit
        .record(AuditRecord {
            actor: Some(&principal.name),
            action: "cache_clear",
            target: pattern.as_deref(),
            ip: client_ip.0,
            outcome: if outcome.is_ok() { "success" } else { "failure" },
            detail: json!({}),
        })
        .await;
    let deleted = outcome.map_err(super::chat::llm_error)?;
    Ok(Json(json!({"deleted": deleted})))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    responses((status = 200), (status = 403)), security(("bearer" = [])))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    principal: Principal,
    page: Page,
) -> Result<Json<PageOf<AuditEntry>>, ApiError> {
    sutazai_kit::auth::require_admin(&principal)?;
    let (items, total) =
        state.audit.list(page.skip, page.limit).await.map_err(|error| ApiError::internal(&error))?;
    Ok(Json(PageOf::new(items, total, page)))
}
