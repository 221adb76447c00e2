//! Writing one step: each changed row once, as the state now holds it, in a handful of
//! array statements however many rows changed; then the step's messages into the outbox.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use sutazai_messaging::outbox;
use sutazai_types::TaskId;
use sutazai_types::messages::{TASKS_EXCHANGE, TaskMessage};
use uuid::Uuid;

use super::{PgStore, StoreError};
use crate::domain::changes::Changes;
use crate::domain::state::{DispatchState, TaskRow};
use crate::domain::task::{PendingTask, TaskSpec};

/// Column arrays of the task rows to upsert.
#[derive(Default)]
struct TaskColumns {
    task_id: Vec<Uuid>,
    task_type: Vec<String>,
    priority: Vec<i16>,
    capabilities: Vec<serde_json::Value>,
    owner: Vec<String>,
    payload: Vec<serde_json::Value>,
    deadline: Vec<DateTime<Utc>>,
    enqueued_at: Vec<DateTime<Utc>>,
    fair_tag: Vec<i64>,
    attempt: Vec<i64>,
    agent_id: Vec<Option<Uuid>>,
    assigned_at: Vec<Option<DateTime<Utc>>>,
    lease_deadline: Vec<Option<DateTime<Utc>>>,
    started: Vec<bool>,
    waiting_reason: Vec<String>,
    reassign_reason: Vec<String>,
    previous_agent: Vec<Option<Uuid>>,
    traceparent: Vec<Option<String>>,
}

impl TaskColumns {
    fn push_spec(&mut self, spec: &TaskSpec, attempt: u32) {
        self.task_id.push(spec.task_id.0);
        self.task_type.push(spec.task_type.clone());
        self.priority.push(i16::from(spec.priority.value()));
        self.capabilities.push(serde_json::json!(spec.capabilities.names()));
        self.owner.push(spec.owner.clone());
        self.payload.push(spec.payload.clone());
        self.deadline.push(spec.deadline);
        self.enqueued_at.push(spec.enqueued_at);
        self.fair_tag.push(i64::try_from(spec.fair_tag).unwrap_or(i64::MAX));
        self.attempt.push(i64::from(attempt));
        self.traceparent.push(spec.traceparent.clone());
    }

    fn push_pending(&mut self, task: &PendingTask) {
        self.push_spec(&task.spec, task.attempt);
        self.agent_id.push(None);
        self.assigned_at.push(None);
        self.lease_deadline.push(None);
        self.started.push(false);
        self.waiting_reason.push(task.waiting_reason.clone());
        self.reassign_reason.push(task.reassign_reason.clone());
        self.previous_agent.push(task.previous_agent.map(|agent| agent.0));
    }

    fn push(&mut self, row: TaskRow<'_>) {
        match row {
            TaskRow::Pending(task) => self.push_pending(task),
            TaskRow::Assigned(assignment) => {
                self.push_spec(&assignment.spec, assignment.attempt);
                self.agent_id.push(Some(assignment.agent_id.0));
                self.assigned_at.push(Some(assignment.assigned_at));
                self.lease_deadline.push(assignment.lease_deadline);
                self.started.push(assignment.started());
                self.waiting_reason.push(String::new());
                self.reassign_reason.push(String::new());
                self.previous_agent.push(None);
            }
        }
    }
}

impl PgStore {
    /// Writes the rows `changes` names and enqueues its messages, in `transaction`.
    pub async fn write(
        transaction: &mut Transaction<'static, Postgres>,
        state: &DispatchState,
        changes: &Changes,
    ) -> Result<(), StoreError> {
        write_tasks(transaction, state, changes).await?;
        write_attempts(transaction, state, changes).await?;
        write_agents(transaction, state, changes).await?;
        if changes.strategy {
            write_strategy(transaction, state).await?;
        }
        for message in &changes.messages {
            let routing_key = match message {
                TaskMessage::Assigned(assigned) => assigned.routing_key(),
                other => other.routing_key().to_owned(),
            };
            // The dispatcher runs in no request's span: a message continues the trace its task
            // arrived in.
            let traceparent = traceparent_of(state, message.task_id());
            outbox::enqueue_in_trace(
                &mut **transaction,
                TASKS_EXCHANGE,
                &routing_key,
                message,
                None,
                traceparent,
            )
            .await?;
        }
        Ok(())
    }
}

/// The trace context the task held by `state` arrived in, if any.
fn traceparent_of(state: &DispatchState, task_id: TaskId) -> Option<&str> {
    match state.task(task_id)? {
        TaskRow::Pending(task) => task.spec.traceparent.as_deref(),
        TaskRow::Assigned(assignment) => assignment.spec.traceparent.as_deref(),
    }
}

async fn write_tasks(
    transaction: &mut Transaction<'static, Postgres>,
    state: &DispatchState,
    changes: &Changes,
) -> Result<(), StoreError> {
    let mut columns = TaskColumns::default();
    let mut gone = Vec::new();
    for task_id in &changes.tasks {
        match state.task(*task_id) {
            Some(row) => columns.push(row),
            None => gone.push(task_id.0),
        }
    }
    if !gone.is_empty() {
        sqlx::query("DELETE FROM tasks WHERE task_id = ANY($1)")
            .bind(&gone)
            .execute(&mut **transaction)
            .await?;
    }
    if columns.task_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO tasks (task_id, task_type, priority, capabilities, owner, payload, deadline,
                            enqueued_at, fair_tag, attempt, agent_id, assigned_at, lease_deadline,
                            started, waiting_reason, reassign_reason, previous_agent, traceparent)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int2[], $4::jsonb[], $5::text[], $6::jsonb[],
                              $7::timestamptz[], $8::timestamptz[], $9::int8[], $10::int8[], $11::uuid[],
                              $12::timestamptz[], $13::timestamptz[], $14::bool[], $15::text[],
                              $16::text[], $17::uuid[], $18::text[])
         ON CONFLICT (task_id) DO UPDATE SET
             task_type = EXCLUDED.task_type, priority = EXCLUDED.priority,
             capabilities = EXCLUDED.capabilities, owner = EXCLUDED.owner, payload = EXCLUDED.payload,
             deadline = EXCLUDED.deadline, enqueued_at = EXCLUDED.enqueued_at,
             fair_tag = EXCLUDED.fair_tag, attempt = EXCLUDED.attempt, agent_id = EXCLUDED.agent_id,
             assigned_at = EXCLUDED.assigned_at, lease_deadline = EXCLUDED.lease_deadline,
             started = EXCLUDED.started, waiting_reason = EXCLUDED.waiting_reason,
             reassign_reason = EXCLUDED.reassign_reason, previous_agent = EXCLUDED.previous_agent,
             traceparent = EXCLUDED.traceparent",
    )
    .bind(&columns.task_id)
    .bind(&columns.task_type)
    .bind(&columns.priority)
    .bind(&columns.capabilities)
    .bind(&columns.owner)
    .bind(&columns.payload)
    .bind(&columns.deadline)
    .bind(&columns.enqueued_at)
    .bind(&columns.fair_tag)
    .bind(&columns.attempt)
    .bind(&columns.agent_id)
    .bind(&columns.assigned_at)
    .bind(&columns.lease_deadline)
    .bind(&columns.started)
    .bind(&columns.waiting_reason)
    .bind(&columns.reassign_reason)
    .bind(&columns.previous_agent)
    .bind(&columns.traceparent)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

async fn write_attempts(
    transaction: &mut Transaction<'static, Postgres>,
    state: &DispatchState,
    changes: &Changes,
) -> Result<(), StoreError> {
    let mut task_ids = Vec::new();
    let mut attempts = Vec::new();
    let mut expiries = Vec::new();
    let mut gone = Vec::new();
    for task_id in &changes.attempts {
        match state.seen_attempt(*task_id) {
            Some(seen) => {
                task_ids.push(task_id.0);
                attempts.push(i64::from(seen.attempt));
                expiries.push(seen.expires_at);
            }
            None => gone.push(task_id.0),
        }
    }
    if !gone.is_empty() {
        sqlx::query("DELETE FROM task_attempts WHERE task_id = ANY($1)")
            .bind(&gone)
            .execute(&mut **transaction)
            .await?;
    }
    if !task_ids.is_empty() {
        sqlx::query(
            "INSERT INTO task_attempts (task_id, highest_attempt, expires_at)
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::timestamptz[])
             ON CONFLICT (task_id) DO UPDATE SET
                 highest_attempt = EXCLUDED.highest_attempt, expires_at = EXCLUDED.expires_at",
        )
        .bind(&task_ids)
        .bind(&attempts)
        .bind(&expiries)
        .execute(&mut **transaction)
        .await?;
    }
    Ok(())
}

async fn write_agents(
    transaction: &mut Transaction<'static, Postgres>,
    state: &DispatchState,
    changes: &Changes,
) -> Result<(), StoreError> {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut capabilities = Vec::new();
    let mut slots = Vec::new();
    let mut statuses = Vec::new();
    let mut running = Vec::new();
    let mut heartbeats = Vec::new();
    let mut versions = Vec::new();
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    let mut registered = Vec::new();
    let mut gone = Vec::new();
    for agent_id in &changes.agents {
        let Some(agent) = state.agent(*agent_id) else {
            gone.push(agent_id.0);
            continue;
        };
        ids.push(agent.id.0);
        names.push(agent.name.clone());
        capabilities.push(serde_json::json!(agent.capabilities.names()));
        slots.push(i64::from(agent.slots));
        statuses.push(agent.status.as_str());
        running.push(i64::from(agent.running));
        heartbeats.push(agent.last_heartbeat);
        versions.push(agent.version.clone());
        succeeded.push(i64::try_from(agent.tasks_succeeded).unwrap_or(i64::MAX));
        failed.push(i64::try_from(agent.tasks_failed).unwrap_or(i64::MAX));
        registered.push(agent.registered_at);
    }
    if !gone.is_empty() {
        sqlx::query("DELETE FROM agents WHERE agent_id = ANY($1)")
            .bind(&gone)
            .execute(&mut **transaction)
            .await?;
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO agents (agent_id, name, capabilities, slots, status, running, last_heartbeat,
                             version, tasks_succeeded, tasks_failed, registered_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[], $4::int8[], $5::text[], $6::int8[],
                              $7::timestamptz[], $8::text[], $9::int8[], $10::int8[], $11::timestamptz[])
         ON CONFLICT (agent_id) DO UPDATE SET
             name = EXCLUDED.name, capabilities = EXCLUDED.capabilities, slots = EXCLUDED.slots,
             status = EXCLUDED.status, running = EXCLUDED.running,
             last_heartbeat = EXCLUDED.last_heartbeat, version = EXCLUDED.version,
             tasks_succeeded = EXCLUDED.tasks_succeeded, tasks_failed = EXCLUDED.tasks_failed",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&capabilities)
    .bind(&slots)
    .bind(&statuses)
    .bind(&running)
    .bind(&heartbeats)
    .bind(&versions)
    .bind(&succeeded)
    .bind(&failed)
    .bind(&registered)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

async fn write_strategy(
    transaction: &mut Transaction<'static, Postgres>,
    state: &DispatchState,
) -> Result<(), StoreError> {
    let stored = state.strategy();
    let strategy = stored.strategy;
    sqlx::query(
        "INSERT INTO strategy (singleton, kind, owner_fairness, max_active_per_owner, assignment_lease_s,
                               updated_by, updated_at)
         VALUES (true, $1, $2, $3, $4, $5, $6)
         ON CONFLICT (singleton) DO UPDATE SET
             kind = EXCLUDED.kind, owner_fairness = EXCLUDED.owner_fairness,
             max_active_per_owner = EXCLUDED.max_active_per_owner,
             assignment_lease_s = EXCLUDED.assignment_lease_s,
             updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at",
    )
    .bind(strategy.kind.as_str())
    .bind(strategy.owner_fairness)
    .bind(i64::from(strategy.max_active_per_owner))
    .bind(i64::from(strategy.assignment_lease_s))
    .bind(&stored.updated_by)
    .bind(stored.updated_at.unwrap_or_else(Utc::now))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}
