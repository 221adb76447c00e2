//! Applying the coordinator's and the agents' reports (assigned, waiting, started, succeeded,
//! failed). Each message is applied in the transaction that also records its id in the inbox (one
//! transaction per message, or per batch of messages that arrived together), so a redelivered
//! message has no second effect; the attempt fence ([`crate::domain::fencing`])
//! keeps late reports from overwriting newer state.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sutazai_messaging::outbox;
use sutazai_types::messages::{TaskFailed, TaskMessage, TaskSucceeded};
use sutazai_types::{AgentId, TaskStatus};

use super::{Orchestrator, outbound, telemetry};
use crate::domain::fencing::{Decision, Ignored, NO_AGENT, Report, decide};
use crate::domain::task::Task;
use crate::error::OrchestratorError;
use crate::store;
use crate::store::attempts::AttemptOutcome;

/// The inbox name of the results consumer.
pub const RESULTS_CONSUMER: &str = "orchestrator.results";

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The task changed.
    Applied,
    /// The message id was handled before (a redelivery).
    Duplicate,
    /// The fence kept the task unchanged.
    Ignored(Ignored),
    /// The task is terminal and the report is about a newer attempt the coordinator still
    /// holds: the task is unchanged, and a `Cancelled` withdraws that attempt.
    Withdrawn,
    /// No such task (another deployment's, or a bug upstream).
    UnknownTask,
    /// Not a report the orchestrator applies (its own `Ready` or `Cancelled`).
    NotAReport,
}

fn report_of(message: &TaskMessage) -> Option<(Report, u32)> {
    match message {
        TaskMessage::Assigned(assigned) => Some((Report::Assigned, assigned.attempt)),
        TaskMessage::Waiting(waiting) => Some((Report::Waiting, waiting.attempt)),
        TaskMessage::Started(started) => Some((Report::Started, started.attempt)),
        TaskMessage::Succeeded(succeeded) => Some((Report::Succeeded, succeeded.attempt)),
        TaskMessage::Failed(failed) if failed.agent_id == NO_AGENT => Some((Report::Refused, failed.attempt)),
        TaskMessage::Failed(failed) => Some((Report::Failed, failed.attempt)),
        TaskMessage::Ready(_) | TaskMessage::Cancelled(_) => None,
    }
}

fn agent_of(message: &TaskMessage) -> Option<AgentId> {
    match message {
        TaskMessage::Assigned(assigned) => Some(assigned.agent_id),
        TaskMessage::Started(started) => Some(started.agent_id),
        TaskMessage::Succeeded(succeeded) => Some(succeeded.agent_id),
        TaskMessage::Failed(failed) => Some(failed.agent_id),
        TaskMessage::Waiting(_) | TaskMessage::Ready(_) | TaskMessage::Cancelled(_) => None,
    }
}

impl Orchestrator {
    /// Applies one message from the results queue, at most once per `message_id`.
    pub async fn apply_report(
        &self,
        message_id: &str,
        message: TaskMessage,
    ) -> Result<Applied, OrchestratorError> {
        let mut transaction = self.pool().begin().await?;
        let applied = self.apply_report_in(&mut transaction, message_id, message).await?;
        self.commit(transaction).await?;
        Ok(applied)
    }

    /// Applies messages that arrived together in one transaction (one commit for the lot). When
    /// any of them fails, nothing of the batch is committed and the error is returned: the
    /// caller then applies the messages one by one, each on its own terms. Messages are applied
    /// in task id order (the order of each task's own messages kept), so concurrent batches lock
    /// rows in one order.
    pub async fn apply_reports(
        &self,
        mut reports: Vec<(usize, String, TaskMessage)>,
    ) -> Result<Vec<(usize, Applied)>, OrchestratorError> {
        reports.sort_by_key(|(_, _, message)| message.task_id());
        let mut transaction = self.pool().begin().await?;
        let mut outcomes = Vec::with_capacity(reports.len());
        for (position, message_id, message) in reports {
            outcomes.push((position, self.apply_report_in(&mut transaction, &message_id, message).await?));
        }
        self.commit(transaction).await?;
        Ok(outcomes)
    }

    /// [`Orchestrator::apply_report`] inside the caller's transaction.
    async fn apply_report_in(
        &self,
        transaction: &mut PgConnection,
        message_id: &str,
        message: TaskMessage,
    ) -> Result<Applied, OrchestratorError> {
        let Some((report, attempt)) = report_of(&message) else {
            return Ok(Applied::NotAReport);
        };
        let task_id = message.task_id();
        if !outbox::record_once(&mut *transaction, RESULTS_CONSUMER, message_id).await? {
            return Ok(Applied::Duplicate);
        }
        let Some(mut task) = store::tasks::lock(transaction, task_id).await? else {
            tracing::warn!(%task_id, report = report.as_str(), "report about an unknown task ignored");
            return Ok(Applied::UnknownTask);
        };
        let now = super::now();
        match decide(task.status, task.attempt, report, attempt) {
            Decision::Ignore(reason) => {
                tracing::info!(
                    %task_id,
                    report = report.as_str(),
                    attempt,
                    current_attempt = task.attempt,
                    status = %task.status,
                    reason = reason.as_str(),
                    "stale report ignored"
                );
                telemetry::stale_report(report, reason);
                return Ok(Applied::Ignored(reason));
            }
            Decision::Withdraw => {
                // The old agent's late outcome ended the task before the coordinator's newer
                // attempt was handled; the coordinator ignores outcomes of the old attempt, so
                // without this it would keep the new one pending or assigned, and may run it.
                let reason = format!("task already {}", task.status);
                outbound::cancelled(transaction, task_id, &reason).await?;
                tracing::info!(
                    %task_id,
                    report = report.as_str(),
                    attempt,
                    current_attempt = task.attempt,
                    status = %task.status,
                    "report about a newer attempt of a terminal task; attempt withdrawn"
                );
                telemetry::stale_report(report, Ignored::Terminal);
                return Ok(Applied::Withdrawn);
            }
            Decision::Requeue => {
                let TaskMessage::Waiting(waiting) = message else {
                    let error = format!("{} requeues nothing", report.as_str());
                    return Err(OrchestratorError::Internal(error));
                };
                self.taken_back(transaction, &mut task, waiting.attempt, waiting.reason, now).await?;
                tracing::info!(
                    %task_id,
                    attempt = task.attempt,
                    "attempt taken back by the coordinator; task queued again"
                );
                return Ok(Applied::Applied);
            }
            Decision::ApplyWithImpliedAssignment => {
                // Only agent outcomes imply an assignment, and they name their agent.
                let agent = agent_of(&message).ok_or_else(|| {
                    OrchestratorError::Internal(format!("{} implies no assignment", report.as_str()))
                })?;
                self.assign(
                    transaction,
                    &mut task,
                    attempt,
                    agent,
                    "assignment implied by the agent's report",
                    now,
                )
                .await?;
            }
            Decision::Apply => {}
        }
        self.apply(transaction, &mut task, message, now).await?;
        Ok(Applied::Applied)
    }

    async fn assign(
        &self,
        connection: &mut PgConnection,
        task: &mut Task,
        attempt: u32,
        agent: AgentId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestratorError> {
        let event = task.assign(attempt, agent, reason, now);
        store::tasks::save(connection, task).await?;
        store::events::append(connection, &event).await?;
        store::attempts::assigned(connection, task.id, attempt, agent, reason, now).await
    }

    /// Ends the attempt the coordinator took back and queues the task for `next_attempt`.
    async fn taken_back(
        &self,
        connection: &mut PgConnection,
        task: &mut Task,
        next_attempt: u32,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestratorError> {
        let event = task.taken_back(next_attempt, reason, now);
        store::tasks::save(connection, task).await?;
        store::events::append(connection, &event).await?;
        store::attempts::finished(
            connection,
            task.id,
            AttemptOutcome::Reassigned,
            Some("taken back by the coordinator"),
            None,
            now,
        )
        .await
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        task: &mut Task,
        message: TaskMessage,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestratorError> {
        match message {
            TaskMessage::Assigned(assigned) => {
                self.assign(connection, task, assigned.attempt, assigned.agent_id, &assigned.reason, now)
                    .await
            }
            TaskMessage::Waiting(waiting) => {
                task.wait(waiting.reason);
                store::tasks::save(connection, task).await
            }
            TaskMessage::Started(started) => {
                let event = task.start(now);
                store::tasks::save(connection, task).await?;
                store::events::append(connection, &event).await?;
                store::attempts::started(connection, task.id, started.attempt, started.started_at).await
            }
            TaskMessage::Succeeded(succeeded) => {
                self.start_implied_by_outcome(connection, task, succeeded.attempt, now).await?;
                self.succeed(connection, task, succeeded, now).await
            }
            TaskMessage::Failed(failed) if failed.agent_id == NO_AGENT => {
                self.refused(connection, task, failed, now).await
            }
            TaskMessage::Failed(failed) => {
                self.start_implied_by_outcome(connection, task, failed.attempt, now).await?;
                self.attempt_failed(connection, task, failed, now).await
            }
            TaskMessage::Ready(_) | TaskMessage::Cancelled(_) => Ok(()),
        }
    }

    /// An agent publishes `Started` before it works, so an outcome for an attempt still
    /// `assigned` overtook its `Started` (handlers run concurrently, and a quick attempt's two
    /// reports race); the `Started` handled later is ignored as ended. The start is recorded
    /// first, so the task keeps its `running` transition and a `started_at`.
    async fn start_implied_by_outcome(
        &self,
        connection: &mut PgConnection,
        task: &mut Task,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestratorError> {
        if task.status != TaskStatus::Assigned {
            return Ok(());
        }
        let event = task.start(now);
        store::tasks::save(connection, task).await?;
        store::events::append(connection, &event).await?;
        store::attempts::started(connection, task.id, attempt, now).await
    }

    async fn succeed(
        &self,
        connection: &mut PgConnection,
        task: &mut Task,
        succeeded: TaskSucceeded,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestratorError> {
        let TaskSucceeded { result, finished_at, agent_id, .. } = succeeded;
        let attempt_result = result.clone();
        match self.run_plan_if_asked(connection, task, result, now).await? {
            Ok(result) => {
                let event = task.succeed(result, now);
                store::tasks::save(connection, task).await?;
                store::events::append(connection, &event).await?;
                store::attempts::finished(
                    connection,
                    task.id,
                    AttemptOutcome::Succeeded,
                    None,
                    Some(&attempt_result),
                    finished_at,
                )
                .await?;
            }
            Err(plan_error) => {
                let error = format!("invalid plan: {plan_error}");
                let event = task.fail(error.clone(), error.clone(), now);
                store::tasks::save(connection, task).await?;
                store::events::append(connection, &event).await?;
                store::attempts::finished(
                    connection,
                    task.id,
                    AttemptOutcome::Failed,
                    Some(&error),
                    Some(&attempt_result),
                    finished_at,
                )
                .await?;
                let failed = TaskFailed {
                    task_id: task.id,
                    attempt: task.attempt,
                    agent_id,
                    error,
                    retryable: false,
                    finished_at,
                };
                outbound::dead_letter(connection, failed).await?;
            }
        }
        telemetry::task_finished(task.status);
        self.on_task_finished(connection, task, now).await
    }

    /// The coordinator refused the attempt: no agent ran it, so there is no attempt to end and
    /// nothing to retry; the task fails for good.
    async fn refused(
        &self,
        connection: &mut PgConnection,
        task: &mut Task,
        refusal: TaskFailed,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestratorError> {
        let event = task.refuse(refusal.error.clone(), now);
        store::tasks::save(connection, task).await?;
        store::events::append(connection, &event).await?;
        outbound::dead_letter(connection, refusal).await?;
        telemetry::task_finished(task.status);
        self.on_task_finished(connection, task, now).await
    }

    async fn attempt_failed(
        &self,
        connection: &mut PgConnection,
        task: &mut Task,
        failed: TaskFailed,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestratorError> {
        store::attempts::finished(
            connection,
            task.id,
            AttemptOutcome::Failed,
            Some(&failed.error),
            None,
            failed.finished_at,
        )
        .await?;
        task.count_failure();
        if task.may_retry(failed.retryable) {
            let delay = self.inner.retry_policy.random_delay(task.failures);
            let event = task.schedule_retry(&failed.error, delay, now);
            store::tasks::save(connection, task).await?;
            store::events::append(connection, &event).await?;
            if let Some(due) = task.next_attempt_at {
                self.inner.retry_wakeup.due_at(due);
            }
            telemetry::retry_scheduled();
            return Ok(());
        }
        let why = if failed.retryable { "no retries left" } else { "not retryable" };
        let detail = format!("attempt {} failed: {} ({why})", task.attempt, failed.error);
        let event = task.fail(failed.error.clone(), detail, now);
        store::tasks::save(connection, task).await?;
        store::events::append(connection, &event).await?;
        outbound::dead_letter(connection, failed).await?;
        telemetry::task_finished(task.status);
        self.on_task_finished(connection, task, now).await
    }
}
