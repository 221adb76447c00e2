//! TOTP enrolment, confirmation and removal for the caller.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sutazai_kit::http::{ApiError, ClientIp};

use super::{AppState, Caller, context};
use crate::service::MfaEnrollment;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CodeBody {
    code: String,
}

pub(super) async fn enroll(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Caller(principal): Caller,
) -> Result<Json<MfaEnrollment>, ApiError> {
    Ok(Json(state.service.mfa_enroll(&principal.subject, &context(Some(&principal), client_ip)).await?))
}

pub(super) async fn confirm(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Caller(principal): Caller,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<CodeBody>,
) -> Result<StatusCode, ApiError> {
    state.service.mfa_confirm(&principal.subject, &body.code, &context(Some(&principal), client_ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn disable(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Caller(principal): Caller,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<CodeBody>,
) -> Result<StatusCode, ApiError> {
    state.service.mfa_disable(&principal.subject, &body.code, &context(Some(&principal), client_ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}
