//! The caller's own account: registration, profile, password, API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_kit::auth::PrincipalKind;
use sutazai_kit::http::{ApiError, ClientIp, parse_uuid};

use super::{AppState, Caller, context};
use crate::service::{ApiKeyView, CreatedApiKey, NewUser, UserView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterBody {
    username: String,
    email: String,
    password: String,
}

pub(super) async fn register(
    State(state): State<AppState>,
    client_ip: ClientIp,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<RegisterBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let new_user =
        NewUser { username: body.username, email: body.email, password: body.password, roles: Vec::new() };
    let user = state.service.register(new_user, &context(None, client_ip)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

pub(super) async fn me(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Value>, ApiError> {
    if principal.kind == PrincipalKind::Service {
        return Ok(Json(json!({
            "id": principal.subject, "kind": "service", "roles": principal.roles, "scopes": principal.scopes,
            "mfa_enabled": false
        })));
    }
    let user = state.service.user(&principal.subject).await?;
    Ok(Json(serde_json::to_value(user).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordBody {
    old_password: String,
    new_password: String,
}

pub(super) async fn change_password(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Caller(principal): Caller,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let context = context(Some(&principal), client_ip);
    state.service.change_password(&principal.subject, body.old_password, body.new_password, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiKeyBody {
    name: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

pub(super) async fn create_api_key(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Caller(principal): Caller,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<ApiKeyBody>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let context = context(Some(&principal), client_ip);
    let created = state.service.create_api_key(&principal, &body.name, body.scopes, &context).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) async fn list_api_keys(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Value>, ApiError> {
    let keys: Vec<ApiKeyView> = state.service.list_api_keys(&principal).await?;
    let total = keys.len();
    Ok(Json(json!({"items": keys, "total": total})))
}

pub(super) async fn revoke_api_key(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key_id = parse_uuid("id", &id)?;
    state.service.revoke_api_key(&principal, key_id, &context(Some(&principal), client_ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}
