//! RFC 9457 problem documents built from [`ServiceErrorCode`].
//!
//! Handlers return [`ApiError`]. Its response carries the [`Problem`] in the response extensions;
//! the edge layer (`layers::finish_problems`) writes the final body there, adding the request id
//! that only the edge knows. Internal errors are logged here with their cause chain and sent
//! without detail.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sutazai_types::ServiceErrorCode;

/// The media type of problem documents.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An error a handler answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    code: ServiceErrorCode,
    detail: String,
    field: Option<String>,
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with a client-safe explanation.
    pub fn new(code: ServiceErrorCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), field: None, retry_after_s: None }
    }

    /// A 422 for one field, named in the document.
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let field = field.into();
        let detail = format!("{field}: {}", detail.into());
        Self { code: ServiceErrorCode::ValidationFailed, detail, field: Some(field), retry_after_s: None }
    }

    /// A 500 whose cause is logged with its chain and never sent to the client.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %DisplayChain(error), "internal error");
        Self::new(ServiceErrorCode::Internal, "the server failed to handle the request")
    }

    /// A 503 naming the dependency that did not answer.
    pub fn unavailable(dependency: &str) -> Self {
        Self::new(ServiceErrorCode::Unavailable, format!("{dependency} unavailable"))
    }

    /// Adds a `Retry-After` header (429, 423, 503).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The error code.
    pub fn code(&self) -> ServiceErrorCode {
        self.code
    }

    /// The client-facing explanation.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

/// Writes an error and its sources as `outer: inner: root`, for logs (never for clients).
#[derive(Debug)]
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(formatter, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The problem document; `request_id` is filled in at the edge.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// A URN naming the problem type (`urn:sutazai:problem:not_found`).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The code's short title.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened, for a person.
    pub detail: String,
    /// The machine-readable code.
    pub code: ServiceErrorCode,
    /// The field that broke a rule, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request id, as in the `X-Request-Id` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// A problem for `code` with a detail.
    pub fn new(code: ServiceErrorCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("urn:sutazai:problem:{code}"),
            title: code.title().to_owned(),
            status: code.http_status().as_u16(),
            detail: detail.into(),
            code,
            field: None,
            request_id: None,
        }
    }

    /// Renders the document as a response with the right status and content type.
    pub fn into_response_with(self, retry_after_s: Option<u64>) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if let Some(seconds) = retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut problem = Problem::new(self.code, self.detail);
        problem.field = self.field;
        problem.into_response_with(self.retry_after_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let response = ApiError::validation("priority", "must be between 0 and 9").into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem = response.extensions().get::<Problem>().unwrap();
        assert_eq!(problem.field.as_deref(), Some("priority"));
        assert_eq!(problem.detail, "priority: must be between 0 and 9");
        assert_eq!(problem.code, ServiceErrorCode::ValidationFailed);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let cause = std::io::Error::other("password=hunter2 in connection string");
        let response = ApiError::internal(&cause).into_response();
        let problem = response.extensions().get::<Problem>().unwrap();
        assert!(!problem.detail.contains("hunter2"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
