//! gRPC status mapping, in both directions, from the one `ServiceErrorCode` table.
//!
//! Servers answer `status(code, message)`; internal failures go through [`internal_status`], which
//! logs the cause and sends no detail. Clients (the gateway) turn a received status back into an
//! `ApiError`, naming the service when it could not be reached.

use sutazai_types::ServiceErrorCode;

use crate::http::ApiError;

/// A status for a domain error with a client-safe message.
pub fn status(code: ServiceErrorCode, message: impl Into<String>) -> tonic::Status {
    tonic::Status::new(code.grpc_code(), message)
}

/// A status for an unexpected failure: the cause chain is logged here, the client sees none of it.
pub fn internal_status(error: &(dyn std::error::Error + 'static)) -> tonic::Status {
    let _logged = ApiError::internal(error);
    tonic::Status::internal("the server failed to handle the request")
}

/// The HTTP error for a status received from `service`.
///
/// Transport failures (the service is down or the connection broke) become "`service` unavailable";
/// other statuses keep their meaning and message, which servers built with [`status`] keep
/// client-safe.
pub fn api_error_from_status(service: &str, received: &tonic::Status) -> ApiError {
    let code = ServiceErrorCode::from_grpc_code(received.code());
    match code {
        ServiceErrorCode::Unavailable => ApiError::unavailable(service),
        ServiceErrorCode::Internal => ApiError::new(code, format!("{service} failed to handle the request")),
        _ => ApiError::new(code, received.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_names_the_service() {
        let error = api_error_from_status("orchestrator", &tonic::Status::unavailable("tcp connect error"));
        assert_eq!(error.code(), ServiceErrorCode::Unavailable);
        assert_eq!(error.detail(), "orchestrator unavailable");
    }

    #[test]
    fn not_found_keeps_message() {
        let error =
            api_error_from_status("vector", &status(ServiceErrorCode::NotFound, "collection `x` not found"));
        assert_eq!(error.code(), ServiceErrorCode::NotFound);
        assert_eq!(error.detail(), "collection `x` not found");
    }

    #[test]
    fn internal_detail_is_not_forwarded() {
        let error = api_error_from_status("auth", &tonic::Status::internal("panicked at src/x.rs:10"));
        assert!(!error.detail().contains("src/x.rs"));
    }
}
