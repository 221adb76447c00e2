//! Exchanges and queues, declared idempotently by every service that uses them (declaring an
//! existing object with the same arguments is a no-op, so services can start in any order).
//!
//! Each work queue `Q` comes with:
//! - `Q.dlx` (fanout exchange) and `Q.dead` (queue): where permanent failures and exhausted retries
//!   go, so nothing is lost silently;
//! - `Q.retry.N` (one queue per delay tier): a message waits there for its tier's TTL, then the
//!   broker dead-letters it back to `Q`. RabbitMQ 3.10 has no delayed-message plugin, and a single
//!   retry queue with per-message TTLs would let a long delay at its head hold back short ones,
//!   hence one queue per tier.
//!
//! All names get the client's configured prefix (tests isolate themselves that way).

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::client::{AmqpClient, AmqpError};

/// A durable topic exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    /// Logical name (before the prefix), e.g. `sutazai.tasks`.
    pub name: String,
}

/// A durable work queue with its dead-letter and retry companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Logical name, `<consumer>.<purpose>`.
    pub name: String,
    /// `(exchange, routing key pattern)` pairs.
    pub bindings: Vec<(String, String)>,
    /// Enables message priorities 0..=max (classic queues only).
    pub max_priority: Option<u8>,
    /// Delay before attempt N+1 after a retryable failure of attempt N; its length is the number
    /// of retries, so a message is tried at most `1 + retry_delays_ms.len()` times.
    pub retry_delays_ms: Vec<u64>,
    /// The broker deletes the queue after it has had no consumer for this long (`x-expires`);
    /// for per-instance queues such as an agent's.
    pub expires_ms: Option<u64>,
}

impl QueueSpec {
    /// A queue with no bindings, no priorities and no retries.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            bindings: Vec::new(),
            max_priority: None,
            retry_delays_ms: Vec::new(),
            expires_ms: None,
        }
    }

    /// Binds the queue to `exchange` for `routing_key` (topic pattern).
    pub fn bind(mut self, exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        self.bindings.push((exchange.into(), routing_key.into()));
        self
    }

    /// Enables priorities up to `max_priority`.
    pub fn with_max_priority(mut self, max_priority: u8) -> Self {
        self.max_priority = Some(max_priority);
        self
    }

    /// Sets the delay before each retry.
    pub fn with_retry_delays_ms(mut self, delays_ms: &[u64]) -> Self {
        self.retry_delays_ms = delays_ms.to_vec();
        self
    }

    /// Lets the broker delete the queue once unused for `expires_ms`.
    pub fn with_expires_ms(mut self, expires_ms: u64) -> Self {
        self.expires_ms = Some(expires_ms);
        self
    }

    /// The most deliveries a message gets before it is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        1 + u32::try_from(self.retry_delays_ms.len()).unwrap_or(u32::MAX - 1)
    }

    /// Logical name of the dead-letter exchange.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.name)
    }

    /// Logical name of the queue collecting dead letters.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.name)
    }

    /// Logical name of the retry queue that delays a message before `attempt` (2-based).
    pub fn retry_queue(&self, next_attempt: u32) -> String {
        format!("{}.retry.{}", self.name, next_attempt - 1)
    }
}

/// Everything one service declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Exchanges to declare.
    pub exchanges: Vec<ExchangeSpec>,
    /// Queues to declare, with their companions.
    pub queues: Vec<QueueSpec>,
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }
}

impl Topology {
    /// Adds a topic exchange.
    pub fn exchange(mut self, name: impl Into<String>) -> Self {
        self.exchanges.push(ExchangeSpec { name: name.into() });
        self
    }

    /// Adds a queue.
    pub fn queue(mut self, queue: QueueSpec) -> Self {
        self.queues.push(queue);
        self
    }

    /// Declares every object; safe to call again with the same topology.
    pub async fn declare(&self, client: &AmqpClient) -> Result<(), AmqpError> {
        let channel = client.channel().await?;
        let durable_exchange = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        for exchange in &self.exchanges {
            channel
                .exchange_declare(
                    client.name(&exchange.name).into(),
                    ExchangeKind::Topic,
                    durable_exchange,
                    FieldTable::default(),
                )
                .await?;
        }
        for queue in &self.queues {
            declare_queue(&channel, client, queue).await?;
        }
        channel.close(200, "topology declared".into()).await?;
        Ok(())
    }

    /// Deletes every object (test cleanup; never called by services).
    pub async fn delete(&self, client: &AmqpClient) -> Result<(), AmqpError> {
        let channel = client.channel().await?;
        for queue in &self.queues {
            let mut names = vec![queue.name.clone(), queue.dead_letter_queue()];
            names.extend((2..=queue.max_attempts()).map(|attempt| queue.retry_queue(attempt)));
            for name in names {
                channel.queue_delete(client.name(&name).into(), QueueDeleteOptions::default()).await?;
            }
            channel
                .exchange_delete(
                    client.name(&queue.dead_letter_exchange()).into(),
                    ExchangeDeleteOptions::default(),
                )
                .await?;
        }
        for exchange in &self.exchanges {
            channel
                .exchange_delete(client.name(&exchange.name).into(), ExchangeDeleteOptions::default())
                .await?;
        }
        channel.close(200, "topology deleted".into()).await?;
        Ok(())
    }
}

async fn declare_queue(channel: &Channel, client: &AmqpClient, queue: &QueueSpec) -> Result<(), AmqpError> {
    let queue_name = client.name(&queue.name);
    let dead_letter_exchange = client.name(&queue.dead_letter_exchange());
    let dead_letter_queue = client.name(&queue.dead_letter_queue());

    let fanout = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(
            dead_letter_exchange.clone().into(),
            ExchangeKind::Fanout,
            fanout,
            FieldTable::default(),
        )
        .await?;
    channel.queue_declare(dead_letter_queue.clone().into(), durable_queue(), FieldTable::default()).await?;
    channel
        .queue_bind(
            dead_letter_queue.into(),
            dead_letter_exchange.clone().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut arguments = vec![("x-dead-letter-exchange", text(&dead_letter_exchange))];
    if let Some(max_priority) = queue.max_priority {
        arguments.push(("x-max-priority", AMQPValue::ShortShortUInt(max_priority)));
    }
    if let Some(expires_ms) = queue.expires_ms {
        arguments.push(("x-expires", AMQPValue::LongLongInt(i64::try_from(expires_ms).unwrap_or(i64::MAX))));
    }
    channel.queue_declare(queue_name.clone().into(), durable_queue(), table(&arguments)).await?;
    for (exchange, routing_key) in &queue.bindings {
        channel
            .queue_bind(
                queue_name.clone().into(),
                client.name(exchange).into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }

    for (index, delay_ms) in queue.retry_delays_ms.iter().enumerate() {
        let next_attempt = u32::try_from(index).unwrap_or(u32::MAX - 2) + 2;
        let ttl = i64::try_from(*delay_ms).unwrap_or(i64::MAX);
        // Expired messages go back to the work queue through the default exchange.
        let retry_arguments = table(&[
            ("x-message-ttl", AMQPValue::LongLongInt(ttl)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text(&queue_name)),
        ]);
        channel
            .queue_declare(
                client.name(&queue.retry_queue(next_attempt)).into(),
                durable_queue(),
                retry_arguments,
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companion_names() {
        let queue = QueueSpec::new("coordinator.ready").with_retry_delays_ms(&[1000, 2000]);
        assert_eq!(queue.max_attempts(), 3);
        assert_eq!(queue.dead_letter_exchange(), "coordinator.ready.dlx");
        assert_eq!(queue.dead_letter_queue(), "coordinator.ready.dead");
        assert_eq!(queue.retry_queue(2), "coordinator.ready.retry.1");
        assert_eq!(queue.retry_queue(3), "coordinator.ready.retry.2");
    }
}
