//! `[orchestrator]`: where the role listens, the defaults and limits of submitted tasks, the retry
//! backoff and the timings of the background loops. Every key is documented in
//! `orchestrator.default.toml`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use sutazai_kit::config::{ConfigIssues, Validate, key};

use crate::domain::backoff::RetryPolicy;
use crate::domain::task::TaskLimits;

/// Settings of the orchestrator role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorSettings {
    /// Where the role listens (gRPC plus the HTTP probes).
    pub listen: SocketAddr,
    /// The auth service (JWKS at `/.well-known/jwks.json`).
    pub auth_url: String,
    /// Retries after the first attempt when a submission states none.
    pub default_max_retries: u32,
    /// The most retries a submission may ask for.
    pub max_retries_limit: u32,
    /// A task's deadline, from submission, when a submission states none.
    pub default_timeout_s: u32,
    /// The longest timeout a submission may ask for.
    pub max_timeout_s: u32,
    /// Delay before the first retry.
    pub retry_initial_ms: u64,
    /// Factor applied to the delay per further retry.
    pub retry_multiplier: f64,
    /// Longest delay between attempts.
    pub retry_max_ms: u64,
    /// Spread of each delay: 0.2 draws it uniformly from 80 % to 120 % of the exponential delay.
    pub retry_jitter: f64,
    /// Largest task payload (serialized JSON).
    pub max_payload_bytes: usize,
    /// Most steps of one workflow.
    pub max_workflow_steps: usize,
    /// Longest the retry scheduler and timeout sweeper sleep between looks at the tables, so work
    /// scheduled by another replica is picked up; also the fallback poll of event watchers.
    pub sweep_interval_ms: u64,
    /// Outbox rows published per relay transaction.
    pub outbox_batch_size: u16,
}

impl OrchestratorSettings {
    /// The backoff between attempts.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(self.retry_initial_ms),
            multiplier: self.retry_multiplier,
            max: Duration::from_millis(self.retry_max_ms),
            jitter: self.retry_jitter,
        }
    }

    /// Defaults and limits of submissions.
    pub fn task_limits(&self) -> TaskLimits {
        TaskLimits {
            default_max_retries: self.default_max_retries,
            max_retries_limit: self.max_retries_limit,
            default_timeout_s: self.default_timeout_s,
            max_timeout_s: self.max_timeout_s,
            max_payload_bytes: self.max_payload_bytes,
            max_workflow_steps: self.max_workflow_steps,
        }
    }

    /// The sweep interval.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms)
    }
}

impl Validate for OrchestratorSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            issues.push(key(prefix, "auth_url"), "must be an http:// or https:// URL");
        }
        if self.default_max_retries > self.max_retries_limit {
            issues.push(key(prefix, "default_max_retries"), "must be at most max_retries_limit");
        }
        if self.max_retries_limit > 100 {
            issues.push(key(prefix, "max_retries_limit"), "must be at most 100");
        }
        if self.default_timeout_s == 0 || self.default_timeout_s > self.max_timeout_s {
            issues.push(key(prefix, "default_timeout_s"), "must be between 1 and max_timeout_s");
        }
        // Deadlines are stored as timestamps; a year is far beyond any task worth queueing.
        if self.max_timeout_s == 0 || self.max_timeout_s > 366 * 24 * 3600 {
            issues.push(key(prefix, "max_timeout_s"), "must be between 1 and 31622400 (a year)");
        }
        if self.retry_initial_ms == 0 {
            issues.push(key(prefix, "retry_initial_ms"), "must be at least 1");
        }
        if !(self.retry_multiplier.is_finite() && (1.0..=10.0).contains(&self.retry_multiplier)) {
            issues.push(key(prefix, "retry_multiplier"), "must be between 1.0 and 10.0");
        }
        if self.retry_max_ms < self.retry_initial_ms {
            issues.push(key(prefix, "retry_max_ms"), "must be at least retry_initial_ms");
        }
        if !(self.retry_jitter.is_finite() && (0.0..1.0).contains(&self.retry_jitter)) {
            issues.push(key(prefix, "retry_jitter"), "must be at least 0.0 and below 1.0");
        }
        if self.max_payload_bytes == 0 {
            issues.push(key(prefix, "max_payload_bytes"), "must be at least 1");
        }
        if !(1..=10_000).contains(&self.max_workflow_steps) {
            issues.push(key(prefix, "max_workflow_steps"), "must be between 1 and 10000");
        }
        if !(10..=60_000).contains(&self.sweep_interval_ms) {
            issues.push(key(prefix, "sweep_interval_ms"), "must be between 10 and 60000");
        }
        if self.outbox_batch_size == 0 {
            issues.push(key(prefix, "outbox_batch_size"), "must be at least 1");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sutazai_kit::config::{ConfigSources, load};

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        orchestrator: OrchestratorSettings,
    }

    impl Validate for Sample {
        fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
            self.orchestrator.validate(&key(prefix, "orchestrator"), issues);
        }
    }

    const DEFAULTS: &str = include_str!("../orchestrator.default.toml");

    fn load_with(env: &[(&str, &str)]) -> Result<OrchestratorSettings, String> {
        let env: HashMap<String, String> =
            env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        load::<Sample>(ConfigSources { defaults_toml: DEFAULTS, file: None, env, list_keys: &[] })
            .map(|sample| sample.orchestrator)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_load_and_validate() {
        let settings = load_with(&[]).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:8589".parse().unwrap());
        assert_eq!(settings.default_max_retries, 3);
        let policy = settings.retry_policy();
        assert_eq!(policy.initial, Duration::from_secs(1));
        assert_eq!(policy.max, Duration::from_secs(60));
        assert_eq!(policy.multiplier, 2.0);
    }

    #[test]
    fn bad_values_name_their_keys() {
        let cases = [
            ("SUTAZAI__ORCHESTRATOR__RETRY_JITTER", "1.5", "`orchestrator.retry_jitter`"),
            ("SUTAZAI__ORCHESTRATOR__RETRY_MULTIPLIER", "0.5", "`orchestrator.retry_multiplier`"),
            ("SUTAZAI__ORCHESTRATOR__RETRY_MAX_MS", "10", "`orchestrator.retry_max_ms`"),
            ("SUTAZAI__ORCHESTRATOR__DEFAULT_TIMEOUT_S", "0", "`orchestrator.default_timeout_s`"),
            ("SUTAZAI__ORCHESTRATOR__DEFAULT_MAX_RETRIES", "500", "`orchestrator.default_max_retries`"),
            ("SUTAZAI__ORCHESTRATOR__AUTH_URL", "auth:10054", "`orchestrator.auth_url`"),
            ("SUTAZAI__ORCHESTRATOR__SWEEP_INTERVAL_MS", "0", "`orchestrator.sweep_interval_ms`"),
            ("SUTAZAI__ORCHESTRATOR__OUTBOX_BATCH_SIZE", "0", "`orchestrator.outbox_batch_size`"),
        ];
        for (name, value, expected) in cases {
            let error = load_with(&[(name, value)]).unwrap_err();
            assert!(error.contains(expected), "{name}={value}: {error}");
        }
        let error = load_with(&[("SUTAZAI__ORCHESTRATOR__RETRIES", "1")]).unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }
}
