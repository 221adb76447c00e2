//! The orchestrator's errors and their one mapping to `ServiceErrorCode`.

use sutazai_messaging::outbox::OutboxError;
use sutazai_types::ServiceErrorCode;

use crate::domain::access::OwnerError;
use crate::domain::task::AlreadyTerminal;
use crate::domain::validation::ValidationError;

/// Why an orchestrator operation failed. Messages are client-safe; the causes of `Unavailable`
/// and `Internal` are logged at the boundary and never sent.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// A field breaks a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such task or workflow, or not the caller's.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the state (cancel of a terminal task).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Postgres did not answer, or was busy resolving a conflict between transactions.
    #[error("{dependency} unavailable")]
    Unavailable {
        /// Which dependency.
        dependency: &'static str,
        /// Why, for the log.
        cause: String,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl OrchestratorError {
    /// The client-facing code.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::Validation(_) => ServiceErrorCode::ValidationFailed,
            Self::NotFound(_) => ServiceErrorCode::NotFound,
            Self::Conflict(_) => ServiceErrorCode::Conflict,
            Self::Forbidden(_) => ServiceErrorCode::Forbidden,
            Self::Unavailable { .. } => ServiceErrorCode::Unavailable,
            Self::Internal(_) => ServiceErrorCode::Internal,
        }
    }

    /// A validation failure of `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(ValidationError::new(field, message))
    }

    /// Whether trying the same transaction again may succeed: a deadlock or serialization
    /// failure Postgres resolved by aborting this transaction, or Postgres being unreachable.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// SQLSTATEs of transactions Postgres aborted to resolve a conflict; running them again works.
const RETRYABLE_SQLSTATES: [&str; 2] = ["40001", "40P01"];

impl From<sqlx::Error> for OrchestratorError {
    fn from(error: sqlx::Error) -> Self {
        let conflict_resolved = error
            .as_database_error()
            .and_then(|database_error| database_error.code())
            .is_some_and(|code| RETRYABLE_SQLSTATES.contains(&code.as_ref()));
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable { dependency: "postgres", cause: error.to_string() }
            }
            _ if conflict_resolved => Self::Unavailable { dependency: "postgres", cause: error.to_string() },
            other => Self::Internal(format!("postgres: {other}")),
        }
    }
}

impl From<OutboxError> for OrchestratorError {
    fn from(error: OutboxError) -> Self {
        match error {
            OutboxError::Database(cause) => cause.into(),
            other => Self::Internal(format!("outbox: {other}")),
        }
    }
}

impl From<OwnerError> for OrchestratorError {
    fn from(error: OwnerError) -> Self {
        match error {
            OwnerError::Missing => Self::validation("owner", "is required"),
            OwnerError::NotYours | OwnerError::MissingScope(_) => Self::Forbidden(error.to_string()),
        }
    }
}

impl From<AlreadyTerminal> for OrchestratorError {
    fn from(error: AlreadyTerminal) -> Self {
        Self::Conflict(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        assert_eq!(
            OrchestratorError::validation("priority", "must be between 0 and 9").code(),
            ServiceErrorCode::ValidationFailed
        );
        assert_eq!(
            OrchestratorError::from(AlreadyTerminal(sutazai_types::TaskStatus::Succeeded)).to_string(),
            "task is already succeeded"
        );
        assert_eq!(OrchestratorError::from(OwnerError::NotYours).code(), ServiceErrorCode::Forbidden);
        assert!(OrchestratorError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!OrchestratorError::from(sqlx::Error::RowNotFound).is_transient());
    }
}
