//! Publishing what an agent has to say, with broker confirms. Task outcomes are published until
//! the broker confirms them — the assignment is acknowledged only after that, so giving up would
//! mean acknowledging an outcome nobody heard, and failing the handler would dead-letter the
//! assignment (the agent's queue has no retry tiers). The one way out without a confirm is the
//! attempt's withdrawal, or the consumer abandoning the handler at its drain deadline, which
//! leaves the assignment unacknowledged for the broker to hand back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sutazai_messaging::client::AmqpClient;
use sutazai_messaging::publisher::{OutgoingMessage, PublishError, Publisher};
use tokio_util::sync::CancellationToken;

/// Most confirm channels a worker opens.
const MAX_PUBLISHERS: usize = 8;
/// First pause after a failed publish; doubled up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between publish attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Confirming publishers shared by a worker's agents. A publisher waits for its confirms while
/// holding its channel, so one would serialize every agent's round trips; several let concurrent
/// tasks publish side by side (each task's own messages stay ordered: it publishes the next one
/// only after the previous one is confirmed).
#[derive(Debug)]
pub(crate) struct Publishers {
    publishers: Vec<Publisher>,
    next: AtomicUsize,
}

impl Publishers {
    /// Enough publishers for `concurrent_tasks` tasks, at most [`MAX_PUBLISHERS`].
    pub(crate) fn new(client: &AmqpClient, concurrent_tasks: usize) -> Self {
        let count = concurrent_tasks.clamp(1, MAX_PUBLISHERS);
        let publishers = (0..count).map(|_| Publisher::new(client.clone())).collect();
        Self { publishers, next: AtomicUsize::new(0) }
    }

    fn pick(&self) -> Option<&Publisher> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.publishers.len().max(1);
        self.publishers.get(index)
    }

    /// Publishes once and waits for the confirm.
    pub(crate) async fn publish(&self, message: OutgoingMessage) -> Result<(), PublishError> {
        match self.pick() {
            Some(publisher) => publisher.publish(message).await,
            None => Err(PublishError::Nacked { message_id: message.message_id }),
        }
    }

    /// Publishes `message` until the broker confirms it (true), or until `withdrawn` fires
    /// (false). The message keeps its id across attempts, so a consumer that got an earlier copy
    /// whose confirm was lost deduplicates the next.
    pub(crate) async fn publish_until_confirmed(
        &self,
        message: OutgoingMessage,
        withdrawn: &CancellationToken,
    ) -> bool {
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            let outcome = tokio::select! {
                outcome = self.publish(message.clone()) => outcome,
                () = withdrawn.cancelled() => return false,
            };
            match outcome {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(
                        %error,
                        routing_key = %message.routing_key,
                        retry_in_ms = delay.as_millis() as u64,
                        "publish not confirmed; retrying"
                    );
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = withdrawn.cancelled() => return false,
            }
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }
}
