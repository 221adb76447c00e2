//! Login, refresh, logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sutazai_kit::http::{ApiError, ClientIp, JsonOrForm};

use super::{AppState, Caller, context};
use crate::service::{LoginRequest, TokenPair};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    /// Also accepted as `username` (OAuth2 password-form clients).
    #[serde(alias = "username", alias = "email")]
    username_or_email: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

pub(super) async fn login(
    State(state): State<AppState>,
    client_ip: ClientIp,
    JsonOrForm(body): JsonOrForm<LoginBody>,
) -> Result<Json<TokenPair>, ApiError> {
    let request =
        LoginRequest { username_or_email: body.username_or_email, password: body.password, totp: body.totp };
    Ok(Json(state.service.login(request, &context(None, client_ip)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshBody {
    refresh_token: String,
}

pub(super) async fn refresh(
    State(state): State<AppState>,
    client_ip: ClientIp,
    JsonOrForm(body): JsonOrForm<RefreshBody>,
) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(state.service.refresh(&body.refresh_token, &context(None, client_ip)).await?))
}

pub(super) async fn logout(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Caller(principal): Caller,
) -> Result<StatusCode, ApiError> {
    state.service.logout(&principal, &context(Some(&principal), client_ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}
