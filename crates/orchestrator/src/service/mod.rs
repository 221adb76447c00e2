//! The orchestrator's use cases, called by the gRPC adapter, the results consumer and the
//! background loops. Each use case is one Postgres transaction: the state change, its events and
//! the messages announcing it (through the outbox) commit together or not at all.

mod cancel;
pub mod janitor;
mod outbound;
mod planner;
mod queries;
pub mod results;
pub mod retries;
mod submit;
mod telemetry;
pub mod timeouts;
mod wakeup;
pub mod watch;
mod workflows;

use std::sync::Arc;
use std::time::Duration;
use sutazai_messaging::outbox::OutboxWaker;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::PgPool;

pub use self::queries::Listed;
pub use self::submit::{SubmitTask, Submitted};
use self::wakeup::Wakeup;
use self::watch::EventFeed;
pub use self::watch::EventStream;
pub use self::workflows::SubmitWorkflow;
use crate::domain::backoff::RetryPolicy;
use crate::domain::task::TaskLimits;

/// What the orchestrator is built from.
#[derive(Debug)]
pub struct OrchestratorParts {
    /// The pool on the `orchestrator` schema.
    pub pool: PgPool,
    /// Defaults and limits of submissions.
    pub limits: TaskLimits,
    /// Backoff between attempts.
    pub retry_policy: RetryPolicy,
    /// Longest sleep of the background loops and fallback poll of event watchers.
    pub sweep_interval: Duration,
    /// Wakes the outbox relay after a commit.
    pub outbox_waker: OutboxWaker,
}

/// The use cases over tasks and workflows. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    limits: TaskLimits,
    retry_policy: RetryPolicy,
    sweep_interval: Duration,
    /// Wakes the retry scheduler when a retry is scheduled before its planned wake-up.
    retry_wakeup: Wakeup,
    /// Wakes the timeout sweeper when a task's deadline is before its planned wake-up.
    deadline_wakeup: Wakeup,
    feed: EventFeed,
    outbox_waker: OutboxWaker,
}

impl Orchestrator {
    /// The orchestrator over `parts`.
    pub fn new(parts: OrchestratorParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: parts.pool,
                limits: parts.limits,
                retry_policy: parts.retry_policy,
                sweep_interval: parts.sweep_interval,
                retry_wakeup: Wakeup::new(),
                deadline_wakeup: Wakeup::new(),
                feed: EventFeed::new(),
                outbox_waker: parts.outbox_waker,
            }),
        }
    }

    /// The pool on the `orchestrator` schema.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    fn limits(&self) -> &TaskLimits {
        &self.inner.limits
    }

    /// Commits, then wakes the outbox relay for the messages the transaction enqueued.
    async fn commit(&self, transaction: sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), sqlx::Error> {
        self.inner.outbox_waker.commit(transaction).await
    }
}

/// What one pass of a background loop (retry scheduler, timeout sweeper) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Tasks due.
    pub found: usize,
    /// Of those, tasks that could not be handled (logged, and left for a later pass).
    pub failed: usize,
}

/// The current time at Postgres' precision (microseconds), so a task returned before it is read
/// back equals the stored one.
fn now() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(now)
}
