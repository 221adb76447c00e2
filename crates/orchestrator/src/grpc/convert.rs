//! Conversions between the proto messages and the domain types.

use chrono::{DateTime, Utc};
use sutazai_proto::json::{from_proto_value, to_proto_value};
use sutazai_proto::v1 as pb;
use sutazai_types::{TaskId, TaskStatus, WorkflowId};

use crate::domain::page::Page;
use crate::domain::task::{Task, TaskEvent, TaskRequest};
use crate::domain::workflow::{
    FailurePolicy, StepRequest, StepStatus, Workflow, WorkflowRequest, WorkflowStatus, WorkflowStep,
};
use crate::error::OrchestratorError;
use crate::service::Listed;

pub(super) fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    // Sub-second nanos of a DateTime are always below 1e9, so they fit.
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn uuid_field(field: &str, text: &str) -> Result<uuid::Uuid, OrchestratorError> {
    uuid::Uuid::parse_str(text).map_err(|_| OrchestratorError::validation(field, "must be a UUID"))
}

pub(super) fn task_id(text: &str) -> Result<TaskId, OrchestratorError> {
    uuid_field("task_id", text).map(TaskId)
}

pub(super) fn workflow_id(field: &str, text: &str) -> Result<WorkflowId, OrchestratorError> {
    uuid_field(field, text).map(WorkflowId)
}

pub(super) fn task_status(status: TaskStatus) -> pb::TaskStatus {
    match status {
        TaskStatus::Queued => pb::TaskStatus::Queued,
        TaskStatus::Assigned => pb::TaskStatus::Assigned,
        TaskStatus::Running => pb::TaskStatus::Running,
        TaskStatus::Retrying => pb::TaskStatus::Retrying,
        TaskStatus::Succeeded => pb::TaskStatus::Succeeded,
        TaskStatus::Failed => pb::TaskStatus::Failed,
        TaskStatus::Cancelled => pb::TaskStatus::Cancelled,
    }
}

/// A status filter: unspecified means any.
pub(super) fn status_filter(value: i32) -> Result<Option<TaskStatus>, OrchestratorError> {
    let status = pb::TaskStatus::try_from(value)
        .map_err(|_| OrchestratorError::validation("status", "is not a task status"))?;
    Ok(TaskStatus::ALL.into_iter().find(|candidate| task_status(*candidate) == status))
}

pub(super) fn page(request: Option<pb::PageRequest>) -> Result<Page, OrchestratorError> {
    let request = request.unwrap_or_default();
    Ok(Page::new(request.skip, request.limit)?)
}

pub(super) fn page_info<T>(listed: &Listed<T>) -> pb::PageInfo {
    pb::PageInfo { total: listed.total, skip: listed.page.skip, limit: listed.page.limit }
}

pub(super) fn task(task: &Task) -> pb::Task {
    pb::Task {
        id: task.id.to_string(),
        task_type: task.task_type.clone(),
        status: task_status(task.status).into(),
        priority: u32::from(task.priority.value()),
        attempt: task.attempt,
        assigned_agent: task.assigned_agent.map(|agent| agent.to_string()).unwrap_or_default(),
        payload: Some(to_proto_value(&task.payload)),
        result: task.result.as_ref().map(to_proto_value),
        error: task.error.clone().unwrap_or_default(),
        queued_reason: task.queued_reason.clone().unwrap_or_default(),
        capabilities: task.capabilities.clone(),
        max_retries: task.max_retries,
        timeout_s: task.timeout_s,
        owner: task.owner.clone(),
        workflow_id: task.step.as_ref().map(|step| step.workflow_id.to_string()).unwrap_or_default(),
        created_at: Some(timestamp(task.created_at)),
        started_at: task.started_at.map(timestamp),
        finished_at: task.finished_at.map(timestamp),
    }
}

pub(super) fn event(event: &TaskEvent) -> pb::TaskEvent {
    pb::TaskEvent {
        task_id: event.task_id.to_string(),
        sequence: event.sequence,
        status: task_status(event.status).into(),
        previous_status: event.previous_status.map_or(pb::TaskStatus::Unspecified, task_status).into(),
        attempt: event.attempt,
        agent_id: event.agent_id.map(|agent| agent.to_string()).unwrap_or_default(),
        detail: event.detail.clone(),
        occurred_at: Some(timestamp(event.occurred_at)),
    }
}

pub(super) fn task_request(request: &mut pb::SubmitTaskRequest) -> TaskRequest {
    TaskRequest {
        task_type: std::mem::take(&mut request.task_type),
        payload: request.payload.as_ref().map(from_proto_value).unwrap_or_default(),
        priority: request.priority,
        capabilities: std::mem::take(&mut request.capabilities),
        max_retries: request.max_retries,
        timeout_s: request.timeout_s,
    }
}

pub(super) fn failure_policy(value: i32) -> Result<FailurePolicy, OrchestratorError> {
    match pb::WorkflowFailurePolicy::try_from(value) {
        Ok(pb::WorkflowFailurePolicy::Unspecified | pb::WorkflowFailurePolicy::Stop) => {
            Ok(FailurePolicy::Stop)
        }
        Ok(pb::WorkflowFailurePolicy::Continue) => Ok(FailurePolicy::Continue),
        Err(_) => Err(OrchestratorError::validation("failure_policy", "must be stop or continue")),
    }
}

pub(super) fn workflow_request(
    request: &mut pb::SubmitWorkflowRequest,
) -> Result<WorkflowRequest, OrchestratorError> {
    let steps = std::mem::take(&mut request.steps)
        .into_iter()
        .map(|step| StepRequest {
            step_id: step.step_id,
            depends_on: step.depends_on,
            task: TaskRequest {
                task_type: step.task_type,
                payload: step.payload.as_ref().map(from_proto_value).unwrap_or_default(),
                priority: step.priority,
                capabilities: step.capabilities,
                max_retries: step.max_retries,
                timeout_s: step.timeout_s,
            },
        })
        .collect();
    Ok(WorkflowRequest {
        name: std::mem::take(&mut request.name),
        steps,
        failure_policy: failure_policy(request.failure_policy)?,
    })
}

fn workflow_status(status: WorkflowStatus) -> pb::WorkflowStatus {
    match status {
        WorkflowStatus::Running => pb::WorkflowStatus::Running,
        WorkflowStatus::Succeeded => pb::WorkflowStatus::Succeeded,
        WorkflowStatus::Failed => pb::WorkflowStatus::Failed,
        WorkflowStatus::Cancelled => pb::WorkflowStatus::Cancelled,
    }
}

fn step_status(status: StepStatus) -> pb::WorkflowStepStatus {
    match status {
        StepStatus::Waiting => pb::WorkflowStepStatus::Waiting,
        StepStatus::Active => pb::WorkflowStepStatus::Active,
        StepStatus::Succeeded => pb::WorkflowStepStatus::Succeeded,
        StepStatus::Failed => pb::WorkflowStepStatus::Failed,
        StepStatus::Cancelled => pb::WorkflowStepStatus::Cancelled,
        StepStatus::Skipped => pb::WorkflowStepStatus::Skipped,
    }
}

fn step(step: &WorkflowStep) -> pb::WorkflowStep {
    pb::WorkflowStep {
        step_id: step.step_id.clone(),
        task_type: step.task_type.clone(),
        depends_on: step.depends_on.clone(),
        status: step_status(step.status).into(),
        task_id: step.task_id.map(|id| id.to_string()).unwrap_or_default(),
        task_status: step.task_status.map_or(pb::TaskStatus::Unspecified, task_status).into(),
        output: step.output.as_ref().map(to_proto_value),
        error: step.error.clone().unwrap_or_default(),
    }
}

pub(super) fn workflow(workflow: &Workflow) -> pb::Workflow {
    let failure_policy = match workflow.failure_policy {
        FailurePolicy::Stop => pb::WorkflowFailurePolicy::Stop,
        FailurePolicy::Continue => pb::WorkflowFailurePolicy::Continue,
    };
    pb::Workflow {
        id: workflow.id.to_string(),
        name: workflow.name.clone(),
        status: workflow_status(workflow.status).into(),
        failure_policy: failure_policy.into(),
        steps: workflow.steps.iter().map(step).collect(),
        owner: workflow.owner.clone(),
        parent_workflow_id: workflow.parent_workflow_id.map(|id| id.to_string()).unwrap_or_default(),
        created_at: Some(timestamp(workflow.created_at)),
        finished_at: workflow.finished_at.map(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters_decode() {
        assert_eq!(status_filter(0).unwrap(), None);
        assert_eq!(status_filter(pb::TaskStatus::Retrying.into()).unwrap(), Some(TaskStatus::Retrying));
        assert!(
            matches!(status_filter(42), Err(OrchestratorError::Validation(error)) if error.field == "status")
        );
    }

    #[test]
    fn ids_and_policies_are_checked() {
        assert!(task_id("0190b6b2-0000-7000-8000-000000000000").is_ok());
        assert!(
            matches!(task_id("task-1"), Err(OrchestratorError::Validation(error)) if error.field == "task_id")
        );
        assert_eq!(failure_policy(0).unwrap(), FailurePolicy::Stop);
        assert_eq!(failure_policy(2).unwrap(), FailurePolicy::Continue);
        assert!(failure_policy(9).is_err());
    }
}
