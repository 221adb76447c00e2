//! Messaging against the real RabbitMQ and Postgres: one binary, one module per concern.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod consumer;
mod outbox;

use std::time::Duration;

use lapin::options::BasicGetOptions;
use sutazai_messaging::{AmqpClient, QueueSpec, Topology};
use sutazai_testkit::TestAmqp;
use tokio_util::sync::CancellationToken;

/// Exchange the tests publish to.
pub(crate) const EXCHANGE: &str = "sutazai.test";

/// A client on a fresh name prefix, and a topology with one queue bound to `test.#`.
pub(crate) async fn setup(queue: QueueSpec) -> (AmqpClient, Topology) {
    sutazai_testkit::init_tracing();
    let client = AmqpClient::connect(TestAmqp::new().settings(), CancellationToken::new()).await.unwrap();
    let topology = Topology::default().exchange(EXCHANGE).queue(queue.bind(EXCHANGE, "test.#"));
    topology.declare(&client).await.unwrap();
    (client, topology)
}

/// Takes one message from a queue (by logical name), if any is there.
pub(crate) async fn take_one(client: &AmqpClient, queue: &str) -> Option<lapin::message::BasicGetMessage> {
    let channel = client.channel().await.unwrap();
    let options = BasicGetOptions { no_ack: true };
    let message = channel.basic_get(client.name(queue).into(), options).await.unwrap();
    let _ = channel.close(200, "done".into()).await;
    message
}

/// Waits up to `timeout` for a message in `queue`.
pub(crate) async fn wait_for_message(
    client: &AmqpClient,
    queue: &str,
    timeout: Duration,
) -> Option<lapin::message::BasicGetMessage> {
    let started = std::time::Instant::now();
    while started.elapsed() < timeout {
        if let Some(message) = take_one(client, queue).await {
            return Some(message);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}
