//! Per-principal rate limiting: an exact sliding-window log in Redis (one atomic Lua script per
//! check, on Redis's clock), a bounded in-process window that decides while Redis is unreachable
//! (reported by a readiness check), per-route-group policies from `[rate_limit]`, and the axum
//! middleware that adds the `RateLimit-*` headers and answers 429 problem+json.
//!
//! Metrics: `rate_limit_decisions_total{group,outcome}`, `http_rate_limited_total{group}` and
//! `rate_limit_fallback_decisions_total` — labels carry route groups only, never who was limited.
//!
//! ```text
//! let limiter = SlidingWindowLimiter::new(redis, RedisKeys::new(&redis_settings, "gw:"), &settings);
//! health.register("rate_limiter", limiter.health_check());
//! let routes = RateLimit::from_settings(limiter, &settings).layer(routes).layer(auth_layer);
//! let router = server::service_router(routes, health, &http_settings);
//! ```

mod decision;
mod limiter;
mod local;
mod middleware;
mod policy;
mod script;

pub use decision::{DecisionSource, RateDecision};
pub use limiter::{DEGRADED_MESSAGE, REDIS_BREAKER_NAME, RateLimiterHealth, SlidingWindowLimiter};
pub use middleware::{
    RATE_LIMIT_LIMIT, RATE_LIMIT_POLICY, RATE_LIMIT_REMAINING, RATE_LIMIT_RESET, RateLimit, RateSubject,
    enforce_rate_limit, set_rate_limit_headers,
};
pub use policy::{RateLimitSettings, RatePolicies, RatePolicy, RouteGroup};
