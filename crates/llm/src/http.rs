//! The HTTP side shared by the Ollama and OpenAI-compatible providers: one `reqwest` client
//! with the connect timeout and optional bearer key, JSON requests, and the mapping of
//! transport failures and error statuses to [`LlmError`].

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sutazai_kit::config::{ConnectionUrl, Secret};

use crate::error::{LlmError, shorten_upstream_message};

/// An HTTP endpoint of one provider.
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    base_url: ConnectionUrl,
    api_key: Option<Secret>,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HttpTransport")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// `base_url` is the prefix every request path is appended to. Only the connect timeout is
    /// set here: the whole-request timeout is the client's, so it applies to every provider.
    pub(crate) fn new(
        base_url: &ConnectionUrl,
        api_key: Option<Secret>,
        connect_timeout: Duration,
    ) -> Result<Self, LlmError> {
        let client =
            reqwest::Client::builder().connect_timeout(connect_timeout).build().map_err(|error| {
                LlmError::internal(format!("cannot build the http client: {}", describe(&error)))
            })?;
        let trimmed = ConnectionUrl::new(base_url.expose().trim_end_matches('/'));
        Ok(Self { client, base_url: trimmed, api_key })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.expose())
    }

    /// `GET path`; an error status becomes an [`LlmError`].
    pub(crate) async fn get(&self, path: &str) -> Result<Response, LlmError> {
        self.send(self.client.get(self.url(path)), None).await
    }

    /// `POST path` with a JSON body; `model` names the requested model so a 404 can be reported
    /// as [`LlmError::UnknownModel`].
    pub(crate) async fn post_json<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        model: Option<&str>,
    ) -> Result<Response, LlmError> {
        self.send(self.client.post(self.url(path)).json(body), model).await
    }

    async fn send(&self, request: RequestBuilder, model: Option<&str>) -> Result<Response, LlmError> {
        let request = match &self.api_key {
            Some(api_key) => request.bearer_auth(api_key.expose()),
            None => request,
        };
        let response = request.send().await.map_err(transport_error)?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_from_response(response, model).await)
    }
}

/// Reads the whole body and decodes it; `what` names the document for the error message.
pub(crate) async fn decode_json<T: DeserializeOwned>(response: Response, what: &str) -> Result<T, LlmError> {
    let body = response.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&body)
        .map_err(|error| LlmError::internal(format!("undecodable {what} from the provider: {error}")))
}

/// A failure to talk to the provider at all. The URL is dropped from the text: it may carry
/// credentials, and the operator knows where the provider is.
pub(crate) fn transport_error(error: reqwest::Error) -> LlmError {
    let error = error.without_url();
    if error.is_builder() {
        return LlmError::internal(format!("cannot build the request: {}", describe(&error)));
    }
    if error.is_decode() {
        return LlmError::internal(format!("undecodable response: {}", describe(&error)));
    }
    LlmError::unavailable(describe(&error))
}

/// The error and its causes, `outer: inner: root`, since reqwest's own text ("error sending
/// request") hides whether the connection was refused or the name did not resolve.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

async fn error_from_response(response: Response, model: Option<&str>) -> LlmError {
    let status = response.status();
    let retry_after_s = parse_retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    let message = shorten_upstream_message(&upstream_error_message(&body));
    classify_status(status, retry_after_s, message, model)
}

/// The error text of Ollama's `{"error": "..."}`, the OpenAI API's `{"error": {"message": ...}}`,
/// or the raw body when it is neither.
pub(crate) fn upstream_error_message(body: &str) -> String {
    let Ok(document) = serde_json::from_str::<Value>(body) else { return body.to_owned() };
    match document.get("error") {
        Some(Value::String(message)) => message.clone(),
        Some(Value::Object(error)) => match error.get("message") {
            Some(Value::String(message)) => message.clone(),
            _ => body.to_owned(),
        },
        _ => body.to_owned(),
    }
}

/// `Retry-After` in seconds; the HTTP-date form is ignored (LLM servers send seconds).
fn parse_retry_after(headers: &HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

/// Maps an error status to the error the API contract needs.
pub(crate) fn classify_status(
    status: StatusCode,
    retry_after_s: Option<u64>,
    message: String,
    model: Option<&str>,
) -> LlmError {
    match status {
        StatusCode::TOO_MANY_REQUESTS => LlmError::RateLimited { retry_after_s },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            LlmError::CredentialsRejected { status: status.as_u16() }
        }
        // Ollama answers 404 only for a missing model on these routes, and the OpenAI API
        // answers 404 `model_not_found`; the client fills in the available models.
        StatusCode::NOT_FOUND => match model {
            Some(model) => LlmError::UnknownModel { model: model.to_owned(), available: Vec::new() },
            None => LlmError::internal(format!("http 404 from the provider ({message}); check llm.base_url")),
        },
        status if status.is_client_error() => LlmError::BadRequest { reason: message },
        status if status.is_server_error() => {
            LlmError::unavailable(format!("http {} from the provider: {message}", status.as_u16()))
        }
        status => LlmError::internal(format!("unexpected http {} from the provider", status.as_u16())),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn error_texts_are_read_from_both_wire_formats() {
        assert_eq!(upstream_error_message(r#"{"error":"model \"x\" not found"}"#), r#"model "x" not found"#);
        assert_eq!(
            upstream_error_message(r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#),
            "bad key"
        );
        assert_eq!(upstream_error_message("404 page not found"), "404 page not found");
    }

    #[test]
    fn statuses_map_to_the_contract() {
        let classify = |status, model| classify_status(status, Some(3), "why".to_owned(), model);
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, None),
            LlmError::RateLimited { retry_after_s: Some(3) }
        );
        assert_eq!(
            classify(StatusCode::NOT_FOUND, Some("mistral")),
            LlmError::UnknownModel { model: "mistral".to_owned(), available: Vec::new() }
        );
        assert!(matches!(classify(StatusCode::NOT_FOUND, None), LlmError::Internal { .. }));
        assert_eq!(classify(StatusCode::UNAUTHORIZED, None), LlmError::CredentialsRejected { status: 401 });
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None),
            LlmError::BadRequest { reason: "why".to_owned() }
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, None),
            LlmError::unavailable("http 503 from the provider: why")
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(parse_retry_after(&headers), Some(7));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(parse_retry_after(&headers), None);
    }
}
