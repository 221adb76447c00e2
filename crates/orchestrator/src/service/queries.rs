//! Reads: a task, a page of tasks, a task's events, a workflow. Another owner's task or workflow is
//! not found.

use sutazai_types::{TaskId, TaskStatus, WorkflowId};

use super::Orchestrator;
use crate::domain::access::Caller;
use crate::domain::page::Page;
use crate::domain::task::{Task, TaskEvent};
use crate::domain::workflow::Workflow;
use crate::error::OrchestratorError;
use crate::store;
use crate::store::tasks::TaskFilter;

/// A page of items and how many match in total.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    /// The page.
    pub items: Vec<T>,
    /// Matching items in total.
    pub total: u64,
    /// The page that was applied.
    pub page: Page,
}

pub(crate) fn task_not_found(task_id: TaskId) -> OrchestratorError {
    OrchestratorError::NotFound(format!("task {task_id} not found"))
}

impl Orchestrator {
    /// A task visible to the caller for `owner`.
    pub async fn get_task(
        &self,
        caller: &Caller,
        task_id: TaskId,
        owner: &str,
    ) -> Result<Task, OrchestratorError> {
        let scope = caller.scope(owner)?;
        store::tasks::get(self.pool(), task_id)
            .await?
            .filter(|task| scope.sees(&task.owner))
            .ok_or_else(|| task_not_found(task_id))
    }

    /// Tasks newest first, filtered by owner, status and type.
    pub async fn list_tasks(
        &self,
        caller: &Caller,
        owner: &str,
        status: Option<TaskStatus>,
        task_type: Option<&str>,
        page: Page,
    ) -> Result<Listed<Task>, OrchestratorError> {
        let scope = caller.scope(owner)?;
        let filter = TaskFilter { scope: &scope, status, task_type };
        let (items, total) = store::tasks::list(self.pool(), &filter, page.skip, page.limit).await?;
        Ok(Listed { items, total, page })
    }

    /// A task's events, oldest first.
    pub async fn list_task_events(
        &self,
        caller: &Caller,
        task_id: TaskId,
        owner: &str,
        page: Page,
    ) -> Result<Listed<TaskEvent>, OrchestratorError> {
        self.get_task(caller, task_id, owner).await?;
        let (items, total) = store::events::page(self.pool(), task_id, page.skip, page.limit).await?;
        Ok(Listed { items, total, page })
    }

    /// A workflow with its steps' live state.
    pub async fn get_workflow(
        &self,
        caller: &Caller,
        workflow_id: WorkflowId,
        owner: &str,
    ) -> Result<Workflow, OrchestratorError> {
        let scope = caller.scope(owner)?;
        store::workflows::view(self.pool(), workflow_id)
            .await?
            .filter(|workflow| scope.sees(&workflow.owner))
            .ok_or_else(|| OrchestratorError::NotFound(format!("workflow {workflow_id} not found")))
    }
}
