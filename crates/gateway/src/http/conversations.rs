//! The caller's chat history.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sutazai_kit::auth::Principal;
use sutazai_kit::http::{ApiError, Page, PageOf, parse_uuid};
use sutazai_types::ServiceErrorCode;

use super::AppState;
use crate::store::conversations::{Conversation, ConversationSummary};

fn not_found() -> ApiError {
    ApiError::new(ServiceErrorCode::NotFound, "conversation not found")
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "chat",
    responses((status = 200), (status = 401)), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    page: Page,
) -> Result<Json<PageOf<ConversationSummary>>, ApiError> {
    let (items, total) = state
        .conversations
        .list(&principal.subject, page.skip, page.limit)
        .await
        .map_err(|error| ApiError::internal(&error))?;
    Ok(Json(PageOf::new(items, total, page)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "chat", params(("id" = String, Path)),
    responses((status = 200, body = Conversation), (status = 400), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let id = parse_uuid("id", &id)?;
    let conversation =
        state.conversations.get(&principal.subject, id).await.map_err(|error| ApiError::internal(&error))?;
    conversation.map(Json).ok_or_else(not_found)
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "chat", params(("id" = String, Path)),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_uuid("id", &id)?;
    let deleted = state
        .conversations
        .delete(&principal.subject, id)
        .await
        .map_err(|error| ApiError::internal(&error))?;
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(not_found()) }
}
