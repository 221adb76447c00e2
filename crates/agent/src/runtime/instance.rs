//! One agent's life: declare its queue, register, heartbeat, consume its assignments; on
//! shutdown announce `Draining`, stop taking deliveries, let running tasks finish within the
//! drain timeout, and only then stop heartbeating (the coordinator must not think a draining
//! agent died while it still finishes tasks).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use sutazai_messaging::client::{AmqpClient, AmqpError};
use sutazai_messaging::consumer::Consumer;
use sutazai_messaging::pipeline::{agent_tasks_queue, agent_topology};
use sutazai_messaging::publisher::OutgoingMessage;
use sutazai_types::messages::{
    AGENTS_EXCHANGE, AgentDraining, AgentHeartbeat, AgentMessage, AgentRegistered,
};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::handler::{Agent, AssignmentHandler};

/// Longest wait for the broker to confirm the `Draining` announcement; draining goes on anyway.
const DRAINING_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// A running profile.
#[derive(Debug)]
pub(crate) struct AgentInstance {
    agent: Arc<Agent>,
    amqp: AmqpClient,
    heartbeat_interval: Duration,
    drain_timeout: Duration,
}

impl AgentInstance {
    /// An instance of `agent` on `amqp`.
    pub(crate) fn new(
        agent: Agent,
        amqp: AmqpClient,
        heartbeat_interval: Duration,
        drain_timeout: Duration,
    ) -> Self {
        Self { agent: Arc::new(agent), amqp, heartbeat_interval, drain_timeout }
    }

    /// The agent.
    pub(crate) fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Declares the pipeline's exchanges and queues and this agent's own queue.
    pub(crate) async fn declare(&self) -> Result<(), AmqpError> {
        agent_topology(self.agent.id).declare(&self.amqp).await
    }

    fn agent_message(&self, message: &AgentMessage) -> Option<OutgoingMessage> {
        match OutgoingMessage::json(AGENTS_EXCHANGE, message.routing_key(), message) {
            Ok(outgoing) => Some(outgoing),
            Err(error) => {
                tracing::error!(%error, "could not serialize an agent message");
                None
            }
        }
    }

    /// Runs until `stop` fires, then drains.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let agent = Arc::clone(&self.agent);
        let profile = &agent.profile;
        let registered = AgentMessage::Registered(AgentRegistered {
            agent_id: agent.id,
            name: profile.name.clone(),
            capabilities: profile.capabilities.clone(),
            slots: profile.concurrency,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        });
        let Some(registration) = self.agent_message(&registered) else { return };
        if !agent.publishers.publish_until_confirmed(registration, &stop).await {
            return;
        }
        tracing::info!(
            agent_id = %agent.id,
            profile = %profile.name,
            slots = profile.concurrency,
            "agent registered"
        );

        let heartbeats_stop = CancellationToken::new();
        let heartbeats = tokio::spawn(send_heartbeats(
            Arc::clone(&agent),
            self.heartbeat_interval,
            heartbeats_stop.clone(),
        ));
        // One delivery beyond the slots: a withdrawal must reach an agent whose slots are all busy,
        // or the task it withdraws would run to the end.
        let prefetch = u16::try_from(profile.concurrency.saturating_add(1)).unwrap_or(u16::MAX);
        let consumer_stop = CancellationToken::new();
        let consumer = Consumer::new(
            self.amqp.clone(),
            agent_tasks_queue(agent.id),
            AssignmentHandler::new(Arc::clone(&agent)),
        )
        .with_prefetch(prefetch)
        .with_drain_timeout(self.drain_timeout);
        let consuming = tokio::spawn(consumer.run(consumer_stop.clone()));

        stop.cancelled().await;
        let running = agent.running.load(Ordering::SeqCst);
        tracing::info!(agent_id = %agent.id, running, "agent draining");
        let draining = AgentMessage::Draining(AgentDraining { agent_id: agent.id });
        if let Some(message) = self.agent_message(&draining) {
            match tokio::time::timeout(DRAINING_CONFIRM_TIMEOUT, agent.publishers.publish(message)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "could not announce draining"),
                Err(_) => tracing::warn!("announcing draining was not confirmed in time"),
            }
        }
        consumer_stop.cancel();
        if let Err(error) = consuming.await {
            tracing::error!(%error, "the consumer task failed");
        }
        heartbeats_stop.cancel();
        if let Err(error) = heartbeats.await {
            tracing::error!(%error, "the heartbeat task failed");
        }
        tracing::info!(agent_id = %agent.id, profile = %agent.profile.name, "agent stopped");
    }
}

async fn send_heartbeats(agent: Arc<Agent>, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        let heartbeat = AgentMessage::Heartbeat(AgentHeartbeat {
            agent_id: agent.id,
            running: agent.running.load(Ordering::SeqCst),
            slots: agent.profile.concurrency,
            sent_at: Utc::now(),
        });
        let Ok(message) = OutgoingMessage::json(AGENTS_EXCHANGE, heartbeat.routing_key(), &heartbeat) else {
            continue;
        };
        // A heartbeat is worth nothing late: one that cannot be confirmed within the interval is
        // dropped, and the next one carries the news.
        match tokio::time::timeout(interval, agent.publishers.publish(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, agent_id = %agent.id, "heartbeat not published"),
            Err(_) => tracing::warn!(agent_id = %agent.id, "heartbeat not confirmed within the interval"),
        }
    }
}
