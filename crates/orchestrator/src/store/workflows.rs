//! The `workflows` and `workflow_steps` tables.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use sutazai_types::{Priority, TaskId, WorkflowId};
use uuid::Uuid;

use super::{corrupt, count, sql_int};
use crate::domain::task::TaskSpec;
use crate::domain::workflow::{
    FailurePolicy, StepSpec, StepState, StepStatus, Workflow, WorkflowStatus, WorkflowStep,
};
use crate::error::OrchestratorError;

/// A workflow without its steps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkflowHeader {
    pub(crate) id: WorkflowId,
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) status: WorkflowStatus,
    pub(crate) failure_policy: FailurePolicy,
    pub(crate) parent_workflow_id: Option<WorkflowId>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct HeaderRow {
    id: Uuid,
    owner: String,
    name: String,
    status: String,
    failure_policy: String,
    parent_workflow_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<HeaderRow> for WorkflowHeader {
    type Error = OrchestratorError;

    fn try_from(row: HeaderRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: WorkflowId(row.id),
            owner: row.owner,
            name: row.name,
            status: WorkflowStatus::parse(&row.status)
                .ok_or_else(|| corrupt("workflow status", &row.status))?,
            failure_policy: FailurePolicy::parse(&row.failure_policy)
                .ok_or_else(|| corrupt("failure policy", &row.failure_policy))?,
            parent_workflow_id: row.parent_workflow_id.map(WorkflowId),
            created_at: row.created_at,
            finished_at: row.finished_at,
        })
    }
}

/// A step with everything needed to start its task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredStep {
    pub(crate) state: StepState,
    /// The task template; its payload is the step's own input.
    pub(crate) task: TaskSpec,
    pub(crate) task_id: Option<TaskId>,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    step_id: String,
    task_type: String,
    payload: Value,
    depends_on: Vec<String>,
    priority: i16,
    capabilities: Vec<String>,
    max_retries: i32,
    timeout_s: i32,
    status: String,
    task_id: Option<Uuid>,
}

fn step_status(text: &str) -> Result<StepStatus, OrchestratorError> {
    StepStatus::parse(text).ok_or_else(|| corrupt("step status", text))
}

impl TryFrom<StepRow> for StoredStep {
    type Error = OrchestratorError;

    fn try_from(row: StepRow) -> Result<Self, Self::Error> {
        let priority = u8::try_from(row.priority)
            .ok()
            .and_then(|value| Priority::try_from(value).ok())
            .ok_or_else(|| corrupt("priority", row.priority))?;
        Ok(Self {
            state: StepState {
                step_id: row.step_id,
                depends_on: row.depends_on,
                status: step_status(&row.status)?,
            },
            task: TaskSpec {
                task_type: row.task_type,
                payload: row.payload,
                priority,
                capabilities: row.capabilities,
                max_retries: count("max_retries", row.max_retries)?,
                timeout_s: count("timeout_s", row.timeout_s)?,
            },
            task_id: row.task_id.map(TaskId),
        })
    }
}

/// Inserts a workflow; false when the owner already used its idempotency key.
pub(crate) async fn insert(
    connection: &mut PgConnection,
    header: &WorkflowHeader,
    idempotency_key: Option<&str>,
) -> Result<bool, OrchestratorError> {
    let inserted = sqlx::query(
        "INSERT INTO workflows (id, owner, name, status, failure_policy, parent_workflow_id, idempotency_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
    )
    .bind(header.id.as_uuid())
    .bind(&header.owner)
    .bind(&header.name)
    .bind(header.status.as_str())
    .bind(header.failure_policy.as_str())
    .bind(header.parent_workflow_id.map(|id| id.as_uuid()))
    .bind(idempotency_key)
    .bind(header.created_at)
    .execute(&mut *connection)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The workflow an owner created with `idempotency_key`.
pub(crate) async fn find_by_key(
    connection: &mut PgConnection,
    owner: &str,
    idempotency_key: &str,
) -> Result<Option<WorkflowId>, OrchestratorError> {
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM workflows WHERE owner = $1 AND idempotency_key = $2")
            .bind(owner)
            .bind(idempotency_key)
            .fetch_optional(&mut *connection)
            .await?;
    Ok(id.map(WorkflowId))
}

/// Inserts a step, waiting.
pub(crate) async fn insert_step(
    connection: &mut PgConnection,
    workflow_id: WorkflowId,
    position: usize,
    step: &StepSpec,
) -> Result<(), OrchestratorError> {
    sqlx::query(
        "INSERT INTO workflow_steps (workflow_id, step_id, position, task_type, payload, depends_on, priority,
             capabilities, max_retries, timeout_s, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'waiting')",
    )
    .bind(workflow_id.as_uuid())
    .bind(&step.step_id)
    .bind(i32::try_from(position).unwrap_or(i32::MAX))
    .bind(&step.task.task_type)
    .bind(&step.task.payload)
    .bind(&step.depends_on)
    .bind(i16::from(step.task.priority.value()))
    .bind(&step.task.capabilities)
    .bind(sql_int(step.task.max_retries))
    .bind(sql_int(step.task.timeout_s))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// A workflow's header.
pub(crate) async fn header<'e>(
    executor: impl PgExecutor<'e>,
    id: WorkflowId,
) -> Result<Option<WorkflowHeader>, OrchestratorError> {
    let row: Option<HeaderRow> = sqlx::query_as(
        "SELECT id, owner, name, status, failure_policy, parent_workflow_id, created_at, finished_at
         FROM workflows WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(executor)
    .await?;
    row.map(WorkflowHeader::try_from).transpose()
}

/// How deep a workflow is nested: 1 for one without a parent, its parent's depth + 1 otherwise.
pub(crate) async fn depth(connection: &mut PgConnection, id: WorkflowId) -> Result<u32, OrchestratorError> {
    // The chain is bounded (children are refused past the maximum depth); the guard on `depth`
    // only keeps a corrupt cycle from running forever.
    let depth: Option<i32> = sqlx::query_scalar(
        "WITH RECURSIVE chain (id, parent_workflow_id, depth) AS (
             SELECT id, parent_workflow_id, 1 FROM workflows WHERE id = $1
             UNION ALL
             SELECT w.id, w.parent_workflow_id, c.depth + 1
             FROM workflows w JOIN chain c ON w.id = c.parent_workflow_id
             WHERE c.depth < 100
         )
         SELECT max(depth) FROM chain",
    )
    .bind(id.as_uuid())
    .fetch_one(&mut *connection)
    .await?;
    count("workflow depth", depth.unwrap_or(0))
}

/// A workflow's steps in submission order.
pub(crate) async fn steps(
    connection: &mut PgConnection,
    id: WorkflowId,
) -> Result<Vec<StoredStep>, OrchestratorError> {
    let rows: Vec<StepRow> = sqlx::query_as(
        "SELECT step_id, task_type, payload, depends_on, priority, capabilities, max_retries, timeout_s, status, task_id
         FROM workflow_steps WHERE workflow_id = $1 ORDER BY position",
    )
    .bind(id.as_uuid())
    .fetch_all(&mut *connection)
    .await?;
    rows.into_iter().map(StoredStep::try_from).collect()
}

/// Sets a step's status, and its task once created and its error once it has one.
pub(crate) async fn set_step(
    connection: &mut PgConnection,
    workflow_id: WorkflowId,
    step_id: &str,
    status: StepStatus,
    task_id: Option<TaskId>,
    error: Option<&str>,
) -> Result<(), OrchestratorError> {
    sqlx::query(
        "UPDATE workflow_steps SET status = $3, task_id = COALESCE($4, task_id), error = COALESCE($5, error)
         WHERE workflow_id = $1 AND step_id = $2",
    )
    .bind(workflow_id.as_uuid())
    .bind(step_id)
    .bind(status.as_str())
    .bind(task_id.map(|id| id.as_uuid()))
    .bind(error)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Records the workflow's final status.
pub(crate) async fn finish(
    connection: &mut PgConnection,
    id: WorkflowId,
    status: WorkflowStatus,
    now: DateTime<Utc>,
) -> Result<(), OrchestratorError> {
    sqlx::query("UPDATE workflows SET status = $2, finished_at = $3 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// The results of finished steps' tasks, by step id.
pub(crate) async fn step_results(
    connection: &mut PgConnection,
    workflow_id: WorkflowId,
    step_ids: &[String],
) -> Result<Vec<(String, Option<Value>)>, OrchestratorError> {
    let rows: Vec<(String, Option<Value>)> = sqlx::query_as(
        "SELECT s.step_id, t.result FROM workflow_steps s JOIN tasks t ON t.id = s.task_id
         WHERE s.workflow_id = $1 AND s.step_id = ANY($2)",
    )
    .bind(workflow_id.as_uuid())
    .bind(step_ids)
    .fetch_all(&mut *connection)
    .await?;
    Ok(rows)
}

#[derive(sqlx::FromRow)]
struct StepViewRow {
    step_id: String,
    task_type: String,
    depends_on: Vec<String>,
    status: String,
    task_id: Option<Uuid>,
    task_status: Option<String>,
    result: Option<Value>,
    step_error: Option<String>,
    task_error: Option<String>,
}

/// A workflow with each step's live state (its task's status, result and error).
pub(crate) async fn view(pool: &PgPool, id: WorkflowId) -> Result<Option<Workflow>, OrchestratorError> {
    let Some(header) = header(pool, id).await? else {
        return Ok(None);
    };
    let rows: Vec<StepViewRow> = sqlx::query_as(
        "SELECT s.step_id, s.task_type, s.depends_on, s.status, s.task_id, t.status AS task_status,
             CASE WHEN t.status = 'succeeded' THEN t.result END AS result,
             s.error AS step_error, t.error AS task_error
         FROM workflow_steps s LEFT JOIN tasks t ON t.id = s.task_id
         WHERE s.workflow_id = $1 ORDER BY s.position",
    )
    .bind(id.as_uuid())
    .fetch_all(pool)
    .await?;
    let mut steps = Vec::with_capacity(rows.len());
    for row in rows {
        steps.push(WorkflowStep {
            status: step_status(&row.status)?,
            task_status: row.task_status.as_deref().map(super::tasks::status).transpose()?,
            step_id: row.step_id,
            task_type: row.task_type,
            depends_on: row.depends_on,
            task_id: row.task_id.map(TaskId),
            output: row.result,
            error: row.task_error.or(row.step_error),
        });
    }
    Ok(Some(Workflow {
        id: header.id,
        name: header.name,
        status: header.status,
        failure_policy: header.failure_policy,
        steps,
        owner: header.owner,
        parent_workflow_id: header.parent_workflow_id,
        created_at: header.created_at,
        finished_at: header.finished_at,
    }))
}
