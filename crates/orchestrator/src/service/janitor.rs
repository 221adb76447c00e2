//! Drops the inbox records of handled reports once nothing can be deduplicated against them. A
//! report is redelivered only while the results consumer holds it unacknowledged, which lasts
//! seconds, never a day; without this the inbox would grow by several rows per task forever.
//! (Sent outbox rows are purged by the messaging relay itself.) It also drops the `watched_tasks`
//! rows of event streams a crashed replica never closed.

use std::time::Duration;

use sutazai_messaging::outbox;
use tokio_util::sync::CancellationToken;

use super::Orchestrator;
use super::results::RESULTS_CONSUMER;
use crate::error::OrchestratorError;

/// How long a handled report's id is kept.
pub const INBOX_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often old records are dropped.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

impl Orchestrator {
    /// Deletes the results consumer's inbox records older than `retention`; returns how many.
    pub async fn purge_handled_reports(&self, retention: Duration) -> Result<u64, OrchestratorError> {
        Ok(outbox::purge_inbox(self.pool(), RESULTS_CONSUMER, retention).await?)
    }

    /// Deletes `watched_tasks` rows older than `retention` (no stream outlives a task's longest
    /// timeout); returns how many.
    pub async fn purge_stale_watches(&self, retention: Duration) -> Result<u64, OrchestratorError> {
        let purged = sqlx::query("DELETE FROM watched_tasks WHERE since < now() - make_interval(secs => $1)")
            .bind(retention.as_secs_f64())
            .execute(self.pool())
            .await?;
        Ok(purged.rows_affected())
    }
}

/// Streams are dropped with their rows; a row this old belonged to a replica that died.
const WATCH_RETENTION: Duration = Duration::from_secs(2 * 24 * 3600);

/// Purges old inbox records every [`PURGE_INTERVAL`] until `shutdown`.
pub async fn run_inbox_janitor(orchestrator: Orchestrator, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(PURGE_INTERVAL) => {},
            () = shutdown.cancelled() => break,
        }
        match orchestrator.purge_handled_reports(INBOX_RETENTION).await {
            Ok(purged) => tracing::debug!(purged, "old inbox records purged"),
            Err(error) => {
                tracing::warn!(%error, "purging old inbox records failed; retrying at the next interval");
            }
        }
        if let Err(error) = orchestrator.purge_stale_watches(WATCH_RETENTION).await {
            tracing::warn!(%error, "purging stale event-stream registrations failed");
        }
    }
    tracing::info!("inbox janitor stopped");
}
