//! What a guarded call returns, which errors count against a downstream, and the 503 a client
//! sees while a circuit is open.

use std::sync::Arc;
use std::time::Duration;

use sutazai_types::ServiceErrorCode;

use crate::http::ApiError;

/// The error of a call through a [`super::CircuitBreaker`].
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// The circuit is open: the call was not made.
    #[error("{downstream} unavailable (circuit open)")]
    Open {
        /// The downstream's name.
        downstream: Arc<str>,
        /// When a call may be tried again.
        retry_after: Duration,
    },
    /// The call was made and failed with the downstream's own error.
    #[error(transparent)]
    Inner(E),
}

impl<E> BreakerError<E> {
    /// Maps the downstream's own error, keeping `Open` as is.
    pub fn map_inner<F>(self, map: impl FnOnce(E) -> F) -> BreakerError<F> {
        match self {
            BreakerError::Open { downstream, retry_after } => BreakerError::Open { downstream, retry_after },
            BreakerError::Inner(error) => BreakerError::Inner(map(error)),
        }
    }

    /// The HTTP error: the open-circuit 503, or the downstream's error mapped by `map`.
    pub fn into_api_error(self, map: impl FnOnce(E) -> ApiError) -> ApiError {
        match self {
            BreakerError::Open { downstream, retry_after } => circuit_open_error(&downstream, retry_after),
            BreakerError::Inner(error) => map(error),
        }
    }

    /// Whether the call was refused by an open circuit.
    pub fn is_open(&self) -> bool {
        matches!(self, BreakerError::Open { .. })
    }
}

impl<E: Into<ApiError>> From<BreakerError<E>> for ApiError {
    fn from(error: BreakerError<E>) -> Self {
        error.into_api_error(Into::into)
    }
}

/// The 503 for an open circuit: `<name> unavailable (circuit open)` with `Retry-After`.
pub fn circuit_open_error(downstream: &str, retry_after: Duration) -> ApiError {
    let millis = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
    ApiError::new(ServiceErrorCode::Unavailable, format!("{downstream} unavailable (circuit open)"))
        .with_retry_after(millis.div_ceil(1000).max(1))
}

/// Which errors say the downstream is unhealthy. A downstream that answers "bad request" or "not
/// found" is working; one that cannot be reached, times out or fails internally is not.
pub trait BreakerFailure {
    /// Whether this error counts towards opening the circuit.
    fn counts_as_failure(&self) -> bool;
}

impl BreakerFailure for tonic::Status {
    fn counts_as_failure(&self) -> bool {
        // `Unknown` and `Cancelled` are what tonic reports for a broken connection.
        matches!(
            self.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Internal
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::DataLoss
        )
    }
}

impl BreakerFailure for reqwest::Error {
    fn counts_as_failure(&self) -> bool {
        if let Some(status) = self.status() {
            return status.is_server_error();
        }
        self.is_connect() || self.is_timeout() || self.is_request()
    }
}

impl BreakerFailure for ApiError {
    fn counts_as_failure(&self) -> bool {
        matches!(
            self.code(),
            ServiceErrorCode::Unavailable | ServiceErrorCode::Timeout | ServiceErrorCode::Internal
        )
    }
}

impl BreakerFailure for std::io::Error {
    fn counts_as_failure(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn open_circuit_is_a_503_with_retry_after() {
        let error: BreakerError<ApiError> = BreakerError::Open {
            downstream: Arc::from("orchestrator"),
            retry_after: Duration::from_millis(1_200),
        };
        let api_error = ApiError::from(error);
        assert_eq!(api_error.code(), ServiceErrorCode::Unavailable);
        assert_eq!(api_error.detail(), "orchestrator unavailable (circuit open)");
        let response = api_error.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "2");
    }

    #[test]
    fn inner_errors_keep_their_own_mapping() {
        let error: BreakerError<ApiError> =
            BreakerError::Inner(ApiError::new(ServiceErrorCode::NotFound, "no task"));
        assert!(!error.is_open());
        assert_eq!(ApiError::from(error).code(), ServiceErrorCode::NotFound);
    }

    #[test]
    fn only_transport_and_server_errors_count() {
        assert!(tonic::Status::unavailable("connection refused").counts_as_failure());
        assert!(tonic::Status::deadline_exceeded("slow").counts_as_failure());
        assert!(!tonic::Status::not_found("no such task").counts_as_failure());
        assert!(!tonic::Status::invalid_argument("bad id").counts_as_failure());
        assert!(!tonic::Status::permission_denied("no").counts_as_failure());
        assert!(ApiError::unavailable("llm").counts_as_failure());
        assert!(!ApiError::new(ServiceErrorCode::BadRequest, "unknown model").counts_as_failure());
    }
}
