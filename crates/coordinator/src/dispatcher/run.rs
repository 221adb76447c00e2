//! The dispatcher loop: wait for events or the next timer, apply them as one step, commit, answer.
//!
//! A step that fails is retried from the state reloaded from the store. While Postgres is down
//! (a transient failure) that goes on until it is back. A step that keeps failing otherwise holds
//! an event the store refuses (say a value Postgres cannot store): its events are then applied
//! one at a time, and the one that keeps failing while the step without it commits is dropped,
//! logged and counted, and its message acknowledged, so one bad message cannot wedge dispatch.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{Postgres, Transaction};
use sutazai_types::AgentId;
use sutazai_types::messages::{AgentMessage, TaskMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{DispatcherHandle, Event, Read};
use crate::domain::agent::agent_page;
use crate::domain::changes::Changes;
use crate::domain::state::{DispatchState, Limits, Outcome};
use crate::domain::strategy::{DispatchStrategy, StoredStrategy};
use crate::store::{PgStore, StoreError};

/// Most events one step applies; more wait for the next step.
const MAX_STEP_EVENTS: usize = 1024;
/// First delay before the state is reloaded after a failed step; doubled up to the maximum.
const RECOVERY_INITIAL_DELAY: Duration = Duration::from_millis(100);
const RECOVERY_MAX_DELAY: Duration = Duration::from_secs(5);
/// Non-transient failures of a step before its events are applied one at a time, and of one
/// event before it is checked for being the cause.
const FAILURES_BEFORE_ISOLATING: u32 = 3;

/// The task that owns the state.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    state: DispatchState,
    store: PgStore,
    events: mpsc::Receiver<Event>,
    limits: Limits,
    configured: DispatchStrategy,
}

impl Dispatcher {
    /// A dispatcher over `state` (restored from `store`) and the handle to reach it.
    pub(crate) fn new(
        state: DispatchState,
        store: PgStore,
        limits: Limits,
        configured: DispatchStrategy,
    ) -> (Self, DispatcherHandle) {
        let (handle, events) = DispatcherHandle::channel();
        (Self { state, store, events, limits, configured }, handle)
    }

    /// Runs until `stop` fires (after the consumers stopped, so none waits for an answer).
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        super::metrics::record_state(&self.state);
        let mut batch = Vec::new();
        loop {
            let sleep_for = (self.state.next_deadline() - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                received = self.events.recv() => match received {
                    Some(event) => batch.push(event),
                    None => break,
                },
                () = tokio::time::sleep(sleep_for) => {},
            }
            while batch.len() < MAX_STEP_EVENTS
                && let Ok(event) = self.events.try_recv()
            {
                batch.push(event);
            }
            if !self.step(std::mem::take(&mut batch), &stop).await {
                break;
            }
        }
        tracing::info!("dispatcher stopped");
    }

    /// Applies `events` and the due timers, commits, then answers. A failed commit leaves the
    /// state ahead of the store, so the state is rebuilt from the store and the step retried
    /// (Ready messages are deduplicated by the inbox, everything else is idempotent against the
    /// state); after [`FAILURES_BEFORE_ISOLATING`] non-transient failures the events are applied
    /// one at a time. Returns false when `stop` fired while the store was failing.
    async fn step(&mut self, events: Vec<Event>, stop: &CancellationToken) -> bool {
        let mut delay = RECOVERY_INITIAL_DELAY;
        let mut failures = 0;
        loop {
            match self.try_step(&events).await {
                Ok(changes) => {
                    super::metrics::record_step(&changes, &self.state);
                    self.answer(events);
                    return true;
                }
                Err(error) => {
                    if !self.after_failure(&error, stop, &mut delay).await {
                        return false;
                    }
                    if !error.is_transient() {
                        failures += 1;
                    }
                    if failures >= FAILURES_BEFORE_ISOLATING {
                        tracing::warn!(
                            events = events.len(),
                            "applying the failing step's events one at a time"
                        );
                        return self.step_one_at_a_time(events, stop).await;
                    }
                }
            }
        }
    }

    /// Applies each event as its own step. One that keeps failing, while the step without it
    /// commits, is dropped; when even that step fails, the fault is not the event's, and it is
    /// retried until the store accepts it.
    async fn step_one_at_a_time(&mut self, events: Vec<Event>, stop: &CancellationToken) -> bool {
        for event in events {
            let mut delay = RECOVERY_INITIAL_DELAY;
            let mut failures = 0;
            loop {
                let error = match self.try_step(std::slice::from_ref(&event)).await {
                    Ok(changes) => {
                        super::metrics::record_step(&changes, &self.state);
                        self.answer(vec![event]);
                        break;
                    }
                    Err(error) => error,
                };
                if !self.after_failure(&error, stop, &mut delay).await {
                    return false;
                }
                if !error.is_transient() {
                    failures += 1;
                }
                if failures < FAILURES_BEFORE_ISOLATING {
                    continue;
                }
                match self.try_step(&[]).await {
                    Ok(changes) => {
                        super::metrics::record_step(&changes, &self.state);
                        self.drop_event(event, &error);
                        break;
                    }
                    Err(without_it) => {
                        if !self.after_failure(&without_it, stop, &mut delay).await {
                            return false;
                        }
                        failures = 0;
                    }
                }
            }
        }
        true
    }

    /// Logs a failed step and rebuilds the state from the store; false when `stop` fired.
    async fn after_failure(
        &mut self,
        error: &StoreError,
        stop: &CancellationToken,
        delay: &mut Duration,
    ) -> bool {
        tracing::error!(
            %error,
            transient = error.is_transient(),
            "dispatcher step failed; reloading the state from the store"
        );
        ::metrics::counter!("coordinator_step_failures_total").increment(1);
        self.recover(stop, delay).await
    }

    /// Gives up on an event the store keeps refusing: its message is acknowledged unapplied
    /// (an admin's strategy change gets an error).
    fn drop_event(&self, event: Event, error: &StoreError) {
        let kind = match &event {
            Event::Task { message, .. } => {
                tracing::error!(
                    %error,
                    task_id = %message.task_id(),
                    routing_key = message.routing_key(),
                    "the store keeps refusing a task message; dropped"
                );
                "task"
            }
            Event::Agent { message, .. } => {
                tracing::error!(
                    %error,
                    agent_id = %agent_of(message),
                    routing_key = message.routing_key(),
                    "the store keeps refusing an agent message; dropped"
                );
                "agent"
            }
            Event::SetStrategy { .. } => {
                tracing::error!(%error, "the store keeps refusing a strategy change; dropped");
                "strategy"
            }
            Event::Read(_) => "read",
        };
        ::metrics::counter!("coordinator_dropped_events_total", "kind" => kind).increment(1);
        match event {
            Event::Task { applied, .. } | Event::Agent { applied, .. } => {
                let _ = applied.send(());
            }
            // Its sender is dropped: the RPC fails as unavailable.
            Event::SetStrategy { .. } => {}
            read @ Event::Read(_) => self.answer(vec![read]),
        }
    }

    async fn try_step(&mut self, events: &[Event]) -> Result<Changes, StoreError> {
        // Postgres keeps microseconds: the state holds what a restart will read back.
        let now = Utc::now().trunc_subsecs(6);
        let mut transaction: Option<Transaction<'static, Postgres>> = None;
        let mut changes = Changes::default();
        for event in events {
            match event {
                Event::Task { message: TaskMessage::Ready(ready), inbox_key, traceparent, .. } => {
                    let open = match transaction.as_mut() {
                        Some(open) => open,
                        None => transaction.insert(self.store.begin().await?),
                    };
                    if PgStore::record_ready(open, inbox_key).await? {
                        self.state.on_ready(ready.clone(), traceparent.clone(), now, &mut changes);
                    } else {
                        tracing::debug!(task_id = %ready.task_id, "redelivered ready ignored");
                    }
                }
                Event::Task { message, .. } => self.apply_task(message, now, &mut changes),
                Event::Agent { message, .. } => self.apply_agent(message, now, &mut changes),
                Event::SetStrategy { strategy, updated_by, .. } => {
                    let stored = StoredStrategy {
                        strategy: *strategy,
                        updated_at: Some(now),
                        updated_by: updated_by.clone(),
                    };
                    self.state.set_strategy(stored, &mut changes);
                }
                Event::Read(_) => {}
            }
        }
        self.state.expire(now, &mut changes);
        self.state.dispatch(now, &mut changes);
        if changes.needs_write() {
            let mut open = match transaction {
                Some(open) => open,
                None => self.store.begin().await?,
            };
            PgStore::write(&mut open, &self.state, &changes).await?;
            self.store.commit(open).await?;
        } else if let Some(open) = transaction {
            open.commit().await?;
        }
        Ok(changes)
    }

    fn apply_task(&mut self, message: &TaskMessage, now: DateTime<Utc>, changes: &mut Changes) {
        match message {
            TaskMessage::Started(started) => self.state.on_started(started, changes),
            TaskMessage::Succeeded(succeeded) => self.state.on_finished(
                succeeded.task_id,
                succeeded.attempt,
                succeeded.agent_id,
                Outcome::Succeeded,
                changes,
            ),
            TaskMessage::Failed(failed) => {
                self.state.on_finished(
                    failed.task_id,
                    failed.attempt,
                    failed.agent_id,
                    Outcome::Failed,
                    changes,
                );
            }
            TaskMessage::Cancelled(cancelled) => self.state.on_cancelled(cancelled.task_id, now, changes),
            // Published by the coordinator itself; its queue is not bound to them.
            TaskMessage::Ready(_) | TaskMessage::Assigned(_) | TaskMessage::Waiting(_) => {
                tracing::debug!(
                    routing_key = message.routing_key(),
                    "message not for the coordinator ignored"
                );
            }
        }
    }

    fn apply_agent(&mut self, message: &AgentMessage, now: DateTime<Utc>, changes: &mut Changes) {
        match message {
            AgentMessage::Registered(registered) => {
                tracing::info!(agent_id = %registered.agent_id, name = %registered.name, slots = registered.slots, "agent registered");
                self.state.on_registered(registered.clone(), now, changes);
            }
            AgentMessage::Heartbeat(heartbeat) => {
                if !self.state.on_heartbeat(heartbeat, now, changes) {
                    tracing::debug!(agent_id = %heartbeat.agent_id, "heartbeat of an unregistered agent ignored");
                }
            }
            AgentMessage::Draining(draining) => {
                if self.state.on_draining(draining.agent_id, now, changes) {
                    tracing::info!(agent_id = %draining.agent_id, "agent draining");
                }
            }
        }
    }

    /// Sends every event its answer from the committed state.
    fn answer(&self, events: Vec<Event>) {
        // A dropped receiver is a caller that gave up (a cancelled RPC): nothing to do.
        for event in events {
            match event {
                Event::Task { applied, .. } | Event::Agent { applied, .. } => {
                    let _ = applied.send(());
                }
                Event::SetStrategy { applied, .. } => {
                    let _ = applied.send(self.state.strategy().clone());
                }
                Event::Read(Read::Agents { filter, skip, limit, reply }) => {
                    let _ = reply.send(agent_page(self.state.agents(), &filter, skip, limit));
                }
                Event::Read(Read::Agent { agent_id, reply }) => {
                    let _ = reply.send(self.state.agent(agent_id).cloned());
                }
                Event::Read(Read::Strategy { reply }) => {
                    let _ = reply.send(self.state.strategy().clone());
                }
                Event::Read(Read::PendingStats { reply }) => {
                    let _ = reply.send(self.state.pending_stats());
                }
            }
        }
    }

    /// Rebuilds the state from the store, retrying with backoff until it loads or `stop` fires.
    async fn recover(&mut self, stop: &CancellationToken, delay: &mut Duration) -> bool {
        loop {
            tokio::select! {
                () = tokio::time::sleep(*delay) => {},
                () = stop.cancelled() => return false,
            }
            *delay = (*delay * 2).min(RECOVERY_MAX_DELAY);
            match self.store.load().await {
                Ok(snapshot) => {
                    self.state = DispatchState::restore(self.limits, self.configured, snapshot, Utc::now());
                    return true;
                }
                Err(error) => tracing::warn!(%error, "reloading the dispatcher state failed, retrying"),
            }
        }
    }
}

fn agent_of(message: &AgentMessage) -> AgentId {
    match message {
        AgentMessage::Registered(registered) => registered.agent_id,
        AgentMessage::Heartbeat(heartbeat) => heartbeat.agent_id,
        AgentMessage::Draining(draining) => draining.agent_id,
    }
}
