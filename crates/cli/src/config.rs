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
/// The `[llm]`, `[hardware]`, `[arbitrator]` and `[vector]` sections live with their crates
/// (`crates/<name>/<name>.default.toml`).
pub(crate) const DEFAULTS_TOML: &str = concat!(
    include_str!("../config.default.toml"),
    "\n",
    include_str!("../../llm/llm.default.toml"),
    "\n",
    include_str!("../../hardware/hardware.default.toml"),
    "\n",
    include_str!("../../arbitrator/arbitrator.default.toml"),
    "\n",
    include_str!("../../vector/vector.default.toml"),
    "\n",
    include_str!("../../orchestrator/orchestrator.default.toml"),
    "\n",
    include_str!("../../coordinator/coordinator.default.toml"),
    "\n",
    include_str!("../../agent/agent.default.toml")
);

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 5] = [
    "http.cors_allowed_origins",
    "http.trusted_proxies",
    "hardware.allowed_roots",
    "arbitrator.llm_slots",
    "arbitrator.custom",
];

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
    pub(crate) arbitrator: sutazai_arbitrator::ArbitratorSettings,
    pub(crate) hardware: sutazai_hardware::HardwareSettings,
    pub(crate) vector: sutazai_vector::VectorSettings,
    pub(crate) orchestrator: sutazai_orchestrator::OrchestratorSettings,
    pub(crate) coordinator: sutazai_coordinator::CoordinatorSettings,
    pub(crate) agent: sutazai_agent::AgentSettings,
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
            token: self.token_settings(),
        }
    }

    /// What the arbitrator role reads.
    pub(crate) fn arbitrator_config(&self) -> sutazai_arbitrator::ArbitratorConfig {
        sutazai_arbitrator::ArbitratorConfig {
            arbitrator: self.arbitrator.clone(),
            http: self.http.clone(),
            postgres: self.postgres.clone(),
            redis: self.redis.clone(),
            token: self.token_settings(),
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

    /// What the vector role reads.
    pub(crate) fn vector_config(&self) -> sutazai_vector::VectorConfig {
        sutazai_vector::VectorConfig {
            vector: self.vector.clone(),
            http: self.http.clone(),
            redis: self.redis.clone(),
            token: self.token_settings(),
            llm: self.llm.clone(),
        }
    }

    /// The issuer and audience every role's token verifier checks.
    fn token_settings(&self) -> sutazai_kit::auth::VerifierSettings {
        sutazai_kit::auth::VerifierSettings::new(self.auth.issuer.clone(), self.auth.audience.clone())
    }

    /// What the orchestrator role reads.
    pub(crate) fn orchestrator_config(&self) -> sutazai_orchestrator::OrchestratorConfig {
        sutazai_orchestrator::OrchestratorConfig {
            orchestrator: self.orchestrator.clone(),
            http: self.http.clone(),
            postgres: self.postgres.clone(),
            redis: self.redis.clone(),
            amqp: self.amqp.clone(),
            token: self.token_settings(),
        }
    }

    /// What the coordinator role reads.
    pub(crate) fn coordinator_config(&self) -> sutazai_coordinator::CoordinatorConfig {
        sutazai_coordinator::CoordinatorConfig {
            coordinator: self.coordinator.clone(),
            http: self.http.clone(),
            postgres: self.postgres.clone(),
            redis: self.redis.clone(),
            amqp: self.amqp.clone(),
            token: self.token_settings(),
        }
    }

    /// What the agent role reads.
    pub(crate) fn agent_config(&self) -> sutazai_agent::AgentConfig {
        sutazai_agent::AgentConfig {
            agent: self.agent.clone(),
            http: self.http.clone(),
            amqp: self.amqp.clone(),
            llm: self.llm.clone(),
        }
    }

    /// What the hardware role reads.
    pub(crate) fn hardware_config(&self) -> sutazai_hardware::HardwareConfig {
        sutazai_hardware::HardwareConfig {
            hardware: self.hardware.clone(),
            http: self.http.clone(),
            redis: self.redis.clone(),
            token: self.token_settings(),
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
        self.arbitrator.validate(&key(prefix, "arbitrator"), issues);
        self.orchestrator.validate(&key(prefix, "orchestrator"), issues);
        self.coordinator.validate(&key(prefix, "coordinator"), issues);
        self.agent.validate(&key(prefix, "agent"), issues);
        self.hardware.validate(&key(prefix, "hardware"), issues);
        self.vector.validate(&key(prefix, "vector"), issues);
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
    fn arbitrator_pools_come_from_the_environment_as_lists() {
        let defaults = load(None, env(&[KEY])).unwrap();
        assert_eq!(
            defaults.arbitrator.llm_slots.entries(),
            [
                ("ollama/smollm2:135m".to_owned(), 1),
                ("local/smollm2:135m".to_owned(), 1),
                ("local/all-minilm".to_owned(), 1)
            ]
        );
        let config = load(
            None,
            env(&[
                KEY,
                ("SUTAZAI__ARBITRATOR__LLM_SLOTS", "ollama/llama3.2:1b=2,openai/gpt-4o=8"),
                ("SUTAZAI__ARBITRATOR__CUSTOM", "licenses=5"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.arbitrator.llm_slots.entries(),
            [("ollama/llama3.2:1b".to_owned(), 2), ("openai/gpt-4o".to_owned(), 8)]
        );
        assert_eq!(config.arbitrator_config().arbitrator.custom.entries(), [("licenses".to_owned(), 5)]);
    }

    #[test]
    fn defaults_alone_refuse_to_start_without_a_master_key() {
        let error = load(None, env(&[])).unwrap_err().to_string();
        assert!(error.contains("`security.master_key`"), "{error}");
    }

    #[test]
    fn hardware_allowed_roots_are_a_list_in_the_environment() {
        let defaults = load(None, env(&[KEY])).unwrap();
        assert_eq!(defaults.hardware.allowed_roots, sutazai_hardware::settings::default_allowed_roots());
        assert!(!defaults.hardware.docker_enabled);
        let config = load(None, env(&[KEY, ("SUTAZAI__HARDWARE__ALLOWED_ROOTS", "/srv/a,/srv/b")])).unwrap();
        let roots: Vec<String> =
            config.hardware.allowed_roots.iter().map(|root| root.display().to_string()).collect();
        assert_eq!(roots, vec!["/srv/a", "/srv/b"]);
        let error =
            load(None, env(&[KEY, ("SUTAZAI__HARDWARE__ALLOWED_ROOTS", "/")])).unwrap_err().to_string();
        assert!(error.contains("`hardware.allowed_roots`"), "{error}");
    }
}
