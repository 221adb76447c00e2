//! The coordinator's errors and their one mapping to `ServiceErrorCode`.

use sutazai_types::ServiceErrorCode;

/// Why a coordinator operation failed. Messages are client-safe.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// A field breaks a rule.
    #[error("{field}: {message}")]
    Validation {
        /// The field, as the proto names it.
        field: &'static str,
        /// The rule it breaks.
        message: String,
    },
    /// No such agent.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The dispatcher is not running (shutting down).
    #[error("the dispatcher is not running")]
    Unavailable,
}

impl CoordinatorError {
    /// The client-facing code.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::Validation { .. } => ServiceErrorCode::ValidationFailed,
            Self::NotFound(_) => ServiceErrorCode::NotFound,
            Self::Forbidden(_) => ServiceErrorCode::Forbidden,
            Self::Unavailable => ServiceErrorCode::Unavailable,
        }
    }

    /// A validation failure of `field`.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }
}
