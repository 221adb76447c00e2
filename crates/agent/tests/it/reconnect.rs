//! A broker connection lost in the middle of a task: the worker reconnects, publishes the task's
//! outcome once, and acknowledges the assignment the broker handed back without running it again.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use sutazai_testkit::{TcpProxy, amqp_url};
use sutazai_types::messages::TaskMessage;

use crate::{Options, spawn_with};

/// `amqp_url()` with its host and port replaced by `address`.
fn url_through(address: SocketAddr) -> (String, SocketAddr) {
    let url = amqp_url();
    let (scheme_and_credentials, rest) = url.rsplit_once('@').unwrap();
    let (host_and_port, vhost) = rest.split_once('/').unwrap();
    let broker: SocketAddr = host_and_port.replace("localhost", "127.0.0.1").parse().unwrap();
    (format!("{scheme_and_credentials}@{address}/{vhost}"), broker)
}

#[tokio::test]
async fn a_lost_connection_mid_task_still_gives_one_outcome_and_one_run() {
    let (_, broker) = url_through(SocketAddr::from(([127, 0, 0, 1], 0)));
    let proxy = TcpProxy::start(broker).await;
    let (through_proxy, _) = url_through(proxy.address);
    let mut worker =
        spawn_with(Options { amqp_url: Some(through_proxy), ..Options::profiles(&["coder"]) }).await;
    worker.ollama.set_latency(Duration::from_millis(1500));
    let assigned = worker.assign("coder", json!({"spec": "survive a cut"})).await;
    worker.observer.started(assigned.task_id).await;

    // The broker sees the worker's connection die and hands the assignment back to the queue.
    proxy.set_down(true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set_down(false).await;

    assert!(matches!(worker.observer.outcome(assigned.task_id).await, TaskMessage::Succeeded(_)));
    let about_the_task = worker
        .observer
        .all(Duration::from_secs(4), |seen| {
            seen.task().is_some_and(|message| {
                message.task_id() == assigned.task_id && !matches!(message, TaskMessage::Assigned(_))
            })
        })
        .await;
    // A publish whose confirm the cut swallowed is published again with the same message id
    // (consumers deduplicate on it): one Started and one Succeeded in effect.
    let mut distinct = Vec::new();
    for kind in ["task.started.v1", "task.succeeded.v1"] {
        let mut ids = worker.observer.message_ids(|seen| {
            seen.task()
                .is_some_and(|message| message.task_id() == assigned.task_id && message.routing_key() == kind)
        });
        ids.sort();
        ids.dedup();
        distinct.push((kind, ids.len()));
    }
    assert_eq!(distinct, [("task.started.v1", 1), ("task.succeeded.v1", 1)], "{about_the_task:?}");
    assert_eq!(worker.chats().len(), 1, "the handed-back assignment was not run again");
    // Stopping closes the worker's channels: an assignment still unacknowledged would be back in
    // the queue now.
    worker.stop().await;
    assert!(worker.take_from_queue("coder").await.is_none(), "the handed-back copy was acknowledged");
    worker.finish().await;
}
