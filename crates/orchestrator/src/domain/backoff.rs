//! The delay between attempts: exponential, capped, with proportional jitter.
//!
//! Jitter spreads each delay uniformly over `delay × [1 - jitter, 1 + jitter]` rather than "full
//! jitter" (`[0, delay]`): tasks that failed together still retry at different instants, and each
//! delay stays longer than the one before it, which is what a caller of a flaky dependency needs
//! from backoff (full jitter can retry the third time sooner than the first).

use std::time::Duration;

/// How long a failed attempt waits before the next one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first attempt failed.
    pub initial: Duration,
    /// Factor per further failure.
    pub multiplier: f64,
    /// Longest delay, jitter included.
    pub max: Duration,
    /// Spread as a fraction of the delay, in `[0, 1)`.
    pub jitter: f64,
}

impl RetryPolicy {
    /// The delay after attempt `failed_attempt` (1-based) failed; `unit` in `[0, 1)` picks the
    /// point in the jitter range (0.5 is the exact exponential delay).
    pub fn delay(&self, failed_attempt: u32, unit: f64) -> Duration {
        let max_ms = self.max.as_secs_f64() * 1000.0;
        // Exponents beyond a few hundred overflow to infinity, which the cap handles.
        let exponent = i32::try_from(failed_attempt.saturating_sub(1)).unwrap_or(i32::MAX).min(1024);
        let exponential_ms = self.initial.as_secs_f64() * 1000.0 * self.multiplier.powi(exponent);
        let capped_ms = exponential_ms.min(max_ms);
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let jittered_ms = (capped_ms * factor).clamp(0.0, max_ms);
        Duration::from_secs_f64(jittered_ms / 1000.0)
    }

    /// The delay after attempt `failed_attempt` failed, with random jitter.
    pub fn random_delay(&self, failed_attempt: u32) -> Duration {
        self.delay(failed_attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy { initial: Duration::from_secs(1), multiplier: 2.0, max: Duration::from_secs(60), jitter }
    }

    #[test]
    fn defaults_double_up_to_the_cap() {
        let exact: Vec<u128> = (1..=8).map(|attempt| policy(0.0).delay(attempt, 0.5).as_millis()).collect();
        assert_eq!(exact, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
        assert_eq!(policy(0.0).delay(u32::MAX, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn jitter_spreads_around_the_delay() {
        assert_eq!(policy(0.2).delay(1, 0.0).as_millis(), 800);
        assert_eq!(policy(0.2).delay(1, 1.0).as_millis(), 1200);
        // Never past the cap, even with upward jitter.
        assert_eq!(policy(0.2).delay(10, 1.0), Duration::from_secs(60));
    }

    proptest! {
        #[test]
        fn delays_grow_and_stay_capped(attempt in 1u32..40, earlier in 0.0f64..1.0, later in 0.0f64..1.0) {
            let policy = policy(0.2);
            let first = policy.delay(attempt, earlier);
            let second = policy.delay(attempt + 1, later);
            prop_assert!(first <= policy.max && second <= policy.max);
            // Below the cap every retry waits longer than the one before it.
            if policy.delay(attempt + 1, 0.0) < policy.max.mul_f64(0.8) {
                prop_assert!(second > first, "{second:?} after {first:?}");
            }
        }
    }
}
