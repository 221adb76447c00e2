//! [`LlmError`]: everything an LLM call can fail with, and its [`ServiceErrorCode`].
//!
//! Messages never carry an API key or a prompt: upstream error texts are shortened to
//! [`MAX_UPSTREAM_MESSAGE_CHARS`] and transport errors are printed without their URL.

use sutazai_types::ServiceErrorCode;

/// Longest upstream error text kept in an error; a provider echoing part of a prompt back
/// cannot leak more than this.
pub(crate) const MAX_UPSTREAM_MESSAGE_CHARS: usize = 200;

/// Why an LLM call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider does not have the requested model.
    #[error("unknown model `{model}`; available models: {}", format_available(.available))]
    UnknownModel {
        /// The model the request named.
        model: String,
        /// Every model the provider lists.
        available: Vec<String>,
    },
    /// The provider cannot be reached or keeps failing (connection refused, DNS, 5xx after the
    /// retries, a stream cut short).
    #[error("llm provider unavailable: {reason}")]
    Unavailable {
        /// What happened, without URL or prompt.
        reason: String,
    },
    /// The provider refused the configured credentials (401/403): an operator must fix the key.
    #[error("llm provider rejected the configured credentials (http {status})")]
    CredentialsRejected {
        /// The HTTP status the provider answered.
        status: u16,
    },
    /// The call did not finish within the configured request timeout.
    #[error("llm request timed out after {timeout_ms} ms")]
    Timeout {
        /// The timeout that expired.
        timeout_ms: u64,
    },
    /// The provider is rate limiting us.
    #[error("llm provider is rate limiting requests{}", format_retry_after(*.retry_after_s))]
    RateLimited {
        /// Seconds the provider asked us to wait (`Retry-After`), when it said.
        retry_after_s: Option<u64>,
    },
    /// The provider rejected the request itself (a 4xx other than 401, 403, 404 and 429), or
    /// the request is unusable before it is sent (no messages).
    #[error("llm request rejected: {reason}")]
    BadRequest {
        /// Why, in the provider's words (shortened).
        reason: String,
    },
    /// The provider broke its protocol (undecodable body, a stream without an end) or the
    /// client is misconfigured; details are logged, never shown to API clients.
    #[error("llm protocol error: {reason}")]
    Internal {
        /// What broke.
        reason: String,
    },
}

impl LlmError {
    /// The code the HTTP and gRPC adapters answer with.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::UnknownModel { .. } | Self::BadRequest { .. } => ServiceErrorCode::BadRequest,
            Self::Unavailable { .. } | Self::CredentialsRejected { .. } => ServiceErrorCode::Unavailable,
            Self::Timeout { .. } => ServiceErrorCode::Timeout,
            Self::RateLimited { .. } => ServiceErrorCode::TooManyRequests,
            Self::Internal { .. } => ServiceErrorCode::Internal,
        }
    }

    /// Whether trying the same call again may succeed: the provider was unreachable, failed
    /// with a 5xx, or asked us to slow down. A timeout is not retried, since the generation it
    /// abandoned may still be running upstream and a retry would double the load.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::RateLimited { .. })
    }

    /// The LLM (or a slot to call it) is not available now.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable { reason: reason.into() }
    }

    pub(crate) fn internal(reason: impl Into<String>) -> Self {
        Self::Internal { reason: reason.into() }
    }
}

fn format_available(available: &[String]) -> String {
    if available.is_empty() { "none".to_owned() } else { available.join(", ") }
}

fn format_retry_after(retry_after_s: Option<u64>) -> String {
    retry_after_s.map_or_else(String::new, |seconds| format!("; retry after {seconds} s"))
}

/// Keeps the first [`MAX_UPSTREAM_MESSAGE_CHARS`] characters of an upstream error text.
pub(crate) fn shorten_upstream_message(message: &str) -> String {
    let trimmed = message.trim();
    match trimmed.char_indices().nth(MAX_UPSTREAM_MESSAGE_CHARS) {
        Some((cut_at, _)) => format!("{}…", &trimmed[..cut_at]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_lists_the_available_models() {
        let error = LlmError::UnknownModel {
            model: "mistral".to_owned(),
            available: vec!["llama3.2:1b".to_owned(), "all-minilm:latest".to_owned()],
        };
        assert_eq!(
            error.to_string(),
            "unknown model `mistral`; available models: llama3.2:1b, all-minilm:latest"
        );
        assert_eq!(error.code(), ServiceErrorCode::BadRequest);
    }

    #[test]
    fn codes_follow_the_api_contract() {
        assert_eq!(LlmError::unavailable("down").code(), ServiceErrorCode::Unavailable);
        assert_eq!(LlmError::Timeout { timeout_ms: 5 }.code(), ServiceErrorCode::Timeout);
        assert_eq!(
            LlmError::RateLimited { retry_after_s: Some(2) }.code(),
            ServiceErrorCode::TooManyRequests
        );
        assert_eq!(LlmError::internal("bad json").code(), ServiceErrorCode::Internal);
        assert_eq!(LlmError::CredentialsRejected { status: 401 }.code(), ServiceErrorCode::Unavailable);
    }

    #[test]
    fn only_unavailable_and_rate_limited_are_retried() {
        assert!(LlmError::unavailable("503").is_retryable());
        assert!(LlmError::RateLimited { retry_after_s: None }.is_retryable());
        assert!(!LlmError::Timeout { timeout_ms: 1 }.is_retryable());
        assert!(!LlmError::BadRequest { reason: "x".to_owned() }.is_retryable());
        assert!(!LlmError::CredentialsRejected { status: 403 }.is_retryable());
    }

    #[test]
    fn long_upstream_messages_are_cut() {
        let long_message = "é".repeat(MAX_UPSTREAM_MESSAGE_CHARS + 50);
        let shortened = shorten_upstream_message(&long_message);
        assert_eq!(shortened.chars().count(), MAX_UPSTREAM_MESSAGE_CHARS + 1);
        assert!(shortened.ends_with('…'));
        assert_eq!(shorten_upstream_message("  short  "), "short");
    }
}
