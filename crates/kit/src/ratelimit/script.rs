//! The sliding-window log as one Lua script, so trimming, counting and admitting happen
//! atomically in Redis: concurrent requests from any number of gateway instances can never admit
//! more than the limit between them.
//!
//! The window is a sorted set per key: one member per admitted request, scored by its arrival
//! time in milliseconds. Time is Redis's own (`TIME`), not the caller's, so instances whose
//! clocks disagree still share one window. Redis 5+ replicates scripts by their effects, which
//! is what makes reading `TIME` before a write allowed.

use std::time::Duration;

use super::decision::{DecisionSource, RateDecision};
use super::policy::RatePolicy;

/// KEYS[1]: the window. ARGV[1]: limit. ARGV[2]: window in ms. ARGV[3]: a member unique to this
/// request (two requests in the same millisecond must both count).
/// Returns {admitted (0/1), requests in the window, oldest arrival ms, now ms}.
pub(crate) const SLIDING_WINDOW_LUA: &str = r"
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
  count = count + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], window_ms)
local oldest_ms = now_ms
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  oldest_ms = tonumber(oldest[2])
end
return {admitted, count, oldest_ms, now_ms}
";

/// The script's reply: `(admitted, count, oldest_ms, now_ms)`.
pub(crate) type ScriptReply = (i64, i64, i64, i64);

/// Turns the script's reply into a decision.
pub(crate) fn decision_from_reply(policy: RatePolicy, reply: ScriptReply) -> RateDecision {
    let (admitted, count, oldest_ms, now_ms) = reply;
    let oldest_age_ms = u64::try_from(now_ms.saturating_sub(oldest_ms)).unwrap_or(0);
    RateDecision::from_window(
        policy,
        admitted == 1,
        u64::try_from(count).unwrap_or(0),
        Duration::from_millis(oldest_age_ms),
        DecisionSource::Redis,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_maps_to_a_decision() {
        let policy = RatePolicy::per_minute(60);
        let admitted = decision_from_reply(policy, (1, 1, 1_000_000, 1_000_000));
        assert!(admitted.allowed);
        assert_eq!((admitted.remaining, admitted.reset_after_s), (59, 60));
        let refused = decision_from_reply(policy, (0, 60, 1_000_000, 1_045_001));
        assert!(!refused.allowed);
        assert_eq!((refused.remaining, refused.retry_after_s), (0, 15));
        assert_eq!(refused.source, DecisionSource::Redis);
    }
}
