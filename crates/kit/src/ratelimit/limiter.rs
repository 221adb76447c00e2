//! The limiter: the shared window in Redis, and the local window while Redis is unreachable.
//!
//! A circuit breaker (threshold 1) sits in front of Redis: after one error or timeout the local
//! window decides alone for `redis_retry_ms`, so an outage costs one timeout rather than one per
//! request; then a single request probes Redis and, when it answers, everything goes back to the
//! shared window. The readiness check probes the same way, so recovery is seen without traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use super::decision::RateDecision;
use super::local::LocalSlidingWindow;
use super::policy::{RateLimitSettings, RatePolicy};
use super::script::{SLIDING_WINDOW_LUA, ScriptReply, decision_from_reply};
use crate::breaker::{BreakerSettings, BreakerState, CircuitBreaker};
use crate::health::HealthCheck;
use crate::redis::RedisKeys;

/// The breaker's name in logs, metrics and the circuit-breaker listing.
pub const REDIS_BREAKER_NAME: &str = "rate_limit_redis";

/// What the readiness check says while the local limiter decides.
pub const DEGRADED_MESSAGE: &str = "redis unreachable; using the local limiter";

/// Why Redis did not decide.
#[derive(Debug, thiserror::Error)]
enum RedisCheckError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

struct LimiterInner {
    redis: ConnectionManager,
    keys: RedisKeys,
    script: redis::Script,
    redis_timeout: Duration,
    breaker: Arc<CircuitBreaker>,
    local: LocalSlidingWindow,
    /// Makes window members unique across instances: this process's id plus a counter.
    instance_id: String,
    next_member: AtomicU64,
}

/// A sliding-window rate limiter shared by every instance through Redis. Cheap to clone.
#[derive(Clone)]
pub struct SlidingWindowLimiter {
    inner: Arc<LimiterInner>,
}

impl std::fmt::Debug for SlidingWindowLimiter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SlidingWindowLimiter")
            .field("key_prefix", &self.inner.keys.prefix())
            .field("redis_state", &self.inner.breaker.state())
            .finish_non_exhaustive()
    }
}

impl SlidingWindowLimiter {
    /// A limiter keeping its windows under `keys` (`<prefix>rl:<key>`).
    pub fn new(redis: ConnectionManager, keys: RedisKeys, settings: &RateLimitSettings) -> Self {
        let breaker_settings = BreakerSettings { failure_threshold: 1, open_ms: settings.redis_retry_ms };
        let inner = LimiterInner {
            redis,
            keys,
            script: redis::Script::new(SLIDING_WINDOW_LUA),
            redis_timeout: settings.redis_timeout(),
            breaker: Arc::new(CircuitBreaker::new(REDIS_BREAKER_NAME, breaker_settings)),
            local: LocalSlidingWindow::new(settings.local_max_keys),
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
            next_member: AtomicU64::new(0),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Counts one request for `key` under `policy`.
    ///
    /// Never fails: when Redis cannot decide, the local window does.
    pub async fn check(&self, key: &str, policy: RatePolicy) -> RateDecision {
        let inner = &self.inner;
        let shared = inner.breaker.call_classified(self.check_in_redis(key, policy), |_| true).await;
        match shared {
            Ok(decision) => decision,
            Err(error) => {
                if !error.is_open() {
                    tracing::warn!(error = %error, "rate limit check in redis failed, deciding locally");
                }
                metrics::counter!("rate_limit_fallback_decisions_total").increment(1);
                inner.local.check(key, policy, Instant::now())
            }
        }
    }

    /// Whether the local window is deciding because Redis is unreachable.
    pub fn is_degraded(&self) -> bool {
        self.inner.breaker.state() != BreakerState::Closed
    }

    /// The breaker in front of Redis, to list it with the service's other breakers.
    pub fn redis_breaker(&self) -> Arc<CircuitBreaker> {
        Arc::clone(&self.inner.breaker)
    }

    /// The readiness check reporting the local fallback.
    pub fn health_check(&self) -> RateLimiterHealth {
        RateLimiterHealth { limiter: self.clone() }
    }

    async fn check_in_redis(&self, key: &str, policy: RatePolicy) -> Result<RateDecision, RedisCheckError> {
        let inner = &self.inner;
        let member_number = inner.next_member.fetch_add(1, Ordering::Relaxed);
        let member = format!("{}-{member_number}", inner.instance_id);
        let mut connection = inner.redis.clone();
        let mut invocation = inner.script.key(inner.keys.key(&format!("rl:{key}")));
        invocation.arg(policy.limit).arg(policy.window_ms()).arg(member);
        let reply: ScriptReply =
            tokio::time::timeout(inner.redis_timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| RedisCheckError::Timeout(inner.redis_timeout))??;
        Ok(decision_from_reply(policy, reply))
    }

    async fn ping(&self) -> Result<(), RedisCheckError> {
        let mut connection = self.inner.redis.clone();
        let _pong: String =
            tokio::time::timeout(self.inner.redis_timeout, redis::cmd("PING").query_async(&mut connection))
                .await
                .map_err(|_| RedisCheckError::Timeout(self.inner.redis_timeout))??;
        Ok(())
    }
}

/// Readiness of the limiter: failing (with [`DEGRADED_MESSAGE`]) while the local window decides.
#[derive(Debug, Clone)]
pub struct RateLimiterHealth {
    limiter: SlidingWindowLimiter,
}

impl HealthCheck for RateLimiterHealth {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if !self.limiter.is_degraded() {
                return Ok(());
            }
            // Probe through the breaker: it answers at once while the retry interval runs, and
            // a successful probe puts requests back on Redis even when no traffic arrives.
            let probe = self.limiter.inner.breaker.call_classified(self.limiter.ping(), |_| true).await;
            match probe {
                Ok(()) => Ok(()),
                Err(_) => Err(DEGRADED_MESSAGE.to_owned()),
            }
        })
    }
}
