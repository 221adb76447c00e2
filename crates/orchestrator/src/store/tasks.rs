//! The `tasks` table: insert (idempotent per owner and key), lock, save, list, and the queries of
//! the retry scheduler and the timeout sweeper.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use sutazai_types::{AgentId, Priority, TaskId, TaskStatus, WorkflowId};
use uuid::Uuid;

use super::{corrupt, count, sql_int};
use crate::domain::access::OwnerScope;
use crate::domain::task::{StepRef, Task};
use crate::error::OrchestratorError;

const COLUMNS: &str =
    "id, owner, task_type, status, priority, attempt, failures, assigned_agent, payload, result, error,
    queued_reason, capabilities, max_retries, timeout_s, deadline, idempotency_key, workflow_id, step_id,
    next_attempt_at, last_sequence, created_at, started_at, finished_at";

/// Statuses a task can still leave; the partial index `tasks_active_deadline` matches this list.
const ACTIVE: &str = "('queued', 'assigned', 'running', 'retrying')";

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: Uuid,
    owner: String,
    task_type: String,
    status: String,
    priority: i16,
    attempt: i32,
    failures: i32,
    assigned_agent: Option<Uuid>,
    payload: Value,
    result: Option<Value>,
    error: Option<String>,
    queued_reason: Option<String>,
    capabilities: Vec<String>,
    max_retries: i32,
    timeout_s: i32,
    deadline: DateTime<Utc>,
    idempotency_key: Option<String>,
    workflow_id: Option<Uuid>,
    step_id: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
    last_sequence: i64,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

/// Parses a stored task status.
pub(crate) fn status(text: &str) -> Result<TaskStatus, OrchestratorError> {
    text.parse::<TaskStatus>().map_err(|_| corrupt("task status", text))
}

impl TryFrom<TaskRow> for Task {
    type Error = OrchestratorError;

    fn try_from(row: TaskRow) -> Result<Self, Self::Error> {
        let priority = u8::try_from(row.priority)
            .ok()
            .and_then(|value| Priority::try_from(value).ok())
            .ok_or_else(|| corrupt("priority", row.priority))?;
        let step = match (row.workflow_id, row.step_id) {
            (Some(workflow_id), Some(step_id)) => {
                Some(StepRef { workflow_id: WorkflowId(workflow_id), step_id })
            }
            _ => None,
        };
        Ok(Self {
            id: TaskId(row.id),
            owner: row.owner,
            task_type: row.task_type,
            status: status(&row.status)?,
            priority,
            attempt: count("attempt", row.attempt)?,
            failures: count("failures", row.failures)?,
            assigned_agent: row.assigned_agent.map(AgentId),
            payload: row.payload,
            result: row.result,
            error: row.error,
            queued_reason: row.queued_reason,
            capabilities: row.capabilities,
            max_retries: count("max_retries", row.max_retries)?,
            timeout_s: count("timeout_s", row.timeout_s)?,
            deadline: row.deadline,
            idempotency_key: row.idempotency_key,
            step,
            next_attempt_at: row.next_attempt_at,
            last_sequence: u64::try_from(row.last_sequence)
                .map_err(|_| corrupt("sequence", row.last_sequence))?,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

fn tasks(rows: Vec<TaskRow>) -> Result<Vec<Task>, OrchestratorError> {
    rows.into_iter().map(Task::try_from).collect()
}

/// Inserts a new task; returns false when the owner already used its idempotency key (the
/// unique index makes a concurrent duplicate wait for the first insert and then do nothing).
pub(crate) async fn insert(connection: &mut PgConnection, task: &Task) -> Result<bool, OrchestratorError> {
    let inserted = sqlx::query(
        "INSERT INTO tasks (id, owner, task_type, status, priority, attempt, payload, capabilities,
             max_retries, timeout_s, deadline, idempotency_key, workflow_id, step_id, last_sequence, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
    )
    .bind(task.id.as_uuid())
    .bind(&task.owner)
    .bind(&task.task_type)
    .bind(task.status.as_str())
    .bind(i16::from(task.priority.value()))
    .bind(sql_int(task.attempt))
    .bind(&task.payload)
    .bind(&task.capabilities)
    .bind(sql_int(task.max_retries))
    .bind(sql_int(task.timeout_s))
    .bind(task.deadline)
    .bind(&task.idempotency_key)
    .bind(task.step.as_ref().map(|step| step.workflow_id.as_uuid()))
    .bind(task.step.as_ref().map(|step| step.step_id.as_str()))
    .bind(i64::try_from(task.last_sequence).unwrap_or(i64::MAX))
    .bind(task.created_at)
    .execute(&mut *connection)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The task an owner created with `idempotency_key`.
pub(crate) async fn find_by_key(
    connection: &mut PgConnection,
    owner: &str,
    idempotency_key: &str,
) -> Result<Option<Task>, OrchestratorError> {
    let row: Option<TaskRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM tasks WHERE owner = $1 AND idempotency_key = $2"))
            .bind(owner)
            .bind(idempotency_key)
            .fetch_optional(&mut *connection)
            .await?;
    row.map(Task::try_from).transpose()
}

/// A task, without locking it.
pub(crate) async fn get(pool: &PgPool, id: TaskId) -> Result<Option<Task>, OrchestratorError> {
    let row: Option<TaskRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?;
    row.map(Task::try_from).transpose()
}

/// Locks a task for a change that may move its workflow on.
///
/// Locks are always taken workflow first, then task: a workflow that stops cancels its other
/// steps' tasks while holding its own row, so a transaction holding a step's task and then asking
/// for the workflow would deadlock against it.
pub(crate) async fn lock(
    connection: &mut PgConnection,
    id: TaskId,
) -> Result<Option<Task>, OrchestratorError> {
    let workflow: Option<Option<Uuid>> = sqlx::query_scalar("SELECT workflow_id FROM tasks WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(&mut *connection)
        .await?;
    let Some(workflow) = workflow else {
        return Ok(None);
    };
    if let Some(workflow_id) = workflow {
        sqlx::query("SELECT 1 FROM workflows WHERE id = $1 FOR UPDATE")
            .bind(workflow_id)
            .execute(&mut *connection)
            .await?;
    }
    lock_row(connection, id).await
}

/// Locks a task's row alone: for tasks outside workflows, or when the workflow is already locked.
pub(crate) async fn lock_row(
    connection: &mut PgConnection,
    id: TaskId,
) -> Result<Option<Task>, OrchestratorError> {
    let row: Option<TaskRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1 FOR UPDATE"))
            .bind(id.as_uuid())
            .fetch_optional(&mut *connection)
            .await?;
    row.map(Task::try_from).transpose()
}

/// Writes the fields a transition changes.
pub(crate) async fn save(connection: &mut PgConnection, task: &Task) -> Result<(), OrchestratorError> {
    sqlx::query(
        "UPDATE tasks SET status = $2, attempt = $3, assigned_agent = $4, result = $5, error = $6,
             queued_reason = $7, next_attempt_at = $8, last_sequence = $9, started_at = $10, finished_at = $11,
             failures = $12
         WHERE id = $1",
    )
    .bind(task.id.as_uuid())
    .bind(task.status.as_str())
    .bind(sql_int(task.attempt))
    .bind(task.assigned_agent.map(|agent| agent.as_uuid()))
    .bind(&task.result)
    .bind(&task.error)
    .bind(&task.queued_reason)
    .bind(task.next_attempt_at)
    .bind(i64::try_from(task.last_sequence).unwrap_or(i64::MAX))
    .bind(task.started_at)
    .bind(task.finished_at)
    .bind(sql_int(task.failures))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Filters of a task listing.
#[derive(Debug, Clone)]
pub(crate) struct TaskFilter<'a> {
    pub(crate) scope: &'a OwnerScope,
    pub(crate) status: Option<TaskStatus>,
    pub(crate) task_type: Option<&'a str>,
}

/// One page of tasks, newest first, and the number matching in total.
pub(crate) async fn list(
    pool: &PgPool,
    filter: &TaskFilter<'_>,
    skip: u32,
    limit: u32,
) -> Result<(Vec<Task>, u64), OrchestratorError> {
    const WHERE: &str = "($1::text IS NULL OR owner = $1) AND ($2::text IS NULL OR status = $2)
        AND ($3::text IS NULL OR task_type = $3)";
    let owner = filter.scope.owner();
    let status = filter.status.map(TaskStatus::as_str);
    let rows: Vec<TaskRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE {WHERE} ORDER BY id DESC OFFSET $4 LIMIT $5"
    ))
    .bind(owner)
    .bind(status)
    .bind(filter.task_type)
    .bind(i64::from(skip))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM tasks WHERE {WHERE}"))
        .bind(owner)
        .bind(status)
        .bind(filter.task_type)
        .fetch_one(pool)
        .await?;
    Ok((tasks(rows)?, u64::try_from(total).unwrap_or(0)))
}

/// Locks up to `limit` retrying tasks whose backoff is over. Rows another replica holds are
/// skipped, so replicas share the work without publishing a retry twice.
pub(crate) async fn lock_due_retries(
    connection: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Task>, OrchestratorError> {
    let rows: Vec<TaskRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE status = 'retrying' AND next_attempt_at <= $1
         ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await?;
    tasks(rows)
}

/// When the earliest retry is due, and how many tasks are retrying.
pub(crate) async fn retry_backlog(pool: &PgPool) -> Result<(Option<DateTime<Utc>>, u64), OrchestratorError> {
    let (next, waiting): (Option<DateTime<Utc>>, i64) =
        sqlx::query_as("SELECT min(next_attempt_at), count(*) FROM tasks WHERE status = 'retrying'")
            .fetch_one(pool)
            .await?;
    Ok((next, u64::try_from(waiting).unwrap_or(0)))
}

/// Ids of up to `limit` unfinished tasks past their deadline, earliest first.
pub(crate) async fn overdue(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<TaskId>, OrchestratorError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
        "SELECT id FROM tasks WHERE status IN {ACTIVE} AND deadline <= $1 ORDER BY deadline LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(TaskId).collect())
}

/// The earliest deadline of an unfinished task.
pub(crate) async fn next_deadline(pool: &PgPool) -> Result<Option<DateTime<Utc>>, OrchestratorError> {
    let next: Option<DateTime<Utc>> =
        sqlx::query_scalar(&format!("SELECT min(deadline) FROM tasks WHERE status IN {ACTIVE}"))
            .fetch_one(pool)
            .await?;
    Ok(next)
}

/// A task's status, without locking it (for event watchers).
pub(crate) async fn status_of(pool: &PgPool, id: TaskId) -> Result<Option<TaskStatus>, OrchestratorError> {
    let text: Option<String> = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?;
    text.as_deref().map(status).transpose()
}
