//! `[coordinator]`: where the role listens, the default dispatch strategy, the liveness timings
//! and the bound of the pending queue. Every key is documented in `coordinator.default.toml`.

use std::net::SocketAddr;

use serde::Deserialize;
use sutazai_kit::config::{ConfigIssues, Validate, key};

use crate::domain::state::Limits;
use crate::domain::strategy::{DispatchStrategy, MAX_ASSIGNMENT_LEASE_S, StrategyKind};

/// Most pending tasks the queue may be configured to hold.
const MAX_PENDING_CAPACITY: u64 = 10_000_000;

/// Settings of the coordinator role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorSettings {
    /// Where the role listens (HTTP probes and gRPC).
    pub listen: SocketAddr,
    /// The auth service (JWKS at `/.well-known/jwks.json`).
    pub auth_url: String,
    /// The strategy until an admin sets one.
    pub strategy: StrategyKind,
    /// Default: owners take turns within a priority.
    pub owner_fairness: bool,
    /// Default: tasks one owner may have assigned at once (0: no limit).
    pub max_active_per_owner: u32,
    /// Default: seconds an assignment may wait for `Started` before it is re-assigned.
    pub assignment_lease_s: u32,
    /// Silence after which an agent is offline and its tasks are re-assigned.
    pub offline_after_ms: u64,
    /// Most pending tasks; a task arriving beyond it fails with "pending queue full".
    pub pending_capacity: u64,
    /// Unacknowledged deliveries each of the coordinator's consumers holds.
    pub prefetch: u16,
    /// An offline agent that holds no task is forgotten after this long.
    pub forget_offline_agents_after_s: u64,
}

impl CoordinatorSettings {
    /// The strategy in force until an admin sets one.
    pub fn default_strategy(&self) -> DispatchStrategy {
        DispatchStrategy {
            kind: self.strategy,
            owner_fairness: self.owner_fairness,
            max_active_per_owner: self.max_active_per_owner,
            assignment_lease_s: self.assignment_lease_s,
        }
    }

    /// The dispatcher's timings and bounds.
    pub fn limits(&self) -> Limits {
        Limits {
            offline_after: chrono::Duration::milliseconds(
                i64::try_from(self.offline_after_ms).unwrap_or(i64::MAX),
            ),
            pending_capacity: usize::try_from(self.pending_capacity).unwrap_or(usize::MAX),
            forget_offline_after: chrono::Duration::seconds(
                i64::try_from(self.forget_offline_agents_after_s).unwrap_or(i64::MAX),
            ),
        }
    }
}

impl Validate for CoordinatorSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            issues.push(key(prefix, "auth_url"), "must be an http:// or https:// URL");
        }
        if !(1..=MAX_ASSIGNMENT_LEASE_S).contains(&self.assignment_lease_s) {
            issues.push(
                key(prefix, "assignment_lease_s"),
                format!("must be between 1 and {MAX_ASSIGNMENT_LEASE_S}"),
            );
        }
        if !(100..=3_600_000).contains(&self.offline_after_ms) {
            issues.push(key(prefix, "offline_after_ms"), "must be between 100 and 3600000");
        }
        if !(1..=MAX_PENDING_CAPACITY).contains(&self.pending_capacity) {
            issues.push(
                key(prefix, "pending_capacity"),
                format!("must be between 1 and {MAX_PENDING_CAPACITY}"),
            );
        }
        if self.prefetch == 0 {
            issues.push(key(prefix, "prefetch"), "must be greater than 0");
        }
        if !(60..=31_536_000).contains(&self.forget_offline_agents_after_s) {
            issues.push(key(prefix, "forget_offline_agents_after_s"), "must be between 60 and 31536000");
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
        coordinator: CoordinatorSettings,
    }

    impl Validate for Sample {
        fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
            self.coordinator.validate(&key(prefix, "coordinator"), issues);
        }
    }

    const DEFAULTS: &str = include_str!("../coordinator.default.toml");

    fn load_with(env: &[(&str, &str)]) -> Result<CoordinatorSettings, String> {
        let env: HashMap<String, String> =
            env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        load::<Sample>(ConfigSources { defaults_toml: DEFAULTS, file: None, env, list_keys: &[] })
            .map(|sample| sample.coordinator)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_load_and_validate() {
        let settings = load_with(&[]).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:8551".parse().unwrap());
        assert_eq!(
            settings.default_strategy(),
            DispatchStrategy {
                kind: StrategyKind::CapabilityMatch,
                owner_fairness: true,
                max_active_per_owner: 0,
                assignment_lease_s: 30,
            }
        );
        assert_eq!(settings.limits().offline_after, chrono::Duration::seconds(15));
        assert_eq!(settings.limits().pending_capacity, 100_000);
    }

    #[test]
    fn strategy_comes_from_the_environment() {
        let settings = load_with(&[("SUTAZAI__COORDINATOR__STRATEGY", "round_robin")]).unwrap();
        assert_eq!(settings.strategy, StrategyKind::RoundRobin);
        let error = load_with(&[("SUTAZAI__COORDINATOR__STRATEGY", "fastest")]).unwrap_err();
        assert!(error.contains("strategy"), "{error}");
    }

    #[test]
    fn bad_values_name_their_keys() {
        for (name, value, key) in [
            ("SUTAZAI__COORDINATOR__ASSIGNMENT_LEASE_S", "0", "`coordinator.assignment_lease_s`"),
            ("SUTAZAI__COORDINATOR__OFFLINE_AFTER_MS", "10", "`coordinator.offline_after_ms`"),
            ("SUTAZAI__COORDINATOR__PENDING_CAPACITY", "0", "`coordinator.pending_capacity`"),
            ("SUTAZAI__COORDINATOR__PREFETCH", "0", "`coordinator.prefetch`"),
            ("SUTAZAI__COORDINATOR__AUTH_URL", "auth:10054", "`coordinator.auth_url`"),
            (
                "SUTAZAI__COORDINATOR__FORGET_OFFLINE_AGENTS_AFTER_S",
                "1",
                "`coordinator.forget_offline_agents_after_s`",
            ),
        ] {
            let error = load_with(&[(name, value)]).unwrap_err();
            assert!(error.contains(key), "{name}: {error}");
        }
        let error = load_with(&[("SUTAZAI__COORDINATOR__SLOTS", "1")]).unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }
}
