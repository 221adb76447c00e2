//! The transactional outbox and the consumer inbox.
//!
//! A service writes its state change and the messages announcing it in one Postgres transaction
//! ([`enqueue`]); a rolled-back transaction leaves no message behind. The [`OutboxRelay`] publishes
//! committed rows with broker confirms and marks them sent in the same transaction that locked
//! them. If the relay dies mid-batch, that transaction rolls back and the batch is published again
//! after restart with the same message ids, so delivery is at least once and a consumer makes its
//! effect exactly once by recording the id with [`record_once`] in its own transaction.
//!
//! Waking the relay: the producing service calls [`OutboxWaker::wake`] after its commit (the relay
//! of the same process then publishes at once); a producer in another process may send
//! [`notify_relays`] in its transaction instead; and the relay sweeps periodically, so a missed
//! wake delays a message but never strands it. `enqueue` itself sends no `NOTIFY`: Postgres
//! serializes the commits of every notifying transaction on one lock (held through the WAL
//! flush), which capped a busy service at one commit per flush.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::{PgExecutor, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::publisher::{OutgoingMessage, PublishError, Publisher};

/// The migrations creating `outbox` and `inbox`; run them with the service's own migrator.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Inbox rows deleted per statement, so one purge never holds locks for long.
const INBOX_PURGE_BATCH: i64 = 10_000;

/// Deletes `consumer`'s inbox records older than `retention`; returns how many. A message is
/// redelivered only while a consumer holds it unacknowledged (seconds), so a record kept a day
/// deduplicates everything it can; without purging, the inbox grows by a row per message forever.
pub async fn purge_inbox(pool: &PgPool, consumer: &str, retention: Duration) -> Result<u64, OutboxError> {
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
        .bind(INBOX_PURGE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        purged += deleted;
        if deleted < INBOX_PURGE_BATCH.unsigned_abs() {
            return Ok(purged);
        }
    }
}

/// Wakes the relays of this schema in any process, at the commit of the caller's transaction
/// (for producers that run no relay themselves; it serializes concurrent notifying commits, so
/// a busy service wakes its own relay with [`OutboxWaker`] instead).
pub async fn notify_relays<'e>(executor: impl PgExecutor<'e>) -> Result<(), OutboxError> {
    sqlx::query("SELECT pg_notify('outbox_' || current_schema(), '')").execute(executor).await?;
    Ok(())
}

/// Wakes an [`OutboxRelay`] of this process: call [`OutboxWaker::wake`] after committing a
/// transaction that enqueued messages. A wake with nothing new costs the relay one query; a
/// wake while the relay is busy is remembered, so none is lost.
#[derive(Debug, Clone, Default)]
pub struct OutboxWaker(Arc<Notify>);

impl OutboxWaker {
    /// A waker to hand to the relay ([`OutboxRelay::with_waker`]) and to the producers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the relay to look for committed rows now.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Commits a transaction that may have enqueued messages, then wakes the relay for them.
    pub async fn commit(
        &self,
        transaction: sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<(), sqlx::Error> {
        transaction.commit().await?;
        self.wake();
        Ok(())
    }
}

/// Failures of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Postgres failed.
    #[error("outbox query: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker did not confirm a message; the batch is retried.
    #[error("outbox publish: {0}")]
    Publish(#[from] PublishError),
    /// A message body could not be serialized.
    #[error("outbox serialize: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Adds a message to the outbox inside the caller's transaction and returns its message id.
///
/// The current span's trace context is stored with the row, so the consumer's span joins the
/// trace of the request that caused the message, even though a relay publishes it later.
pub async fn enqueue<'e, T: Serialize>(
    executor: impl PgExecutor<'e>,
    exchange: &str,
    routing_key: &str,
    message: &T,
    priority: Option<u8>,
) -> Result<Uuid, OutboxError> {
    let traceparent = sutazai_kit::telemetry::current_traceparent();
    enqueue_in_trace(executor, exchange, routing_key, message, priority, traceparent.as_deref()).await
}

/// Like [`enqueue`], continuing the trace of `traceparent` (a W3C `traceparent` value) instead of
/// the current span's: for a producer that sends a message long after, and outside, the work
/// that caused it (the coordinator assigns a task in its dispatcher, not in the span of the
/// delivery that made the task ready). `None` stores no trace context.
pub async fn enqueue_in_trace<'e, T: Serialize>(
    executor: impl PgExecutor<'e>,
    exchange: &str,
    routing_key: &str,
    message: &T,
    priority: Option<u8>,
    traceparent: Option<&str>,
) -> Result<Uuid, OutboxError> {
    let message_id = Uuid::now_v7();
    let payload = serde_json::to_value(message)?;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    if let Some(traceparent) = traceparent {
        headers.insert("traceparent".to_owned(), traceparent.to_owned());
    }
    // The notification is delivered only when the transaction commits, which is when the relay
    // may see the row.
    sqlx::query(
        "INSERT INTO outbox (message_id, exchange, routing_key, payload, headers, priority)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(message_id)
    .bind(exchange)
    .bind(routing_key)
    .bind(payload)
    .bind(serde_json::to_value(headers)?)
    .bind(priority.map(i16::from))
    .execute(executor)
    .await?;
    Ok(message_id)
}

/// Records that `consumer` handled `message_id`, inside the transaction that applies the effect.
/// Returns false when it was already recorded: the caller skips the effect (a redelivery).
pub async fn record_once<'e>(
    executor: impl PgExecutor<'e>,
    consumer: &str,
    message_id: &str,
) -> Result<bool, OutboxError> {
    let inserted =
        sqlx::query("INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(consumer)
            .bind(message_id)
            .execute(executor)
            .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Publishes committed outbox rows.
#[derive(Debug)]
pub struct OutboxRelay {
    pool: PgPool,
    publisher: Publisher,
    batch_size: i64,
    sweep_interval: Duration,
    retention: Duration,
    waker: OutboxWaker,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    message_id: Uuid,
    exchange: String,
    routing_key: String,
    payload: serde_json::Value,
    headers: sqlx::types::Json<BTreeMap<String, String>>,
    priority: Option<i16>,
}

/// Refusals of one row before it is parked.
const MAX_PUBLISH_ATTEMPTS: i32 = 5;

/// How long sent rows are kept for inspection before they are deleted.
const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often sent rows past their retention are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

impl OutboxRelay {
    /// A relay for the outbox in the pool's schema.
    pub fn new(pool: PgPool, publisher: Publisher) -> Self {
        Self {
            pool,
            publisher,
            batch_size: 100,
            sweep_interval: Duration::from_secs(5),
            retention: DEFAULT_RETENTION,
            waker: OutboxWaker::new(),
        }
    }

    /// The waker the producers of this process call after their commits.
    pub fn with_waker(mut self, waker: OutboxWaker) -> Self {
        self.waker = waker;
        self
    }

    /// Rows published per transaction.
    pub fn with_batch_size(mut self, batch_size: u16) -> Self {
        self.batch_size = i64::from(batch_size.max(1));
        self
    }

    /// Publishes one batch; returns how many rows it handled (sent, or refused and counted), so
    /// a full batch means more may be waiting.
    pub async fn relay_batch(&self) -> Result<usize, OutboxError> {
        let mut transaction = self.pool.begin().await?;
        // SKIP LOCKED lets several relay instances share the table without sending a row twice
        // while both are alive.
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, message_id, exchange, routing_key, payload, headers, priority
             FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.batch_size)
        .fetch_all(&mut *transaction)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut messages = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(row.id);
            messages.push(outgoing(row)?);
        }
        // Each row's own outcome is recorded: one refused message must neither hold back the rows
        // after it nor make the broker receive the accepted ones again.
        let outcomes = self.publisher.publish_each(messages).await?;
        let handled = ids.len();
        let mut sent = Vec::new();
        for (id, outcome) in ids.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => sent.push(id),
                Err(error) => self.record_refusal(&mut transaction, id, &error.to_string()).await?,
            }
        }
        sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)")
            .bind(&sent)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        metrics::counter!("outbox_relayed_total").increment(sent.len() as u64);
        Ok(handled)
    }

    /// Counts a refusal; after [`MAX_PUBLISH_ATTEMPTS`] the row is parked (kept, not retried) and
    /// an operator sees it in the log and in `outbox_parked_total`.
    async fn record_refusal(
        &self,
        transaction: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        id: i64,
        error: &str,
    ) -> Result<(), OutboxError> {
        let parked: Option<bool> = sqlx::query_scalar(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                 parked_at = CASE WHEN attempts + 1 >= $3 THEN now() END
             WHERE id = $1 RETURNING parked_at IS NOT NULL",
        )
        .bind(id)
        .bind(error)
        .bind(MAX_PUBLISH_ATTEMPTS)
        .fetch_optional(&mut **transaction)
        .await?;
        if parked == Some(true) {
            tracing::error!(outbox_id = id, %error, "outbox row parked after repeated refusals");
            metrics::counter!("outbox_parked_total").increment(1);
        } else {
            tracing::warn!(outbox_id = id, %error, "broker refused an outbox row; will retry");
        }
        Ok(())
    }

    /// Relays until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = self.listen().await;
        let mut last_purge = Instant::now();
        let mut failure_delay = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            // Without a listener every message waits for the sweep, so keep trying to get one.
            if listener.is_none() {
                listener = self.listen().await;
            }
            match self.relay_batch().await {
                Ok(sent) if sent as i64 == self.batch_size => continue,
                Ok(_) => failure_delay = Duration::from_millis(200),
                Err(error) => {
                    tracing::warn!(%error, "outbox relay failed, retrying");
                    tokio::select! {
                        () = tokio::time::sleep(failure_delay) => {},
                        () = shutdown.cancelled() => break,
                    }
                    failure_delay = (failure_delay * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            if last_purge.elapsed() >= PURGE_INTERVAL {
                self.purge_sent().await;
                last_purge = Instant::now();
            }
            let notified = async {
                match listener.as_mut() {
                    Some(listener) => {
                        if listener.recv().await.is_err() {
                            tokio::time::sleep(self.sweep_interval).await;
                        }
                    }
                    None => tokio::time::sleep(self.sweep_interval).await,
                }
            };
            tokio::select! {
                () = notified => {},
                () = self.waker.0.notified() => {},
                () = tokio::time::sleep(self.sweep_interval) => {},
                () = shutdown.cancelled() => break,
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// A listener for this schema's commit notifications; `None` (logged) when Postgres refused,
    /// in which case the relay sweeps every `sweep_interval` until a later call succeeds.
    async fn listen(&self) -> Option<PgListener> {
        let listening = async {
            let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&self.pool).await?;
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(&format!("outbox_{schema}")).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, sweep_ms = self.sweep_interval.as_millis() as u64,
                    "outbox relay cannot listen for commits; sweeping until it can");
                None
            }
        }
    }

    async fn purge_sent(&self) {
        let retention_s = self.retention.as_secs_f64();
        let purged = sqlx::query("DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)")
            .bind(retention_s)
            .execute(&self.pool)
            .await;
        if let Err(error) = purged {
            tracing::warn!(%error, "purging sent outbox rows failed");
        }
    }
}

fn outgoing(row: OutboxRow) -> Result<OutgoingMessage, OutboxError> {
    let mut headers = FieldTable::default();
    for (name, value) in row.headers.0 {
        headers.insert(ShortString::from(name), AMQPValue::LongString(LongString::from(value)));
    }
    Ok(OutgoingMessage {
        exchange: row.exchange,
        routing_key: row.routing_key,
        body: serde_json::to_vec(&row.payload)?,
        message_id: row.message_id.to_string(),
        priority: row.priority.and_then(|priority| u8::try_from(priority).ok()),
        headers,
    })
}
