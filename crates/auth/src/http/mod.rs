//! The auth service's REST API (API.md, "Auth"): thin handlers that decode, call `AuthService`
//! and map `AuthError` once.

mod accounts;
mod admin;
mod clients;

pub(crate) use clients::introspect_token;
mod mfa;
mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use sutazai_kit::auth::{Principal, TokenVerifier};
use sutazai_kit::http::{ApiError, ClientIp};

use crate::error::AuthError;
use crate::service::{AuthService, RequestContext};

/// What handlers share.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The use cases.
    pub service: AuthService,
    /// Verifies access tokens against the service's own keys.
    pub verifier: Arc<TokenVerifier>,
}

/// Every route of the auth service.
pub(crate) fn routes(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(clients::jwks))
        .route("/api/v1/auth/register", post(accounts::register))
        .route("/api/v1/auth/login", post(sessions::login))
        .route("/api/v1/auth/refresh", post(sessions::refresh))
        .route("/api/v1/auth/logout", post(sessions::logout))
        .route("/api/v1/auth/me", get(accounts::me))
        .route("/api/v1/auth/password", post(accounts::change_password))
        .route("/api/v1/auth/mfa/enroll", post(mfa::enroll))
        .route("/api/v1/auth/mfa/confirm", post(mfa::confirm))
        .route("/api/v1/auth/mfa/disable", post(mfa::disable))
        .route("/api/v1/auth/token", post(clients::token))
        .route("/api/v1/auth/introspect", post(clients::introspect))
        .route("/api/v1/auth/api-keys", post(accounts::create_api_key).get(accounts::list_api_keys))
        .route("/api/v1/auth/api-keys/{id}", delete(accounts::revoke_api_key))
        .route("/api/v1/auth/users", get(admin::list_users).post(admin::create_user))
        .route("/api/v1/auth/users/{id}", patch(admin::update_user))
        .route("/api/v1/auth/service-accounts", post(admin::create_service_account))
        .route("/api/v1/auth/keys/rotate", post(admin::rotate_keys))
        .route("/api/v1/auth/audit", get(admin::audit))
        .with_state(state)
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let api_error = match &error {
            AuthError::Internal(_) => return ApiError::internal(&error),
            AuthError::Validation { field, message } => ApiError::validation(*field, message.clone()),
            other => ApiError::new(other.code(), other.to_string()),
        };
        match error.retry_after_s() {
            Some(seconds) => api_error.with_retry_after(seconds),
            None => api_error,
        }
    }
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.verifier)
    }
}

/// The authenticated caller (the kit's bearer-token extractor).
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = sutazai_kit::auth::AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        <Principal as FromRequestParts<AppState>>::from_request_parts(parts, state).await.map(Self)
    }
}

/// The caller, who must be an admin.
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Caller(principal) =
            Caller::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        sutazai_kit::auth::require_admin(&principal).map_err(IntoResponse::into_response)?;
        Ok(Self(principal))
    }
}

fn context(principal: Option<&Principal>, client_ip: ClientIp) -> RequestContext {
    RequestContext { actor: principal.map(|principal| principal.name.clone()), client_ip: client_ip.0 }
}
