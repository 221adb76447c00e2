//! The platform configuration: every section the binary's roles read, loaded once through the
//! kit's loader from the embedded `config.default.toml`, an optional file and the environment.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sutazai_kit::config::{
    AmqpSettings, ConfigError, ConfigIssues, ConfigSources, HttpSettings, PostgresSettings, RedisSettings,
    SecuritySettings, TelemetrySettings, Validate, key,
};

/// The embedded defaults; the reference for every key.
/// The `[llm]` section lives with its crate (`crates/llm/llm.default.toml`).
pub(crate) const DEFAULTS_TOML: &str =
    concat!(include_str!("../config.default.toml"), "\n", include_str!("../../llm/llm.default.toml"));

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 2] = ["http.cors_allowed_origins", "http.trusted_proxies"];

/// Everything the `sutazai` binary can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SutazaiConfig {
    pub(crate) telemetry: TelemetrySettings,
    pub(crate) http: HttpSettings,
    pub(crate) postgres: PostgresSettings,
    pub(crate) redis: RedisSettings,
    pub(crate) amqp: AmqpSettings,
    pub(crate) auth: sutazai_auth::AuthSettings,
    pub(crate) gateway: sutazai_gateway::GatewaySettings,
    pub(crate) llm: sutazai_llm::LlmSettings,
    pub(crate) rate_limit: sutazai_kit::ratelimit::RateLimitSettings,
    pub(crate) circuit_breaker: sutazai_kit::breaker::BreakerSettings,
    #[serde(default)]
    pub(crate) security: SecuritySettings,
}

impl SutazaiConfig {
    /// What the gateway role reads.
    pub(crate) fn gateway_config(&self) -> sutazai_gateway::GatewayConfig {
        sutazai_gateway::GatewayConfig {
            gateway: self.gateway.clone(),
            http: self.http.clone(),
            postgres: self.postgres.clone(),
            redis: self.redis.clone(),
            llm: self.llm.clone(),
            rate_limit: self.rate_limit.clone(),
            breakers: self.circuit_breaker,
            token: sutazai_kit::auth::VerifierSettings::new(
                self.auth.issuer.clone(),
                self.auth.audience.clone(),
            ),
        }
    }

    /// What the auth role reads.
    pub(crate) fn auth_config(&self) -> sutazai_auth::AuthConfig {
        sutazai_auth::AuthConfig {
            auth: self.auth.clone(),
            http: self.http.clone(),
            postgres: self.postgres.clone(),
            redis: self.redis.clone(),
            master_key: self.security.master_key.clone(),
        }
    }
}

impl Validate for SutazaiConfig {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        self.telemetry.validate(&key(prefix, "telemetry"), issues);
        self.http.validate(&key(prefix, "http"), issues);
        self.postgres.validate(&key(prefix, "postgres"), issues);
        self.redis.validate(&key(prefix, "redis"), issues);
        self.amqp.validate(&key(prefix, "amqp"), issues);
        self.auth.validate(&key(prefix, "auth"), issues);
        self.gateway.validate(&key(prefix, "gateway"), issues);
        self.llm.validate(&key(prefix, "llm"), issues);
        self.rate_limit.validate(&key(prefix, "rate_limit"), issues);
        self.circuit_breaker.validate(&key(prefix, "circuit_breaker"), issues);
        self.security.validate(&key(prefix, "security"), issues);
    }
}

/// Loads the configuration from the defaults, `file` and the given environment.
pub(crate) fn load(file: Option<&Path>, env: HashMap<String, String>) -> Result<SutazaiConfig, ConfigError> {
    sutazai_kit::config::load(ConfigSources {
        defaults_toml: DEFAULTS_TOML,
        file,
        env,
        list_keys: &LIST_KEYS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    const KEY: (&str, &str) = ("SUTAZAI__SECURITY__MASTER_KEY", "0f1e2d3c4b5a69788796a5b4c3d2e1f0");

    #[test]
    fn embedded_defaults_load_with_a_master_key() {
        let config = load(None, env(&[KEY])).unwrap();
        assert_eq!(config.http.body_limit_bytes, 1_048_576);
        assert_eq!(config.amqp.prefetch, 10);
    }

    #[test]
    fn defaults_alone_refuse_to_start_without_a_master_key() {
        let error = load(None, env(&[])).unwrap_err().to_string();
        assert!(error.contains("`security.master_key`"), "{error}");
    }
}
