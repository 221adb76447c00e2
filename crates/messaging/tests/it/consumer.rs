//! The consumer loop: redelivery after a crash, delayed retries, dead letters, trace context.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sutazai_messaging::headers::attempt;
use sutazai_messaging::{
    AmqpClient, Consumer, DeliveryContext, HandlerError, MessageHandler, OutgoingMessage, PublishError,
    Publisher, QueueSpec,
};
use sutazai_testkit::wait_for;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{EXCHANGE, setup, wait_for_message};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    number: u32,
}

/// Records each call and answers with a scripted outcome per attempt.
struct Recorder {
    calls: mpsc::UnboundedSender<(Job, DeliveryContext, Instant)>,
    outcome: fn(&DeliveryContext) -> Result<(), HandlerError>,
    hang_forever: bool,
}

impl MessageHandler for Recorder {
    type Message = Job;

    async fn handle(&self, message: Job, context: DeliveryContext) -> Result<(), HandlerError> {
        let _ = self.calls.send((message, context.clone(), Instant::now()));
        if self.hang_forever {
            std::future::pending::<()>().await;
        }
        (self.outcome)(&context)
    }
}

fn recorder(
    outcome: fn(&DeliveryContext) -> Result<(), HandlerError>,
) -> (Recorder, mpsc::UnboundedReceiver<(Job, DeliveryContext, Instant)>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Recorder { calls: sender, outcome, hang_forever: false }, receiver)
}

async fn publish(client: &AmqpClient, number: u32) -> String {
    let message = OutgoingMessage::json(EXCHANGE, "test.job", &Job { number }).unwrap();
    let message_id = message.message_id.clone();
    Publisher::new(client.clone()).publish(message).await.unwrap();
    message_id
}

fn start(consumer: Consumer<Recorder>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(stop.clone()));
    (stop, task)
}

#[tokio::test]
async fn message_survives_a_consumer_that_dies_before_ack() {
    let queue = QueueSpec::new("jobs");
    let (client, topology) = setup(queue.clone()).await;
    let message_id = publish(&client, 7).await;

    // The first consumer has its own connection, receives the message and never acks it.
    let doomed_client =
        AmqpClient::connect(client.settings().clone(), CancellationToken::new()).await.unwrap();
    let (mut doomed_handler, mut doomed_calls) = recorder(|_| Ok(()));
    doomed_handler.hang_forever = true;
    let (_doomed_stop, doomed_task) =
        start(Consumer::new(doomed_client.clone(), queue.clone(), doomed_handler));
    let (job, first_context, _) = doomed_calls.recv().await.unwrap();
    assert_eq!(job, Job { number: 7 });
    assert!(!first_context.redelivered);

    // It dies: its task is gone and its connection drops without an ack.
    doomed_task.abort();
    doomed_client.close().await;

    let (handler, mut calls) = recorder(|_| Ok(()));
    let (stop, task) = start(Consumer::new(client.clone(), queue.clone(), handler));
    let (job, context, _) =
        tokio::time::timeout(Duration::from_secs(10), calls.recv()).await.unwrap().unwrap();
    assert_eq!(job, Job { number: 7 });
    assert!(context.redelivered, "the broker redelivered the unacked message");
    assert_eq!(context.message_id.as_deref(), Some(message_id.as_str()));

    // Handled once: acked by the survivor, so nothing comes again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(calls.try_recv().is_err(), "handled exactly once by the surviving consumer");
    stop.cancel();
    task.await.unwrap();
    assert!(crate::take_one(&client, "jobs").await.is_none(), "nothing left in the queue");
    topology.delete(&client).await.unwrap();
}

#[tokio::test]
async fn poison_message_reaches_the_dead_letter_queue_after_its_attempts() {
    let queue = QueueSpec::new("poison").with_retry_delays_ms(&[50, 50]);
    let (client, topology) = setup(queue.clone()).await;
    let (handler, mut calls) = recorder(|_| Err(HandlerError::Retryable("dependency down".into())));
    let (stop, task) = start(Consumer::new(client.clone(), queue.clone(), handler));
    let message_id = publish(&client, 1).await;

    let dead = wait_for_message(&client, &queue.dead_letter_queue(), Duration::from_secs(10))
        .await
        .expect("the poison message is dead-lettered");
    stop.cancel();
    task.await.unwrap();

    let mut attempts = Vec::new();
    while let Ok((_, context, _)) = calls.try_recv() {
        assert_eq!(context.message_id.as_deref(), Some(message_id.as_str()));
        attempts.push(context.attempt);
    }
    assert_eq!(attempts, [1, 2, 3], "tried max_attempts times, then dead-lettered");
    assert_eq!(attempt(dead.delivery.properties.headers().as_ref()), 3);
    assert_eq!(serde_json::from_slice::<Job>(&dead.delivery.data).unwrap(), Job { number: 1 });
    topology.delete(&client).await.unwrap();
}

#[tokio::test]
async fn permanent_failure_and_undecodable_bodies_are_dead_lettered_at_once() {
    let queue = QueueSpec::new("strict").with_retry_delays_ms(&[50, 50]);
    let (client, topology) = setup(queue.clone()).await;
    let (handler, mut calls) = recorder(|_| Err(HandlerError::Permanent("invalid job".into())));
    let (stop, task) = start(Consumer::new(client.clone(), queue.clone(), handler));
    publish(&client, 2).await;
    let garbage = OutgoingMessage {
        body: b"{not json".to_vec(),
        ..OutgoingMessage::json(EXCHANGE, "test.x", &0).unwrap()
    };
    Publisher::new(client.clone()).publish(garbage).await.unwrap();

    let first = wait_for_message(&client, &queue.dead_letter_queue(), Duration::from_secs(10)).await;
    let second = wait_for_message(&client, &queue.dead_letter_queue(), Duration::from_secs(10)).await;
    assert!(first.is_some() && second.is_some(), "both dead-lettered");
    stop.cancel();
    task.await.unwrap();
    let mut handled = 0;
    while calls.try_recv().is_ok() {
        handled += 1;
    }
    assert_eq!(handled, 1, "the permanent failure ran once; the undecodable body never reached the handler");
    topology.delete(&client).await.unwrap();
}

#[tokio::test]
async fn delayed_retry_arrives_after_its_delay() {
    let delay = Duration::from_millis(700);
    let queue = QueueSpec::new("delayed").with_retry_delays_ms(&[700]);
    let (client, topology) = setup(queue.clone()).await;
    let (handler, mut calls) = recorder(|context| {
        if context.attempt == 1 { Err(HandlerError::Retryable("try later".into())) } else { Ok(()) }
    });
    let (stop, task) = start(Consumer::new(client.clone(), queue.clone(), handler));
    publish(&client, 3).await;

    let (_, first, first_at) = calls.recv().await.unwrap();
    let (_, second, second_at) =
        tokio::time::timeout(Duration::from_secs(10), calls.recv()).await.unwrap().unwrap();
    assert_eq!((first.attempt, second.attempt), (1, 2));
    assert_eq!(second.routing_key, "test.job", "a retry keeps the key it was published with");
    let waited = second_at - first_at;
    assert!(waited >= delay, "retried after {waited:?}, before its {delay:?} delay");
    assert!(waited < delay * 5, "retried after {waited:?}, far later than its {delay:?} delay");
    stop.cancel();
    task.await.unwrap();
    assert!(crate::take_one(&client, &queue.dead_letter_queue()).await.is_none());
    topology.delete(&client).await.unwrap();
}

#[tokio::test]
async fn the_publisher_span_is_the_consumer_parent() {
    use opentelemetry::trace::TraceContextExt;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    struct TraceProbe(mpsc::UnboundedSender<opentelemetry::trace::TraceId>);
    impl MessageHandler for TraceProbe {
        type Message = Job;
        async fn handle(&self, _message: Job, _context: DeliveryContext) -> Result<(), HandlerError> {
            let trace_id = tracing::Span::current().context().span().span_context().trace_id();
            let _ = self.0.send(trace_id);
            Ok(())
        }
    }

    let queue = QueueSpec::new("traced");
    let (client, topology) = setup(queue.clone()).await;
    let (sender, mut received) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let task =
        tokio::spawn(Consumer::new(client.clone(), queue.clone(), TraceProbe(sender)).run(stop.clone()));

    let publish_span = tracing::info_span!("publish");
    let publisher_trace_id = publish_span.context().span().span_context().trace_id();
    assert_ne!(publisher_trace_id, opentelemetry::trace::TraceId::INVALID, "test tracing is installed");
    let publisher = Publisher::new(client.clone());
    async {
        let message = OutgoingMessage::json(EXCHANGE, "test.traced", &Job { number: 4 }).unwrap();
        publisher.publish(message).await.unwrap();
    }
    .instrument(publish_span)
    .await;

    let consumer_trace_id =
        tokio::time::timeout(Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
    assert_eq!(consumer_trace_id, publisher_trace_id);
    stop.cancel();
    task.await.unwrap();
    topology.delete(&client).await.unwrap();
}

#[tokio::test]
async fn publishing_to_a_key_no_queue_is_bound_to_fails() {
    let (client, topology) = setup(QueueSpec::new("bound")).await;
    let message = OutgoingMessage::json(EXCHANGE, "nobody.listens", &Job { number: 5 }).unwrap();
    let error = Publisher::new(client.clone()).publish(message).await.unwrap_err();
    assert!(matches!(error, PublishError::Unroutable { .. }), "{error}");
    topology.delete(&client).await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_handlers_finish_and_ack() {
    struct Slow(Arc<AtomicU32>, Arc<Mutex<()>>);
    impl MessageHandler for Slow {
        type Message = Job;
        async fn handle(&self, _message: Job, _context: DeliveryContext) -> Result<(), HandlerError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let _held = self.1.lock().await;
            Ok(())
        }
    }

    let queue = QueueSpec::new("draining");
    let (client, topology) = setup(queue.clone()).await;
    let started = Arc::new(AtomicU32::new(0));
    let gate = Arc::new(Mutex::new(()));
    let held = gate.clone().lock_owned().await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        Consumer::new(client.clone(), queue.clone(), Slow(started.clone(), gate))
            .with_prefetch(1)
            .run(stop.clone()),
    );
    publish(&client, 6).await;
    wait_for("the handler to start", Duration::from_secs(10), || async {
        started.load(Ordering::SeqCst) == 1
    })
    .await;

    stop.cancel();
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    assert!(
        crate::take_one(&client, "draining").await.is_none(),
        "the in-flight message was acked, not requeued"
    );
    topology.delete(&client).await.unwrap();
}

/// Applies whole batches and fails the job numbered 13 permanently.
struct Batcher {
    sizes: mpsc::UnboundedSender<Vec<u32>>,
}

impl MessageHandler for Batcher {
    type Message = Job;

    async fn handle(&self, message: Job, context: DeliveryContext) -> Result<(), HandlerError> {
        self.handle_batch(vec![(message, context)]).await.remove(0)
    }

    async fn handle_batch(&self, batch: Vec<(Job, DeliveryContext)>) -> Vec<Result<(), HandlerError>> {
        let _ = self.sizes.send(batch.iter().map(|(job, _)| job.number).collect());
        batch
            .iter()
            .map(
                |(job, _)| {
                    if job.number == 13 { Err(HandlerError::Permanent("unlucky".into())) } else { Ok(()) }
                },
            )
            .collect()
    }
}

#[tokio::test]
async fn waiting_deliveries_are_handled_in_batches_and_settled_one_by_one() {
    let queue = QueueSpec::new("batched");
    let (client, topology) = setup(queue.clone()).await;
    for number in 0..40 {
        publish(&client, number).await;
    }
    let (sender, mut sizes) = mpsc::unbounded_channel();
    let consumer = Consumer::new(client.clone(), queue.clone(), Batcher { sizes: sender })
        .with_prefetch(64)
        .with_max_batch(16);
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(stop.clone()));

    let mut seen = Vec::new();
    let mut largest = 0;
    while seen.len() < 40 {
        let batch = tokio::time::timeout(Duration::from_secs(10), sizes.recv()).await.unwrap().unwrap();
        assert!(batch.len() <= 16, "a batch never exceeds max_batch");
        largest = largest.max(batch.len());
        seen.extend(batch);
    }
    assert!(largest > 1, "deliveries already waiting were handed over together");
    seen.sort_unstable();
    assert_eq!(seen, (0..40).collect::<Vec<_>>(), "each message handled once");

    let dead = wait_for_message(&client, &queue.dead_letter_queue(), Duration::from_secs(10))
        .await
        .expect("the one failed message of its batch is dead-lettered");
    assert_eq!(serde_json::from_slice::<Job>(&dead.delivery.data).unwrap(), Job { number: 13 });
    stop.cancel();
    task.await.unwrap();
    assert!(crate::take_one(&client, "batched").await.is_none(), "the rest of the batch was acked");
    assert!(
        crate::take_one(&client, &queue.dead_letter_queue()).await.is_none(),
        "only the failed message was dead-lettered"
    );
    topology.delete(&client).await.unwrap();
}
