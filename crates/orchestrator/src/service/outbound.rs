//! The messages the orchestrator publishes, each enqueued in the outbox inside the transaction
//! that makes the change they announce.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sutazai_messaging::outbox;
use sutazai_messaging::pipeline::{MAX_PRIORITY, coordinator_tasks_queue};
use sutazai_types::TaskId;
use sutazai_types::messages::{TASKS_EXCHANGE, TaskCancelled, TaskFailed, TaskMessage, TaskReady};

use crate::domain::task::Task;
use crate::error::OrchestratorError;

/// `Ready` for the task's next attempt, at the task's priority (the coordinator's queue is a
/// priority queue).
pub(crate) async fn ready(
    connection: &mut PgConnection,
    task: &Task,
    now: DateTime<Utc>,
) -> Result<(), OrchestratorError> {
    let message = TaskMessage::Ready(TaskReady {
        task_id: task.id,
        task_type: task.task_type.clone(),
        priority: task.priority,
        capabilities: task.capabilities.clone(),
        owner: task.owner.clone(),
        attempt: task.attempt + 1,
        payload: task.payload.clone(),
        deadline: task.deadline,
        enqueued_at: now,
    });
    let priority = Some(task.priority.value());
    outbox::enqueue(&mut *connection, TASKS_EXCHANGE, message.routing_key(), &message, priority).await?;
    Ok(())
}

/// `Cancelled`: the coordinator drops the task and the agent running it stops. Sent at the
/// highest priority, so a withdrawal is not queued behind a backlog of ready tasks.
pub(crate) async fn cancelled(
    connection: &mut PgConnection,
    task_id: TaskId,
    reason: &str,
) -> Result<(), OrchestratorError> {
    let message = TaskMessage::Cancelled(TaskCancelled { task_id, reason: reason.to_owned() });
    outbox::enqueue(&mut *connection, TASKS_EXCHANGE, message.routing_key(), &message, Some(MAX_PRIORITY))
        .await?;
    Ok(())
}

/// The final `Failed` of a task that will not be tried again, to the coordinator's dead-letter
/// exchange, so `coordinator.tasks.dead` holds every task that failed for good.
pub(crate) async fn dead_letter(
    connection: &mut PgConnection,
    failed: TaskFailed,
) -> Result<(), OrchestratorError> {
    let message = TaskMessage::Failed(failed);
    let exchange = coordinator_tasks_queue().dead_letter_exchange();
    outbox::enqueue(&mut *connection, &exchange, message.routing_key(), &message, None).await?;
    Ok(())
}
