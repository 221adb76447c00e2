//! Publishing with broker confirms. A publish returns only after RabbitMQ has taken responsibility
//! for the message (persisted it to a durable queue); a nack or an unroutable message is an
//! error, so a message published to a key no queue is bound to fails loudly instead of vanishing.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::client::{AmqpClient, AmqpError};
use crate::headers::{FieldTableInjector, set_attempt};

/// AMQP delivery mode for messages that survive a broker restart.
const PERSISTENT: u8 = 2;

/// Why a publish did not succeed. The message may or may not have reached the broker unless the
/// error is `Nacked` or `Unroutable`; callers that must not lose it retry (consumers deduplicate).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The connection or channel failed.
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    /// The broker refused the message.
    #[error("broker refused message {message_id}")]
    Nacked {
        /// The refused message.
        message_id: String,
    },
    /// No queue is bound for the exchange and routing key.
    #[error("no queue bound for exchange `{exchange}` routing key `{routing_key}`")]
    Unroutable {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        routing_key: String,
    },
    /// The body could not be serialized.
    #[error("serialize message: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl From<lapin::Error> for PublishError {
    fn from(error: lapin::Error) -> Self {
        Self::Amqp(AmqpError::Broker(error))
    }
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// Logical exchange name (`""` for the default exchange).
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// JSON body.
    pub body: Vec<u8>,
    /// Stable id; consumers deduplicate on it, so a republished message keeps its id.
    pub message_id: String,
    /// Message priority for priority queues.
    pub priority: Option<u8>,
    /// Extra headers (trace context is added from the current span when absent).
    pub headers: FieldTable,
}

impl OutgoingMessage {
    /// A JSON message with a fresh id.
    pub fn json<T: Serialize>(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        body: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            body: serde_json::to_vec(body)?,
            message_id: uuid::Uuid::now_v7().to_string(),
            priority: None,
            headers: FieldTable::default(),
        })
    }

    /// Keeps a given message id (republishing, outbox rows).
    pub fn with_message_id(mut self, message_id: impl Into<String>) -> Self {
        self.message_id = message_id.into();
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Records the routing key the message was first published with (kept across retries).
    pub fn with_original_routing_key(mut self, routing_key: &str) -> Self {
        if !self.headers.inner().contains_key(crate::headers::ORIGINAL_ROUTING_KEY_HEADER) {
            self.headers.insert(
                ShortString::from(crate::headers::ORIGINAL_ROUTING_KEY_HEADER),
                lapin::types::AMQPValue::LongString(lapin::types::LongString::from(routing_key)),
            );
        }
        self
    }

    /// Sets the attempt header.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        set_attempt(&mut self.headers, attempt);
        self
    }

    fn properties(&self) -> BasicProperties {
        let mut headers = self.headers.clone();
        if !headers.inner().contains_key("traceparent") {
            sutazai_kit::telemetry::inject_current(&mut FieldTableInjector(&mut headers));
        }
        let timestamp = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
        let mut properties = BasicProperties::default()
            .with_content_type(ShortString::from("application/json"))
            .with_delivery_mode(PERSISTENT)
            .with_message_id(ShortString::from(self.message_id.as_str()))
            .with_timestamp(timestamp)
            .with_headers(headers);
        if let Some(priority) = self.priority {
            properties = properties.with_priority(priority);
        }
        properties
    }
}

/// Publishes on a dedicated confirm-mode channel, reopened after a failure.
#[derive(Debug)]
pub struct Publisher {
    client: AmqpClient,
    channel: Mutex<Option<Channel>>,
}

impl Publisher {
    /// A publisher on `client`'s connection.
    pub fn new(client: AmqpClient) -> Self {
        Self { client, channel: Mutex::new(None) }
    }

    /// The client this publisher uses.
    pub fn client(&self) -> &AmqpClient {
        &self.client
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish(&self, message: OutgoingMessage) -> Result<(), PublishError> {
        self.publish_batch(vec![message]).await
    }

    /// Publishes messages back to back, then waits for every confirm (pipelined: one round trip
    /// for the batch instead of one per message). Fails on the first refused message; earlier
    /// ones may have been accepted.
    pub async fn publish_batch(&self, messages: Vec<OutgoingMessage>) -> Result<(), PublishError> {
        for outcome in self.publish_each(messages).await? {
            outcome?;
        }
        Ok(())
    }

    /// Like [`Publisher::publish_batch`], but reports each message's outcome, so a caller can
    /// record which were accepted when one was refused. `Err` only when the channel failed, in
    /// which case nothing is known about any of them.
    pub async fn publish_each(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Result<(), PublishError>>, PublishError> {
        let mut guard = self.channel.lock().await;
        let channel = match guard.as_ref().filter(|channel| channel.status().connected()) {
            Some(channel) => channel.clone(),
            None => {
                let channel = self.client.channel().await?;
                channel.confirm_select(ConfirmSelectOptions::default()).await?;
                *guard = Some(channel.clone());
                channel
            }
        };
        let outcome = publish_on(&self.client, &channel, &messages).await;
        if matches!(outcome, Err(PublishError::Amqp(_))) {
            // The channel may be broken; the next call opens a fresh one.
            *guard = None;
        }
        outcome
    }
}

async fn publish_on(
    client: &AmqpClient,
    channel: &Channel,
    messages: &[OutgoingMessage],
) -> Result<Vec<Result<(), PublishError>>, PublishError> {
    let mut pending: Vec<(&OutgoingMessage, PublisherConfirm)> = Vec::with_capacity(messages.len());
    for message in messages {
        // `mandatory` makes the broker return a message no queue would receive.
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirm = channel
            .basic_publish(
                client.name(&message.exchange).into(),
                message.routing_key.as_str().into(),
                options,
                &message.body,
                message.properties(),
            )
            .await?;
        pending.push((message, confirm));
    }
    let mut outcomes = Vec::with_capacity(pending.len());
    for (message, confirm) in pending {
        let outcome = match confirm.await? {
            Confirmation::Ack(None) => {
                metrics::counter!("amqp_published_total", "exchange" => message.exchange.clone())
                    .increment(1);
                Ok(())
            }
            Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable {
                exchange: message.exchange.clone(),
                routing_key: message.routing_key.clone(),
            }),
            // Publisher channels are always in confirm mode, so `NotRequested` means the broker did
            // not vouch for the message: report it like a refusal rather than assume success.
            Confirmation::Nack(_) | Confirmation::NotRequested => {
                Err(PublishError::Nacked { message_id: message.message_id.clone() })
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}
