//! The arbitrator's errors and their one mapping to `ServiceErrorCode`.

use sutazai_types::ServiceErrorCode;

use crate::domain::lease::{LeaseId, NotAllowed};
use crate::domain::policy::PolicyError;
use crate::store::journal::JournalError;

/// Why an arbitrator operation failed. Messages are client-safe; causes of `Unavailable` and
/// `Internal` are logged at the boundary and never sent.
#[derive(Debug, thiserror::Error)]
pub enum ArbitratorError {
    /// A field breaks a rule.
    #[error("{field}: {message}")]
    Validation {
        /// The field, as the proto names it.
        field: &'static str,
        /// The rule it breaks.
        message: String,
    },
    /// No such resource or lease (or not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// The request was denied for capacity; the reason has the numbers.
    #[error("{0}")]
    Denied(String),
    /// The lease was revoked for a higher-priority request.
    #[error("lease {0} was preempted by a higher-priority request")]
    Preempted(LeaseId),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Redis or Postgres did not answer.
    #[error("{dependency} unavailable")]
    Unavailable {
        /// Which one.
        dependency: &'static str,
        /// Why, for the log.
        cause: String,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ArbitratorError {
    /// The client-facing code.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::Validation { .. } => ServiceErrorCode::ValidationFailed,
            Self::NotFound(_) => ServiceErrorCode::NotFound,
            Self::Denied(_) | Self::Preempted(_) => ServiceErrorCode::Conflict,
            Self::Forbidden(_) => ServiceErrorCode::Forbidden,
            Self::Unavailable { .. } => ServiceErrorCode::Unavailable,
            Self::Internal(_) => ServiceErrorCode::Internal,
        }
    }

    /// A validation failure of `field`.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }
}

impl From<redis::RedisError> for ArbitratorError {
    fn from(error: redis::RedisError) -> Self {
        // A reply of the wrong shape is our bug, not an outage.
        if error.kind() == redis::ErrorKind::Parse {
            return Self::Internal(format!("redis reply: {error}"));
        }
        Self::Unavailable { dependency: "redis", cause: error.to_string() }
    }
}

impl From<sqlx::Error> for ArbitratorError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable { dependency: "postgres", cause: error.to_string() }
            }
            other => Self::Internal(format!("postgres: {other}")),
        }
    }
}

impl From<JournalError> for ArbitratorError {
    fn from(error: JournalError) -> Self {
        match error {
            JournalError::Write(cause) => match cause.as_ref() {
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                    Self::Unavailable { dependency: "postgres", cause: cause.to_string() }
                }
                other => Self::Internal(format!("journal: {other}")),
            },
            JournalError::Stopped => {
                Self::Unavailable { dependency: "journal", cause: "the writer stopped".to_owned() }
            }
        }
    }
}

impl From<PolicyError> for ArbitratorError {
    fn from(error: PolicyError) -> Self {
        Self::validation(error.field, error.message)
    }
}

impl From<NotAllowed> for ArbitratorError {
    fn from(error: NotAllowed) -> Self {
        Self::Forbidden(error.0)
    }
}
