//! Wake-ups for requests waiting for capacity. A release on this replica notifies its waiters
//! directly; a release on another replica arrives through Redis pub/sub (published by the release
//! script only while someone waits). Waiters also poll with a bounded backoff, so an expiry
//! (which announces nothing) or a message lost during a reconnect costs a delay, never a hang.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::resource::{Catalog, ResourceKey};

/// First delay before reconnecting the release subscription.
const RECONNECT_INITIAL: Duration = Duration::from_millis(100);
/// Longest delay between reconnects.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// One `Notify` per pool, fixed at start like the pools themselves.
#[derive(Debug, Default)]
pub struct Wakeups {
    notifies: HashMap<ResourceKey, Arc<Notify>>,
}

impl Wakeups {
    /// A `Notify` for every pool of `catalog`.
    pub fn new(catalog: &Catalog) -> Self {
        let notifies =
            catalog.pools().map(|(resource, _)| (resource.clone(), Arc::new(Notify::new()))).collect();
        Self { notifies }
    }

    /// The `Notify` of `resource`'s waiters.
    pub fn watcher(&self, resource: &ResourceKey) -> Option<Arc<Notify>> {
        self.notifies.get(resource).cloned()
    }

    /// Wakes every request currently waiting for `resource`.
    pub fn notify(&self, resource: &ResourceKey) {
        if let Some(notify) = self.notifies.get(resource) {
            notify.notify_waiters();
        }
    }
}

/// Listens on `channel` (releases on any replica) until `stop`, reconnecting with backoff.
pub async fn listen_for_releases(
    client: redis::Client,
    channel: String,
    wakeups: Arc<Wakeups>,
    stop: CancellationToken,
) {
    let mut delay = RECONNECT_INITIAL;
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            tracing::debug!(%channel, "listening for lease releases");
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(text) = message.get_payload::<String>() else { continue };
                if let Ok(resource) = ResourceKey::parse(&text) {
                    wakeups.notify(&resource);
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::select! {
            () = stop.cancelled() => return,
            outcome = session => match outcome {
                // The server closed the connection: reconnect at once.
                Ok(()) => delay = RECONNECT_INITIAL,
                Err(error) => tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "release subscription failed"),
            },
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}
