//! The breaker's state machine, without I/O or clocks of its own: every method takes `now`, so
//! the transitions are tested with made-up instants.
//!
//! Closed counts consecutive failures; reaching the threshold opens the circuit. Open refuses
//! every call until the open interval has passed, then the circuit is half-open and admits one
//! probe at a time: its success closes the circuit, its failure opens it for another interval.
//! Each transition starts a new epoch, and a call only affects the state of the epoch it started
//! in — so a slow call that began before the circuit opened cannot close it or count twice.

use std::time::{Duration, Instant};

use serde::Serialize;

/// How long a caller refused because another probe is in flight should wait: the probe decides
/// soon, and one second is the smallest `Retry-After`.
const PROBE_IN_FLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where a circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls fail fast without reaching the downstream.
    Open,
    /// One probe call at a time decides whether to close again.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `circuit_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }

    /// The label value of `circuit_breaker_transitions_total{to}`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

/// Leave to run one call, tied to the epoch it was granted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permit {
    epoch: u64,
    is_probe: bool,
}

/// How a permitted call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The downstream answered (a client error is an answer too).
    Success,
    /// The downstream failed in a way that counts against it.
    Failure,
    /// The caller gave up (the future was dropped): no evidence either way.
    Abandoned,
}

/// The breaker's mutable state.
#[derive(Debug)]
pub(crate) struct BreakerCore {
    failure_threshold: u32,
    open_interval: Duration,
    phase: Phase,
    consecutive_failures: u32,
    epoch: u64,
}

impl BreakerCore {
    pub(crate) fn new(failure_threshold: u32, open_interval: Duration) -> Self {
        debug_assert!(failure_threshold > 0, "a threshold of 0 would never close");
        Self {
            failure_threshold: failure_threshold.max(1),
            open_interval,
            phase: Phase::Closed,
            consecutive_failures: 0,
            epoch: 0,
        }
    }

    /// The state at `now`, moving an expired open circuit to half-open. Returns the transition
    /// made, if any.
    pub(crate) fn advance(&mut self, now: Instant) -> Option<BreakerState> {
        if let Phase::Open { until } = self.phase
            && now >= until
        {
            return Some(self.enter(Phase::HalfOpen { probe_in_flight: false }));
        }
        None
    }

    /// The state as last advanced.
    pub(crate) fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// How long an open circuit stays open from `now`; `None` unless open.
    pub(crate) fn open_remaining(&self, now: Instant) -> Option<Duration> {
        match self.phase {
            Phase::Open { until } => Some(until.saturating_duration_since(now)),
            Phase::Closed | Phase::HalfOpen { .. } => None,
        }
    }

    /// Grants a call, or says how long to wait. Call [`BreakerCore::advance`] first.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<Permit, Duration> {
        match self.phase {
            Phase::Closed => Ok(Permit { epoch: self.epoch, is_probe: false }),
            Phase::Open { until } => Err(until.saturating_duration_since(now)),
            Phase::HalfOpen { probe_in_flight: true } => Err(PROBE_IN_FLIGHT_RETRY_AFTER),
            Phase::HalfOpen { probe_in_flight: false } => {
                self.phase = Phase::HalfOpen { probe_in_flight: true };
                Ok(Permit { epoch: self.epoch, is_probe: true })
            }
        }
    }

    /// Records how a permitted call ended. Returns the transition made, if any.
    pub(crate) fn record(&mut self, permit: Permit, outcome: Outcome, now: Instant) -> Option<BreakerState> {
        if permit.epoch != self.epoch {
            return None;
        }
        match (self.phase, outcome) {
            (Phase::Closed, Outcome::Success) => {
                self.consecutive_failures = 0;
                None
            }
            (Phase::Closed, Outcome::Failure) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures >= self.failure_threshold {
                    return Some(self.enter(Phase::Open { until: now + self.open_interval }));
                }
                None
            }
            (Phase::HalfOpen { .. }, Outcome::Success) if permit.is_probe => {
                self.consecutive_failures = 0;
                Some(self.enter(Phase::Closed))
            }
            (Phase::HalfOpen { .. }, Outcome::Failure) if permit.is_probe => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                Some(self.enter(Phase::Open { until: now + self.open_interval }))
            }
            (Phase::HalfOpen { .. }, Outcome::Abandoned) if permit.is_probe => {
                // The probe was cancelled before it learned anything: let the next caller probe.
                self.phase = Phase::HalfOpen { probe_in_flight: false };
                None
            }
            _ => None,
        }
    }

    /// Closes the circuit and forgets the failures (operator reset).
    pub(crate) fn reset(&mut self) -> Option<BreakerState> {
        self.consecutive_failures = 0;
        if self.phase == Phase::Closed {
            return None;
        }
        Some(self.enter(Phase::Closed))
    }

    fn enter(&mut self, phase: Phase) -> BreakerState {
        self.phase = phase;
        self.epoch += 1;
        self.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Duration = Duration::from_secs(30);

    fn fail(core: &mut BreakerCore, now: Instant) -> Option<BreakerState> {
        let permit = core.try_acquire(now).unwrap();
        core.record(permit, Outcome::Failure, now)
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let mut core = BreakerCore::new(3, OPEN);
        let now = Instant::now();
        fail(&mut core, now);
        fail(&mut core, now);
        let permit = core.try_acquire(now).unwrap();
        core.record(permit, Outcome::Success, now);
        assert_eq!(core.consecutive_failures(), 0);
        assert_eq!(fail(&mut core, now), None);
        assert_eq!(core.state(), BreakerState::Closed);
    }

    #[test]
    fn a_call_from_an_earlier_epoch_changes_nothing() {
        let mut core = BreakerCore::new(1, OPEN);
        let start = Instant::now();
        let slow_call = core.try_acquire(start).unwrap();
        assert_eq!(fail(&mut core, start), Some(BreakerState::Open));
        assert_eq!(core.advance(start + OPEN), Some(BreakerState::HalfOpen));
        let probe = core.try_acquire(start + OPEN).unwrap();
        // The slow call from before the circuit opened succeeds now: it must not close the circuit.
        assert_eq!(core.record(slow_call, Outcome::Success, start + OPEN), None);
        assert_eq!(core.state(), BreakerState::HalfOpen);
        assert_eq!(core.record(probe, Outcome::Success, start + OPEN), Some(BreakerState::Closed));
    }

    #[test]
    fn an_abandoned_probe_frees_the_probe_slot() {
        let mut core = BreakerCore::new(1, OPEN);
        let start = Instant::now();
        fail(&mut core, start);
        core.advance(start + OPEN);
        let probe = core.try_acquire(start + OPEN).unwrap();
        assert_eq!(core.try_acquire(start + OPEN), Err(PROBE_IN_FLIGHT_RETRY_AFTER));
        core.record(probe, Outcome::Abandoned, start + OPEN);
        assert!(core.try_acquire(start + OPEN).is_ok(), "the next caller may probe");
    }
}
