//! [`LlmSettings`], the `[llm]` configuration section; [`LLM_DEFAULTS_TOML`] documents every key
//! with its recommended default.

use std::time::Duration;

use serde::Deserialize;
use sutazai_kit::config::{ConfigIssues, ConnectionUrl, Secret, Validate, key};

use crate::local::LocalSettings;

/// The `[llm]` section with its defaults and the meaning of each key, for a service's embedded
/// defaults file.
pub const LLM_DEFAULTS_TOML: &str = include_str!("../llm.default.toml");

/// Longest sensible retry count; more only delays the error an operator needs to see.
const MAX_RETRIES_LIMIT: u32 = 10;

/// Which provider answers: an LLM server's API, the embedded models, or whichever is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The server at `base_url` when it answers as Ollama or as an OpenAI-compatible server
    /// when the client starts; otherwise the embedded models ([`ProviderKind::Local`]).
    Auto,
    /// Ollama's native `/api/*`.
    Ollama,
    /// The OpenAI API (`/chat/completions`, `/embeddings`, `/models` under `base_url`).
    Openai,
    /// The embedded models, in process (`[llm.local]`).
    Local,
}

/// `[llm]`: the LLM server and how the client treats it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// `auto`, `ollama`, `openai` or `local`.
    pub provider: ProviderKind,
    /// Where the server listens; for `openai` with the version prefix (`http://host:11434/v1`).
    /// Plain `http` only: the build has no TLS client.
    pub base_url: ConnectionUrl,
    /// Bearer token sent with every request, if the server (or a proxy before it) wants one.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Model used when a request names none.
    pub default_model: String,
    /// Longest wait for one attempt (whole answer; when streaming, each token).
    pub request_timeout_ms: u64,
    /// Longest wait for the TCP connection.
    pub connect_timeout_ms: u64,
    /// Attempts after the first on connection failures, 5xx and 429.
    pub max_retries: u32,
    /// First retry delay, doubled per retry (with jitter) up to `retry_max_delay_ms`.
    pub retry_base_delay_ms: u64,
    /// Longest delay between attempts; a longer `Retry-After` is not waited for.
    pub retry_max_delay_ms: u64,
    /// How long the model list is reused.
    pub model_list_ttl_s: u64,
    /// How long a cached chat answer lives.
    pub cache_ttl_s: u64,
    /// Inference calls running at once; more queue.
    pub max_concurrent_requests: usize,
    /// `[llm.local]`: the embedded models.
    #[serde(default)]
    pub local: LocalSettings,
}

impl LlmSettings {
    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The connect timeout as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The model list lifetime as a duration.
    pub fn model_list_ttl(&self) -> Duration {
        Duration::from_secs(self.model_list_ttl_s)
    }

    /// The response cache lifetime as a duration.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_s)
    }
}

impl Validate for LlmSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if let Err(reason) = check_base_url(self.base_url.expose()) {
            issues.push(key(prefix, "base_url"), reason);
        }
        if let Some(api_key) = &self.api_key {
            let value = api_key.expose();
            // A header value cannot hold control characters; an empty key is a templating slip.
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                issues.push(key(prefix, "api_key"), "must be non-empty without control characters, or unset");
            }
        }
        if self.default_model.trim().is_empty() {
            issues.push(key(prefix, "default_model"), "must name a model");
        }
        for (name, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("retry_base_delay_ms", self.retry_base_delay_ms),
            ("cache_ttl_s", self.cache_ttl_s),
        ] {
            if value == 0 {
                issues.push(key(prefix, name), "must be greater than 0");
            }
        }
        if self.retry_max_delay_ms < self.retry_base_delay_ms {
            issues.push(key(prefix, "retry_max_delay_ms"), "must be at least retry_base_delay_ms");
        }
        if self.max_retries > MAX_RETRIES_LIMIT {
            issues.push(key(prefix, "max_retries"), format!("must be at most {MAX_RETRIES_LIMIT}"));
        }
        if self.max_concurrent_requests == 0 {
            issues.push(key(prefix, "max_concurrent_requests"), "must be greater than 0");
        }
        self.local.validate(&key(prefix, "local"), issues);
    }
}

/// `http://host[:port][/path]`, without query or fragment. `https` is refused rather than
/// accepted and failed on every request, because the HTTP client is built without TLS.
fn check_base_url(url: &str) -> Result<(), &'static str> {
    if url.starts_with("https://") {
        return Err("https is not supported by this build (no TLS client); use http, or a local TLS proxy");
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("must be an http:// URL");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("must name a host");
    }
    if url.contains('?') || url.contains('#') {
        return Err("must not have a query or fragment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;
    use sutazai_kit::config::{ConfigError, ConfigSources, load};

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Root {
        llm: LlmSettings,
    }

    impl Validate for Root {
        fn validate(&self, _prefix: &str, issues: &mut ConfigIssues) {
            self.llm.validate("llm", issues);
        }
    }

    fn load_with(env: &[(&str, &str)]) -> Result<Root, ConfigError> {
        let env: HashMap<String, String> =
            env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        // As in a service: with no list key at all, the config crate would read every
        // environment value as a list, so the usual one is named.
        let list_keys = &["http.cors_allowed_origins"];
        load(ConfigSources { defaults_toml: LLM_DEFAULTS_TOML, file: None, env, list_keys })
    }

    #[test]
    fn the_documented_defaults_load_and_validate() {
        let settings = load_with(&[]).unwrap().llm;
        assert_eq!(settings.provider, ProviderKind::Auto);
        assert_eq!(settings.local.chat_model, "smollm2:135m");
        assert_eq!(settings.local.embedding_model, "all-minilm");
        assert_eq!(settings.base_url.expose(), "http://127.0.0.1:11434");
        assert!(settings.api_key.is_none());
        assert_eq!(settings.request_timeout(), Duration::from_secs(120));
        assert_eq!(settings.max_concurrent_requests, 2);
    }

    #[test]
    fn environment_overrides_reach_every_key() {
        let settings = load_with(&[
            ("SUTAZAI__LLM__PROVIDER", "openai"),
            ("SUTAZAI__LLM__BASE_URL", "http://10.0.0.5:8000/v1"),
            ("SUTAZAI__LLM__API_KEY", "sk-test-key"),
        ])
        .unwrap()
        .llm;
        assert_eq!(settings.provider, ProviderKind::Openai);
        assert_eq!(settings.api_key.unwrap().expose(), "sk-test-key");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = load_with(&[("SUTAZAI__LLM__MODEL_NAME", "x")]).unwrap_err();
        assert!(error.to_string().contains("model_name"), "{error}");
    }

    #[test]
    fn broken_values_are_reported_by_key() {
        let error = load_with(&[
            ("SUTAZAI__LLM__BASE_URL", "https://api.openai.com/v1"),
            ("SUTAZAI__LLM__DEFAULT_MODEL", " "),
            ("SUTAZAI__LLM__MAX_CONCURRENT_REQUESTS", "0"),
            ("SUTAZAI__LLM__RETRY_MAX_DELAY_MS", "10"),
        ])
        .unwrap_err();
        let text = error.to_string();
        for expected_key in
            ["llm.base_url", "llm.default_model", "llm.max_concurrent_requests", "llm.retry_max_delay_ms"]
        {
            assert!(text.contains(expected_key), "{expected_key} missing from {text}");
        }
    }

    #[test]
    fn base_urls_must_be_plain_http_with_a_host() {
        assert!(check_base_url("http://127.0.0.1:11434").is_ok());
        assert!(check_base_url("http://ollama:11434/v1").is_ok());
        assert!(check_base_url("https://api.openai.com/v1").is_err());
        assert!(check_base_url("ftp://x").is_err());
        assert!(check_base_url("http://:80").is_err());
        assert!(check_base_url("http://host/v1?x=1").is_err());
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let mut settings = load_with(&[]).unwrap().llm;
        settings.api_key = Some(Secret::new("sk-very-secret-value"));
        assert!(!format!("{settings:?}").contains("very-secret"));
    }
}
