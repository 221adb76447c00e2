//! Submitting a task: stored as queued with its first event and its `Ready` message in one
//! transaction; an owner's idempotency key returns the task it first created.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Orchestrator, outbound, telemetry};
use crate::domain::access::Caller;
use crate::domain::task::{Task, TaskEvent, TaskRequest, TaskSpec, idempotency_key};
use crate::error::OrchestratorError;
use crate::store;

/// A task submission.
#[derive(Debug, Clone)]
pub struct SubmitTask {
    /// The principal the task is for (required).
    pub owner: String,
    /// The task.
    pub task: TaskRequest,
    /// Client-chosen key, unique per owner; empty for none.
    pub idempotency_key: String,
}

/// The answer to a submission.
#[derive(Debug, Clone)]
pub struct Submitted<T> {
    /// The stored item: the new one, or the one the idempotency key matched.
    pub item: T,
    /// False when the key matched an earlier submission.
    pub created: bool,
}

/// Stores a new task with its first event and its `Ready` message; false (and nothing written)
/// when the owner's idempotency key is taken.
pub(crate) async fn create_task(
    connection: &mut PgConnection,
    task: &Task,
    event: &TaskEvent,
    now: DateTime<Utc>,
) -> Result<bool, OrchestratorError> {
    if !store::tasks::insert(connection, task).await? {
        return Ok(false);
    }
    store::events::append(connection, event).await?;
    outbound::ready(connection, task, now).await?;
    telemetry::task_submitted();
    Ok(true)
}

impl Orchestrator {
    /// Stores a queued task and publishes it for dispatch, or returns the task the owner's
    /// idempotency key already names.
    pub async fn submit_task(
        &self,
        caller: &Caller,
        input: SubmitTask,
    ) -> Result<Submitted<Task>, OrchestratorError> {
        let owner = caller.submission_owner(&input.owner)?;
        let key = idempotency_key(&input.idempotency_key)?;
        let spec = TaskSpec::parse(input.task, self.limits(), "")?;
        let now = super::now();
        let (task, event) = Task::submit(spec, owner, key, None, now);
        let mut transaction = self.pool().begin().await?;
        if create_task(&mut transaction, &task, &event, now).await? {
            self.commit(transaction).await?;
            self.inner.deadline_wakeup.due_at(task.deadline);
            return Ok(Submitted { item: task, created: true });
        }
        // The key is taken: by a committed task, since the insert waited for any concurrent one.
        let key = task.idempotency_key.as_deref().unwrap_or_default();
        let existing = store::tasks::find_by_key(&mut transaction, &task.owner, key)
            .await?
            .ok_or_else(|| OrchestratorError::Internal("idempotency conflict without a task".to_owned()))?;
        self.commit(transaction).await?;
        Ok(Submitted { item: existing, created: false })
    }
}
