//! When to try a failed call again and how long to wait first: exponential backoff with jitter
//! for an unreachable or failing provider, the provider's own `Retry-After` for a 429.

use std::time::Duration;

use rand::Rng;

use crate::error::LlmError;
use crate::settings::LlmSettings;

/// The retry rules of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
}

impl RetryPolicy {
    pub(crate) fn new(settings: &LlmSettings) -> Self {
        Self {
            max_retries: settings.max_retries,
            base_delay: Duration::from_millis(settings.retry_base_delay_ms),
            max_delay: Duration::from_millis(settings.retry_max_delay_ms),
        }
    }

    /// The wait before retry number `retry_index` (0 for the first retry) after `error`, or
    /// `None` when the error is final: not retryable, retries used up, or a `Retry-After`
    /// longer than the longest delay we accept (waiting less would only earn another 429, and
    /// the caller is better served by the rate-limit error and its delay).
    pub(crate) fn delay_before_retry(&self, retry_index: u32, error: &LlmError) -> Option<Duration> {
        if retry_index >= self.max_retries || !error.is_retryable() {
            return None;
        }
        if let LlmError::RateLimited { retry_after_s: Some(retry_after_s) } = error {
            let requested = Duration::from_secs(*retry_after_s);
            return (requested <= self.max_delay).then_some(requested);
        }
        let exponential = self.base_delay.saturating_mul(2_u32.saturating_pow(retry_index));
        let ceiling = exponential.min(self.max_delay);
        // Half fixed, half random, so clients that failed together do not retry together.
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let jittered_ms = rand::rng().random_range(ceiling_ms / 2..=ceiling_ms);
        Some(Duration::from_millis(jittered_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let unavailable = LlmError::unavailable("503");
        for (retry_index, low_ms, high_ms) in [(0, 50, 100), (1, 100, 200), (2, 200, 400), (5, 500, 1_000)] {
            for _ in 0..50 {
                let delay = policy(10).delay_before_retry(retry_index, &unavailable).unwrap();
                assert!(
                    (Duration::from_millis(low_ms)..=Duration::from_millis(high_ms)).contains(&delay),
                    "retry {retry_index}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn retries_end_after_max_retries() {
        let unavailable = LlmError::unavailable("503");
        assert!(policy(2).delay_before_retry(1, &unavailable).is_some());
        assert!(policy(2).delay_before_retry(2, &unavailable).is_none());
        assert!(policy(0).delay_before_retry(0, &unavailable).is_none());
    }

    #[test]
    fn retry_after_is_waited_exactly_unless_it_exceeds_the_cap() {
        let short = LlmError::RateLimited { retry_after_s: Some(1) };
        assert_eq!(policy(3).delay_before_retry(0, &short), Some(Duration::from_secs(1)));
        let long = LlmError::RateLimited { retry_after_s: Some(2) };
        assert_eq!(policy(3).delay_before_retry(0, &long), None);
        let unspecified = LlmError::RateLimited { retry_after_s: None };
        assert!(policy(3).delay_before_retry(0, &unspecified).is_some());
    }

    #[test]
    fn final_errors_are_not_retried() {
        for error in [
            LlmError::Timeout { timeout_ms: 10 },
            LlmError::BadRequest { reason: "bad".to_owned() },
            LlmError::UnknownModel { model: "m".to_owned(), available: Vec::new() },
            LlmError::CredentialsRejected { status: 401 },
        ] {
            assert_eq!(policy(3).delay_before_retry(0, &error), None, "{error}");
        }
    }
}
