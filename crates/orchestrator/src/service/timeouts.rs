//! The timeout sweeper: a task still not terminal at its deadline fails with "timed out after
//! <N>s", and the coordinator and agent are told to drop it. Like the retry scheduler, the loop
//! sleeps until the earliest deadline and is woken by earlier ones.
//!
//! A task that cannot be timed out (a bug, a row Postgres refuses) is logged and skipped: it must
//! not keep every other task from its deadline, pass after pass.

use chrono::{DateTime, Utc};
use sutazai_types::TaskId;
use tokio_util::sync::CancellationToken;

use super::cancel::{Withdrawal, withdraw};
use super::{Orchestrator, Pass};
use crate::error::OrchestratorError;
use crate::store;

/// Overdue tasks read per pass.
const BATCH: i64 = 200;

impl Orchestrator {
    /// Fails the unfinished tasks past their deadline: how many it found, and how many of those
    /// it could not time out.
    pub async fn time_out_overdue_tasks(&self) -> Result<Pass, OrchestratorError> {
        let now = super::now();
        let overdue = store::tasks::overdue(self.pool(), now, BATCH).await?;
        let mut pass = Pass { found: overdue.len(), failed: 0 };
        for task_id in overdue {
            if let Err(error) = self.time_out(task_id, now).await {
                pass.failed += 1;
                tracing::error!(%task_id, %error, "timing out an overdue task failed; skipped");
            }
        }
        Ok(pass)
    }

    /// Times out one task, in its own transaction: each may move a workflow on, under that
    /// workflow's lock.
    async fn time_out(&self, task_id: TaskId, now: DateTime<Utc>) -> Result<(), OrchestratorError> {
        let mut transaction = self.pool().begin().await?;
        let Some(mut task) = store::tasks::lock(&mut transaction, task_id).await? else {
            return Ok(());
        };
        // Another replica, or a result, may have finished it since it was read.
        if task.status.is_terminal() || task.deadline > now {
            return Ok(());
        }
        withdraw(&mut transaction, &mut task, Withdrawal::Timeout, now).await?;
        self.on_task_finished(&mut transaction, &task, now).await?;
        self.commit(transaction).await?;
        tracing::info!(%task_id, timeout_s = task.timeout_s, "task timed out");
        Ok(())
    }
}

/// Runs the sweeper until `shutdown`.
pub async fn run_timeout_sweeper(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let wakeup = &orchestrator.inner.deadline_wakeup;
    let interval = orchestrator.inner.sweep_interval;
    while !shutdown.is_cancelled() {
        let requested = wakeup.take_requested();
        let next = match orchestrator.time_out_overdue_tasks().await {
            // The tasks that failed are still overdue: the next deadline is already past, so
            // look again after the interval rather than at once.
            Ok(pass) if pass.failed > 0 => None,
            Ok(pass) if pass.found as i64 == BATCH => continue,
            Ok(_) => store::tasks::next_deadline(orchestrator.pool()).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "reading the next deadline failed");
                None
            }),
            Err(error) => {
                tracing::warn!(%error, "timing out overdue tasks failed");
                None
            }
        };
        let latest = Utc::now() + chrono::Duration::from_std(interval).unwrap_or_default();
        let until = [next, requested, Some(latest)].into_iter().flatten().min().unwrap_or(latest);
        if !wakeup.sleep_until(until, &shutdown).await {
            break;
        }
    }
    tracing::info!("timeout sweeper stopped");
}
