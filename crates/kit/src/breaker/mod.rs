//! Circuit breakers, one per downstream: after `failure_threshold` consecutive failures calls
//! fail fast for `open_ms` instead of piling up on a dead service, then one probe at a time
//! decides whether the downstream is back. HTTP and gRPC clients share the same breaker per
//! downstream through the [`BreakerRegistry`], whose snapshot feeds
//! `/api/v1/health/circuit-breakers`.
//!
//! Metrics: `circuit_breaker_state{downstream}` (0 closed, 1 open, 2 half-open) and
//! `circuit_breaker_transitions_total{downstream,to}`.

mod error;
mod registry;
mod settings;
mod state;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use error::{BreakerError, BreakerFailure, circuit_open_error};
pub use registry::BreakerRegistry;
pub use settings::BreakerSettings;
pub use state::BreakerState;
use state::{BreakerCore, Outcome, Permit};

/// The source of "now" for the state machine; tests substitute a clock they move by hand.
pub(crate) trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Instant;
}

#[derive(Debug)]
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Debug)]
struct Guarded {
    core: BreakerCore,
    /// Wall-clock time the circuit last opened, for operators; kept while half-open.
    opened_at: Option<DateTime<Utc>>,
}

/// A circuit breaker guarding one downstream. Share it behind an `Arc`.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: Arc<str>,
    settings: BreakerSettings,
    guarded: Mutex<Guarded>,
    clock: Arc<dyn Clock>,
}

/// A breaker's state for the health endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerSnapshot {
    /// `closed`, `open` or `half_open`.
    pub state: BreakerState,
    /// Failures in a row so far.
    pub consecutive_failures: u32,
    /// Failures in a row that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open.
    pub open_ms: u64,
    /// When the circuit last opened (while open or half-open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
    /// Time left until a probe is let through (while open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl CircuitBreaker {
    /// A closed breaker for the downstream `name`.
    pub fn new(name: impl Into<String>, settings: BreakerSettings) -> Self {
        Self::with_clock(name, settings, Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(
        name: impl Into<String>,
        settings: BreakerSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let name: Arc<str> = Arc::from(name.into());
        let core = BreakerCore::new(settings.failure_threshold, settings.open_interval());
        metrics::gauge!("circuit_breaker_state", "downstream" => name.to_string())
            .set(BreakerState::Closed.gauge_value());
        Self { name, settings, guarded: Mutex::new(Guarded { core, opened_at: None }), clock }
    }

    /// The downstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `operation` unless the circuit is open; errors for which `E::counts_as_failure`
    /// holds count against the downstream.
    ///
    /// A future does nothing until polled, so a refused call never reaches the downstream.
    pub async fn call<T, E, F>(&self, operation: F) -> Result<T, BreakerError<E>>
    where
        F: Future<Output = Result<T, E>>,
        E: BreakerFailure,
    {
        self.call_classified(operation, E::counts_as_failure).await
    }

    /// Like [`CircuitBreaker::call`], classifying errors with `counts_as_failure`.
    pub async fn call_classified<T, E, F, C>(
        &self,
        operation: F,
        counts_as_failure: C,
    ) -> Result<T, BreakerError<E>>
    where
        F: Future<Output = Result<T, E>>,
        C: FnOnce(&E) -> bool,
    {
        let permit = self
            .acquire()
            .map_err(|retry_after| BreakerError::Open { downstream: Arc::clone(&self.name), retry_after })?;
        let mut pending = PendingCall { breaker: self, permit: Some(permit) };
        let result = operation.await;
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(error) if counts_as_failure(error) => Outcome::Failure,
            // The downstream answered; the caller's mistake says nothing about its health.
            Err(_) => Outcome::Success,
        };
        pending.finish(outcome);
        result.map_err(BreakerError::Inner)
    }

    /// The current state (an open circuit whose interval has passed is half-open).
    pub fn state(&self) -> BreakerState {
        let mut guarded = self.lock();
        let transition = guarded.core.advance(self.clock.now());
        self.apply(&mut guarded, transition);
        guarded.core.state()
    }

    /// The state for the health endpoint.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = self.clock.now();
        let mut guarded = self.lock();
        let transition = guarded.core.advance(now);
        self.apply(&mut guarded, transition);
        let retry_after_ms = guarded
            .core
            .open_remaining(now)
            .map(|remaining| u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX));
        BreakerSnapshot {
            state: guarded.core.state(),
            consecutive_failures: guarded.core.consecutive_failures(),
            failure_threshold: self.settings.failure_threshold,
            open_ms: self.settings.open_ms,
            opened_at: guarded.opened_at,
            retry_after_ms,
        }
    }

    /// Closes the circuit and forgets the failures.
    pub fn reset(&self) {
        let mut guarded = self.lock();
        let transition = guarded.core.reset();
        self.apply(&mut guarded, transition);
    }

    fn acquire(&self) -> Result<Permit, std::time::Duration> {
        let now = self.clock.now();
        let mut guarded = self.lock();
        let transition = guarded.core.advance(now);
        self.apply(&mut guarded, transition);
        guarded.core.try_acquire(now)
    }

    fn record(&self, permit: Permit, outcome: Outcome) {
        let now = self.clock.now();
        let mut guarded = self.lock();
        let transition = guarded.core.record(permit, outcome, now);
        self.apply(&mut guarded, transition);
    }

    /// Publishes a transition: metrics, a log line, the wall-clock open time.
    fn apply(&self, guarded: &mut Guarded, transition: Option<BreakerState>) {
        let Some(to) = transition else { return };
        match to {
            BreakerState::Open => {
                guarded.opened_at = Some(Utc::now());
                tracing::warn!(
                    downstream = %self.name,
                    consecutive_failures = guarded.core.consecutive_failures(),
                    open_ms = self.settings.open_ms,
                    "circuit opened"
                );
            }
            BreakerState::HalfOpen => tracing::info!(downstream = %self.name, "circuit half-open, probing"),
            BreakerState::Closed => {
                guarded.opened_at = None;
                tracing::info!(downstream = %self.name, "circuit closed");
            }
        }
        let downstream = self.name.to_string();
        metrics::gauge!("circuit_breaker_state", "downstream" => downstream.clone()).set(to.gauge_value());
        metrics::counter!("circuit_breaker_transitions_total", "downstream" => downstream, "to" => to.as_str())
            .increment(1);
    }

    fn lock(&self) -> MutexGuard<'_, Guarded> {
        // Every update under the lock is a few assignments that cannot panic half-way, so the
        // state behind a poisoned lock is still consistent.
        self.guarded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A permitted call in flight; dropping it unfinished (the caller's future was cancelled)
/// records an abandoned call, so a cancelled probe does not block probing forever.
struct PendingCall<'breaker> {
    breaker: &'breaker CircuitBreaker,
    permit: Option<Permit>,
}

impl PendingCall<'_> {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            self.breaker.record(permit, outcome);
        }
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Abandoned);
    }
}

#[cfg(test)]
mod tests;
