//! The worker's service token: obtained from the auth service with client credentials, cached,
//! and fetched anew once four fifths of its lifetime have passed, so a call never goes out with a
//! token about to expire. Concurrent callers wait for one fetch instead of each making their own.

use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sutazai_kit::config::Secret;
use tokio::sync::Mutex;

/// Longest wait for the auth service.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum TokenError {
    /// The auth service refused the credentials: an operator must fix them.
    #[error("the auth service refused the worker's client credentials (http {status}): {detail}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The problem's detail, if any.
        detail: String,
    },
    /// The auth service could not be reached or failed.
    #[error("auth service unavailable: {0}")]
    Unavailable(String),
}

impl TokenError {
    /// Whether asking again later may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Debug)]
struct CachedToken {
    token: String,
    refresh_at: Instant,
}

/// A cached client-credentials token.
pub(crate) struct ServiceToken {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    cached: Mutex<Option<CachedToken>>,
    latest: RwLock<String>,
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServiceToken")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ServiceToken {
    /// Tokens of `client_id` from the auth service at `auth_url`.
    pub(crate) fn new(auth_url: &str, client_id: &str, client_secret: Secret) -> Result<Self, TokenError> {
        let http = reqwest::Client::builder()
            .timeout(TOKEN_REQUEST_TIMEOUT)
            .build()
            .map_err(|error| TokenError::Unavailable(format!("http client: {error}")))?;
        Ok(Self {
            http,
            token_url: format!("{}/api/v1/auth/token", auth_url.trim_end_matches('/')),
            client_id: client_id.to_owned(),
            client_secret,
            cached: Mutex::new(None),
            latest: RwLock::new(String::new()),
        })
    }

    /// A valid token, fetched when the cached one is due for refresh.
    pub(crate) async fn bearer(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref()
            && Instant::now() < current.refresh_at
        {
            return Ok(current.token.clone());
        }
        let fetched_at = Instant::now();
        let response = self.fetch().await?;
        let lifetime = Duration::from_secs(response.expires_in);
        let fresh = CachedToken { token: response.access_token, refresh_at: fetched_at + lifetime * 4 / 5 };
        *self.latest.write().unwrap_or_else(PoisonError::into_inner) = fresh.token.clone();
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// The last token fetched (empty before the first), without I/O: for callers that cannot
    /// wait, such as the background renewal of a lease.
    pub(crate) fn latest(&self) -> String {
        self.latest.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn fetch(&self) -> Result<TokenResponse, TokenError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|error| TokenError::Unavailable(error.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<TokenResponse>()
                .await
                .map_err(|error| TokenError::Unavailable(format!("undecodable token response: {error}")));
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|problem| problem.get("detail").and_then(serde_json::Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        // 429 is the auth service asking to slow down, not a verdict on the credentials.
        if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(TokenError::Rejected { status: status.as_u16(), detail });
        }
        Err(TokenError::Unavailable(format!("http {}: {detail}", status.as_u16())))
    }
}
