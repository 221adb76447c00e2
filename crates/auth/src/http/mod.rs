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
use axum::routing::{MethodRouter, delete, get, patch, post};
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

/// Every route of the auth service, by path. The router and [`route_paths`] both read this table,
/// so the published path list cannot drift from what is served (the service has no OpenAPI
/// document; Kong's declarative config is checked against this list).
fn route_table() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/.well-known/jwks.json", get(clients::jwks)),
        ("/api/v1/auth/register", post(accounts::register)),
        ("/api/v1/auth/login", post(sessions::login)),
        ("/api/v1/auth/refresh", post(sessions::refresh)),
        ("/api/v1/auth/logout", post(sessions::logout)),
        ("/api/v1/auth/me", get(accounts::me)),
        ("/api/v1/auth/password", post(accounts::change_password)),
        ("/api/v1/auth/mfa/enroll", post(mfa::enroll)),
        ("/api/v1/auth/mfa/confirm", post(mfa::confirm)),
        ("/api/v1/auth/mfa/disable", post(mfa::disable)),
        ("/api/v1/auth/token", post(clients::token)),
        ("/api/v1/auth/introspect", post(clients::introspect)),
        ("/api/v1/auth/api-keys", post(accounts::create_api_key).get(accounts::list_api_keys)),
        ("/api/v1/auth/api-keys/{id}", delete(accounts::revoke_api_key)),
        ("/api/v1/auth/users", get(admin::list_users).post(admin::create_user)),
        ("/api/v1/auth/users/{id}", patch(admin::update_user)),
        ("/api/v1/auth/service-accounts", post(admin::create_service_account)),
        ("/api/v1/auth/keys/rotate", post(admin::rotate_keys)),
        ("/api/v1/auth/audit", get(admin::audit)),
    ]
}

/// Every route of the auth service.
pub(crate) fn routes(state: AppState) -> Router {
    let mut router = Router::new();
    for (path, methods) in route_table() {
        router = router.route(path, methods);
    }
    router.with_state(state)
}

/// The paths the auth service serves, as axum templates (`{id}` for a parameter).
pub(crate) fn route_paths() -> Vec<&'static str> {
    route_table().into_iter().map(|(path, _)| path).collect()
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
