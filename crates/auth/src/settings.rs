//! `[auth]`: the auth service's settings. Every key is documented in the binary's
//! `config.default.toml`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use sutazai_kit::config::{ConfigIssues, Validate, key};

/// Which algorithm signs access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningAlgorithm {
    /// Ed25519 (fast, small keys), the default.
    Eddsa,
    /// RSA PKCS#1 v1.5 with SHA-256, for verifiers that only know RSA.
    Rs256,
}

/// Settings of the auth role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Where the role listens (HTTP and gRPC).
    pub listen: SocketAddr,
    /// The `iss` of issued tokens; verifiers require it.
    pub issuer: String,
    /// The `aud` of issued tokens; verifiers require it.
    pub audience: String,
    /// `eddsa` or `rs256`.
    pub signing_algorithm: SigningAlgorithm,
    /// Access token lifetime.
    pub access_token_ttl_s: u64,
    /// Refresh token lifetime.
    pub refresh_token_ttl_s: u64,
    /// How long a used refresh token still yields its (same) successor, for client retries.
    pub refresh_grace_s: u64,
    /// Failed logins within the window that lock an account.
    pub lockout_max_failures: u32,
    /// The window failed logins are counted in.
    pub lockout_window_s: u64,
    /// How long a locked account stays locked.
    pub lockout_duration_s: u64,
    /// Login attempts per client IP per minute before 429.
    pub login_attempts_per_ip_per_minute: u32,
    /// Login attempts per account per minute before 429.
    pub login_attempts_per_account_per_minute: u32,
}

impl AuthSettings {
    /// Access token lifetime.
    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_s)
    }
}

impl Validate for AuthSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if self.issuer.trim().is_empty() {
            issues.push(key(prefix, "issuer"), "must not be empty");
        }
        if self.audience.trim().is_empty() {
            issues.push(key(prefix, "audience"), "must not be empty");
        }
        if !(60..=86_400).contains(&self.access_token_ttl_s) {
            issues.push(key(prefix, "access_token_ttl_s"), "must be between 60 and 86400");
        }
        if self.refresh_token_ttl_s <= self.access_token_ttl_s {
            issues.push(key(prefix, "refresh_token_ttl_s"), "must be longer than access_token_ttl_s");
        }
        if self.refresh_grace_s > 60 {
            issues.push(key(prefix, "refresh_grace_s"), "must be at most 60");
        }
        if self.lockout_max_failures == 0 {
            issues.push(key(prefix, "lockout_max_failures"), "must be greater than 0");
        }
        if self.login_attempts_per_ip_per_minute == 0 || self.login_attempts_per_account_per_minute == 0 {
            issues
                .push(key(prefix, "login_attempts_per_ip_per_minute"), "login limits must be greater than 0");
        }
    }
}
