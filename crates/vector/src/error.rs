//! The vector service's errors and their one mapping to `ServiceErrorCode`. Domain and store code
//! return [`VectorError`]; the gRPC adapter turns it into a status once, logging internal ones.

use std::path::PathBuf;

use sutazai_llm::LlmError;
use sutazai_types::ServiceErrorCode;

/// Why a vector operation failed. Messages are client-safe except for [`VectorError::Storage`] and
/// [`VectorError::Internal`], which are logged and never sent.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A malformed request, such as a collection name outside `[a-z0-9_-]{1,64}`.
    #[error("{field}: {message}")]
    BadRequest {
        /// The request field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A well-formed request whose field breaks a rule (wrong dimension, NaN, k out of range).
    #[error("{field}: {message}")]
    Validation {
        /// The request field, with its position (`points[3].vector`).
        field: String,
        /// The rule it breaks.
        message: String,
    },
    /// No such collection or point.
    #[error("{0} not found")]
    NotFound(String),
    /// The collection exists already.
    #[error("{0}")]
    Conflict(String),
    /// The collection cannot accept writes until the service restarts (its log could not be
    /// written), or the service is stopping.
    #[error("{0}")]
    Unavailable(String),
    /// The embedding model failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// Reading or writing the data directory failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// A bug or an unexpected engine failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl VectorError {
    /// The client-facing code.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::BadRequest { .. } => ServiceErrorCode::BadRequest,
            Self::Validation { .. } => ServiceErrorCode::ValidationFailed,
            Self::NotFound(_) => ServiceErrorCode::NotFound,
            Self::Conflict(_) => ServiceErrorCode::Conflict,
            Self::Unavailable(_) => ServiceErrorCode::Unavailable,
            Self::Llm(error) => error.code(),
            Self::Storage(_) | Self::Internal(_) => ServiceErrorCode::Internal,
        }
    }

    /// A validation failure of `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation { field: field.into(), message: message.into() }
    }

    /// A malformed `field`.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest { field: field.into(), message: message.into() }
    }

    /// No collection of that name.
    pub fn collection_not_found(name: &str) -> Self {
        Self::NotFound(format!("collection `{name}`"))
    }
}

/// A failure of the data directory: an I/O error with what was being done to which file, or a
/// file whose content is not what this service wrote.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done (`fsync`, `open`, `rename to ...`).
        action: String,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is damaged beyond the torn log tail a crash can leave.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    /// An I/O error while doing `action` to `path`.
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action: action.into(), path: path.into(), source }
    }

    /// A damaged `path`.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Corrupt { path: path.into(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(VectorError::validation("k", "x").code(), ServiceErrorCode::ValidationFailed);
        assert_eq!(VectorError::bad_request("name", "x").code(), ServiceErrorCode::BadRequest);
        assert_eq!(VectorError::collection_not_found("a").to_string(), "collection `a` not found");
        let storage = VectorError::from(StoreError::corrupt("/x", "bad"));
        assert_eq!(storage.code(), ServiceErrorCode::Internal);
        let llm = VectorError::from(LlmError::Timeout { timeout_ms: 5 });
        assert_eq!(llm.code(), ServiceErrorCode::Timeout);
    }
}
