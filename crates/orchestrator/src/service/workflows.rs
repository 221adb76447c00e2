//! Workflows: submitting a DAG (its root steps start at once) and moving it on whenever one of
//! its steps' tasks ends, inside the transaction that ended the task, so a step's dependants are
//! started exactly once and a stop cancels the other steps atomically with the failure.

use chrono::{DateTime, Utc};
use serde_json::Map;
use sqlx::PgConnection;
use sutazai_types::{TaskId, TaskStatus, WorkflowId};

use super::cancel::{Withdrawal, withdraw};
use super::submit::{Submitted, create_task};
use super::{Orchestrator, telemetry};
use crate::domain::access::Caller;
use crate::domain::task::{StepRef, Task, idempotency_key};
use crate::domain::workflow::{
    StepStatus, Workflow, WorkflowRequest, WorkflowSpec, WorkflowStatus, check_child_depth, progress,
    step_output, step_task_payload,
};
use crate::error::OrchestratorError;
use crate::store;
use crate::store::workflows::{StoredStep, WorkflowHeader};

/// A workflow submission.
#[derive(Debug, Clone)]
pub struct SubmitWorkflow {
    /// The principal the workflow and its tasks are for (required).
    pub owner: String,
    /// The DAG.
    pub workflow: WorkflowRequest,
    /// Client-chosen key, unique per owner; empty for none.
    pub idempotency_key: String,
    /// The workflow this one is a child of.
    pub parent_workflow_id: Option<WorkflowId>,
}

impl Orchestrator {
    /// Validates the DAG, stores it and starts its root steps; or returns the workflow the
    /// owner's idempotency key already names.
    pub async fn submit_workflow(
        &self,
        caller: &Caller,
        input: SubmitWorkflow,
    ) -> Result<Submitted<Workflow>, OrchestratorError> {
        let owner = caller.submission_owner(&input.owner)?;
        let key = idempotency_key(&input.idempotency_key)?;
        let spec = WorkflowSpec::parse(input.workflow, self.limits())?;
        let now = super::now();
        let mut transaction = self.pool().begin().await?;
        if let Some(parent_id) = input.parent_workflow_id {
            let parent = store::workflows::header(&mut *transaction, parent_id).await?;
            // Another owner's workflow is not found, like a missing one.
            if parent.is_none_or(|parent| parent.owner != owner) {
                return Err(OrchestratorError::NotFound(format!("parent workflow {parent_id} not found")));
            }
            let parent_depth = store::workflows::depth(&mut transaction, parent_id).await?;
            check_child_depth(parent_depth, "parent_workflow_id")?;
        }
        let (workflow_id, created) = self
            .create_workflow(&mut transaction, &owner, spec, key.as_deref(), input.parent_workflow_id, now)
            .await?;
        self.commit(transaction).await?;
        let workflow = store::workflows::view(self.pool(), workflow_id)
            .await?
            .ok_or_else(|| OrchestratorError::Internal("a stored workflow vanished".to_owned()))?;
        Ok(Submitted { item: workflow, created })
    }

    /// Stores a validated workflow and starts its root steps; with a taken idempotency key,
    /// returns the existing workflow's id and `false`.
    pub(crate) async fn create_workflow(
        &self,
        connection: &mut PgConnection,
        owner: &str,
        spec: WorkflowSpec,
        key: Option<&str>,
        parent_workflow_id: Option<WorkflowId>,
        now: DateTime<Utc>,
    ) -> Result<(WorkflowId, bool), OrchestratorError> {
        let header = WorkflowHeader {
            id: WorkflowId::new(),
            owner: owner.to_owned(),
            name: spec.name,
            status: WorkflowStatus::Running,
            failure_policy: spec.failure_policy,
            parent_workflow_id,
            created_at: now,
            finished_at: None,
        };
        if !store::workflows::insert(connection, &header, key).await? {
            let existing =
                store::workflows::find_by_key(connection, owner, key.unwrap_or_default()).await?.ok_or_else(
                    || OrchestratorError::Internal("idempotency conflict without a workflow".to_owned()),
                )?;
            return Ok((existing, false));
        }
        for (position, step) in spec.steps.iter().enumerate() {
            store::workflows::insert_step(connection, header.id, position, step).await?;
        }
        for step in spec.steps.iter().filter(|step| step.depends_on.is_empty()) {
            let stored = StoredStep {
                state: crate::domain::workflow::StepState {
                    step_id: step.step_id.clone(),
                    depends_on: Vec::new(),
                    status: StepStatus::Waiting,
                },
                task: step.task.clone(),
                task_id: None,
            };
            self.start_step(connection, &header, &stored, now).await?;
        }
        telemetry::workflow_submitted();
        Ok((header.id, true))
    }

    /// Creates a step's task with its dependencies' outputs beside its input.
    async fn start_step(
        &self,
        connection: &mut PgConnection,
        header: &WorkflowHeader,
        step: &StoredStep,
        now: DateTime<Utc>,
    ) -> Result<TaskId, OrchestratorError> {
        let mut outputs = Map::new();
        if !step.state.depends_on.is_empty() {
            for (step_id, result) in
                store::workflows::step_results(connection, header.id, &step.state.depends_on).await?
            {
                outputs.insert(step_id, result.as_ref().map(step_output).unwrap_or_default());
            }
        }
        // The step's own input was checked against max_payload_bytes at submission; the outputs
        // beside it are the agents' stored results and are passed on whole.
        let mut spec = step.task.clone();
        spec.payload = step_task_payload(&step.task.payload, outputs);
        let step_ref = StepRef { workflow_id: header.id, step_id: step.state.step_id.clone() };
        let (task, event) = Task::submit(spec, header.owner.clone(), None, Some(step_ref), now);
        create_task(connection, &task, &event, now).await?;
        store::workflows::set_step(
            connection,
            header.id,
            &step.state.step_id,
            StepStatus::Active,
            Some(task.id),
            None,
        )
        .await?;
        self.inner.deadline_wakeup.due_at(task.deadline);
        Ok(task.id)
    }

    /// Moves the task's workflow on after the task became terminal: records the step's outcome,
    /// starts dependants whose dependencies all succeeded, applies the failure policy, and sets
    /// the final status once every step is terminal. The caller holds the workflow's lock (taken
    /// with the task's, see [`store::tasks::lock`]).
    pub(crate) async fn on_task_finished(
        &self,
        connection: &mut PgConnection,
        task: &Task,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestratorError> {
        debug_assert!(task.status.is_terminal());
        let Some(step_ref) = &task.step else {
            return Ok(());
        };
        let header = store::workflows::header(&mut *connection, step_ref.workflow_id)
            .await?
            .ok_or_else(|| OrchestratorError::Internal(format!("task {} has no workflow", task.id)))?;
        let steps = store::workflows::steps(connection, header.id).await?;
        let outcome = StepStatus::of_finished_task(task.status);
        store::workflows::set_step(
            connection,
            header.id,
            &step_ref.step_id,
            outcome,
            None,
            task.error.as_deref(),
        )
        .await?;
        let mut states: Vec<_> = steps.iter().map(|step| step.state.clone()).collect();
        let actions = progress(&mut states, &step_ref.step_id, outcome, header.failure_policy);
        for step in steps.iter().filter(|step| actions.start.contains(&step.state.step_id)) {
            self.start_step(connection, &header, step, now).await?;
        }
        let ended = if task.status == TaskStatus::Cancelled { "was cancelled" } else { "failed" };
        let stop_reason = format!("workflow stopped: step `{}` {ended}", step_ref.step_id);
        for step in steps.iter().filter(|step| actions.cancel.contains(&step.state.step_id)) {
            // The workflow is locked, so its tasks can be locked directly.
            if let Some(task_id) = step.task_id
                && let Some(mut sibling) = store::tasks::lock_row(connection, task_id).await?
                && !sibling.status.is_terminal()
            {
                withdraw(connection, &mut sibling, Withdrawal::Cancel(stop_reason.clone()), now).await?;
            }
            store::workflows::set_step(
                connection,
                header.id,
                &step.state.step_id,
                StepStatus::Cancelled,
                None,
                Some(&stop_reason),
            )
            .await?;
        }
        let skip_reason = format!("not run: step `{}` {ended}", step_ref.step_id);
        for step_id in &actions.skip {
            store::workflows::set_step(
                connection,
                header.id,
                step_id,
                StepStatus::Skipped,
                None,
                Some(&skip_reason),
            )
            .await?;
        }
        if let Some(status) = actions.finished {
            store::workflows::finish(connection, header.id, status, now).await?;
            telemetry::workflow_finished(status);
        }
        Ok(())
    }
}
