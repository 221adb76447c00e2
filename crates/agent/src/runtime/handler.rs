//! What an agent does with each message of its queue. An assignment runs as: admit (once per
//! attempt, see [`super::ledger`]) → wait for a slot → publish `Started` (confirmed) → run the
//! profile, bounded by its timeout and the task's deadline → publish `Succeeded` or `Failed`
//! (confirmed) → return, which acknowledges the assignment. A withdrawal (`Cancelled`) drops the
//! running attempt's future and nothing more is published for it.
//!
//! The handler never fails a delivery: a dead-lettered assignment would help nobody, and one not
//! meant for this agent, or a message of another kind, is simply acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use sutazai_messaging::consumer::{DeliveryContext, HandlerError, MessageHandler};
use sutazai_messaging::publisher::OutgoingMessage;
use sutazai_types::AgentId;
use sutazai_types::messages::{
    TASKS_EXCHANGE, TaskAssigned, TaskFailed, TaskMessage, TaskStarted, TaskSucceeded,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::announce::Publishers;
use super::ledger::{Admission, AttemptLedger, AttemptTicket};
use crate::profiles::Profile;
use crate::work::{self, TaskInput, Tools, WorkError};

/// Everything one agent (a running profile) shares between its deliveries and its heartbeats.
#[derive(Debug)]
pub(crate) struct Agent {
    /// Its id (its queue is `agent.<id>`).
    pub(crate) id: AgentId,
    /// The profile it runs.
    pub(crate) profile: Profile,
    /// The LLM and the tools.
    pub(crate) tools: Tools,
    /// The worker's publishers.
    pub(crate) publishers: Arc<Publishers>,
    /// Its attempts.
    pub(crate) ledger: Arc<AttemptLedger>,
    /// One permit per slot (`concurrency`).
    pub(crate) slots: Arc<Semaphore>,
    /// Tasks holding a slot now, for heartbeats.
    pub(crate) running: AtomicU32,
}

impl Agent {
    /// An agent with a fresh id running `profile`.
    pub(crate) fn new(profile: Profile, tools: Tools, publishers: Arc<Publishers>) -> Self {
        let slots = usize::try_from(profile.concurrency).unwrap_or(1);
        Self {
            id: AgentId::new(),
            profile,
            tools,
            publishers,
            ledger: AttemptLedger::new(),
            slots: Arc::new(Semaphore::new(slots)),
            running: AtomicU32::new(0),
        }
    }
}

/// A slot in use; counted in heartbeats until dropped.
struct SlotInUse<'a> {
    _permit: OwnedSemaphorePermit,
    agent: &'a Agent,
}

impl<'a> SlotInUse<'a> {
    fn new(permit: OwnedSemaphorePermit, agent: &'a Agent) -> Self {
        let running = agent.running.fetch_add(1, Ordering::SeqCst) + 1;
        metrics::gauge!("agent_tasks_running", "profile" => agent.profile.name.clone())
            .set(f64::from(running));
        Self { _permit: permit, agent }
    }
}

impl Drop for SlotInUse<'_> {
    fn drop(&mut self) {
        let running = self.agent.running.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
        metrics::gauge!("agent_tasks_running", "profile" => self.agent.profile.name.clone())
            .set(f64::from(running));
    }
}

/// The consumer's handler of `agent.<id>`.
#[derive(Debug)]
pub(crate) struct AssignmentHandler {
    agent: Arc<Agent>,
}

impl AssignmentHandler {
    /// Handles `agent`'s queue.
    pub(crate) fn new(agent: Arc<Agent>) -> Self {
        Self { agent }
    }

    fn count(&self, outcome: &'static str) {
        let profile = self.agent.profile.name.clone();
        metrics::counter!("agent_tasks_total", "profile" => profile, "outcome" => outcome).increment(1);
    }

    /// The ticket to run the attempt, or `None` when this delivery must not run it (it ran, runs
    /// elsewhere in this process and finished meanwhile, was withdrawn or superseded).
    async fn admit(&self, assigned: &TaskAssigned) -> Option<AttemptTicket> {
        loop {
            match self.agent.ledger.admit(assigned.task_id, assigned.attempt) {
                Admission::Run(ticket) => return Some(ticket),
                Admission::InProgress(mut done) => {
                    tracing::info!(
                        "the attempt is already running here; waiting for it instead of running it twice"
                    );
                    // Resolves with an error once the running attempt's ticket is dropped.
                    let _ = done.changed().await;
                }
                Admission::Finished => {
                    tracing::info!(
                        "duplicate delivery of an attempt whose outcome was published; acknowledging it"
                    );
                    self.count("duplicate");
                    return None;
                }
                Admission::Withdrawn => {
                    tracing::info!("assignment of a withdrawn task; dropping it");
                    self.count("withdrawn");
                    return None;
                }
                Admission::Superseded => {
                    tracing::info!("a newer attempt of the task is here; dropping the older one");
                    self.count("superseded");
                    return None;
                }
            }
        }
    }

    async fn handle_assignment(&self, assigned: TaskAssigned) {
        let agent = &self.agent;
        let Some(ticket) = self.admit(&assigned).await else { return };
        let withdrawn = ticket.cancellation().clone();
        let permit = tokio::select! {
            permit = Arc::clone(&agent.slots).acquire_owned() => permit,
            () = withdrawn.cancelled() => {
                self.count("withdrawn");
                return;
            }
        };
        // The semaphore is never closed; a closed one would only mean the agent is going away.
        let Ok(permit) = permit else { return };
        let slot = SlotInUse::new(permit, agent);
        let started = TaskMessage::Started(TaskStarted {
            task_id: assigned.task_id,
            attempt: assigned.attempt,
            agent_id: agent.id,
            started_at: Utc::now(),
        });
        if !self.announce(&started, &withdrawn).await {
            self.count("withdrawn");
            return;
        }
        let began = Instant::now();
        let outcome = tokio::select! {
            outcome = self.attempt(&assigned) => outcome,
            () = withdrawn.cancelled() => {
                tracing::info!("task withdrawn while running; attempt abandoned");
                self.count("withdrawn");
                return;
            }
        };
        drop(slot);
        metrics::histogram!("agent_task_duration_seconds", "profile" => agent.profile.name.clone())
            .record(began.elapsed().as_secs_f64());
        let (outcome_label, finished) = self.outcome_message(&assigned, outcome);
        if !self.announce(&finished, &withdrawn).await {
            self.count("withdrawn");
            return;
        }
        self.count(outcome_label);
        ticket.published();
    }

    /// `Succeeded` with the result, or `Failed` with the error and whether to retry.
    fn outcome_message(
        &self,
        assigned: &TaskAssigned,
        outcome: Result<Value, WorkError>,
    ) -> (&'static str, TaskMessage) {
        let (task_id, attempt, agent_id) = (assigned.task_id, assigned.attempt, self.agent.id);
        match outcome {
            Ok(result) => (
                "succeeded",
                TaskMessage::Succeeded(TaskSucceeded {
                    task_id,
                    attempt,
                    agent_id,
                    result,
                    finished_at: Utc::now(),
                }),
            ),
            Err(error) => {
                let retryable = error.is_retryable();
                tracing::warn!(%error, retryable, kind = error.label(), "task attempt failed");
                let error = error.to_string();
                let failed =
                    TaskFailed { task_id, attempt, agent_id, error, retryable, finished_at: Utc::now() };
                ("failed", TaskMessage::Failed(failed))
            }
        }
    }

    /// Runs the profile within the attempt's time: the profile's timeout or what is left until
    /// the task's deadline, whichever is shorter.
    async fn attempt(&self, assigned: &TaskAssigned) -> Result<Value, WorkError> {
        let profile = &self.agent.profile;
        let until_deadline = (assigned.deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if until_deadline.is_zero() {
            return Err(WorkError::DeadlinePassed);
        }
        let limit = profile.timeout.min(until_deadline);
        let input = TaskInput {
            task_id: assigned.task_id,
            task_type: &assigned.task_type,
            owner: &assigned.owner,
            payload: &assigned.payload,
        };
        match tokio::time::timeout(limit, work::perform(profile, &self.agent.tools, &input)).await {
            Ok(outcome) => outcome,
            Err(_) if limit < profile.timeout => Err(WorkError::DeadlinePassed),
            Err(_) => Err(WorkError::AttemptTimedOut {
                timeout_ms: u64::try_from(profile.timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// Publishes a task message until confirmed; false when the attempt was withdrawn first.
    async fn announce(&self, message: &TaskMessage, withdrawn: &CancellationToken) -> bool {
        // Top priority: on the coordinator's priority queue an outcome (which frees a slot) must
        // not wait behind ready tasks.
        let outgoing = match OutgoingMessage::json(TASKS_EXCHANGE, message.routing_key(), message) {
            Ok(outgoing) => outgoing.with_priority(sutazai_messaging::pipeline::MAX_PRIORITY),
            Err(error) => {
                // The message types serialize infallibly; this guards the invariant.
                tracing::error!(%error, "could not serialize a task message");
                return false;
            }
        };
        self.agent.publishers.publish_until_confirmed(outgoing, withdrawn).await
    }
}

impl MessageHandler for AssignmentHandler {
    type Message = TaskMessage;

    async fn handle(&self, message: TaskMessage, _context: DeliveryContext) -> Result<(), HandlerError> {
        match message {
            TaskMessage::Assigned(assigned) if assigned.agent_id == self.agent.id => {
                let span = tracing::info_span!(
                    "agent.task",
                    profile = %self.agent.profile.name,
                    task_id = %assigned.task_id,
                    attempt = assigned.attempt,
                );
                self.handle_assignment(assigned).instrument(span).await;
            }
            TaskMessage::Assigned(assigned) => {
                tracing::warn!(
                    task_id = %assigned.task_id,
                    addressee = %assigned.agent_id,
                    "assignment for another agent; ignoring it"
                );
            }
            TaskMessage::Cancelled(cancelled) => {
                if self.agent.ledger.withdraw(cancelled.task_id) {
                    tracing::info!(
                        task_id = %cancelled.task_id,
                        reason = %cancelled.reason,
                        "task withdrawn; stopping its attempt"
                    );
                }
            }
            other => {
                tracing::debug!(
                    routing_key = other.routing_key(),
                    "message of no concern to an agent; ignoring it"
                );
            }
        }
        Ok(())
    }
}
