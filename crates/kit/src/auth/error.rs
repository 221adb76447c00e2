//! Why a token was refused, in two layers: what the client is told (generic: "invalid token",
//! "token expired", "token revoked", never the token itself) and the precise reason, kept for logs
//! and tests so a rejection can be told apart from another one that happens to answer the same.

use sutazai_types::ServiceErrorCode;

use super::keys::KeySourceError;

/// A token that does not authenticate its bearer, or a verifier that cannot decide.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` credentials at all.
    #[error("missing bearer token")]
    MissingToken,
    /// The token is malformed, forged, or not meant for this audience; the reason is for logs.
    #[error("invalid token")]
    Invalid(InvalidTokenReason),
    /// The token's `exp` (plus leeway) has passed.
    #[error("token expired")]
    Expired,
    /// The auth service revoked the token.
    #[error("token revoked")]
    Revoked(RevocationReason),
    /// The verification keys could not be loaded (the auth service's JWKS did not answer).
    #[error("token verification keys unavailable")]
    KeysUnavailable(#[source] KeySourceError),
    /// Redis could not be asked whether the token is revoked. The verifier fails closed: a token
    /// that may have been revoked by a logout or a password change is not accepted on faith.
    #[error("token revocation store unavailable")]
    RevocationUnavailable(#[source] redis::RedisError),
}

impl AuthError {
    /// The code clients see: 401 for a bad token, 503 when the verifier cannot decide.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::MissingToken | Self::Invalid(_) | Self::Expired | Self::Revoked(_) => {
                ServiceErrorCode::Unauthenticated
            }
            Self::KeysUnavailable(_) | Self::RevocationUnavailable(_) => ServiceErrorCode::Unavailable,
        }
    }

    /// The precise reason of an [`AuthError::Invalid`], for logs and tests.
    pub fn invalid_reason(&self) -> Option<InvalidTokenReason> {
        match self {
            Self::Invalid(reason) => Some(*reason),
            _ => None,
        }
    }

    /// Logs the rejection once, at the transport boundary: a dependency failure as a warning with
    /// its cause chain, a bad token at debug level (a flood of bad tokens must not flood the logs).
    pub fn log_rejection(&self) {
        match self {
            Self::KeysUnavailable(_) | Self::RevocationUnavailable(_) => {
                tracing::warn!(error = %crate::http::DisplayChain(self), "token verification unavailable");
            }
            Self::Invalid(reason) => tracing::debug!(reason = reason.as_str(), "token rejected"),
            Self::Revoked(reason) => tracing::debug!(reason = reason.as_str(), "token rejected"),
            Self::MissingToken | Self::Expired => tracing::debug!(error = %self, "token rejected"),
        }
    }
}

/// Why a token is invalid. Never sent to clients: telling an attacker which check failed helps
/// them forge the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidTokenReason {
    /// Not a JWT (wrong shape, bad base64 or JSON, too long, unknown `alg` such as `none`), or an
    /// `Authorization` header that is not a well-formed bearer credential.
    Malformed,
    /// The `alg` is not EdDSA or RS256.
    DisallowedAlgorithm,
    /// The header `typ` is not `at+jwt`.
    WrongHeaderType,
    /// The header carries `jku`, `jwk`, `x5u`, `x5c` or `crit`, which this platform never issues.
    ForbiddenHeader,
    /// The header has no `kid`.
    MissingKeyId,
    /// The `kid` is not 1 to 64 characters of `[A-Za-z0-9_-]`.
    MalformedKeyId,
    /// No key with this `kid`, even after a refresh.
    UnknownKeyId,
    /// The key named by `kid` is for another algorithm than the header's `alg`.
    KeyAlgorithmMismatch,
    /// The signature does not match.
    BadSignature,
    /// The `iss` claim is not the configured issuer.
    WrongIssuer,
    /// The `aud` claim is not the configured audience.
    WrongAudience,
    /// The `nbf` claim is in the future (beyond the leeway).
    NotYetValid,
    /// A required claim is missing or has the wrong type, or `sub`/`jti` is empty.
    InvalidClaims,
    /// The `typ` claim is not `access` (such as a refresh token presented as an access token).
    WrongTokenType,
}

impl InvalidTokenReason {
    /// A stable snake_case name for structured logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::DisallowedAlgorithm => "disallowed_algorithm",
            Self::WrongHeaderType => "wrong_header_type",
            Self::ForbiddenHeader => "forbidden_header",
            Self::MissingKeyId => "missing_key_id",
            Self::MalformedKeyId => "malformed_key_id",
            Self::UnknownKeyId => "unknown_key_id",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::NotYetValid => "not_yet_valid",
            Self::InvalidClaims => "invalid_claims",
            Self::WrongTokenType => "wrong_token_type",
        }
    }
}

/// Which revocation killed a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// This token's `jti` was revoked (logout).
    TokenRevoked,
    /// The subject's token version was raised past the token's `ver` (password change,
    /// logout everywhere, deactivation).
    SubjectVersionRaised,
}

impl RevocationReason {
    /// A stable snake_case name for structured logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenRevoked => "token_revoked",
            Self::SubjectVersionRaised => "subject_version_raised",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tokens_are_unauthenticated_and_dependencies_unavailable() {
        assert_eq!(AuthError::MissingToken.code(), ServiceErrorCode::Unauthenticated);
        assert_eq!(
            AuthError::Invalid(InvalidTokenReason::BadSignature).code(),
            ServiceErrorCode::Unauthenticated
        );
        assert_eq!(AuthError::Expired.code(), ServiceErrorCode::Unauthenticated);
        assert_eq!(
            AuthError::Revoked(RevocationReason::TokenRevoked).code(),
            ServiceErrorCode::Unauthenticated
        );
        assert_eq!(
            AuthError::KeysUnavailable(KeySourceError::RetryLater).code(),
            ServiceErrorCode::Unavailable
        );
        let redis_error = redis::RedisError::from(std::io::Error::other("connection refused"));
        assert_eq!(AuthError::RevocationUnavailable(redis_error).code(), ServiceErrorCode::Unavailable);
    }

    #[test]
    fn messages_are_generic_whatever_the_reason() {
        for reason in [
            InvalidTokenReason::UnknownKeyId,
            InvalidTokenReason::BadSignature,
            InvalidTokenReason::WrongAudience,
        ] {
            assert_eq!(AuthError::Invalid(reason).to_string(), "invalid token");
        }
        assert_eq!(AuthError::Revoked(RevocationReason::SubjectVersionRaised).to_string(), "token revoked");
        assert_eq!(AuthError::Expired.to_string(), "token expired");
    }
}
