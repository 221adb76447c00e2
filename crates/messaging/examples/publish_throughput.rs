//! Publishes N persistent JSON messages with broker confirms to a fresh durable queue, one confirm
//! at a time and pipelined in batches, and prints messages per second (median of 5 runs) as
//! `name value` lines for bench/run.sh. Needs RabbitMQ on 127.0.0.1:5672.

use std::time::Instant;

use sutazai_kit::config::{AmqpSettings, ConnectionUrl};
use sutazai_messaging::{AmqpClient, OutgoingMessage, Publisher, QueueSpec, Topology};
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 2_000;
const RUNS: usize = 5;
const EXCHANGE: &str = "bench";

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = AmqpSettings {
        url: ConnectionUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
        name_prefix: format!("bench{}.", std::process::id()),
        prefetch: 10,
        reconnect_initial_ms: 100,
        reconnect_max_ms: 1_000,
    };
    let client = AmqpClient::connect(settings, CancellationToken::new()).await?;
    let topology = Topology::default().exchange(EXCHANGE).queue(QueueSpec::new("sink").bind(EXCHANGE, "#"));
    topology.declare(&client).await?;
    let publisher = Publisher::new(client.clone());
    let body = serde_json::json!({"task_id": "0196f0d2-8a8e-7c3e-9d1a-3f1f6f0a9b11", "priority": 5, "payload": {"prompt": "x".repeat(200)}});
    let message = || OutgoingMessage::json(EXCHANGE, "task.ready.v1", &body);

    let mut sequential = Vec::new();
    let mut batched = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for _ in 0..MESSAGES {
            publisher.publish(message()?).await?;
        }
        sequential.push(MESSAGES as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        for _ in 0..MESSAGES / 100 {
            let batch = (0..100).map(|_| message()).collect::<Result<Vec<_>, _>>()?;
            publisher.publish_batch(batch).await?;
        }
        batched.push(MESSAGES as f64 / started.elapsed().as_secs_f64());
    }
    topology.delete(&client).await?;
    println!("rust_sequential_confirm_msgs_per_s {:.0}", median(sequential));
    println!("rust_batched_confirm_msgs_per_s {:.0}", median(batched));
    Ok(())
}
