//! gRPC adapter (`sutazai.v1.CoordinatorService`): each RPC authenticates the bearer token,
//! decodes into the domain's types, asks the dispatcher, and maps the error once. Any valid token
//! may read; setting the strategy needs the admin role.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sutazai_kit::auth::{Principal, TokenVerifier};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::coordinator_service_server::{CoordinatorService, CoordinatorServiceServer};
use sutazai_types::{AgentId, AgentStatus};
use tonic::{Request, Response, Status};

use crate::dispatcher::DispatcherHandle;
use crate::domain::agent::{Agent, AgentFilter, MAX_PAGE_LIMIT};
use crate::domain::state::PendingStats;
use crate::domain::strategy::{DispatchStrategy, StoredStrategy, StrategyKind};
use crate::error::CoordinatorError;

/// The gRPC service over the dispatcher.
#[derive(Debug, Clone)]
pub(crate) struct CoordinatorGrpc {
    dispatcher: DispatcherHandle,
    verifier: Arc<TokenVerifier>,
}

impl CoordinatorGrpc {
    /// The tonic service to mount.
    pub(crate) fn into_service(
        dispatcher: DispatcherHandle,
        verifier: Arc<TokenVerifier>,
    ) -> CoordinatorServiceServer<Self> {
        CoordinatorServiceServer::new(Self { dispatcher, verifier })
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        sutazai_kit::auth::authenticate_grpc(&self.verifier, request).await
    }
}

fn to_status(error: CoordinatorError) -> Status {
    sutazai_kit::grpc::status(error.code(), error.to_string())
}

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    // Sub-second nanos of a DateTime are always below 1e9, so they fit.
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn status_message(status: AgentStatus) -> pb::AgentStatus {
    match status {
        AgentStatus::Online => pb::AgentStatus::Online,
        AgentStatus::Offline => pb::AgentStatus::Offline,
        AgentStatus::Draining => pb::AgentStatus::Draining,
    }
}

fn status_filter(value: i32) -> Result<Option<AgentStatus>, CoordinatorError> {
    match pb::AgentStatus::try_from(value) {
        Ok(pb::AgentStatus::Unspecified) => Ok(None),
        Ok(pb::AgentStatus::Online) => Ok(Some(AgentStatus::Online)),
        Ok(pb::AgentStatus::Offline) => Ok(Some(AgentStatus::Offline)),
        Ok(pb::AgentStatus::Draining) => Ok(Some(AgentStatus::Draining)),
        Err(_) => {
            Err(CoordinatorError::validation("status", "must be unspecified, online, offline or draining"))
        }
    }
}

fn agent_message(agent: Agent) -> pb::Agent {
    pb::Agent {
        id: agent.id.to_string(),
        load: agent.reported_load(),
        name: agent.name,
        capabilities: agent.capabilities.names().to_vec(),
        status: status_message(agent.status).into(),
        slots: agent.slots,
        active_tasks: agent.active,
        last_heartbeat: Some(timestamp(agent.last_heartbeat)),
        version: agent.version,
        tasks_succeeded: agent.tasks_succeeded,
        tasks_failed: agent.tasks_failed,
        registered_at: Some(timestamp(agent.registered_at)),
    }
}

fn kind_message(kind: StrategyKind) -> pb::DispatchStrategyKind {
    match kind {
        StrategyKind::CapabilityMatch => pb::DispatchStrategyKind::CapabilityMatch,
        StrategyKind::LeastLoaded => pb::DispatchStrategyKind::LeastLoaded,
        StrategyKind::RoundRobin => pb::DispatchStrategyKind::RoundRobin,
        StrategyKind::Priority => pb::DispatchStrategyKind::Priority,
    }
}

fn strategy_message(stored: StoredStrategy) -> pb::DispatchStrategy {
    let strategy = stored.strategy;
    pb::DispatchStrategy {
        kind: kind_message(strategy.kind).into(),
        owner_fairness: strategy.owner_fairness,
        max_active_per_owner: strategy.max_active_per_owner,
        assignment_lease_s: strategy.assignment_lease_s,
        updated_at: stored.updated_at.map(timestamp),
        updated_by: stored.updated_by,
    }
}

/// The domain strategy of a request, validated.
fn strategy_of(message: Option<pb::DispatchStrategy>) -> Result<DispatchStrategy, CoordinatorError> {
    let message = message.ok_or_else(|| CoordinatorError::validation("strategy", "is required"))?;
    let kind = match pb::DispatchStrategyKind::try_from(message.kind) {
        Ok(pb::DispatchStrategyKind::CapabilityMatch) => StrategyKind::CapabilityMatch,
        Ok(pb::DispatchStrategyKind::LeastLoaded) => StrategyKind::LeastLoaded,
        Ok(pb::DispatchStrategyKind::RoundRobin) => StrategyKind::RoundRobin,
        Ok(pb::DispatchStrategyKind::Priority) => StrategyKind::Priority,
        Ok(pb::DispatchStrategyKind::Unspecified) | Err(_) => {
            return Err(CoordinatorError::validation(
                "strategy.kind",
                "must be capability_match, least_loaded, round_robin or priority",
            ));
        }
    };
    let strategy = DispatchStrategy {
        kind,
        owner_fairness: message.owner_fairness,
        max_active_per_owner: message.max_active_per_owner,
        assignment_lease_s: message.assignment_lease_s,
    };
    strategy.validate().map_err(|invalid| {
        let field = match invalid.field {
            "assignment_lease_s" => "strategy.assignment_lease_s",
            _ => "strategy",
        };
        CoordinatorError::validation(field, invalid.message)
    })?;
    Ok(strategy)
}

fn stats_message(stats: PendingStats) -> pb::GetPendingStatsResponse {
    pb::GetPendingStatsResponse {
        pending: stats.pending,
        pending_capacity: stats.pending_capacity,
        by_priority: stats
            .by_priority
            .into_iter()
            .map(|(priority, count)| pb::PendingCount { priority: u32::from(priority), count })
            .collect(),
        unassignable: stats.unassignable,
        assigned: stats.assigned,
        oldest_pending_at: stats.oldest_pending_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl CoordinatorService for CoordinatorGrpc {
    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        self.caller(&request).await?;
        let body = request.into_inner();
        let status = status_filter(body.status).map_err(to_status)?;
        let page = body.page.unwrap_or_default();
        if page.limit > MAX_PAGE_LIMIT {
            return Err(to_status(CoordinatorError::validation(
                "page.limit",
                format!("must be between 0 and {MAX_PAGE_LIMIT}"),
            )));
        }
        let capability = Some(body.capability.trim().to_owned()).filter(|capability| !capability.is_empty());
        let filter = AgentFilter { status, capability };
        let listed = self.dispatcher.agents(filter, page.skip, page.limit).await.map_err(to_status)?;
        Ok(Response::new(pb::ListAgentsResponse {
            page: Some(pb::PageInfo { total: listed.total, skip: page.skip, limit: listed.limit }),
            agents: listed.agents.into_iter().map(agent_message).collect(),
        }))
    }

    async fn get_agent(
        &self,
        request: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::GetAgentResponse>, Status> {
        self.caller(&request).await?;
        let text = request.into_inner().agent_id;
        let agent_id: AgentId = text
            .parse()
            .map_err(|_| to_status(CoordinatorError::validation("agent_id", "must be a UUID")))?;
        let agent =
            self.dispatcher.agent(agent_id).await.map_err(to_status)?.ok_or_else(|| {
                to_status(CoordinatorError::NotFound(format!("agent {agent_id} not found")))
            })?;
        Ok(Response::new(pb::GetAgentResponse { agent: Some(agent_message(agent)) }))
    }

    async fn get_strategy(
        &self,
        request: Request<pb::GetStrategyRequest>,
    ) -> Result<Response<pb::GetStrategyResponse>, Status> {
        self.caller(&request).await?;
        let stored = self.dispatcher.strategy().await.map_err(to_status)?;
        Ok(Response::new(pb::GetStrategyResponse { strategy: Some(strategy_message(stored)) }))
    }

    async fn set_strategy(
        &self,
        request: Request<pb::SetStrategyRequest>,
    ) -> Result<Response<pb::SetStrategyResponse>, Status> {
        let principal = self.caller(&request).await?;
        if !principal.is_admin() {
            return Err(to_status(CoordinatorError::Forbidden(
                "setting the strategy needs the `admin` role",
            )));
        }
        let body = request.into_inner();
        let strategy = strategy_of(body.strategy).map_err(to_status)?;
        let updated_by = [body.updated_by.trim(), principal.name.as_str(), principal.subject.as_str()]
            .into_iter()
            .find(|name| !name.is_empty())
            .unwrap_or_default()
            .to_owned();
        tracing::info!(strategy = %strategy.kind, %updated_by, "dispatch strategy set");
        let stored = self.dispatcher.set_strategy(strategy, updated_by).await.map_err(to_status)?;
        Ok(Response::new(pb::SetStrategyResponse { strategy: Some(strategy_message(stored)) }))
    }

    async fn get_pending_stats(
        &self,
        request: Request<pb::GetPendingStatsRequest>,
    ) -> Result<Response<pb::GetPendingStatsResponse>, Status> {
        self.caller(&request).await?;
        let stats = self.dispatcher.pending_stats().await.map_err(to_status)?;
        Ok(Response::new(stats_message(stats)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: pb::DispatchStrategyKind, lease_s: u32) -> Option<pb::DispatchStrategy> {
        Some(pb::DispatchStrategy {
            kind: kind.into(),
            owner_fairness: true,
            max_active_per_owner: 2,
            assignment_lease_s: lease_s,
            updated_at: None,
            updated_by: String::new(),
        })
    }

    fn field(result: Result<DispatchStrategy, CoordinatorError>) -> &'static str {
        match result.unwrap_err() {
            CoordinatorError::Validation { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn strategies_decode_and_validate() {
        let decoded = strategy_of(message(pb::DispatchStrategyKind::RoundRobin, 10)).unwrap();
        assert_eq!(decoded.kind, StrategyKind::RoundRobin);
        assert_eq!(decoded.max_active_per_owner, 2);
        assert_eq!(field(strategy_of(None)), "strategy");
        assert_eq!(field(strategy_of(message(pb::DispatchStrategyKind::Unspecified, 10))), "strategy.kind");
        assert_eq!(
            field(strategy_of(message(pb::DispatchStrategyKind::Priority, 0))),
            "strategy.assignment_lease_s"
        );
        let mut unknown = message(pb::DispatchStrategyKind::Priority, 10);
        if let Some(strategy) = unknown.as_mut() {
            strategy.kind = 42;
        }
        assert_eq!(field(strategy_of(unknown)), "strategy.kind");
    }

    #[test]
    fn status_filters() {
        assert_eq!(status_filter(0).unwrap(), None);
        assert_eq!(status_filter(3).unwrap(), Some(AgentStatus::Draining));
        assert!(status_filter(9).is_err());
    }
}
