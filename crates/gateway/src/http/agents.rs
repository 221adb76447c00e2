//! Agents and the dispatch strategy, forwarded to the coordinator.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sutazai_kit::auth::Principal;
use sutazai_kit::http::{ApiError, ClientIp, Page, PageOf};
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::AppState;
use super::paging::{page_of, page_request};
use super::tasks::time;
use crate::downstream::COORDINATOR;
use sutazai_kit::audit::AuditRecord;

/// An agent as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentView {
    id: String,
    name: String,
    capabilities: Vec<String>,
    status: String,
    load: f64,
    slots: u32,
    last_heartbeat: Option<DateTime<Utc>>,
    tasks_succeeded: u64,
    tasks_failed: u64,
}

impl From<pb::Agent> for AgentView {
    fn from(agent: pb::Agent) -> Self {
        let status = match pb::AgentStatus::try_from(agent.status).unwrap_or(pb::AgentStatus::Unspecified) {
            pb::AgentStatus::Online => "online",
            pb::AgentStatus::Offline => "offline",
            pb::AgentStatus::Draining => "draining",
            pb::AgentStatus::Unspecified => "unknown",
        };
        Self {
            status: status.to_owned(),
            last_heartbeat: time(agent.last_heartbeat.as_ref()),
            id: agent.id,
            name: agent.name,
            capabilities: agent.capabilities,
            load: agent.load,
            slots: agent.slots,
            tasks_succeeded: agent.tasks_succeeded,
            tasks_failed: agent.tasks_failed,
        }
    }
}

/// Filters of `GET /api/v1/agents`.
#[derive(Debug, Deserialize)]
pub(crate) struct AgentFilters {
    capability: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn list_agents(
    State(state): State<AppState>,
    principal: Principal,
    page: Page,
    Query(filters): Query<AgentFilters>,
) -> Result<Json<PageOf<AgentView>>, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "agents:read")?;
    let request = pb::ListAgentsRequest {
        status: pb::AgentStatus::Unspecified.into(),
        capability: filters.capability.unwrap_or_default(),
        page: Some(page_request(page)),
    };
    let response =
        state.downstreams.call(COORDINATOR, state.downstreams.coordinator().list_agents(request)).await?;
    Ok(Json(page_of(response.agents, response.page, page)))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn get_agent(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    sutazai_kit::auth::require_scope(&principal, "agents:read")?;
    let agent_id = sutazai_kit::http::parse_uuid("id", &id)?.to_string();
    let response = state
        .downstreams
        .call(COORDINATOR, state.downstreams.coordinator().get_agent(pb::GetAgentRequest { agent_id }))
        .await?;
    let agent = response.agent.ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, "agent not found"))?;
    Ok(Json(agent.into()))
}

/// The dispatch strategy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StrategyView {
    /// `capability_match`, `least_loaded`, `round_robin` or `priority`.
    strategy: String,
    /// Share the queue fairly across owners.
    #[serde(default)]
    owner_fairness: bool,
    /// Most tasks one owner may have running (0: no limit).
    #[serde(default)]
    max_active_per_owner: u32,
    /// How long an agent holds an assignment before it is re-assigned.
    #[serde(default)]
    assignment_lease_s: u32,
}

fn strategy_kind(name: &str) -> Option<pb::DispatchStrategyKind> {
    match name {
        "capability_match" => Some(pb::DispatchStrategyKind::CapabilityMatch),
        "least_loaded" => Some(pb::DispatchStrategyKind::LeastLoaded),
        "round_robin" => Some(pb::DispatchStrategyKind::RoundRobin),
        "priority" => Some(pb::DispatchStrategyKind::Priority),
        _ => None,
    }
}

impl From<pb::DispatchStrategy> for StrategyView {
    fn from(strategy: pb::DispatchStrategy) -> Self {
        let name = match pb::DispatchStrategyKind::try_from(strategy.kind)
            .unwrap_or(pb::DispatchStrategyKind::Unspecified)
        {
            pb::DispatchStrategyKind::CapabilityMatch => "capability_match",
            pb::DispatchStrategyKind::LeastLoaded => "least_loaded",
            pb::DispatchStrategyKind::RoundRobin => "round_robin",
            pb::DispatchStrategyKind::Priority => "priority",
            pb::DispatchStrategyKind::Unspecified => "unknown",
        };
        Self {
            strategy: name.to_owned(),
            owner_fairness: strategy.owner_fairness,
            max_active_per_owner: strategy.max_active_per_owner,
            assignment_lease_s: strategy.assignment_lease_s,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/coordinator/strategy", tag = "agents",
    responses((status = 200, body = StrategyView), (status = 403), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn get_strategy(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<StrategyView>, ApiError> {
    sutazai_kit::auth::require_admin(&principal)?;
    let response = state
        .downstreams
        .call(COORDINATOR, state.downstreams.coordinator().get_strategy(pb::GetStrategyRequest {}))
        .await?;
    let strategy =
        response.strategy.ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "no strategy"))?;
    Ok(Json(strategy.into()))
}

#[utoipa::path(put, path = "/api/v1/coordinator/strategy", tag = "agents", request_body = StrategyView,
    responses((status = 200, body = StrategyView), (status = 403), (status = 422), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn set_strategy(
    State(state): State<AppState>,
    principal: Principal,
    client_ip: ClientIp,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<StrategyView>,
) -> Result<Json<StrategyView>, ApiError> {
    sutazai_kit::auth::require_admin(&principal)?;
    let kind = strategy_kind(&body.strategy).ok_or_else(|| {
        ApiError::validation("strategy", "must be capability_match, least_loaded, round_robin or priority")
    })?;
    let request = pb::SetStrategyRequest {
        strategy: Some(pb::DispatchStrategy {
            kind: kind.into(),
            owner_fairness: body.owner_fairness,
            max_active_per_owner: body.max_active_per_owner,
            assignment_lease_s: body.assignment_lease_s,
            updated_at: None,
            updated_by: principal.name.clone(),
        }),
        updated_by: principal.name.clone(),
    };
    let outcome =
        state.downstreams.call(COORDINATOR, state.downstreams.coordinator().set_strategy(request)).await;
    state
        .audit
        .record(AuditRecord {
            actor: Some(&principal.name),
            action: "strategy_set",
            target: Some(&body.strategy),
            ip: client_ip.0,
            outcome: if outcome.is_ok() { "success" } else { "failure" },
            detail: json!({"owner_fairness": body.owner_fairness}),
        })
        .await;
    let strategy =
        outcome?.strategy.ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "no strategy"))?;
    Ok(Json(strategy.into()))
}
