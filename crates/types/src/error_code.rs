//! The single table of error codes: each code's HTTP status, gRPC code and problem title.
//!
//! Domain error enums implement `fn code(&self) -> ServiceErrorCode`; the HTTP and gRPC adapters in
//! `sutazai-kit` turn a code into a response, so the mapping lives here and nowhere else.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, in terms a client can act on. Serialized as the `code` of a problem document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceErrorCode {
    /// The request is malformed (an id that is not a UUID, a missing content type).
    BadRequest,
    /// The request is well-formed but a field breaks a rule; the detail names the field.
    ValidationFailed,
    /// No credentials, or credentials that are invalid, expired or revoked.
    Unauthenticated,
    /// Valid credentials without the role or scope the action needs.
    Forbidden,
    /// The resource does not exist or is not visible to the caller.
    NotFound,
    /// The request conflicts with the current state (duplicate, already terminal).
    Conflict,
    /// The account is locked for a while (repeated failed logins).
    Locked,
    /// A rate limit or a bounded queue refused the request; retry later.
    TooManyRequests,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// A dependency is down or the service is shutting down.
    Unavailable,
    /// The operation did not finish within its deadline.
    Timeout,
    /// A bug or an unexpected failure; details are logged, never sent.
    Internal,
}

/// One row of the table.
struct Row {
    code: ServiceErrorCode,
    name: &'static str,
    http_status: u16,
    grpc_code: tonic::Code,
    title: &'static str,
}

const TABLE: [Row; 12] = [
    row(ServiceErrorCode::BadRequest, "bad_request", 400, tonic::Code::InvalidArgument, "Bad request"),
    row(
        ServiceErrorCode::ValidationFailed,
        "validation_failed",
        422,
        tonic::Code::InvalidArgument,
        "Validation failed",
    ),
    row(
        ServiceErrorCode::Unauthenticated,
        "unauthenticated",
        401,
        tonic::Code::Unauthenticated,
        "Unauthenticated",
    ),
    row(ServiceErrorCode::Forbidden, "forbidden", 403, tonic::Code::PermissionDenied, "Forbidden"),
    row(ServiceErrorCode::NotFound, "not_found", 404, tonic::Code::NotFound, "Not found"),
    row(ServiceErrorCode::Conflict, "conflict", 409, tonic::Code::AlreadyExists, "Conflict"),
    row(ServiceErrorCode::Locked, "locked", 423, tonic::Code::FailedPrecondition, "Locked"),
    row(
        ServiceErrorCode::TooManyRequests,
        "too_many_requests",
        429,
        tonic::Code::ResourceExhausted,
        "Too many requests",
    ),
    row(
        ServiceErrorCode::PayloadTooLarge,
        "payload_too_large",
        413,
        tonic::Code::OutOfRange,
        "Payload too large",
    ),
    row(ServiceErrorCode::Unavailable, "unavailable", 503, tonic::Code::Unavailable, "Service unavailable"),
    row(ServiceErrorCode::Timeout, "timeout", 504, tonic::Code::DeadlineExceeded, "Timeout"),
    row(ServiceErrorCode::Internal, "internal", 500, tonic::Code::Internal, "Internal error"),
];

const fn row(
    code: ServiceErrorCode,
    name: &'static str,
    http_status: u16,
    grpc_code: tonic::Code,
    title: &'static str,
) -> Row {
    Row { code, name, http_status, grpc_code, title }
}

impl ServiceErrorCode {
    /// Every code, in table order.
    pub const ALL: [ServiceErrorCode; 12] = [
        Self::BadRequest,
        Self::ValidationFailed,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::Locked,
        Self::TooManyRequests,
        Self::PayloadTooLarge,
        Self::Unavailable,
        Self::Timeout,
        Self::Internal,
    ];

    fn row(self) -> &'static Row {
        // The table is ordered like the enum; the unit test `table_is_in_enum_order` keeps it so.
        let row = &TABLE[self as usize];
        debug_assert_eq!(row.code, self, "error code table out of order");
        row
    }

    /// The snake_case name used as `code` in problem documents.
    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// The HTTP status code for this error.
    pub fn http_status(self) -> http::StatusCode {
        http::StatusCode::from_u16(self.row().http_status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The gRPC status code for this error.
    pub fn grpc_code(self) -> tonic::Code {
        self.row().grpc_code
    }

    /// The short human title of a problem document.
    pub fn title(self) -> &'static str {
        self.row().title
    }

    /// The code a caller should report for a gRPC status received from another service.
    ///
    /// Codes with no precise counterpart map to `Internal`, except transport-level failures
    /// (`Unavailable`, `Cancelled`, `Unknown` raised by a broken connection), which mean the
    /// downstream service could not answer.
    pub fn from_grpc_code(grpc_code: tonic::Code) -> Self {
        match grpc_code {
            tonic::Code::InvalidArgument => Self::ValidationFailed,
            tonic::Code::Unauthenticated => Self::Unauthenticated,
            tonic::Code::PermissionDenied => Self::Forbidden,
            tonic::Code::NotFound => Self::NotFound,
            tonic::Code::AlreadyExists | tonic::Code::Aborted => Self::Conflict,
            tonic::Code::FailedPrecondition => Self::Conflict,
            tonic::Code::ResourceExhausted => Self::TooManyRequests,
            tonic::Code::OutOfRange => Self::PayloadTooLarge,
            tonic::Code::Unavailable | tonic::Code::Cancelled => Self::Unavailable,
            tonic::Code::DeadlineExceeded => Self::Timeout,
            _ => Self::Internal,
        }
    }

    /// The code for an HTTP status answered by another service, if it is one of ours.
    pub fn from_http_status(status: http::StatusCode) -> Self {
        Self::ALL
            .into_iter()
            .find(|code| code.http_status() == status)
            .unwrap_or(if status.is_server_error() { Self::Internal } else { Self::BadRequest })
    }
}

impl fmt::Display for ServiceErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order() {
        for (index, code) in ServiceErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(TABLE[index].code, code, "row {index}");
        }
    }

    #[test]
    fn names_match_serde() {
        for code in ServiceErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn api_contract_statuses() {
        assert_eq!(ServiceErrorCode::ValidationFailed.http_status(), 422);
        assert_eq!(ServiceErrorCode::PayloadTooLarge.http_status(), 413);
        assert_eq!(ServiceErrorCode::Unavailable.http_status(), 503);
        assert_eq!(ServiceErrorCode::NotFound.grpc_code(), tonic::Code::NotFound);
        assert_eq!(
            ServiceErrorCode::from_http_status(http::StatusCode::CONFLICT),
            ServiceErrorCode::Conflict
        );
        assert_eq!(
            ServiceErrorCode::from_http_status(http::StatusCode::BAD_GATEWAY),
            ServiceErrorCode::Internal
        );
    }

    #[test]
    fn grpc_round_trip_keeps_client_visible_meaning() {
        for code in ServiceErrorCode::ALL {
            let back = ServiceErrorCode::from_grpc_code(code.grpc_code());
            // Several HTTP codes share a gRPC code; the class of failure must survive.
            assert_eq!(back.http_status().is_server_error(), code.http_status().is_server_error(), "{code}");
        }
    }
}
