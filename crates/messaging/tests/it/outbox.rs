//! The outbox: rolled-back rows are never published; committed rows reach the consumer's effect
//! exactly once even when the relay dies mid-batch and a new one takes over.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sutazai_messaging::outbox::{self, OutboxRelay};
use sutazai_messaging::{Consumer, DeliveryContext, HandlerError, MessageHandler, Publisher, QueueSpec};
use sutazai_testkit::{TestDatabase, wait_for};
use tokio_util::sync::CancellationToken;

use crate::{EXCHANGE, setup};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    sequence: u32,
    committed: bool,
}

/// Applies each event once, using the inbox inside the same transaction as the effect.
struct Applier {
    pool: PgPool,
    deliveries: Arc<AtomicUsize>,
    seen_rolled_back: Arc<AtomicUsize>,
}

impl MessageHandler for Applier {
    type Message = Event;

    async fn handle(&self, event: Event, context: DeliveryContext) -> Result<(), HandlerError> {
        self.deliveries.fetch_add(1, Ordering::SeqCst);
        if !event.committed {
            self.seen_rolled_back.fetch_add(1, Ordering::SeqCst);
        }
        let message_id = context.message_id.ok_or_else(|| HandlerError::Permanent("no message id".into()))?;
        let retry = |error: sqlx::Error| HandlerError::Retryable(error.to_string());
        let mut transaction = self.pool.begin().await.map_err(retry)?;
        let first_time = outbox::record_once(&mut *transaction, "applier", &message_id)
            .await
            .map_err(|error| HandlerError::Retryable(error.to_string()))?;
        if first_time {
            sqlx::query("INSERT INTO effects (sequence) VALUES ($1)")
                .bind(i32::try_from(event.sequence).unwrap())
                .execute(&mut *transaction)
                .await
                .map_err(retry)?;
        }
        transaction.commit().await.map_err(retry)?;
        Ok(())
    }
}

#[tokio::test]
async fn committed_rows_are_applied_exactly_once_across_a_relay_crash() {
    const COMMITTED: u32 = 600;
    let database = TestDatabase::create().await;
    let pool =
        sutazai_kit::postgres::connect_and_migrate(&database.settings(), "svc", vec![outbox::migrator()])
            .await
            .unwrap();
    sqlx::query("CREATE TABLE effects (sequence INT NOT NULL)").execute(&pool).await.unwrap();
    let queue = QueueSpec::new("events");
    let (client, topology) = setup(queue.clone()).await;

    // A transaction that rolls back leaves nothing to publish.
    let mut rolled_back = pool.begin().await.unwrap();
    outbox::enqueue(
        &mut *rolled_back,
        EXCHANGE,
        "test.event",
        &Event { sequence: 0, committed: false },
        None,
    )
    .await
    .unwrap();
    rolled_back.rollback().await.unwrap();

    // Committed state changes, each with its message, in their own transactions.
    let mut committed_ids = HashSet::new();
    for sequence in 1..=COMMITTED {
        let mut transaction = pool.begin().await.unwrap();
        let id = outbox::enqueue(
            &mut *transaction,
            EXCHANGE,
            "test.event",
            &Event { sequence, committed: true },
            None,
        )
        .await
        .unwrap();
        transaction.commit().await.unwrap();
        committed_ids.insert(id);
    }

    let deliveries = Arc::new(AtomicUsize::new(0));
    let seen_rolled_back = Arc::new(AtomicUsize::new(0));
    let applier = Applier {
        pool: pool.clone(),
        deliveries: deliveries.clone(),
        seen_rolled_back: seen_rolled_back.clone(),
    };
    let consumer_stop = CancellationToken::new();
    let consumer =
        tokio::spawn(Consumer::new(client.clone(), queue.clone(), applier).run(consumer_stop.clone()));

    // The first relay dies abruptly while it is publishing a batch: its transaction never commits.
    let doomed = OutboxRelay::new(pool.clone(), Publisher::new(client.clone())).with_batch_size(200);
    let doomed_task = tokio::spawn(doomed.run(CancellationToken::new()));
    wait_for("the first relay to publish", Duration::from_secs(20), || async {
        deliveries.load(Ordering::SeqCst) > 0
    })
    .await;
    doomed_task.abort();
    let _ = doomed_task.await;

    // A new relay takes over and finishes.
    let relay_stop = CancellationToken::new();
    let relay = OutboxRelay::new(pool.clone(), Publisher::new(client.clone())).with_batch_size(200);
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
    let effects = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM effects").fetch_one(&pool).await.unwrap()
    };
    wait_for("every committed event to be applied", Duration::from_secs(30), || async {
        effects().await >= i64::from(COMMITTED)
    })
    .await;
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unsent, 0, "every committed row is marked sent");
    // Give any late duplicate a chance to arrive before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT sequence) FROM effects").fetch_one(&pool).await.unwrap();
    assert_eq!(effects().await, i64::from(COMMITTED), "each committed event applied exactly once");
    assert_eq!(distinct, i64::from(COMMITTED));
    assert_eq!(seen_rolled_back.load(Ordering::SeqCst), 0, "a rolled-back row is never published");
    let inbox_ids: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM inbox WHERE consumer = 'applier'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let inbox_ids: HashSet<uuid::Uuid> = inbox_ids.iter().map(|id| id.parse().unwrap()).collect();
    assert_eq!(inbox_ids, committed_ids, "message ids are the outbox row ids, stable across republishing");
    let delivered = deliveries.load(Ordering::SeqCst);
    assert!(delivered >= COMMITTED as usize);
    eprintln!(
        "deliveries: {delivered} for {COMMITTED} committed rows (duplicates from the crashed batch: {})",
        delivered - COMMITTED as usize
    );

    relay_stop.cancel();
    relay_task.await.unwrap();
    consumer_stop.cancel();
    consumer.await.unwrap();
    topology.delete(&client).await.unwrap();
    pool.close().await;
    database.drop_database().await;
}

/// Enqueues one message in its own transaction; `notify` also sends `notify_relays` in it.
async fn commit_one(pool: &sqlx::PgPool, sequence: u32, notify: bool) {
    let mut transaction = pool.begin().await.unwrap();
    outbox::enqueue(&mut *transaction, EXCHANGE, "test.wake", &Event { sequence, committed: true }, Some(3))
        .await
        .unwrap();
    if notify {
        outbox::notify_relays(&mut *transaction).await.unwrap();
    }
    transaction.commit().await.unwrap();
}

#[tokio::test]
async fn relay_wakes_on_its_waker_or_a_notification_without_waiting_for_a_sweep() {
    let database = TestDatabase::create().await;
    let pool =
        sutazai_kit::postgres::connect_and_migrate(&database.settings(), "svc", vec![outbox::migrator()])
            .await
            .unwrap();
    let queue = QueueSpec::new("wake");
    let (client, topology) = setup(queue.clone()).await;
    let stop = CancellationToken::new();
    let waker = outbox::OutboxWaker::new();
    let relay = OutboxRelay::new(pool.clone(), Publisher::new(client.clone())).with_waker(waker.clone());
    let relay_task = tokio::spawn(relay.run(stop.clone()));
    // Let the relay reach its idle wait.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The producer in this process wakes it after its commit.
    let started = std::time::Instant::now();
    commit_one(&pool, 1, false).await;
    waker.wake();
    assert!(crate::wait_for_message(&client, "wake", Duration::from_secs(4)).await.is_some(), "published");
    assert!(started.elapsed() < Duration::from_secs(2), "woken by the waker, not by the 5 s sweep");

    // A producer elsewhere notifies in its transaction.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    commit_one(&pool, 2, true).await;
    assert!(crate::wait_for_message(&client, "wake", Duration::from_secs(4)).await.is_some(), "published");
    assert!(started.elapsed() < Duration::from_secs(2), "woken by NOTIFY, not by the 5 s sweep");

    stop.cancel();
    relay_task.await.unwrap();
    topology.delete(&client).await.unwrap();
    pool.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_refused_row_is_parked_without_holding_back_the_others() {
    let database = TestDatabase::create().await;
    let pool =
        sutazai_kit::postgres::connect_and_migrate(&database.settings(), "svc", vec![outbox::migrator()])
            .await
            .unwrap();
    let queue = QueueSpec::new("parking");
    let (client, topology) = setup(queue.clone()).await;
    let mut transaction = pool.begin().await.unwrap();
    outbox::enqueue(
        &mut *transaction,
        EXCHANGE,
        "nobody.listens",
        &Event { sequence: 0, committed: true },
        None,
    )
    .await
    .unwrap();
    for sequence in 1..=3 {
        outbox::enqueue(&mut *transaction, EXCHANGE, "test.ok", &Event { sequence, committed: true }, None)
            .await
            .unwrap();
    }
    transaction.commit().await.unwrap();

    let relay = OutboxRelay::new(pool.clone(), Publisher::new(client.clone()));
    assert_eq!(relay.relay_batch().await.unwrap(), 4, "every row handled in the first pass");
    let mut delivered = 0;
    while crate::take_one(&client, "parking").await.is_some() {
        delivered += 1;
    }
    assert_eq!(delivered, 3, "the good rows went out despite the unroutable one before them");
    for _ in 0..4 {
        relay.relay_batch().await.unwrap();
    }
    let (attempts, parked, last_error): (i32, bool, Option<String>) = sqlx::query_as(
        "SELECT attempts, parked_at IS NOT NULL, last_error FROM outbox WHERE routing_key = 'nobody.listens'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((attempts, parked), (5, true));
    assert!(last_error.unwrap().contains("no queue bound"));
    assert_eq!(relay.relay_batch().await.unwrap(), 0, "a parked row is not retried");
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sent, 3, "the accepted rows are marked sent once");
    topology.delete(&client).await.unwrap();
    pool.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_row_enqueued_in_a_given_trace_carries_that_traceparent_and_no_other() {
    let database = TestDatabase::create().await;
    let pool =
        sutazai_kit::postgres::connect_and_migrate(&database.settings(), "svc", vec![outbox::migrator()])
            .await
            .unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let event = Event { sequence: 1, committed: true };
    let traced = outbox::enqueue_in_trace(&pool, EXCHANGE, "test.event", &event, None, Some(traceparent))
        .await
        .unwrap();
    let untraced = outbox::enqueue_in_trace(&pool, EXCHANGE, "test.event", &event, None, None).await.unwrap();

    let headers_of = |message_id: uuid::Uuid| {
        sqlx::query_scalar::<_, serde_json::Value>("SELECT headers FROM outbox WHERE message_id = $1")
            .bind(message_id)
            .fetch_one(&pool)
    };
    assert_eq!(headers_of(traced).await.unwrap(), serde_json::json!({"traceparent": traceparent}));
    assert_eq!(headers_of(untraced).await.unwrap(), serde_json::json!({}));
    pool.close().await;
    database.drop_database().await;
}
