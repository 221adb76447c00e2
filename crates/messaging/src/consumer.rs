//! The one consumer loop every service uses.
//!
//! - Prefetch bounds the unacknowledged deliveries held at once, and also how many are handled
//!   concurrently, so a slow handler applies back-pressure instead of buffering the queue in memory.
//! - Acks are manual and sent only after the handler returned: a consumer that dies before acking
//!   leaves the message to the broker, which redelivers it to another consumer.
//! - A retryable failure republishes the message (same id, attempt + 1) to the queue's delay tier,
//!   then acks the original; once the attempts are spent, or on a permanent failure or an
//!   undecodable body, the message is nacked without requeue and lands in the dead-letter queue.
//! - With [`Consumer::with_max_batch`], deliveries that are already waiting are handed to
//!   [`MessageHandler::handle_batch`] together (up to the batch size), so a handler can apply many
//!   messages in one database transaction; each delivery is still settled on its own outcome.
//! - The handler runs inside a span whose parent is the publisher's trace context.
//! - On shutdown the loop stops taking deliveries, lets in-flight handlers finish and ack, then
//!   closes its channel. A lost connection is re-established with backoff.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::client::{AmqpClient, AmqpError};
use crate::headers::{self, FieldTableExtractor};
use crate::publisher::{OutgoingMessage, Publisher};
use crate::topology::QueueSpec;

/// How a handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Another attempt may succeed (a dependency was down); retried after the tier's delay.
    #[error("retryable: {0}")]
    Retryable(String),
    /// No attempt can succeed (invalid content); dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Facts about the delivery being handled.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    /// The publisher's message id, for deduplication.
    pub message_id: Option<String>,
    /// 1-based attempt, counted across delayed retries.
    pub attempt: u32,
    /// The broker delivered this message before (a consumer died or nacked with requeue).
    pub redelivered: bool,
    /// The routing key it was published with.
    pub routing_key: String,
}

/// Handles the messages of one queue.
pub trait MessageHandler: Send + Sync + 'static {
    /// The decoded message body.
    type Message: DeserializeOwned + Send + 'static;

    /// Handles one message; `Ok` acks it.
    fn handle(
        &self,
        message: Self::Message,
        context: DeliveryContext,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Handles deliveries that arrived together; returns one outcome per message, in order.
    /// The default handles them concurrently, one by one; override it to apply a batch at once
    /// (say, in one transaction). Only called with more than one message when the consumer was
    /// built [`Consumer::with_max_batch`].
    fn handle_batch(
        &self,
        batch: Vec<(Self::Message, DeliveryContext)>,
    ) -> impl Future<Output = Vec<Result<(), HandlerError>>> + Send {
        futures_util::future::join_all(
            batch.into_iter().map(|(message, context)| self.handle(message, context)),
        )
    }
}

/// A consumer of one queue.
#[derive(Debug)]
pub struct Consumer<H> {
    client: AmqpClient,
    queue: QueueSpec,
    handler: Arc<H>,
    retry_publisher: Arc<Publisher>,
    prefetch: u16,
    max_batch: usize,
    drain_timeout: Duration,
}

/// How long in-flight handlers may run on after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Delay before consuming again after the connection or channel failed.
const RECONSUME_DELAY: Duration = Duration::from_secs(1);

impl<H: MessageHandler> Consumer<H> {
    /// A consumer of `queue` (declared beforehand through its topology) with the client's
    /// configured prefetch.
    pub fn new(client: AmqpClient, queue: QueueSpec, handler: H) -> Self {
        let prefetch = client.settings().prefetch;
        let retry_publisher = Arc::new(Publisher::new(client.clone()));
        Self {
            client,
            queue,
            handler: Arc::new(handler),
            retry_publisher,
            prefetch,
            max_batch: 1,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }

    /// Hands up to `max_batch` deliveries that are already waiting to one
    /// [`MessageHandler::handle_batch`] call (never waits to fill a batch). The prefetch bounds
    /// the deliveries in flight across batches.
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Overrides the prefetch (for example 1 for long tasks, so one worker does not hoard them).
    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// Overrides how long in-flight handlers may finish after shutdown starts.
    pub fn with_drain_timeout(mut self, drain_timeout: Duration) -> Self {
        self.drain_timeout = drain_timeout;
        self
    }

    /// Consumes until `shutdown` fires, re-consuming after connection failures.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown).await {
                Ok(()) => break,
                Err(AmqpError::ShuttingDown) => break,
                Err(error) => {
                    tracing::warn!(queue = %self.queue.name, %error, "consumer lost its channel, resuming");
                    tokio::select! {
                        () = tokio::time::sleep(RECONSUME_DELAY) => {},
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
        tracing::info!(queue = %self.queue.name, "consumer stopped");
    }

    async fn consume(&self, shutdown: &CancellationToken) -> Result<(), AmqpError> {
        let channel = self.client.channel().await?;
        channel.basic_qos(self.prefetch, BasicQosOptions::default()).await?;
        let queue_name = self.client.name(&self.queue.name);
        let mut deliveries = channel
            .basic_consume(
                queue_name.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer_tag = deliveries.tag();
        // Each task handles one batch and returns its size, so `held` counts unsettled deliveries.
        let mut in_flight: JoinSet<usize> = JoinSet::new();
        let mut held = 0_usize;
        let capacity = usize::from(self.prefetch);
        let stream_result = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    match joined {
                        Ok(settled) => held = held.saturating_sub(settled),
                        Err(error) => {
                            tracing::error!(%error, "message task failed");
                            held = in_flight.len();
                        }
                    }
                }
                next = deliveries.next(), if held < capacity => match next {
                    Some(Ok(delivery)) => {
                        let mut batch = vec![delivery];
                        let mut broken = None;
                        // Take what is already buffered, without waiting for more.
                        while batch.len() < self.max_batch && held + batch.len() < capacity {
                            match deliveries.next().now_or_never() {
                                Some(Some(Ok(delivery))) => batch.push(delivery),
                                Some(Some(Err(error))) => {
                                    broken = Some(AmqpError::Broker(error));
                                    break;
                                }
                                Some(None) => {
                                    broken = Some(AmqpError::ConsumerEnded);
                                    break;
                                }
                                None => break,
                            }
                        }
                        held += batch.len();
                        in_flight.spawn(handle_deliveries(
                            batch,
                            self.queue.clone(),
                            Arc::clone(&self.handler),
                            Arc::clone(&self.retry_publisher),
                        ));
                        if let Some(error) = broken {
                            break Err(error);
                        }
                    }
                    Some(Err(error)) => break Err(AmqpError::Broker(error)),
                    None => break Err(AmqpError::ConsumerEnded),
                },
            }
        };
        if let Err(error) = stream_result {
            // The stream broke: the broker hands the unacked messages back. Waiting for their
            // handlers would leave the queue unread (cancellations included) for up to the drain
            // timeout, and aborting them would throw away work in progress; they run on
            // detached (their acks go to the old channel or fail), and the caller consumes again
            // at once.
            in_flight.detach_all();
            return Err(error);
        }
        // Shutdown: stop new deliveries, then let the handlers in flight finish and ack.
        if let Err(error) = channel.basic_cancel(consumer_tag, BasicCancelOptions::default()).await {
            tracing::debug!(%error, "cancel consumer");
        }
        // Handlers get a bounded time to finish; the rest are dropped unacked, and the broker
        // redelivers their messages to another consumer.
        let drain = async {
            while let Some(joined) = in_flight.join_next().await {
                if let Err(error) = joined {
                    tracing::error!(%error, "message task failed");
                }
            }
        };
        if tokio::time::timeout(self.drain_timeout, drain).await.is_err() {
            tracing::warn!(queue = %self.queue.name, "handlers still running after the drain timeout; abandoning them");
        }
        let _ = channel.close(200, "consumer stopped".into()).await;
        Ok(())
    }
}

fn delivery_context(delivery: &Delivery) -> DeliveryContext {
    let properties_headers = delivery.properties.headers().as_ref();
    DeliveryContext {
        message_id: delivery.properties.message_id().as_ref().map(|id| id.as_str().to_owned()),
        attempt: headers::attempt(properties_headers),
        redelivered: delivery.redelivered,
        routing_key: headers::original_routing_key(properties_headers)
            .unwrap_or_else(|| delivery.routing_key.as_str().to_owned()),
    }
}

/// Decodes, handles and settles one batch; returns how many deliveries it settled.
async fn handle_deliveries<H: MessageHandler>(
    batch: Vec<Delivery>,
    queue: QueueSpec,
    handler: Arc<H>,
    retry_publisher: Arc<Publisher>,
) -> usize {
    let size = batch.len();
    let contexts: Vec<DeliveryContext> = batch.iter().map(delivery_context).collect();
    let span = match contexts.as_slice() {
        [context] => tracing::info_span!(
            "amqp.consume",
            queue = %queue.name,
            routing_key = %context.routing_key,
            message_id = context.message_id.as_deref().unwrap_or(""),
            attempt = context.attempt,
        ),
        _ => tracing::info_span!("amqp.consume", queue = %queue.name, batch = size),
    };
    // A batch joins the trace of its first message.
    if let Some(table) = batch.first().and_then(|delivery| delivery.properties.headers().as_ref()) {
        sutazai_kit::telemetry::set_remote_parent(&span, &FieldTableExtractor(table));
    }
    async move {
        let mut outcomes: Vec<Option<Result<(), HandlerError>>> = vec![None; size];
        let mut decoded = Vec::with_capacity(size);
        let mut positions = Vec::with_capacity(size);
        for (position, (delivery, context)) in batch.iter().zip(&contexts).enumerate() {
            match serde_json::from_slice::<H::Message>(&delivery.data) {
                Ok(message) => {
                    decoded.push((message, context.clone()));
                    positions.push(position);
                }
                Err(error) => {
                    outcomes[position] =
                        Some(Err(HandlerError::Permanent(format!("undecodable message: {error}"))))
                }
            }
        }
        if !decoded.is_empty() {
            let count = decoded.len();
            let handled = if count == 1 {
                let (message, context) = decoded.swap_remove(0);
                AssertUnwindSafe(async { vec![handler.handle(message, context).await] }).catch_unwind().await
            } else {
                AssertUnwindSafe(handler.handle_batch(decoded)).catch_unwind().await
            };
            let mut results = handled
                .unwrap_or_else(|_| vec![Err(HandlerError::Retryable("handler panicked".to_owned())); count]);
            // A handler that answered for the wrong number of messages has them all retried.
            if results.len() != count {
                tracing::error!(
                    expected = count,
                    got = results.len(),
                    "handle_batch returned a wrong number of outcomes"
                );
                results =
                    vec![Err(HandlerError::Retryable("handler lost track of its batch".to_owned())); count];
            }
            for (position, result) in positions.into_iter().zip(results) {
                outcomes[position] = Some(result);
            }
        }
        let settling = batch.into_iter().zip(contexts).zip(outcomes).map(|((delivery, context), outcome)| {
            let queue = &queue;
            let retry_publisher = &retry_publisher;
            async move {
                let outcome =
                    outcome.unwrap_or_else(|| Err(HandlerError::Retryable("not handled".to_owned())));
                settle(delivery, queue, &context, outcome, retry_publisher).await;
            }
        });
        futures_util::future::join_all(settling).await;
    }
    .instrument(span)
    .await;
    size
}

async fn settle(
    delivery: Delivery,
    queue: &QueueSpec,
    context: &DeliveryContext,
    outcome: Result<(), HandlerError>,
    retry_publisher: &Publisher,
) {
    let queue_label = queue.name.clone();
    let result = match outcome {
        Ok(()) => {
            metrics::counter!("amqp_consumed_total", "queue" => queue_label, "outcome" => "ok").increment(1);
            delivery.acker.ack(BasicAckOptions::default()).await
        }
        Err(HandlerError::Retryable(reason)) if context.attempt < queue.max_attempts() => {
            let next_attempt = context.attempt + 1;
            tracing::warn!(%reason, next_attempt, "handler failed, retrying after delay");
            let retry = OutgoingMessage {
                exchange: String::new(),
                routing_key: retry_publisher_queue_name(retry_publisher, queue, next_attempt),
                body: delivery.data.clone(),
                message_id: context.message_id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
                priority: *delivery.properties.priority(),
                headers: delivery.properties.headers().clone().unwrap_or_default(),
            }
            .with_attempt(next_attempt)
            .with_original_routing_key(&context.routing_key);
            match retry_publisher.publish(retry).await {
                Ok(()) => {
                    metrics::counter!("amqp_consumed_total", "queue" => queue_label, "outcome" => "retried")
                        .increment(1);
                    delivery.acker.ack(BasicAckOptions::default()).await
                }
                Err(error) => {
                    // Not lost: requeued as is, to be tried again now rather than after the delay.
                    tracing::error!(%error, "could not schedule retry, requeueing");
                    delivery
                        .acker
                        .nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() })
                        .await
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, attempt = context.attempt, "message dead-lettered");
            metrics::counter!("amqp_consumed_total", "queue" => queue_label, "outcome" => "dead_lettered")
                .increment(1);
            delivery.acker.nack(BasicNackOptions { requeue: false, ..BasicNackOptions::default() }).await
        }
    };
    if let Err(error) = result {
        // The channel is gone; the broker redelivers the message to the next consumer.
        tracing::warn!(%error, "could not settle delivery");
    }
}

fn retry_publisher_queue_name(publisher: &Publisher, queue: &QueueSpec, next_attempt: u32) -> String {
    // Published through the default exchange, whose routing key is the full (prefixed) queue name.
    publisher.client().name(&queue.retry_queue(next_attempt))
}
