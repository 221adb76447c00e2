//! Sleeping until work is due without polling: a background loop plans its next wake-up from the
//! table (the earliest retry or deadline), and the code that schedules earlier work wakes it.
//!
//! Work is announced before the transaction that stores it commits, so a loop woken at once may
//! not see it yet. The announced time is therefore also remembered, and the loop's next sleep ends
//! by then at the latest, when the work is visible.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// No time planned or requested.
const NEVER: i64 = i64::MAX;

/// The wake-up of one background loop.
#[derive(Debug)]
pub(crate) struct Wakeup {
    notify: Notify,
    /// When the loop plans to wake, in Unix milliseconds; `NEVER` while it is working, so work
    /// announced meanwhile leaves a permit and the next sleep returns at once.
    planned_ms: AtomicI64,
    /// The earliest time announced since the loop last looked.
    requested_ms: AtomicI64,
}

impl Wakeup {
    pub(crate) fn new() -> Self {
        Self { notify: Notify::new(), planned_ms: AtomicI64::new(NEVER), requested_ms: AtomicI64::new(NEVER) }
    }

    /// Work becomes due at `at`: wakes the loop if it planned to sleep past that.
    pub(crate) fn due_at(&self, at: DateTime<Utc>) {
        let at_ms = at.timestamp_millis();
        self.requested_ms.fetch_min(at_ms, Ordering::AcqRel);
        if at_ms < self.planned_ms.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    /// The earliest time announced since the last call; the loop calls it before each pass.
    pub(crate) fn take_requested(&self) -> Option<DateTime<Utc>> {
        let requested_ms = self.requested_ms.swap(NEVER, Ordering::AcqRel);
        if requested_ms == NEVER { None } else { DateTime::from_timestamp_millis(requested_ms) }
    }

    /// Sleeps until `until`, earlier work being announced, or shutdown; false on shutdown.
    pub(crate) async fn sleep_until(&self, until: DateTime<Utc>, shutdown: &CancellationToken) -> bool {
        self.planned_ms.store(until.timestamp_millis(), Ordering::Release);
        let delay = (until - Utc::now()).to_std().unwrap_or_default();
        let awake = tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.notify.notified() => true,
            () = shutdown.cancelled() => false,
        };
        self.planned_ms.store(NEVER, Ordering::Release);
        awake
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn earlier_work_wakes_the_sleeper() {
        let wakeup = std::sync::Arc::new(Wakeup::new());
        let shutdown = CancellationToken::new();
        let sleeper = {
            let wakeup = wakeup.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                wakeup.sleep_until(Utc::now() + chrono::Duration::seconds(30), &shutdown).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Work due after the planned wake-up does not wake it; earlier work does.
        wakeup.due_at(Utc::now() + chrono::Duration::seconds(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!sleeper.is_finished());
        let due = Utc::now();
        wakeup.due_at(due);
        let slept = tokio::time::timeout(Duration::from_secs(2), sleeper).await.unwrap().unwrap();
        assert!(slept < Duration::from_secs(5), "{slept:?}");
        // The earliest announced time is kept for the next pass, once.
        assert_eq!(wakeup.take_requested().map(|at| at.timestamp_millis()), Some(due.timestamp_millis()));
        assert_eq!(wakeup.take_requested(), None);
    }

    #[tokio::test]
    async fn shutdown_ends_the_sleep() {
        let wakeup = Wakeup::new();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(!wakeup.sleep_until(Utc::now() + chrono::Duration::seconds(30), &shutdown).await);
    }
}
