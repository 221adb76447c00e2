//! Drops inbox records nothing can be deduplicated against any more. A Ready is redelivered only
//! while a consumer holds it unacknowledged, which lasts seconds, never a day; without this the
//! inbox would grow by one row per task forever.

use std::time::Duration;

use sqlx::PgPool;
use sutazai_messaging::outbox::{self, OutboxError};
use tokio_util::sync::CancellationToken;

use super::READY_INBOX;

/// How long a handled Ready's id is kept.
const INBOX_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often old records are dropped.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

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
pub async fn purge_inbox(pool: &PgPool, retention: Duration) -> Result<u64, OutboxError> {
    outbox::purge_inbox(pool, READY_INBOX, retention).await
}
