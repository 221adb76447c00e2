//! The outcome of one rate-limit check, computed the same way from the Redis script's reply and
//! from the local window.

use std::time::Duration;

use super::policy::RatePolicy;

/// Which limiter made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionSource {
    /// The shared window in Redis: every gateway instance counts against it.
    Redis,
    /// This process's window, used while Redis is unreachable.
    Local,
}

/// Whether a request may proceed, and what to tell the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// The request is admitted.
    pub allowed: bool,
    /// Requests admitted per window.
    pub limit: u32,
    /// Requests still admitted in the current window after this one.
    pub remaining: u32,
    /// Seconds until the oldest counted request leaves the window, freeing one slot.
    pub reset_after_s: u64,
    /// Seconds a refused client should wait (0 when admitted).
    pub retry_after_s: u64,
    /// Who decided.
    pub source: DecisionSource,
}

impl RateDecision {
    /// Builds a decision from the window's state after the check.
    ///
    /// `counted` is the number of requests in the window (including this one when admitted) and
    /// `oldest_age` how long ago the oldest of them arrived.
    pub(crate) fn from_window(
        policy: RatePolicy,
        allowed: bool,
        counted: u64,
        oldest_age: Duration,
        source: DecisionSource,
    ) -> Self {
        let limit = policy.limit;
        let counted = u32::try_from(counted).unwrap_or(u32::MAX);
        let remaining = if allowed { limit.saturating_sub(counted) } else { 0 };
        let until_oldest_leaves = policy.window.saturating_sub(oldest_age);
        // Round up and never say 0: a client told "retry in 0 s" retries at once and is refused.
        let reset_after_s = ceil_seconds(until_oldest_leaves).max(1);
        let retry_after_s = if allowed { 0 } else { reset_after_s };
        Self { allowed, limit, remaining, reset_after_s, retry_after_s, source }
    }
}

/// A duration in whole seconds, rounded up.
fn ceil_seconds(duration: Duration) -> u64 {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    millis.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitted_request_reports_remaining_and_reset() {
        let policy = RatePolicy::per_minute(60);
        let decision =
            RateDecision::from_window(policy, true, 10, Duration::from_millis(20_500), DecisionSource::Redis);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 50);
        assert_eq!(decision.reset_after_s, 40, "39.5 s rounds up");
        assert_eq!(decision.retry_after_s, 0);
    }

    #[test]
    fn refused_request_waits_for_the_oldest_to_leave() {
        let policy = RatePolicy::new(3, Duration::from_secs(1));
        let decision =
            RateDecision::from_window(policy, false, 3, Duration::from_millis(999), DecisionSource::Local);
        assert!(!decision.allowed);
        assert_eq!(decision.remaining, 0);
        assert_eq!(decision.retry_after_s, 1, "never less than one second");
        assert_eq!(decision.reset_after_s, 1);
    }
}
