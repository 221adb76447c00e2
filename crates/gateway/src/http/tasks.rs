//! Tasks and workflows (API.md "Tasks, workflows, agents"), forwarded to the orchestrator, which
//! owns their state. The caller's subject is passed as the owner, so another user's task is a 404
//! decided where the data lives; admins see every task.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::{ApiError, Page, PageOf, parse_uuid};
use sutazai_proto::json::{from_proto_value, to_proto_value};
use sutazai_proto::v1 as pb;
use sutazai_types::{ServiceErrorCode, TaskStatus};
use utoipa::ToSchema;

use super::AppState;
use super::paging::{page_of, page_request};
use super::sse::{json_event, sse_from};
use crate::downstream::ORCHESTRATOR;

/// A task as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskView {
    id: String,
    #[serde(rename = "type")]
    task_type: String,
    status: String,
    priority: u32,
    attempt: u32,
    assigned_agent: Option<String>,
    #[schema(value_type = Object)]
    result: Value,
    error: Option<String>,
    /// Why a queued task waits (no live agent with its capabilities, ...).
    queued_reason: Option<String>,
    created_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

pub(crate) fn time(timestamp: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    timestamp.and_then(|timestamp| {
        DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).unwrap_or(0))
    })
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn status_name(status: i32) -> &'static str {
    match pb::TaskStatus::try_from(status).unwrap_or(pb::TaskStatus::Unspecified) {
        pb::TaskStatus::Queued => "queued",
        pb::TaskStatus::Assigned => "assigned",
        pb::TaskStatus::Running => "running",
        pb::TaskStatus::Retrying => "retrying",
        pb::TaskStatus::Succeeded => "succeeded",
        pb::TaskStatus::Failed => "failed",
        pb::TaskStatus::Cancelled => "cancelled",
        pb::TaskStatus::Unspecified => "unknown",
    }
}

fn status_filter(status: TaskStatus) -> pb::TaskStatus {
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

impl From<pb::Task> for TaskView {
    fn from(task: pb::Task) -> Self {
        Self {
            status: status_name(task.status).to_owned(),
            result: task.result.as_ref().map(from_proto_value).unwrap_or(Value::Null),
            error: non_empty(&task.error),
            queued_reason: non_empty(&task.queued_reason),
            assigned_agent: non_empty(&task.assigned_agent),
            created_at: time(task.created_at.as_ref()),
            started_at: time(task.started_at.as_ref()),
            finished_at: time(task.finished_at.as_ref()),
            id: task.id,
            task_type: task.task_type,
            priority: task.priority,
            attempt: task.attempt,
        }
    }
}

/// The owner filter: admins act on every task.
fn owner_of(principal: &Principal) -> String {
    if principal.is_admin() { String::new() } else { principal.subject.clone() }
}

/// `POST /api/v1/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitTask {
    /// Task type, e.g. `summarize`.
    #[serde(rename = "type")]
    task_type: String,
    /// Free-form input of the task.
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: Value,
    /// 0 (lowest) to 9.
    #[serde(default = "default_priority")]
    priority: u8,
    /// Capabilities an agent needs.
    #[serde(default)]
    capabilities: Vec<String>,
    /// Retries after a retryable failure (orchestrator default when absent).
    max_retries: Option<u32>,
    /// Per-attempt timeout in seconds.
    timeout_s: Option<u32>,
}

fn default_priority() -> u8 {
    5
}

/// The answer to a submission.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Submitted {
    id: String,
    status: String,
}

const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = SubmitTask,
    responses((status = 202, body = Submitted), (status = 422), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn submit_task(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<SubmitTask>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    sutazai_kit::auth::require_scope(&principal, "tasks:write")?;
    if body.task_type.trim().is_empty() || body.task_type.len() > 100 {
        return Err(ApiError::validation("type", "must be 1 to 100 characters"));
    }
    if body.priority > 9 {
        return Err(ApiError::validation("priority", "must be between 0 and 9"));
    }
    let idempotency_key = match headers.get("idempotency-key") {
        None => String::new(),
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_CHARS => key.to_owned(),
            _ => {
                return Err(ApiError::new(
                    ServiceErrorCode::BadRequest,
                    "Idempotency-Key: 1 to 200 visible characters",
                ));
            }
        },
    };
    let request = pb::SubmitTaskRequest {
        task_type: body.task_type,
        payload: Some(to_proto_value(&body.payload)),
        priority: u32::from(body.priority),
        capabilities: body.capabilities,
        max_retries: body.max_retries,
        timeout_s: body.timeout_s,
        idempotency_key,
        owner: principal.subject.clone(),
    };
    let response =
        state.downstreams.call(ORCHESTRATOR, state.downstreams.orchestrator().submit_task(request)).await?;
    let task = response
        .task
        .ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "orchestrator answered without a task"))?;
    Ok((StatusCode::ACCEPTED, Json(Submitted { status: status_name(task.status).to_owned(), id: task.id })))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 400), (status = 404), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn get_task(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "tasks:read")?;
    let task_id = parse_uuid("id", &id)?.to_string();
    let request = pb::GetTaskRequest { task_id, owner: owner_of(&principal) };
    let response =
        state.downstreams.call(ORCHESTRATOR, state.downstreams.orchestrator().get_task(request)).await?;
    let task = response.task.ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, "task not found"))?;
    Ok(Json(task.into()))
}

/// Filters of `GET /api/v1/tasks`.
#[derive(Debug, Deserialize)]
pub(crate) struct TaskFilters {
    status: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    params(("status" = Option<String>, Query), ("type" = Option<String>, Query), ("skip" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200), (status = 422), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    principal: Principal,
    page: Page,
    Query(filters): Query<TaskFilters>,
) -> Result<Json<PageOf<TaskView>>, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "tasks:read")?;
    let status = match filters.status.as_deref() {
        None | Some("") => pb::TaskStatus::Unspecified,
        Some(text) => status_filter(
            text.parse::<TaskStatus>().map_err(|error| ApiError::validation("status", error.to_string()))?,
        ),
    };
    // Listing is per caller, newest first; admins list their own tasks here too.
    let request = pb::ListTasksRequest {
        owner: principal.subject.clone(),
        status: status.into(),
        task_type: filters.task_type.unwrap_or_default(),
        page: Some(page_request(page)),
    };
    let response =
        state.downstreams.call(ORCHESTRATOR, state.downstreams.orchestrator().list_tasks(request)).await?;
    Ok(Json(page_of(response.tasks, response.page, page)))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404), (status = 409), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn cancel_task(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "tasks:write")?;
    let task_id = parse_uuid("id", &id)?.to_string();
    let request = pb::CancelTaskRequest {
        task_id,
        owner: owner_of(&principal),
        reason: format!("cancelled by {}", principal.name),
    };
    let response =
        state.downstreams.call(ORCHESTRATOR, state.downstreams.orchestrator().cancel_task(request)).await?;
    let task = response.task.ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, "task not found"))?;
    Ok(Json(task.into()))
}

/// A state transition.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskEventView {
    sequence: u64,
    status: String,
    previous_status: String,
    attempt: u32,
    agent_id: Option<String>,
    detail: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
}

impl From<pb::TaskEvent> for TaskEventView {
    fn from(event: pb::TaskEvent) -> Self {
        Self {
            sequence: event.sequence,
            status: status_name(event.status).to_owned(),
            previous_status: status_name(event.previous_status).to_owned(),
            attempt: event.attempt,
            agent_id: non_empty(&event.agent_id),
            detail: non_empty(&event.detail),
            occurred_at: time(event.occurred_at.as_ref()),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", tag = "tasks",
    params(("id" = String, Path), ("follow" = Option<bool>, Query, description = "stream new transitions as server-sent events")),
    responses((status = 200, description = "a page of transitions, or with `follow=true` a text/event-stream of `task_event` frames"),
        (status = 404), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn task_events(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    page: Page,
    Query(follow): Query<Follow>,
) -> Result<Response, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "tasks:read")?;
    let task_id = parse_uuid("id", &id)?.to_string();
    if follow.follow {
        return follow_task_events(state, owner_of(&principal), task_id).await;
    }
    let request =
        pb::ListTaskEventsRequest { task_id, owner: owner_of(&principal), page: Some(page_request(page)) };
    let response = state
        .downstreams
        .call(ORCHESTRATOR, state.downstreams.orchestrator().list_task_events(request))
        .await?;
    Ok(Json(page_of::<_, TaskEventView>(response.events, response.page, page)).into_response())
}

/// `?follow=true`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Follow {
    #[serde(default)]
    follow: bool,
}

/// Streams the task's transitions as they happen (the orchestrator's `WatchTaskEvents`), each as
/// an SSE `task_event` frame carrying JSON; the stream ends with `event: done` when the
/// orchestrator closes it (the task reached a terminal state) or `event: error`.
async fn follow_task_events(state: AppState, owner: String, task_id: String) -> Result<Response, ApiError> {
    let request = pb::WatchTaskEventsRequest { task_id, owner, after_sequence: 0 };
    let mut events = state
        .downstreams
        .call(ORCHESTRATOR, state.downstreams.orchestrator().watch_task_events(request))
        .await?;
    Ok(sse_from(move |sender| async move {
        loop {
            let (frame, last) = match events.message().await {
                Ok(Some(pb::WatchTaskEventsResponse { event: Some(event) })) => {
                    (json_event(Some("task_event"), &json!(TaskEventView::from(event))), false)
                }
                Ok(Some(_)) => continue,
                Ok(None) => (json_event(Some("done"), &json!({})), true),
                Err(status) => {
                    let error = sutazai_kit::grpc::api_error_from_status(ORCHESTRATOR, &status);
                    let problem = sutazai_kit::http::Problem::new(error.code(), error.detail());
                    (json_event(Some("error"), &json!(problem)), true)
                }
            };
            if sender.send(frame).await.is_err() || last {
                return;
            }
        }
    }))
}
