//! The transport side of authentication: the axum extractor that turns `Authorization: Bearer`
//! into a [`Principal`] (401 problem+json with a `WWW-Authenticate` challenge, or 503 when the
//! verifier cannot decide), the role and scope guards (403), and the same check for gRPC
//! metadata. Both transports share one bearer parser and one error mapping.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sutazai_types::ServiceErrorCode;

use super::claims::{ADMIN_ROLE, Principal};
use super::error::{AuthError, InvalidTokenReason};
use super::verifier::TokenVerifier;
use crate::http::ApiError;

/// The rejection of the [`Principal`] extractor: a problem document, with the RFC 6750 challenge
/// on 401s so clients know to (re)authenticate.
#[derive(Debug)]
pub struct AuthRejection {
    error: ApiError,
    challenge: Option<&'static str>,
}

impl AuthRejection {
    /// The problem the client receives.
    pub fn api_error(&self) -> &ApiError {
        &self.error
    }
}

impl From<AuthError> for AuthRejection {
    fn from(error: AuthError) -> Self {
        error.log_rejection();
        let challenge = match &error {
            // No credentials: RFC 6750 §3.1 says to send the bare challenge, no error code.
            AuthError::MissingToken => Some("Bearer"),
            AuthError::Invalid(_) | AuthError::Expired | AuthError::Revoked(_) => {
                Some("Bearer error=\"invalid_token\"")
            }
            AuthError::KeysUnavailable(_) | AuthError::RevocationUnavailable(_) => None,
        };
        Self { error: ApiError::new(error.code(), error.to_string()), challenge }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

/// Requires a valid bearer token. The router state must yield the verifier:
/// `impl FromRef<AppState> for Arc<TokenVerifier>` (or use `Arc<TokenVerifier>` as the state).
impl<S> FromRequestParts<S> for Principal
where
    Arc<TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A middleware or an earlier extractor may have verified this request already.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        let token = bearer_token(&parts.headers)?;
        let principal = verifier.verify(token).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// `Option<Principal>`: `None` without credentials (public reads that personalize when signed
/// in), but a present and bad token is still refused rather than silently treated as anonymous.
impl<S> OptionalFromRequestParts<S> for Principal
where
    Arc<TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        let principal = <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        Ok(Some(principal))
    }
}

/// Answers 403 unless `principal` is an admin.
pub fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_admin() {
        return Ok(());
    }
    Err(ApiError::new(ServiceErrorCode::Forbidden, format!("requires the `{ADMIN_ROLE}` role")))
}

/// Answers 403 unless `principal` holds `scope` (admins hold every scope).
pub fn require_scope(principal: &Principal, scope: &str) -> Result<(), ApiError> {
    if principal.has_scope(scope) {
        return Ok(());
    }
    Err(ApiError::new(ServiceErrorCode::Forbidden, format!("requires the `{scope}` scope")))
}

/// Verifies the `authorization` metadata of a gRPC request.
///
/// Not an `async fn` on purpose: the token is copied out of the request before the returned
/// future starts, so the future does not borrow the request and stays `Send` even for a
/// streaming request body that is not `Sync`.
pub fn authenticate_grpc<'verifier, T>(
    verifier: &'verifier TokenVerifier,
    request: &tonic::Request<T>,
) -> impl Future<Output = Result<Principal, tonic::Status>> + Send + use<'verifier, T> {
    let extracted_token = grpc_bearer_token(request.metadata()).map(str::to_owned);
    async move {
        let token = extracted_token.map_err(tonic::Status::from)?;
        verifier.verify(&token).await.map_err(tonic::Status::from)
    }
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        error.log_rejection();
        crate::grpc::status(error.code(), error.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        error.log_rejection();
        ApiError::new(error.code(), error.to_string())
    }
}

/// The bearer token of the `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        // Two credentials: which one a proxy or the app would pick is ambiguous, so neither.
        return Err(AuthError::Invalid(InvalidTokenReason::Malformed));
    }
    let text = value.to_str().map_err(|_| AuthError::Invalid(InvalidTokenReason::Malformed))?;
    parse_bearer(text)
}

fn grpc_bearer_token(metadata: &tonic::metadata::MetadataMap) -> Result<&str, AuthError> {
    let mut values = metadata.get_all("authorization").iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        return Err(AuthError::Invalid(InvalidTokenReason::Malformed));
    }
    let text = value.to_str().map_err(|_| AuthError::Invalid(InvalidTokenReason::Malformed))?;
    parse_bearer(text)
}

/// Parses `Bearer <token>` (RFC 6750 §2.1: case-insensitive scheme, a b64token). Another scheme
/// (`Basic ...`) is the same as no bearer credentials at all.
fn parse_bearer(value: &str) -> Result<&str, AuthError> {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() || !token.bytes().all(is_b64token_byte) {
        return Err(AuthError::Invalid(InvalidTokenReason::Malformed));
    }
    Ok(token)
}

fn is_b64token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PrincipalKind;

    fn principal(roles: &[&str], scopes: &[&str]) -> Principal {
        Principal {
            subject: "user-1".to_owned(),
            kind: PrincipalKind::User,
            name: "alice".to_owned(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
            scopes: scopes.iter().map(|scope| scope.to_string()).collect(),
            token_id: "jti-1".to_owned(),
            expires_at: 0,
            session_id: None,
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn bearer_token_is_read_case_insensitively() {
        assert_eq!(bearer_token(&headers(&["Bearer abc.def.ghi"])).unwrap(), "abc.def.ghi");
        assert_eq!(bearer_token(&headers(&["bearer  abc.def-_ghi "])).unwrap(), "abc.def-_ghi");
    }

    #[test]
    fn no_bearer_credentials_is_missing() {
        assert!(matches!(bearer_token(&headers(&[])), Err(AuthError::MissingToken)));
        assert!(matches!(bearer_token(&headers(&["Basic YWxhZGRpbjpvcGVu"])), Err(AuthError::MissingToken)));
    }

    #[test]
    fn malformed_bearer_credentials_are_invalid() {
        for value in ["Bearer", "Bearer ", "Bearer a b", "Bearer <script>", "Bearer a\"b"] {
            let error = bearer_token(&headers(&[value])).unwrap_err();
            assert_eq!(error.invalid_reason(), Some(InvalidTokenReason::Malformed), "{value:?}");
        }
        let twice = bearer_token(&headers(&["Bearer a.b.c", "Bearer d.e.f"])).unwrap_err();
        assert_eq!(twice.invalid_reason(), Some(InvalidTokenReason::Malformed));
    }

    #[test]
    fn rejection_challenges_follow_rfc_6750() {
        let missing = AuthRejection::from(AuthError::MissingToken).into_response();
        assert_eq!(missing.status(), 401);
        assert_eq!(missing.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let invalid = AuthRejection::from(AuthError::Expired).into_response();
        assert_eq!(invalid.headers()[header::WWW_AUTHENTICATE], "Bearer error=\"invalid_token\"");
        let unavailable =
            AuthRejection::from(AuthError::KeysUnavailable(crate::auth::KeySourceError::RetryLater))
                .into_response();
        assert_eq!(unavailable.status(), 503);
        assert!(unavailable.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn admin_guard() {
        assert!(require_admin(&principal(&["admin"], &[])).is_ok());
        let error = require_admin(&principal(&["user"], &["tasks:write"])).unwrap_err();
        assert_eq!(error.code(), ServiceErrorCode::Forbidden);
        assert_eq!(error.detail(), "requires the `admin` role");
    }

    #[test]
    fn scope_guard_and_admins_hold_every_scope() {
        assert!(require_scope(&principal(&["user"], &["tasks:write"]), "tasks:write").is_ok());
        assert!(require_scope(&principal(&["admin"], &[]), "tasks:write").is_ok());
        let error = require_scope(&principal(&["user"], &["tasks:read"]), "tasks:write").unwrap_err();
        assert_eq!(error.code(), ServiceErrorCode::Forbidden);
        assert_eq!(error.detail(), "requires the `tasks:write` scope");
    }
}
