//! `[circuit_breaker]`: when a downstream counts as down and for how long calls fail fast.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigIssues, Validate, key};

/// Breaker settings, shared by every downstream of a service.
///
/// ```toml
/// [circuit_breaker]
/// failure_threshold = 5   # consecutive failures that open the circuit
/// open_ms = 30000         # calls fail fast this long before one probe is let through
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit fails fast before it lets one probe through.
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { failure_threshold: 5, open_ms: 30_000 }
    }
}

impl BreakerSettings {
    /// The open interval as a duration.
    pub fn open_interval(&self) -> Duration {
        Duration::from_millis(self.open_ms)
    }
}

impl Validate for BreakerSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if self.failure_threshold == 0 {
            issues.push(key(prefix, "failure_threshold"), "must be greater than 0");
        }
        if self.open_ms == 0 {
            issues.push(key(prefix, "open_ms"), "must be greater than 0");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_values_are_refused_naming_the_key() {
        let mut issues = ConfigIssues::default();
        BreakerSettings { failure_threshold: 0, open_ms: 0 }.validate("circuit_breaker", &mut issues);
        let error = issues.into_result().unwrap_err().to_string();
        assert!(error.contains("`circuit_breaker.failure_threshold`: must be greater than 0"), "{error}");
        assert!(error.contains("`circuit_breaker.open_ms`: must be greater than 0"), "{error}");
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let settings: BreakerSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, BreakerSettings { failure_threshold: 5, open_ms: 30_000 });
        assert!(serde_json::from_str::<BreakerSettings>(r#"{"threshold": 3}"#).is_err());
    }
}
