//! `[gateway]`: where the gateway listens and where its downstream services are.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use sutazai_kit::config::{ConfigIssues, Validate, key};

/// Settings of the gateway role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// The auth service (JWKS at `/.well-known/jwks.json`).
    pub auth_url: String,
    /// The orchestrator's gRPC endpoint (tasks, workflows).
    pub orchestrator_url: String,
    /// The coordinator's gRPC endpoint (agents, strategy).
    pub coordinator_url: String,
    /// The vector service's gRPC endpoint.
    pub vector_url: String,
    /// The hardware service's gRPC endpoint.
    pub hardware_url: String,
    /// The arbitrator's gRPC endpoint (resources, leases).
    pub arbitrator_url: String,
    /// Deadline of one downstream call.
    pub downstream_timeout_ms: u64,
    /// Deadline of one dependency check in `/api/v1/health/detailed`.
    pub health_check_timeout_ms: u64,
}

impl GatewaySettings {
    /// Deadline of one downstream call.
    pub fn downstream_timeout(&self) -> Duration {
        Duration::from_millis(self.downstream_timeout_ms)
    }
}

fn check_url(issues: &mut ConfigIssues, prefix: &str, name: &str, value: &str) {
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        issues.push(key(prefix, name), "must be an http:// or https:// URL");
    }
}

impl Validate for GatewaySettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        for (name, value) in [
            ("auth_url", &self.auth_url),
            ("orchestrator_url", &self.orchestrator_url),
            ("coordinator_url", &self.coordinator_url),
            ("vector_url", &self.vector_url),
            ("hardware_url", &self.hardware_url),
            ("arbitrator_url", &self.arbitrator_url),
        ] {
            check_url(issues, prefix, name, value);
        }
        if self.downstream_timeout_ms == 0 {
            issues.push(key(prefix, "downstream_timeout_ms"), "must be greater than 0");
        }
        if self.health_check_timeout_ms == 0 {
            issues.push(key(prefix, "health_check_timeout_ms"), "must be greater than 0");
        }
    }
}
