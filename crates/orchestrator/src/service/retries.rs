//! The retry scheduler: when a retrying task's backoff is over, it becomes queued again and a
//! `Ready` for its next attempt is published. The loop sleeps until the earliest retry is due (a
//! retry scheduled here wakes it earlier), so nothing runs while nothing is due.
//!
//! Each task is requeued behind its own savepoint: one that cannot be (a bug, a row Postgres
//! refuses) is rolled back alone, logged and skipped, rather than failing the batch pass after pass.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use super::{Orchestrator, Pass, outbound, telemetry};
use crate::domain::task::Task;
use crate::error::OrchestratorError;
use crate::store;

/// Retries requeued per transaction.
const BATCH: i64 = 200;

impl Orchestrator {
    /// Requeues retrying tasks whose backoff is over: how many were due, and how many of those
    /// could not be requeued.
    pub async fn requeue_due_retries(&self) -> Result<Pass, OrchestratorError> {
        let now = super::now();
        let mut transaction = self.pool().begin().await?;
        let due = store::tasks::lock_due_retries(&mut transaction, now, BATCH).await?;
        let mut pass = Pass { found: due.len(), failed: 0 };
        for mut task in due {
            let mut savepoint = transaction.begin().await?;
            match requeue(&mut savepoint, &mut task, now).await {
                Ok(()) => savepoint.commit().await?,
                Err(error) => {
                    savepoint.rollback().await?;
                    pass.failed += 1;
                    tracing::error!(task_id = %task.id, %error, "requeueing a due retry failed; skipped");
                }
            }
        }
        self.commit(transaction).await?;
        Ok(pass)
    }
}

/// Queues a task whose backoff is over and publishes the `Ready` of its next attempt.
async fn requeue(
    connection: &mut PgConnection,
    task: &mut Task,
    now: DateTime<Utc>,
) -> Result<(), OrchestratorError> {
    // Keeps `attempt` as the attempt last made; the `Ready` asks for the next one, and its
    // assignment moves the task's attempt forward.
    let event = task.requeue(now);
    store::tasks::save(connection, task).await?;
    store::events::append(connection, &event).await?;
    outbound::ready(connection, task, now).await
}

/// Runs the scheduler until `shutdown`.
pub async fn run_retry_scheduler(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let wakeup = &orchestrator.inner.retry_wakeup;
    let interval = orchestrator.inner.sweep_interval;
    while !shutdown.is_cancelled() {
        let requested = wakeup.take_requested();
        let mut next = match orchestrator.requeue_due_retries().await {
            // The tasks that failed are still due: look again after the interval, not at once.
            Ok(pass) if pass.failed > 0 => None,
            Ok(pass) if pass.found as i64 == BATCH => continue,
            Ok(_) => match store::tasks::retry_backlog(orchestrator.pool()).await {
                Ok((next, retrying)) => {
                    telemetry::retrying_tasks(retrying);
                    next
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the retry backlog failed");
                    None
                }
            },
            Err(error) => {
                tracing::warn!(%error, "requeueing due retries failed");
                None
            }
        };
        let latest = Utc::now() + chrono::Duration::from_std(interval).unwrap_or_default();
        next = [next, requested, Some(latest)].into_iter().flatten().min();
        if !wakeup.sleep_until(next.unwrap_or(latest), &shutdown).await {
            break;
        }
    }
    tracing::info!("retry scheduler stopped");
}
