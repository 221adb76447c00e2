//! The hardware service's errors and their one mapping to `ServiceErrorCode`. Messages are
//! client-safe: a path error names the field, never where a symlink pointed.

use sutazai_types::ServiceErrorCode;

/// Why a hardware operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HardwareError {
    /// The request is malformed (an empty, overlong, NUL-carrying or relative path).
    #[error("{field}: {message}")]
    BadRequest {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A field breaks a rule.
    #[error("{field}: {message}")]
    Validation {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        message: String,
    },
    /// The caller may not do this, or the path lies outside every allowed root.
    #[error("{0}")]
    Forbidden(String),
    /// No such path, or an unknown or purged quarantine entry.
    #[error("{0}")]
    NotFound(String),
    /// The current state refuses the request (something exists at a restore target).
    #[error("{0}")]
    Conflict(String),
    /// A bug or an unexpected failure; logged at the boundary, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HardwareError {
    /// The client-facing code.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::BadRequest { .. } => ServiceErrorCode::BadRequest,
            Self::Validation { .. } => ServiceErrorCode::ValidationFailed,
            Self::Forbidden(_) => ServiceErrorCode::Forbidden,
            Self::NotFound(_) => ServiceErrorCode::NotFound,
            Self::Conflict(_) => ServiceErrorCode::Conflict,
            Self::Internal(_) => ServiceErrorCode::Internal,
        }
    }

    /// A malformed `field`.
    pub fn bad_request(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { field, message: message.into() }
    }

    /// `field` breaks a rule.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }

    /// An unexpected failure, described (with its cause) for the log.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {error}"))
    }
}
