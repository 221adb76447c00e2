//! The append-only `task_events` log. Inserting a row also notifies the watchers of every replica
//! (the `task_events_notify` trigger) once the transaction commits.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use sutazai_types::{AgentId, TaskId};
use uuid::Uuid;

use super::{corrupt, count, sql_int};
use crate::domain::task::TaskEvent;
use crate::error::OrchestratorError;

const COLUMNS: &str = "task_id, sequence, status, previous_status, attempt, agent_id, detail, occurred_at";

#[derive(sqlx::FromRow)]
struct EventRow {
    task_id: Uuid,
    sequence: i64,
    status: String,
    previous_status: Option<String>,
    attempt: i32,
    agent_id: Option<Uuid>,
    detail: String,
    occurred_at: DateTime<Utc>,
}

impl TryFrom<EventRow> for TaskEvent {
    type Error = OrchestratorError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        Ok(Self {
            task_id: TaskId(row.task_id),
            sequence: u64::try_from(row.sequence).map_err(|_| corrupt("sequence", row.sequence))?,
            status: super::tasks::status(&row.status)?,
            previous_status: row.previous_status.as_deref().map(super::tasks::status).transpose()?,
            attempt: count("attempt", row.attempt)?,
            agent_id: row.agent_id.map(AgentId),
            detail: row.detail,
            occurred_at: row.occurred_at,
        })
    }
}

fn events(rows: Vec<EventRow>) -> Result<Vec<TaskEvent>, OrchestratorError> {
    rows.into_iter().map(TaskEvent::try_from).collect()
}

/// Appends an event; the caller holds the task's row lock, which keeps sequences gapless.
pub(crate) async fn append(
    connection: &mut PgConnection,
    event: &TaskEvent,
) -> Result<(), OrchestratorError> {
    sqlx::query(
        "INSERT INTO task_events (task_id, sequence, status, previous_status, attempt, agent_id, detail, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event.task_id.as_uuid())
    .bind(i64::try_from(event.sequence).unwrap_or(i64::MAX))
    .bind(event.status.as_str())
    .bind(event.previous_status.map(|status| status.as_str()))
    .bind(sql_int(event.attempt))
    .bind(event.agent_id.map(|agent| agent.as_uuid()))
    .bind(&event.detail)
    .bind(event.occurred_at)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// One page of a task's events, oldest first, and how many it has.
pub(crate) async fn page(
    pool: &PgPool,
    task_id: TaskId,
    skip: u32,
    limit: u32,
) -> Result<(Vec<TaskEvent>, u64), OrchestratorError> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM task_events WHERE task_id = $1 ORDER BY sequence OFFSET $2 LIMIT $3"
    ))
    .bind(task_id.as_uuid())
    .bind(i64::from(skip))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM task_events WHERE task_id = $1")
        .bind(task_id.as_uuid())
        .fetch_one(pool)
        .await?;
    Ok((events(rows)?, u64::try_from(total).unwrap_or(0)))
}

/// Up to `limit` events after `after_sequence`, oldest first.
pub(crate) async fn after(
    pool: &PgPool,
    task_id: TaskId,
    after_sequence: u64,
    limit: i64,
) -> Result<Vec<TaskEvent>, OrchestratorError> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM task_events WHERE task_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3"
    ))
    .bind(task_id.as_uuid())
    .bind(i64::try_from(after_sequence).unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    events(rows)
}
