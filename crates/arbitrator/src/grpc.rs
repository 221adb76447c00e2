//! gRPC adapter (`sutazai.v1.ArbitratorService`): each RPC authenticates the bearer token,
//! decodes into the service's types, calls it, and maps the error once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sutazai_kit::auth::{PrincipalKind, TokenVerifier};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::arbitrator_service_server::{ArbitratorService, ArbitratorServiceServer};
use tonic::{Request, Response, Status};

use crate::domain::lease::{Caller, Lease, LeaseId};
use crate::domain::policy::Policy;
use crate::domain::resource::{ResourceKey, ResourceKind};
use crate::error::ArbitratorError;
use crate::service::{AcquireInput, Arbitrator};

/// The gRPC service over the arbitrator.
#[derive(Debug, Clone)]
pub(crate) struct ArbitratorGrpc {
    service: Arbitrator,
    verifier: Arc<TokenVerifier>,
}

impl ArbitratorGrpc {
    /// The tonic service to mount.
    pub(crate) fn into_service(
        service: Arbitrator,
        verifier: Arc<TokenVerifier>,
    ) -> ArbitratorServiceServer<Self> {
        ArbitratorServiceServer::new(Self { service, verifier })
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let principal = sutazai_kit::auth::authenticate_grpc(&self.verifier, request).await?;
        Ok(Caller {
            is_admin: principal.is_admin(),
            is_service: principal.kind == PrincipalKind::Service,
            subject: principal.subject,
        })
    }
}

fn to_status(error: ArbitratorError) -> Status {
    match &error {
        ArbitratorError::Internal(_) => sutazai_kit::grpc::internal_status(&error),
        ArbitratorError::Unavailable { dependency, cause } => {
            tracing::warn!(dependency, %cause, "arbitrator dependency unavailable");
            sutazai_kit::grpc::status(error.code(), error.to_string())
        }
        _ => sutazai_kit::grpc::status(error.code(), error.to_string()),
    }
}

fn kind_of(value: i32) -> Option<ResourceKind> {
    match pb::ResourceKind::try_from(value).ok()? {
        pb::ResourceKind::Cpu => Some(ResourceKind::Cpu),
        pb::ResourceKind::Memory => Some(ResourceKind::Memory),
        pb::ResourceKind::Gpu => Some(ResourceKind::Gpu),
        pb::ResourceKind::LlmSlots => Some(ResourceKind::LlmSlots),
        pb::ResourceKind::Custom => Some(ResourceKind::Custom),
        pb::ResourceKind::Unspecified => None,
    }
}

fn kind_message(kind: ResourceKind) -> pb::ResourceKind {
    match kind {
        ResourceKind::Cpu => pb::ResourceKind::Cpu,
        ResourceKind::Memory => pb::ResourceKind::Memory,
        ResourceKind::Gpu => pb::ResourceKind::Gpu,
        ResourceKind::LlmSlots => pb::ResourceKind::LlmSlots,
        ResourceKind::Custom => pb::ResourceKind::Custom,
    }
}

fn resource_key(reference: Option<pb::ResourceRef>) -> Result<ResourceKey, ArbitratorError> {
    let reference = reference.ok_or_else(|| ArbitratorError::validation("resource", "is required"))?;
    let kind = kind_of(reference.kind).ok_or_else(|| {
        ArbitratorError::validation("resource.kind", "must be cpu, memory, gpu, llm_slots or custom")
    })?;
    ResourceKey::new(kind, reference.name)
        .map_err(|error| ArbitratorError::validation("resource.name", error.to_string()))
}

fn resource_message(resource: &ResourceKey) -> pb::ResourceRef {
    pb::ResourceRef { kind: kind_message(resource.kind()).into(), name: resource.name().to_owned() }
}

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    // Sub-second nanos of a DateTime are always below 1e9, so they fit.
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn lease_message(lease: &Lease) -> pb::Lease {
    pb::Lease {
        id: lease.id.to_string(),
        resource: Some(resource_message(&lease.resource)),
        amount: lease.amount,
        holder: lease.holder.clone(),
        priority: lease.priority,
        ttl_s: lease.ttl_s,
        acquired_at: Some(timestamp(lease.acquired_at)),
        expires_at: Some(timestamp(lease.expires_at)),
    }
}

fn lease_id(text: &str) -> Result<LeaseId, ArbitratorError> {
    LeaseId::parse(text).ok_or_else(|| ArbitratorError::validation("lease_id", "must be a UUID"))
}

fn policy_message(resource: &ResourceKey, policy: &Policy) -> pb::ResourcePolicy {
    pb::ResourcePolicy {
        resource: Some(resource_message(resource)),
        max_allocation_percent: policy.max_allocation_percent,
        max_per_holder_percent: policy.max_per_holder_percent,
        oversubscription_ratio: policy.oversubscription_ratio,
        preemption_enabled: policy.preemption_enabled,
    }
}

#[tonic::async_trait]
impl ArbitratorService for ArbitratorGrpc {
    async fn list_pools(
        &self,
        request: Request<pb::ListPoolsRequest>,
    ) -> Result<Response<pb::ListPoolsResponse>, Status> {
        self.caller(&request).await?;
        let kind_value = request.into_inner().kind;
        let kind = match kind_value {
            0 => None,
            other => Some(kind_of(other).ok_or_else(|| {
                to_status(ArbitratorError::validation("kind", "must be unspecified or a resource kind"))
            })?),
        };
        let pools = self.service.list_pools(kind).await.map_err(to_status)?;
        let pools = pools
            .into_iter()
            .map(|pool| pb::ResourcePool {
                resource: Some(resource_message(&pool.resource)),
                capacity: pool.capacity,
                allocated: pool.allocated,
                available: pool.available,
                active_leases: pool.active_leases,
            })
            .collect();
        Ok(Response::new(pb::ListPoolsResponse { pools }))
    }

    async fn acquire_lease(
        &self,
        request: Request<pb::AcquireLeaseRequest>,
    ) -> Result<Response<pb::AcquireLeaseResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.into_inner();
        let input = AcquireInput {
            resource: resource_key(body.resource).map_err(to_status)?,
            amount: body.amount,
            ttl_s: body.ttl_s,
            priority: body.priority,
            holder: body.holder,
            wait_timeout_ms: body.wait_timeout_ms,
        };
        let grant = self.service.acquire(&caller, input).await.map_err(to_status)?;
        Ok(Response::new(pb::AcquireLeaseResponse {
            lease: Some(lease_message(&grant.lease)),
            preempted_lease_ids: grant.preempted.iter().map(|lease| lease.id.to_string()).collect(),
        }))
    }

    async fn renew_lease(
        &self,
        request: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::RenewLeaseResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.into_inner();
        let id = lease_id(&body.lease_id).map_err(to_status)?;
        let lease = self.service.renew(&caller, id, body.ttl_s).await.map_err(to_status)?;
        Ok(Response::new(pb::RenewLeaseResponse { lease: Some(lease_message(&lease)) }))
    }

    async fn release_lease(
        &self,
        request: Request<pb::ReleaseLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLeaseResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.into_inner();
        let id = lease_id(&body.lease_id).map_err(to_status)?;
        self.service.release(&caller, id, &body.holder).await.map_err(to_status)?;
        Ok(Response::new(pb::ReleaseLeaseResponse {}))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let caller = self.caller(&request).await?;
        if !caller.is_admin && !caller.is_service {
            // Before decoding, so a user learns nothing about which resources exist.
            return Err(to_status(ArbitratorError::Forbidden(
                "reading a policy needs the `admin` role or a service token",
            )));
        }
        let resource = resource_key(request.into_inner().resource).map_err(to_status)?;
        let policy = self.service.policy(&resource).await.map_err(to_status)?;
        Ok(Response::new(pb::GetPolicyResponse { policy: Some(policy_message(&resource, &policy)) }))
    }

    async fn set_policy(
        &self,
        request: Request<pb::SetPolicyRequest>,
    ) -> Result<Response<pb::SetPolicyResponse>, Status> {
        let caller = self.caller(&request).await?;
        if !caller.is_admin {
            // Before decoding, so a non-admin learns nothing about which resources exist.
            return Err(to_status(ArbitratorError::Forbidden("setting a policy needs the `admin` role")));
        }
        let body = request.into_inner();
        let message =
            body.policy.ok_or_else(|| to_status(ArbitratorError::validation("policy", "is required")))?;
        let resource = resource_key(message.resource).map_err(to_status)?;
        let policy = Policy {
            max_allocation_percent: message.max_allocation_percent,
            max_per_holder_percent: message.max_per_holder_percent,
            oversubscription_ratio: message.oversubscription_ratio,
            preemption_enabled: message.preemption_enabled,
        };
        let stored =
            self.service.set_policy(&caller, &resource, policy, &body.updated_by).await.map_err(to_status)?;
        Ok(Response::new(pb::SetPolicyResponse { policy: Some(policy_message(&resource, &stored)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_refs_decode_and_encode() {
        let reference =
            pb::ResourceRef { kind: pb::ResourceKind::LlmSlots.into(), name: "ollama/llama3.2:1b".into() };
        let key = resource_key(Some(reference.clone())).unwrap();
        assert_eq!(key.to_string(), "llm_slots:ollama/llama3.2:1b");
        assert_eq!(resource_message(&key), reference);
        let field = |reference: Option<pb::ResourceRef>| match resource_key(reference).unwrap_err() {
            ArbitratorError::Validation { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(None), "resource");
        assert_eq!(field(Some(pb::ResourceRef { kind: 0, name: String::new() })), "resource.kind");
        assert_eq!(field(Some(pb::ResourceRef { kind: 42, name: String::new() })), "resource.kind");
        assert_eq!(
            field(Some(pb::ResourceRef { kind: pb::ResourceKind::Cpu.into(), name: "x".into() })),
            "resource.name"
        );
        assert_eq!(
            field(Some(pb::ResourceRef { kind: pb::ResourceKind::Custom.into(), name: String::new() })),
            "resource.name"
        );
    }

    #[test]
    fn lease_ids_must_be_uuids() {
        assert!(lease_id("0190b6b2-0000-7000-8000-000000000000").is_ok());
        assert!(matches!(lease_id("lease-1"), Err(ArbitratorError::Validation { field: "lease_id", .. })));
    }
}
