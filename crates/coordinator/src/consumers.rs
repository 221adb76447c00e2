//! AMQP adapters: `coordinator.tasks` and `coordinator.agents` deliveries become dispatcher
//! events. A handler returns (and the consumer acks) only once the dispatcher has committed the
//! message's effect.
//!
//! Postgres stores no NUL character in text, so the strings an agent announces are stripped of
//! them on decoding; otherwise its registration would fail the dispatcher's step.

use sutazai_messaging::{DeliveryContext, HandlerError, MessageHandler};
use sutazai_types::messages::{AgentMessage, TaskMessage};

use crate::dispatcher::DispatcherHandle;

/// Handles `coordinator.tasks`: ready tasks, withdrawals and attempt outcomes.
#[derive(Debug, Clone)]
pub(crate) struct TaskMessages {
    pub(crate) dispatcher: DispatcherHandle,
}

impl MessageHandler for TaskMessages {
    type Message = TaskMessage;

    async fn handle(&self, message: TaskMessage, context: DeliveryContext) -> Result<(), HandlerError> {
        // Publishers always set a message id (the outbox keeps it across republishing); the
        // fallback still makes one Ready attempt count once.
        let inbox_key = context.message_id.unwrap_or_else(|| {
            format!("{}:{}:{}", message.routing_key(), message.task_id(), attempt_of(&message))
        });
        // The consumer's span continues the producer's trace; the dispatcher assigns outside it.
        let traceparent = sutazai_kit::telemetry::current_traceparent();
        if self.dispatcher.apply_task(message, inbox_key, traceparent).await.is_err() {
            wait_unacked().await;
        }
        Ok(())
    }
}

fn attempt_of(message: &TaskMessage) -> u32 {
    match message {
        TaskMessage::Ready(ready) => ready.attempt,
        TaskMessage::Assigned(assigned) => assigned.attempt,
        TaskMessage::Started(started) => started.attempt,
        TaskMessage::Succeeded(succeeded) => succeeded.attempt,
        TaskMessage::Failed(failed) => failed.attempt,
        TaskMessage::Waiting(waiting) => waiting.attempt,
        TaskMessage::Cancelled(_) => 0,
    }
}

/// Handles `coordinator.agents`: registrations, heartbeats, draining.
#[derive(Debug, Clone)]
pub(crate) struct AgentMessages {
    pub(crate) dispatcher: DispatcherHandle,
}

impl MessageHandler for AgentMessages {
    type Message = AgentMessage;

    async fn handle(&self, mut message: AgentMessage, _context: DeliveryContext) -> Result<(), HandlerError> {
        if strip_nul_characters(&mut message) {
            tracing::warn!(
                routing_key = message.routing_key(),
                "NUL characters removed from an agent message"
            );
        }
        if self.dispatcher.apply_agent(message).await.is_err() {
            wait_unacked().await;
        }
        Ok(())
    }
}

/// Removes NUL characters from the strings an agent supplied; returns whether there were any.
fn strip_nul_characters(message: &mut AgentMessage) -> bool {
    let AgentMessage::Registered(registered) = message else { return false };
    let mut stripped = strip_nul(&mut registered.name) | strip_nul(&mut registered.version);
    for capability in &mut registered.capabilities {
        stripped |= strip_nul(capability);
    }
    stripped
}

fn strip_nul(text: &mut String) -> bool {
    if !text.contains('\0') {
        return false;
    }
    text.retain(|character| character != '\0');
    true
}

/// The dispatcher is gone, so the message cannot be applied, and no handler error fits: the
/// coordinator's queues have no retry tiers, so `Retryable` would dead-letter it. Holding it
/// unacknowledged instead lets the consumer's drain abandon it at shutdown, and the broker
/// redelivers it to the next coordinator.
async fn wait_unacked() {
    tracing::error!("the dispatcher is not running; leaving the message unacknowledged");
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use sutazai_types::AgentId;
    use sutazai_types::messages::AgentRegistered;

    use super::*;

    #[test]
    fn nul_characters_of_a_registration_are_removed() {
        let mut message = AgentMessage::Registered(AgentRegistered {
            agent_id: AgentId::new(),
            name: "co\0der".to_owned(),
            capabilities: vec!["py\0thon".to_owned(), "llm".to_owned()],
            slots: 1,
            version: "1\0".to_owned(),
        });
        assert!(strip_nul_characters(&mut message));
        let AgentMessage::Registered(registered) = &message else { unreachable!() };
        assert_eq!((registered.name.as_str(), registered.version.as_str()), ("coder", "1"));
        assert_eq!(registered.capabilities, ["python", "llm"]);
        assert!(!strip_nul_characters(&mut message));
    }
}
