//! Drops inbox records nothing can be deduplicated against any more. A Ready is redelivered only
//! while a consumer holds it unacknowledged, which lasts seconds, never a day; without this the
//! inbox would grow by one row per task forever.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::READY_INBOX;

/// How long a handled Ready's id is kept.
const INBOX_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often old records are dropped.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// Rows deleted per statement, so one purge never holds locks for long.
const PURGE_BATCH: i64 = 10_000;

/// Purges old inbox records every [`PURGE_INTERVAL`] until `stop` fires.
pub async fn run(pool: PgPool, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(PURGE_INTERVAL) => {},
            () = stop.cancelled() => return,
        }
        if let Err(error) = purge_inbox(&pool, INBOX_RETENTION).await {
            tracing::warn!(%error, "purging old inbox records failed; retrying at the next interval");
        }
    }
}

/// Deletes the coordinator's inbox records older than `retention`; returns how many.
pub async fn purge_inbox(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let mut purged = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM inbox WHERE ctid IN (
                 SELECT ctid FROM inbox
                 WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2)
                 LIMIT $3)",
        )
        .bind(READY_INBOX)
        .bind(retention.as_secs_f64())
        .bind(PURGE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        purged += deleted;
        if deleted < PURGE_BATCH as u64 {
            return Ok(purged);
        }
    }
}
