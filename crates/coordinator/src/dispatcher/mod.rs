//! The dispatcher: one task owns the state and is the only writer of the coordinator's tables.
//! Consumers and RPCs send it events over a channel and wait for its answer; it applies
//! everything that arrived together as one step in one transaction, then answers, so a message
//! is acknowledged only after its effect (and the messages it caused) are committed.
//!
//! Between events it sleeps until the earliest timer (an agent falling silent, a lease running
//! out); with no agents and no events it sleeps for the housekeeping interval.

mod metrics;
mod run;

use sutazai_types::AgentId;
use sutazai_types::messages::{AgentMessage, TaskMessage};
use tokio::sync::{mpsc, oneshot};

pub(crate) use run::Dispatcher;

use crate::domain::agent::{Agent, AgentFilter, AgentPage};
use crate::domain::state::PendingStats;
use crate::domain::strategy::{DispatchStrategy, StoredStrategy};
use crate::error::CoordinatorError;

/// Events the channel buffers before senders wait (back-pressure on the consumers).
const EVENT_BUFFER: usize = 4096;

/// What the dispatcher is asked to do.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message of `coordinator.tasks`; `inbox_key` deduplicates Ready messages, and the
    /// assignment of a Ready task continues the trace of `traceparent`.
    Task {
        message: TaskMessage,
        inbox_key: String,
        traceparent: Option<String>,
        applied: oneshot::Sender<()>,
    },
    /// A message of `coordinator.agents`.
    Agent { message: AgentMessage, applied: oneshot::Sender<()> },
    /// An admin sets the strategy.
    SetStrategy { strategy: DispatchStrategy, updated_by: String, applied: oneshot::Sender<StoredStrategy> },
    /// A read, answered from the state after the step's commit.
    Read(Read),
}

/// Reads of the state.
#[derive(Debug)]
pub(crate) enum Read {
    /// A page of agents.
    Agents { filter: AgentFilter, skip: u32, limit: u32, reply: oneshot::Sender<AgentPage> },
    /// One agent.
    Agent { agent_id: AgentId, reply: oneshot::Sender<Option<Agent>> },
    /// The strategy in force.
    Strategy { reply: oneshot::Sender<StoredStrategy> },
    /// The pending queue's statistics.
    PendingStats { reply: oneshot::Sender<PendingStats> },
}

/// The way into the dispatcher. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct DispatcherHandle {
    sender: mpsc::Sender<Event>,
}

impl DispatcherHandle {
    fn channel() -> (Self, mpsc::Receiver<Event>) {
        let (sender, receiver) = mpsc::channel(EVENT_BUFFER);
        (Self { sender }, receiver)
    }

    /// Whether the dispatcher still runs.
    pub(crate) fn is_running(&self) -> bool {
        !self.sender.is_closed()
    }

    async fn ask<T>(&self, event: impl FnOnce(oneshot::Sender<T>) -> Event) -> Result<T, CoordinatorError> {
        let (reply, answer) = oneshot::channel();
        self.sender.send(event(reply)).await.map_err(|_| CoordinatorError::Unavailable)?;
        answer.await.map_err(|_| CoordinatorError::Unavailable)
    }

    /// Applies a task message; returns once its effect is committed.
    pub(crate) async fn apply_task(
        &self,
        message: TaskMessage,
        inbox_key: String,
        traceparent: Option<String>,
    ) -> Result<(), CoordinatorError> {
        self.ask(|applied| Event::Task { message, inbox_key, traceparent, applied }).await
    }

    /// Applies an agent message; returns once its effect is committed.
    pub(crate) async fn apply_agent(&self, message: AgentMessage) -> Result<(), CoordinatorError> {
        self.ask(|applied| Event::Agent { message, applied }).await
    }

    /// Sets the strategy (validated by the caller); returns it as stored.
    pub(crate) async fn set_strategy(
        &self,
        strategy: DispatchStrategy,
        updated_by: String,
    ) -> Result<StoredStrategy, CoordinatorError> {
        self.ask(|applied| Event::SetStrategy { strategy, updated_by, applied }).await
    }

    /// A page of agents.
    pub(crate) async fn agents(
        &self,
        filter: AgentFilter,
        skip: u32,
        limit: u32,
    ) -> Result<AgentPage, CoordinatorError> {
        self.ask(|reply| Event::Read(Read::Agents { filter, skip, limit, reply })).await
    }

    /// One agent.
    pub(crate) async fn agent(&self, agent_id: AgentId) -> Result<Option<Agent>, CoordinatorError> {
        self.ask(|reply| Event::Read(Read::Agent { agent_id, reply })).await
    }

    /// The strategy in force.
    pub(crate) async fn strategy(&self) -> Result<StoredStrategy, CoordinatorError> {
        self.ask(|reply| Event::Read(Read::Strategy { reply })).await
    }

    /// The pending queue's statistics.
    pub(crate) async fn pending_stats(&self) -> Result<PendingStats, CoordinatorError> {
        self.ask(|reply| Event::Read(Read::PendingStats { reply })).await
    }
}

/// Readiness: the dispatcher task is alive.
#[derive(Debug, Clone)]
pub(crate) struct DispatcherCheck(pub(crate) DispatcherHandle);

impl sutazai_kit::health::HealthCheck for DispatcherCheck {
    fn check(&self) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
        let running = self.0.is_running();
        Box::pin(async move { if running { Ok(()) } else { Err("the dispatcher stopped".to_owned()) } })
    }
}
