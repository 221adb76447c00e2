//! Workflows (DAGs of tasks), forwarded to the orchestrator, which validates the graph (a cycle
//! or an unknown dependency is its 422) and owns the state.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sutazai_kit::auth::Principal;
use sutazai_kit::http::{ApiError, parse_uuid};
use sutazai_proto::json::{from_proto_value, to_proto_value};
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::AppState;
use super::tasks::time;
use crate::downstream::ORCHESTRATOR;

/// One step of a submitted workflow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepSpec {
    /// Step id, unique in the workflow.
    id: String,
    /// Task type.
    #[serde(rename = "type")]
    task_type: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: Value,
    /// Ids of steps that must succeed first.
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    capabilities: Vec<String>,
}

/// `POST /api/v1/workflows`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitWorkflow {
    name: String,
    steps: Vec<StepSpec>,
    /// `stop` (default) or `continue` when a step fails.
    #[serde(default)]
    failure_policy: Option<String>,
}

/// A workflow as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowView {
    id: String,
    name: String,
    status: String,
    failure_policy: String,
    steps: Vec<StepView>,
    created_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

/// A step with its task's state and output.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StepView {
    id: String,
    #[serde(rename = "type")]
    task_type: String,
    depends_on: Vec<String>,
    status: String,
    task_id: Option<String>,
    #[schema(value_type = Object)]
    output: Value,
    error: Option<String>,
}

fn workflow_status(status: i32) -> &'static str {
    match pb::WorkflowStatus::try_from(status).unwrap_or(pb::WorkflowStatus::Unspecified) {
        pb::WorkflowStatus::Running => "running",
        pb::WorkflowStatus::Succeeded => "succeeded",
        pb::WorkflowStatus::Failed => "failed",
        pb::WorkflowStatus::Cancelled => "cancelled",
        pb::WorkflowStatus::Unspecified => "unknown",
    }
}

fn step_status(status: i32) -> &'static str {
    match pb::WorkflowStepStatus::try_from(status).unwrap_or(pb::WorkflowStepStatus::Unspecified) {
        pb::WorkflowStepStatus::Waiting => "waiting",
        pb::WorkflowStepStatus::Active => "active",
        pb::WorkflowStepStatus::Succeeded => "succeeded",
        pb::WorkflowStepStatus::Failed => "failed",
        pb::WorkflowStepStatus::Skipped => "skipped",
        pb::WorkflowStepStatus::Cancelled => "cancelled",
        pb::WorkflowStepStatus::Unspecified => "unknown",
    }
}

impl From<pb::Workflow> for WorkflowView {
    fn from(workflow: pb::Workflow) -> Self {
        let failure_policy = match pb::WorkflowFailurePolicy::try_from(workflow.failure_policy) {
            Ok(pb::WorkflowFailurePolicy::Continue) => "continue",
            _ => "stop",
        };
        Self {
            status: workflow_status(workflow.status).to_owned(),
            failure_policy: failure_policy.to_owned(),
            created_at: time(workflow.created_at.as_ref()),
            finished_at: time(workflow.finished_at.as_ref()),
            steps: workflow
                .steps
                .into_iter()
                .map(|step| StepView {
                    status: step_status(step.status).to_owned(),
                    task_id: (!step.task_id.is_empty()).then_some(step.task_id),
                    output: step.output.as_ref().map(from_proto_value).unwrap_or(Value::Null),
                    error: (!step.error.is_empty()).then_some(step.error),
                    id: step.step_id,
                    task_type: step.task_type,
                    depends_on: step.depends_on,
                })
                .collect(),
            id: workflow.id,
            name: workflow.name,
        }
    }
}

const MAX_STEPS: usize = 200;

#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = SubmitWorkflow,
    responses((status = 202, body = WorkflowView), (status = 422), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn submit_workflow(
    State(state): State<AppState>,
    principal: Principal,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<SubmitWorkflow>,
) -> Result<(StatusCode, Json<WorkflowView>), ApiError> {
    sutazai_kit::auth::require_scope(&principal, "tasks:write")?;
    if body.name.trim().is_empty() {
        return Err(ApiError::validation("name", "must not be empty"));
    }
    if body.steps.is_empty() || body.steps.len() > MAX_STEPS {
        return Err(ApiError::validation("steps", format!("must hold 1 to {MAX_STEPS} steps")));
    }
    let failure_policy = match body.failure_policy.as_deref() {
        None | Some("stop") => pb::WorkflowFailurePolicy::Stop,
        Some("continue") => pb::WorkflowFailurePolicy::Continue,
        Some(_) => return Err(ApiError::validation("failure_policy", "must be `stop` or `continue`")),
    };
    let request = pb::SubmitWorkflowRequest {
        name: body.name,
        steps: body
            .steps
            .into_iter()
            .map(|step| pb::WorkflowStepSpec {
                step_id: step.id,
                task_type: step.task_type,
                payload: Some(to_proto_value(&step.payload)),
                depends_on: step.depends_on,
                priority: 5,
                capabilities: step.capabilities,
                max_retries: None,
                timeout_s: None,
            })
            .collect(),
        failure_policy: failure_policy.into(),
        owner: principal.subject.clone(),
        idempotency_key: String::new(),
        parent_workflow_id: String::new(),
    };
    let response = state
        .downstreams
        .call(ORCHESTRATOR, state.downstreams.orchestrator().submit_workflow(request))
        .await?;
    let workflow = response.workflow.ok_or_else(|| {
        ApiError::new(ServiceErrorCode::Internal, "orchestrator answered without a workflow")
    })?;
    Ok((StatusCode::ACCEPTED, Json(workflow.into())))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = WorkflowView), (status = 404), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn get_workflow(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "tasks:read")?;
    let workflow_id = parse_uuid("id", &id)?.to_string();
    let owner = if principal.is_admin() { String::new() } else { principal.subject.clone() };
    let request = pb::GetWorkflowRequest { workflow_id, owner };
    let response =
        state.downstreams.call(ORCHESTRATOR, state.downstreams.orchestrator().get_workflow(request)).await?;
    let workflow =
        response.workflow.ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, "workflow not found"))?;
    Ok(Json(workflow.into()))
}
