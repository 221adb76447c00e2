//! Extractors whose rejections are problem documents: a malformed body or a wrong field type is a
//! 422 naming the field (serde's message names it), an oversized body a 413.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sutazai_types::ServiceErrorCode;

use super::ApiError;

/// `axum::Json` with problem+json rejections. Also a response type (serializes like `axum::Json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection_to_error(rejection)),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection_to_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => {
            // serde's message names the field: "priority: invalid value: integer `12`...".
            ApiError::new(ServiceErrorCode::ValidationFailed, error.body_text())
        }
        JsonRejection::JsonSyntaxError(error) => ApiError::new(
            ServiceErrorCode::ValidationFailed,
            format!("malformed JSON: {}", error.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::new(ServiceErrorCode::BadRequest, "expected `Content-Type: application/json`")
        }
        JsonRejection::BytesRejection(error)
            if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::new(
                ServiceErrorCode::PayloadTooLarge,
                "request body is larger than the configured limit",
            )
        }
        other => ApiError::new(ServiceErrorCode::BadRequest, other.body_text()),
    }
}

/// A body accepted as JSON or as `application/x-www-form-urlencoded` (OAuth-style clients post
/// forms to login and token endpoints).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonOrForm<T>(pub T);

impl<S, T> FromRequest<S> for JsonOrForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|content_type| content_type.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Json::<T>::from_request(request, state).await.map(|Json(value)| Self(value));
        }
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(ServiceErrorCode::ValidationFailed, rejection.body_text())),
        }
    }
}

/// Parses a path segment as a UUID, answering 400 naming the parameter otherwise.
pub fn parse_uuid(parameter: &str, text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| ApiError::new(ServiceErrorCode::BadRequest, format!("{parameter}: not a UUID")))
}
