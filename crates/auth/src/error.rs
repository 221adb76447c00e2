//! The auth service's errors and their one mapping to `ServiceErrorCode`.

use sutazai_types::ServiceErrorCode;

/// Why an auth operation failed. Messages are client-safe: they never contain a password, hash,
/// token or key.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong username, email or password (the message does not say which).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The account has MFA and the code is missing or wrong.
    #[error("mfa_required: a valid TOTP code is required")]
    MfaRequired,
    /// The account is locked after repeated failures.
    #[error("account locked after repeated failed logins; retry in {retry_after_s} s")]
    Locked {
        /// Seconds until the lock ends.
        retry_after_s: u64,
    },
    /// Too many attempts from this client or for this account.
    #[error("too many login attempts; retry in {retry_after_s} s")]
    Throttled {
        /// Seconds until the window resets.
        retry_after_s: u64,
    },
    /// A field breaks a rule.
    #[error("{field}: {message}")]
    Validation {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        message: String,
    },
    /// The username or email is taken, or a similar duplicate.
    #[error("{0}")]
    Conflict(String),
    /// A token or key is invalid, expired or revoked.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// Wrong client id or secret.
    #[error("invalid client credentials")]
    InvalidClient,
    /// The caller lacks a role or scope.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such resource (or not the caller's).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Redis, the key store or another dependency did not answer.
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    /// A bug or an unexpected failure; logged at the boundary, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    /// The client-facing code.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::InvalidCredentials | Self::MfaRequired | Self::InvalidToken(_) | Self::InvalidClient => {
                ServiceErrorCode::Unauthenticated
            }
            Self::Locked { .. } => ServiceErrorCode::Locked,
            Self::Throttled { .. } => ServiceErrorCode::TooManyRequests,
            Self::Validation { .. } => ServiceErrorCode::ValidationFailed,
            Self::Conflict(_) => ServiceErrorCode::Conflict,
            Self::Forbidden(_) => ServiceErrorCode::Forbidden,
            Self::NotFound(_) => ServiceErrorCode::NotFound,
            Self::Unavailable(_) => ServiceErrorCode::Unavailable,
            Self::Internal(_) => ServiceErrorCode::Internal,
        }
    }

    /// Seconds the client should wait, for 423 and 429.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Self::Locked { retry_after_s } | Self::Throttled { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }

    /// An unexpected failure, described for the log.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => Self::Unavailable("database"),
            other => Self::internal(other),
        }
    }
}

impl From<redis::RedisError> for AuthError {
    fn from(_error: redis::RedisError) -> Self {
        Self::Unavailable("redis")
    }
}
