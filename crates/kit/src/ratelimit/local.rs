//! The in-process sliding-window log that decides while Redis is unreachable.
//!
//! Each gateway instance counts on its own here, so during an outage a principal may get up to
//! one budget per instance; that is the price of staying up, and still bounded. Memory is bounded
//! too: each key keeps at most `limit` timestamps, and at most `max_keys` keys are tracked — idle
//! keys (nothing in their window) go first, then the least recently seen.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::decision::{DecisionSource, RateDecision};
use super::policy::RatePolicy;

/// Checks between sweeps of idle keys; a sweep walks every key, so it is amortized.
const SWEEP_EVERY_CHECKS: u32 = 1_024;

/// One key's admitted requests inside its window, oldest first.
#[derive(Debug)]
struct KeyWindow {
    window: Duration,
    admitted: VecDeque<Instant>,
}

impl KeyWindow {
    fn forget_older_than_window(&mut self, now: Instant) {
        while let Some(oldest) = self.admitted.front() {
            if now.saturating_duration_since(*oldest) < self.window {
                break;
            }
            self.admitted.pop_front();
        }
    }

    fn last_seen(&self) -> Option<Instant> {
        self.admitted.back().copied()
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.last_seen().is_none_or(|last| now.saturating_duration_since(last) >= self.window)
    }
}

#[derive(Debug, Default)]
struct LocalState {
    windows: HashMap<String, KeyWindow>,
    checks_since_sweep: u32,
}

/// A bounded per-key sliding-window log in this process.
#[derive(Debug)]
pub(crate) struct LocalSlidingWindow {
    max_keys: usize,
    state: Mutex<LocalState>,
}

impl LocalSlidingWindow {
    /// Tracks at most `max_keys` keys.
    pub(crate) fn new(max_keys: usize) -> Self {
        Self { max_keys: max_keys.max(1), state: Mutex::new(LocalState::default()) }
    }

    /// Counts a request for `key` at `now` if the policy admits it.
    pub(crate) fn check(&self, key: &str, policy: RatePolicy, now: Instant) -> RateDecision {
        // A panic elsewhere while holding the lock cannot leave the map inconsistent (every
        // mutation is a single insert, push or remove), so a poisoned lock is still usable.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.checks_since_sweep += 1;
        if state.checks_since_sweep >= SWEEP_EVERY_CHECKS {
            state.checks_since_sweep = 0;
            state.windows.retain(|_, window| !window.is_idle(now));
        }
        if !state.windows.contains_key(key) {
            self.make_room(&mut state, now);
        }
        let window = state
            .windows
            .entry(key.to_owned())
            .or_insert_with(|| KeyWindow { window: policy.window, admitted: VecDeque::new() });
        // The policy of a key is fixed by its route group, but follow it if it ever changes.
        window.window = policy.window;
        window.forget_older_than_window(now);
        let limit = usize::try_from(policy.limit).unwrap_or(usize::MAX);
        let allowed = window.admitted.len() < limit;
        if allowed {
            window.admitted.push_back(now);
        }
        let counted = u64::try_from(window.admitted.len()).unwrap_or(u64::MAX);
        let oldest_age =
            window.admitted.front().map_or(Duration::ZERO, |oldest| now.saturating_duration_since(*oldest));
        RateDecision::from_window(policy, allowed, counted, oldest_age, DecisionSource::Local)
    }

    /// The number of keys tracked now.
    #[cfg(test)]
    pub(crate) fn tracked_keys(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).windows.len()
    }

    /// Frees one slot for a new key when the map is full.
    fn make_room(&self, state: &mut LocalState, now: Instant) {
        if state.windows.len() < self.max_keys {
            return;
        }
        state.windows.retain(|_, window| !window.is_idle(now));
        if state.windows.len() < self.max_keys {
            return;
        }
        // Every tracked key is active: forget the one seen longest ago. It gets a fresh budget if
        // it comes back, which only happens under a flood of distinct keys during an outage.
        let least_recent =
            state.windows.iter().min_by_key(|(_, window)| window.last_seen()).map(|(key, _)| key.clone());
        if let Some(key) = least_recent {
            state.windows.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_limit_then_refuses_until_the_window_slides() {
        let local = LocalSlidingWindow::new(100);
        let policy = RatePolicy::new(3, Duration::from_secs(10));
        let start = Instant::now();
        for second in 0..3 {
            let decision = local.check("k", policy, start + Duration::from_secs(second));
            assert!(decision.allowed, "request {second}");
            assert_eq!(decision.remaining, 2 - u32::try_from(second).unwrap());
        }
        let refused = local.check("k", policy, start + Duration::from_secs(5));
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_s, 5, "the first request leaves the window at 10 s");
        assert_eq!(refused.source, DecisionSource::Local);
        let slid = local.check("k", policy, start + Duration::from_secs(10));
        assert!(slid.allowed, "the first request has left the window");
        assert_eq!(slid.remaining, 0);
    }

    #[test]
    fn keys_are_independent() {
        let local = LocalSlidingWindow::new(100);
        let policy = RatePolicy::new(1, Duration::from_secs(10));
        let now = Instant::now();
        assert!(local.check("a", policy, now).allowed);
        assert!(!local.check("a", policy, now).allowed);
        assert!(local.check("b", policy, now).allowed);
    }

    #[test]
    fn memory_stays_bounded_evicting_idle_keys_first() {
        let local = LocalSlidingWindow::new(3);
        let policy = RatePolicy::new(1, Duration::from_secs(10));
        let start = Instant::now();
        local.check("idle", policy, start);
        local.check("busy-1", policy, start + Duration::from_secs(9));
        local.check("busy-2", policy, start + Duration::from_secs(9));
        // At 11 s "idle" has nothing left in its window and is the one evicted.
        local.check("new", policy, start + Duration::from_secs(11));
        assert_eq!(local.tracked_keys(), 3);
        assert!(!local.check("busy-1", policy, start + Duration::from_secs(12)).allowed, "busy-1 was kept");
        // All active: the least recently seen goes.
        local.check("newest", policy, start + Duration::from_secs(12));
        assert_eq!(local.tracked_keys(), 3);
    }

    #[test]
    fn idle_keys_are_swept_periodically() {
        let local = LocalSlidingWindow::new(10_000);
        let policy = RatePolicy::new(5, Duration::from_secs(1));
        let start = Instant::now();
        for index in 0..100 {
            local.check(&format!("k{index}"), policy, start);
        }
        let later = start + Duration::from_secs(2);
        for _ in 0..SWEEP_EVERY_CHECKS {
            local.check("active", policy, later);
        }
        assert_eq!(local.tracked_keys(), 1, "only the key active in its window remains");
    }
}
