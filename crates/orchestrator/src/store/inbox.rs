//! The inbox rows of handled messages (the table is sutazai-messaging's): dropping the ones
//! nothing can be deduplicated against any more.

use std::time::Duration;

use sqlx::PgPool;
use sutazai_messaging::outbox;

use crate::error::OrchestratorError;

/// Deletes `consumer`'s inbox rows older than `retention`; returns how many.
pub(crate) async fn purge(
    pool: &PgPool,
    consumer: &str,
    retention: Duration,
) -> Result<u64, OrchestratorError> {
    Ok(outbox::purge_inbox(pool, consumer, retention).await?)
}
