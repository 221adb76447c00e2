//! Rate-limit policies: the `[rate_limit]` settings, the route groups a request path falls into,
//! and the limit and window each group gets.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigIssues, Validate, key};

/// The window of every configured policy; the settings speak in requests per minute.
const MINUTE: Duration = Duration::from_secs(60);

/// `[rate_limit]`: per-principal request limits, counted in Redis.
///
/// Every key has a default, so a deployment sets only what it changes:
///
/// ```toml
/// [rate_limit]
/// enabled = true
/// default_per_minute = 60   # any route not in a group below
/// chat_per_minute = 30      # /api/v1/chat*, /api/v1/batch
/// auth_per_minute = 10      # /api/v1/auth*
/// health_per_minute = 120   # /health*, /api/v1/health*
/// redis_timeout_ms = 250    # a slower answer counts as Redis being down
/// redis_retry_ms = 1000     # how long the local limiter decides alone before Redis is retried
/// local_max_keys = 10000    # principals the local limiter tracks at once
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Whether requests are limited at all.
    pub enabled: bool,
    /// Requests per minute for routes outside the named groups.
    pub default_per_minute: u32,
    /// Requests per minute for chat and batch (each one occupies the LLM).
    pub chat_per_minute: u32,
    /// Requests per minute for the auth routes (credential guessing).
    pub auth_per_minute: u32,
    /// Requests per minute for the health routes (probes and dashboards poll them).
    pub health_per_minute: u32,
    /// Time a Redis check may take before the local limiter decides instead.
    pub redis_timeout_ms: u64,
    /// After a Redis failure, the local limiter decides alone for this long before Redis is
    /// tried again, so an outage does not add the timeout to every request.
    pub redis_retry_ms: u64,
    /// Most principals the local limiter tracks; idle ones are evicted first.
    pub local_max_keys: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            default_per_minute: 60,
            chat_per_minute: 30,
            auth_per_minute: 10,
            health_per_minute: 120,
            redis_timeout_ms: 250,
            redis_retry_ms: 1_000,
            local_max_keys: 10_000,
        }
    }
}

impl RateLimitSettings {
    /// The Redis timeout as a duration.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }
}

impl Validate for RateLimitSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        let limits = [
            ("default_per_minute", self.default_per_minute),
            ("chat_per_minute", self.chat_per_minute),
            ("auth_per_minute", self.auth_per_minute),
            ("health_per_minute", self.health_per_minute),
        ];
        for (name, value) in limits {
            if value == 0 {
                issues.push(
                    key(prefix, name),
                    "must be greater than 0 (set `enabled = false` to turn limits off)",
                );
            }
        }
        let durations =
            [("redis_timeout_ms", self.redis_timeout_ms), ("redis_retry_ms", self.redis_retry_ms)];
        for (name, value) in durations {
            if value == 0 {
                issues.push(key(prefix, name), "must be greater than 0");
            }
        }
        if self.local_max_keys == 0 {
            issues.push(key(prefix, "local_max_keys"), "must be greater than 0");
        }
    }
}

/// A group of routes sharing one limit. Each group has its own budget per principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteGroup {
    /// Chat, chat streaming and batch.
    Chat,
    /// The auth service's routes.
    Auth,
    /// Health and circuit-breaker status.
    Health,
    /// Everything else.
    Default,
}

impl RouteGroup {
    /// Every group, for iteration.
    pub const ALL: [RouteGroup; 4] =
        [RouteGroup::Chat, RouteGroup::Auth, RouteGroup::Health, RouteGroup::Default];

    /// The group of a request path. Prefixes match whole segments, so `/api/v1/chatty` is not chat
    /// but `/api/v1/chat/stream` is.
    pub fn for_path(path: &str) -> Self {
        const GROUPS: [(&str, RouteGroup); 5] = [
            ("/api/v1/chat", RouteGroup::Chat),
            ("/api/v1/batch", RouteGroup::Chat),
            ("/api/v1/auth", RouteGroup::Auth),
            ("/api/v1/health", RouteGroup::Health),
            ("/health", RouteGroup::Health),
        ];
        for (prefix, group) in GROUPS {
            if starts_with_segments(path, prefix) {
                return group;
            }
        }
        RouteGroup::Default
    }

    /// The label value in metrics and the key segment in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteGroup::Chat => "chat",
            RouteGroup::Auth => "auth",
            RouteGroup::Health => "health",
            RouteGroup::Default => "default",
        }
    }
}

/// Whether `path` is `prefix` or continues it with a new segment.
fn starts_with_segments(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// How many requests one principal may make per sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// Requests admitted per window.
    pub limit: u32,
    /// The window length; the window slides, it is not a fixed calendar minute.
    pub window: Duration,
}

impl RatePolicy {
    /// `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        debug_assert!(limit > 0 && !window.is_zero(), "a policy admits something over some time");
        Self { limit, window }
    }

    /// `limit` requests per minute.
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, MINUTE)
    }

    /// The window in whole milliseconds, at least 1.
    pub fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// The `RateLimit-Policy` header value, `60;w=60`.
    pub fn header_value(&self) -> String {
        format!("{};w={}", self.limit, self.window_ms().div_ceil(1000))
    }
}

/// The policy of each route group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicies {
    default: RatePolicy,
    chat: RatePolicy,
    auth: RatePolicy,
    health: RatePolicy,
}

impl RatePolicies {
    /// Per-minute policies from the settings.
    pub fn from_settings(settings: &RateLimitSettings) -> Self {
        Self {
            default: RatePolicy::per_minute(settings.default_per_minute),
            chat: RatePolicy::per_minute(settings.chat_per_minute),
            auth: RatePolicy::per_minute(settings.auth_per_minute),
            health: RatePolicy::per_minute(settings.health_per_minute),
        }
    }

    /// The same policy for every group (tests, single-purpose services).
    pub fn uniform(policy: RatePolicy) -> Self {
        Self { default: policy, chat: policy, auth: policy, health: policy }
    }

    /// Replaces one group's policy.
    pub fn with(mut self, group: RouteGroup, policy: RatePolicy) -> Self {
        *self.slot(group) = policy;
        self
    }

    /// The policy of `group`.
    pub fn policy(&self, group: RouteGroup) -> RatePolicy {
        match group {
            RouteGroup::Chat => self.chat,
            RouteGroup::Auth => self.auth,
            RouteGroup::Health => self.health,
            RouteGroup::Default => self.default,
        }
    }

    fn slot(&mut self, group: RouteGroup) -> &mut RatePolicy {
        match group {
            RouteGroup::Chat => &mut self.chat,
            RouteGroup::Auth => &mut self.auth,
            RouteGroup::Health => &mut self.health,
            RouteGroup::Default => &mut self.default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_groups_by_whole_segments() {
        let cases = [
            ("/api/v1/chat", RouteGroup::Chat),
            ("/api/v1/chat/stream", RouteGroup::Chat),
            ("/api/v1/batch", RouteGroup::Chat),
            ("/api/v1/chatty", RouteGroup::Default),
            ("/api/v1/auth/login", RouteGroup::Auth),
            ("/api/v1/authors", RouteGroup::Default),
            ("/health", RouteGroup::Health),
            ("/api/v1/health/detailed", RouteGroup::Health),
            ("/api/v1/health/circuit-breakers/reset", RouteGroup::Health),
            ("/healthz", RouteGroup::Default),
            ("/api/v1/tasks", RouteGroup::Default),
            ("/", RouteGroup::Default),
        ];
        for (path, expected) in cases {
            assert_eq!(RouteGroup::for_path(path), expected, "{path}");
        }
    }

    #[test]
    fn defaults_match_the_documented_limits() {
        let policies = RatePolicies::from_settings(&RateLimitSettings::default());
        assert_eq!(policies.policy(RouteGroup::Chat), RatePolicy::per_minute(30));
        assert_eq!(policies.policy(RouteGroup::Auth), RatePolicy::per_minute(10));
        assert_eq!(policies.policy(RouteGroup::Health), RatePolicy::per_minute(120));
        assert_eq!(policies.policy(RouteGroup::Default), RatePolicy::per_minute(60));
        assert_eq!(policies.policy(RouteGroup::Default).header_value(), "60;w=60");
    }

    #[test]
    fn zero_limits_are_refused_naming_each_key() {
        let settings =
            RateLimitSettings { chat_per_minute: 0, redis_timeout_ms: 0, ..RateLimitSettings::default() };
        let mut issues = ConfigIssues::default();
        settings.validate("rate_limit", &mut issues);
        let error = issues.into_result().unwrap_err().to_string();
        assert!(error.contains("`rate_limit.chat_per_minute`: must be greater than 0"), "{error}");
        assert!(error.contains("`rate_limit.redis_timeout_ms`: must be greater than 0"), "{error}");
        assert!(!error.contains("default_per_minute"), "{error}");
    }

    #[test]
    fn settings_deny_unknown_keys_and_fill_defaults() {
        let partial: RateLimitSettings = serde_json::from_str(r#"{"chat_per_minute": 5}"#).unwrap();
        assert_eq!(partial, RateLimitSettings { chat_per_minute: 5, ..RateLimitSettings::default() });
        let error = serde_json::from_str::<RateLimitSettings>(r#"{"chat_per_min": 5}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field `chat_per_min`"), "{error}");
    }

    #[test]
    fn policy_header_rounds_the_window_up_to_seconds() {
        assert_eq!(RatePolicy::new(5, Duration::from_millis(1_500)).header_value(), "5;w=2");
        assert_eq!(RatePolicy::new(100, Duration::from_secs(1)).header_value(), "100;w=1");
    }
}
