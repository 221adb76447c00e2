//! The inbox rows of handled messages (the table is sutazai-messaging's): dropping the ones
//! nothing can be deduplicated against any more.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::OrchestratorError;

/// Rows deleted per statement, so one purge never holds locks for long.
const PURGE_BATCH: i64 = 10_000;

/// Deletes `consumer`'s inbox rows older than `retention`; returns how many.
pub(crate) async fn purge(
    pool: &PgPool,
    consumer: &str,
    retention: Duration,
) -> Result<u64, OrchestratorError> {
    let mut purged = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM inbox WHERE ctid IN (
                 SELECT ctid FROM inbox
                 WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2)
                 LIMIT $3)",
        )
        .bind(consumer)
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
