//! The `attempts` table: one row per assignment with its agent, timings, outcome and result, so
//! the prompts and outputs of every attempt stay with the task.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use sutazai_types::{AgentId, TaskId};

use super::sql_int;
use crate::error::OrchestratorError;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    /// The coordinator gave the task to another agent (this one went silent).
    Reassigned,
}

impl AttemptOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Reassigned => "reassigned",
        }
    }
}

/// Records attempt `attempt` leased to `agent`; an earlier attempt still open ends as reassigned
/// with `reason`.
pub(crate) async fn assigned(
    connection: &mut PgConnection,
    task_id: TaskId,
    attempt: u32,
    agent: AgentId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), OrchestratorError> {
    sqlx::query(
        "UPDATE attempts SET outcome = $5, error = NULLIF($3, ''), finished_at = $4
         WHERE task_id = $1 AND attempt < $2 AND outcome IS NULL",
    )
    .bind(task_id.as_uuid())
    .bind(sql_int(attempt))
    .bind(reason)
    .bind(now)
    .bind(AttemptOutcome::Reassigned.as_str())
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "INSERT INTO attempts (task_id, attempt, agent_id, assigned_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (task_id, attempt) DO NOTHING",
    )
    .bind(task_id.as_uuid())
    .bind(sql_int(attempt))
    .bind(agent.as_uuid())
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Records when the agent started the attempt (its own clock).
pub(crate) async fn started(
    connection: &mut PgConnection,
    task_id: TaskId,
    attempt: u32,
    started_at: DateTime<Utc>,
) -> Result<(), OrchestratorError> {
    sqlx::query("UPDATE attempts SET started_at = $3 WHERE task_id = $1 AND attempt = $2")
        .bind(task_id.as_uuid())
        .bind(sql_int(attempt))
        .bind(started_at)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Ends the task's open attempt, if any.
pub(crate) async fn finished(
    connection: &mut PgConnection,
    task_id: TaskId,
    outcome: AttemptOutcome,
    error: Option<&str>,
    result: Option<&Value>,
    finished_at: DateTime<Utc>,
) -> Result<(), OrchestratorError> {
    sqlx::query(
        "UPDATE attempts SET outcome = $2, error = $3, result = $4, finished_at = $5
         WHERE task_id = $1 AND outcome IS NULL",
    )
    .bind(task_id.as_uuid())
    .bind(outcome.as_str())
    .bind(error)
    .bind(result)
    .bind(finished_at)
    .execute(&mut *connection)
    .await?;
    Ok(())
}
