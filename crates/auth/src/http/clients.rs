//! Machine clients: the JWKS, client-credential tokens and introspection.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_kit::auth::PrincipalKind;
use sutazai_kit::http::{ApiError, ClientIp, JsonOrForm};
use sutazai_types::ServiceErrorCode;

use super::{AppState, Caller, context};
use crate::domain::secrets::API_KEY_PREFIX;
use crate::error::AuthError;
use crate::service::Introspection;

/// `GET /.well-known/jwks.json`: current and previous public keys. Cacheable briefly, so verifiers
/// pick up a rotation within a minute.
pub(super) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CACHE_CONTROL, "public, max-age=60")], Json(state.service.keys().jwks()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    grant_type: String,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    scope: Option<String>,
}

pub(super) async fn token(
    State(state): State<AppState>,
    client_ip: ClientIp,
    JsonOrForm(body): JsonOrForm<TokenBody>,
) -> Result<Json<Value>, ApiError> {
    if body.grant_type != "client_credentials" {
        return Err(ApiError::new(
            ServiceErrorCode::BadRequest,
            "grant_type: only `client_credentials` is supported",
        ));
    }
    let (access_token, expires_in, scopes) = state
        .service
        .client_credentials(
            &body.client_id,
            &body.client_secret,
            body.scope.as_deref(),
            &context(None, client_ip),
        )
        .await?;
    Ok(Json(json!({
        "access_token": access_token, "token_type": "bearer", "expires_in": expires_in, "scope": scopes.join(" ")
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IntrospectBody {
    token: String,
}

/// RFC 7662: only services (and admins) may ask; an invalid token is `{"active": false}`.
pub(super) async fn introspect(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonOrForm(body): JsonOrForm<IntrospectBody>,
) -> Result<Json<Introspection>, ApiError> {
    if caller.kind != PrincipalKind::Service && !caller.is_admin() {
        return Err(AuthError::Forbidden("introspection needs a service token").into());
    }
    Ok(Json(introspect_token(&state, &body.token).await?))
}

/// Shared by HTTP and gRPC introspection.
pub(crate) async fn introspect_token(state: &AppState, token: &str) -> Result<Introspection, AuthError> {
    let principal = if token.starts_with(API_KEY_PREFIX) {
        match state.service.principal_for_api_key(token).await {
            Ok(principal) => principal,
            Err(AuthError::InvalidToken(_)) => return Ok(Introspection::default()),
            Err(other) => return Err(other),
        }
    } else {
        match state.verifier.verify(token).await {
            Ok(principal) => principal,
            Err(error) if error.code() == ServiceErrorCode::Unavailable => {
                return Err(AuthError::Unavailable("redis"));
            }
            Err(_) => return Ok(Introspection::default()),
        }
    };
    Ok(Introspection::of(&principal))
}
