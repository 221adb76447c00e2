//! RabbitMQ for SutazAI services: a reconnecting client, idempotent topology (work queue, dead
//! letters, delayed-retry tiers), a publisher that waits for broker confirms, one consumer loop
//! (prefetch, manual ack, retry with delay, dead-lettering, clean stop), W3C trace context in
//! message headers, and the transactional outbox that publishes rows committed with a state change.
//!
//! Delivery is at least once; consumers make effects exactly once with the inbox
//! ([`outbox::record_once`]) keyed by the message id.

pub mod client;
pub mod consumer;
pub mod headers;
pub mod outbox;
pub mod pipeline;
pub mod publisher;
pub mod topology;

pub use client::{AmqpCheck, AmqpClient, AmqpError};
pub use consumer::{Consumer, DeliveryContext, HandlerError, MessageHandler};
pub use publisher::{OutgoingMessage, PublishError, Publisher};
pub use topology::{ExchangeSpec, QueueSpec, Topology};
