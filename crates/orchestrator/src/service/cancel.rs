//! Withdrawing a task that no agent finished: a cancel (by its owner, an admin, or its stopping
//! workflow) or a timeout. The task becomes terminal, its open attempt ends, and a `Cancelled`
//! message tells the coordinator to drop it and the agent running it to stop.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sutazai_types::TaskId;

use super::queries::task_not_found;
use super::{Orchestrator, outbound, telemetry};
use crate::domain::access::Caller;
use crate::domain::task::Task;
use crate::error::OrchestratorError;
use crate::store;
use crate::store::attempts::AttemptOutcome;

/// Why a task is withdrawn.
#[derive(Debug, Clone)]
pub(crate) enum Withdrawal {
    /// Cancelled, with the reason recorded as the task's error.
    Cancel(String),
    /// Its deadline passed.
    Timeout,
}

/// Withdraws a locked task; a terminal task is a conflict.
pub(crate) async fn withdraw(
    connection: &mut PgConnection,
    task: &mut Task,
    withdrawal: Withdrawal,
    now: DateTime<Utc>,
) -> Result<(), OrchestratorError> {
    let (event, outcome) = match withdrawal {
        Withdrawal::Cancel(reason) => (task.cancel(&reason, now)?, AttemptOutcome::Cancelled),
        Withdrawal::Timeout => {
            if task.status.is_terminal() {
                return Err(OrchestratorError::Conflict(format!("task is already {}", task.status)));
            }
            (task.time_out(now), AttemptOutcome::TimedOut)
        }
    };
    let reason = task.error.clone().unwrap_or_default();
    store::tasks::save(connection, task).await?;
    store::events::append(connection, &event).await?;
    store::attempts::finished(connection, task.id, outcome, Some(&reason), None, now).await?;
    outbound::cancelled(connection, task.id, &reason).await?;
    telemetry::task_finished(task.status);
    Ok(())
}

impl Orchestrator {
    /// Cancels a task in any non-terminal state; the reason becomes its error.
    pub async fn cancel_task(
        &self,
        caller: &Caller,
        task_id: TaskId,
        owner: &str,
        reason: &str,
    ) -> Result<Task, OrchestratorError> {
        let scope = caller.scope(owner)?;
        let reason = if reason.trim().is_empty() { "cancelled".to_owned() } else { reason.trim().to_owned() };
        let mut transaction = self.pool().begin().await?;
        let mut task = store::tasks::lock(&mut transaction, task_id)
            .await?
            .filter(|task| scope.sees(&task.owner))
            .ok_or_else(|| task_not_found(task_id))?;
        let now = super::now();
        withdraw(&mut transaction, &mut task, Withdrawal::Cancel(reason), now).await?;
        self.on_task_finished(&mut transaction, &task, now).await?;
        self.commit(transaction).await?;
        Ok(task)
    }
}
