//! Resource pools, leases and policies (API.md "Hardware and resources"), forwarded to the
//! arbitrator, which owns capacity and decides every grant. A denial is the arbitrator's conflict
//! status and reaches the client as a 409 with its reason; the gateway only checks the request's
//! shape and names the holder after the caller, so nobody leases in another's name.
//!
//! A resource is written `kind` for the host-wide pools (`cpu`, `memory`, `gpu`) and `kind:name`
//! for the named ones (`llm_slots:ollama/llama3.2:1b`, `custom:licenses`): the kind is what comes
//! before the first `:`, since model names carry colons of their own.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sutazai_kit::audit::AuditRecord;
use sutazai_kit::auth::{Principal, require_admin};
use sutazai_kit::http::{ApiError, ClientIp, parse_uuid};
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::AppState;
use super::tasks::time;
use crate::downstream::ARBITRATOR;

/// Longest pool name (`<provider>/<model>` or an operator's name).
const MAX_RESOURCE_NAME_BYTES: usize = 200;
/// Longest lease a client may ask for. Leases are meant to be renewed while in use; a day-long
/// one left behind by a crashed client would hold its capacity for that long.
const MAX_TTL_S: u64 = 86_400;
const MAX_PRIORITY: u64 = 9;

/// Every resource route, to be merged into the API router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/resources", get(list_pools))
        .route("/api/v1/resources/leases", post(acquire_lease))
        .route("/api/v1/resources/leases/{id}", delete(release_lease))
        // A wildcard, because pool names such as `ollama/llama3.2:1b` contain slashes.
        .route("/api/v1/resources/policies/{*resource}", get(get_policy).put(set_policy))
}

/// The resource routes of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_pools, acquire_lease, release_lease, get_policy, set_policy),
    components(schemas(PoolView, PoolsView, AcquireLease, LeaseView, PolicyView, SetPolicy)),
    tags((name = "resources", description = "Resource pools, leases and policies of the arbitrator")),
)]
pub(crate) struct ResourcesDoc;

fn resource_kind(name: &str) -> Option<pb::ResourceKind> {
    match name {
        "cpu" => Some(pb::ResourceKind::Cpu),
        "memory" => Some(pb::ResourceKind::Memory),
        "gpu" => Some(pb::ResourceKind::Gpu),
        "llm_slots" => Some(pb::ResourceKind::LlmSlots),
        "custom" => Some(pb::ResourceKind::Custom),
        _ => None,
    }
}

fn resource_kind_name(kind: i32) -> &'static str {
    match pb::ResourceKind::try_from(kind).unwrap_or(pb::ResourceKind::Unspecified) {
        pb::ResourceKind::Cpu => "cpu",
        pb::ResourceKind::Memory => "memory",
        pb::ResourceKind::Gpu => "gpu",
        pb::ResourceKind::LlmSlots => "llm_slots",
        pb::ResourceKind::Custom => "custom",
        pb::ResourceKind::Unspecified => "unknown",
    }
}

/// The unit amounts of a kind are counted in.
fn resource_unit(kind: i32) -> &'static str {
    match pb::ResourceKind::try_from(kind).unwrap_or(pb::ResourceKind::Unspecified) {
        pb::ResourceKind::Cpu => "millicores",
        pb::ResourceKind::Memory => "bytes",
        pb::ResourceKind::Gpu => "devices",
        pb::ResourceKind::LlmSlots => "slots",
        pb::ResourceKind::Custom | pb::ResourceKind::Unspecified => "units",
    }
}

/// Reads `kind` or `kind:name`; the error says what is wrong, the caller says where.
fn parse_resource(text: &str) -> Result<pb::ResourceRef, String> {
    let (kind_name, name) = match text.split_once(':') {
        Some((kind_name, name)) => (kind_name, Some(name)),
        None => (text, None),
    };
    let kind = resource_kind(kind_name).ok_or_else(|| {
        "must be cpu, memory, gpu, llm_slots:<provider>/<model> or custom:<name>".to_owned()
    })?;
    let named = matches!(kind, pb::ResourceKind::LlmSlots | pb::ResourceKind::Custom);
    let name = match (named, name) {
        (false, None) => String::new(),
        (false, Some(_)) => return Err(format!("`{kind_name}` is one pool and takes no name")),
        (true, None) => return Err(format!("`{kind_name}` needs a pool name: `{kind_name}:<name>`")),
        (true, Some(name)) => {
            if name.is_empty() || name.len() > MAX_RESOURCE_NAME_BYTES || name.contains(char::is_control) {
                return Err(format!("the pool name must be 1 to {MAX_RESOURCE_NAME_BYTES} printable bytes"));
            }
            name.to_owned()
        }
    };
    Ok(pb::ResourceRef { kind: kind.into(), name })
}

/// A resource in a path segment: malformed is a 400, like a malformed id.
fn path_resource(text: &str) -> Result<pb::ResourceRef, ApiError> {
    parse_resource(text)
        .map_err(|detail| ApiError::new(ServiceErrorCode::BadRequest, format!("resource: {detail}")))
}

/// The text form of a resource, as clients write it.
fn resource_text(resource: Option<&pb::ResourceRef>) -> String {
    match resource {
        None => String::new(),
        Some(resource) if resource.name.is_empty() => resource_kind_name(resource.kind).to_owned(),
        Some(resource) => format!("{}:{}", resource_kind_name(resource.kind), resource.name),
    }
}

/// One pool.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PoolView {
    /// `cpu`, `memory`, `gpu` or `kind:name`.
    resource: String,
    /// cpu, memory, gpu, llm_slots or custom.
    kind: String,
    /// The pool's name within its kind; null for cpu, memory and gpu.
    name: Option<String>,
    /// millicores, bytes, devices, slots or units.
    unit: String,
    capacity: u64,
    allocated: u64,
    /// What a new lease can still get under the pool's policy; may differ from capacity - allocated.
    available: u64,
    active_leases: u32,
}

impl From<pb::ResourcePool> for PoolView {
    fn from(pool: pb::ResourcePool) -> Self {
        let kind = pool.resource.as_ref().map(|resource| resource.kind).unwrap_or_default();
        Self {
            resource: resource_text(pool.resource.as_ref()),
            kind: resource_kind_name(kind).to_owned(),
            name: pool.resource.map(|resource| resource.name).filter(|name| !name.is_empty()),
            unit: resource_unit(kind).to_owned(),
            capacity: pool.capacity,
            allocated: pool.allocated,
            available: pool.available,
            active_leases: pool.active_leases,
        }
    }
}

/// Every pool. Not paginated: the pools are a handful fixed by configuration.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PoolsView {
    pools: Vec<PoolView>,
}

/// Filter of `GET /api/v1/resources`.
#[derive(Debug, Deserialize)]
pub(crate) struct PoolFilter {
    /// cpu, memory, gpu, llm_slots or custom.
    kind: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/resources", tag = "resources", params(("kind" = Option<String>, Query)),
    responses((status = 200, body = PoolsView), (status = 401), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn list_pools(
    State(state): State<AppState>,
    _principal: Principal,
    filter: Result<Query<PoolFilter>, QueryRejection>,
) -> Result<Json<PoolsView>, ApiError> {
    // axum's own query rejection is plain text; every error of this API is a problem document.
    let Query(filter) =
        filter.map_err(|rejection| ApiError::new(ServiceErrorCode::BadRequest, rejection.body_text()))?;
    let kind = match filter.kind.as_deref() {
        None | Some("") => pb::ResourceKind::Unspecified,
        Some(name) => resource_kind(name)
            .ok_or_else(|| ApiError::validation("kind", "must be cpu, memory, gpu, llm_slots or custom"))?,
    };
    let request = pb::ListPoolsRequest { kind: kind.into() };
    let response =
        state.downstreams.call(ARBITRATOR, state.downstreams.arbitrator().list_pools(request)).await?;
    Ok(Json(PoolsView { pools: response.pools.into_iter().map(PoolView::from).collect() }))
}

/// `POST /api/v1/resources/leases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcquireLease {
    /// `cpu`, `memory`, `gpu`, `llm_slots:<provider>/<model>` or `custom:<name>`.
    resource: String,
    /// In the resource's unit; at least 1.
    amount: u64,
    /// Lifetime without renewal, 1 to 86400 seconds.
    ttl_s: u64,
    /// 0 (lowest, the default) to 9; only a strictly higher priority preempts, so a request
    /// that does not say never takes anything away from anyone.
    #[serde(default)]
    priority: u64,
}

/// A granted lease.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LeaseView {
    id: String,
    resource: String,
    amount: u64,
    holder: String,
    priority: u32,
    ttl_s: u32,
    acquired_at: Option<DateTime<Utc>>,
    /// The amount returns to the pool after this unless the lease is renewed.
    expires_at: Option<DateTime<Utc>>,
    /// Lower-priority leases revoked to make room.
    preempted_lease_ids: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/resources/leases", tag = "resources", request_body = AcquireLease,
    responses((status = 201, body = LeaseView), (status = 401), (status = 404), (status = 409), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn acquire_lease(
    State(state): State<AppState>,
    principal: Principal,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<AcquireLease>,
) -> Result<(StatusCode, Json<LeaseView>), ApiError> {
    let resource =
        parse_resource(&body.resource).map_err(|detail| ApiError::validation("resource", detail))?;
    if body.amount == 0 {
        return Err(ApiError::validation("amount", "must be at least 1"));
    }
    let ttl_s = match u32::try_from(body.ttl_s) {
        Ok(ttl_s) if (1..=MAX_TTL_S).contains(&body.ttl_s) => ttl_s,
        _ => return Err(ApiError::validation("ttl_s", format!("must be between 1 and {MAX_TTL_S}"))),
    };
    let priority = match u32::try_from(body.priority) {
        Ok(priority) if body.priority <= MAX_PRIORITY => priority,
        _ => return Err(ApiError::validation("priority", format!("must be between 0 and {MAX_PRIORITY}"))),
    };
    let request = pb::AcquireLeaseRequest {
        resource: Some(resource),
        amount: body.amount,
        ttl_s,
        priority,
        // The caller holds the lease: per-holder limits then apply per user or service.
        holder: principal.subject.clone(),
        // Answer at once: a client that wants to wait can retry, without holding a gateway
        // request (and its timeout) open.
        wait_timeout_ms: 0,
    };
    // A denial comes back as the arbitrator's conflict status, which `call` turns into a 409
    // carrying the reason.
    let response =
        state.downstreams.call(ARBITRATOR, state.downstreams.arbitrator().acquire_lease(request)).await?;
    let lease = response
        .lease
        .ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "arbitrator answered without a lease"))?;
    Ok((
        StatusCode::CREATED,
        Json(LeaseView {
            resource: resource_text(lease.resource.as_ref()),
            acquired_at: time(lease.acquired_at.as_ref()),
            expires_at: time(lease.expires_at.as_ref()),
            preempted_lease_ids: response.preempted_lease_ids,
            id: lease.id,
            amount: lease.amount,
            holder: lease.holder,
            priority: lease.priority,
            ttl_s: lease.ttl_s,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/resources/leases/{id}", tag = "resources", params(("id" = String, Path)),
    responses((status = 204), (status = 400), (status = 401), (status = 404), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn release_lease(
    State(state): State<AppState>,
    _principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let lease_id = parse_uuid("id", &id)?.to_string();
    let request = pb::ReleaseLeaseRequest { lease_id };
    state.downstreams.call(ARBITRATOR, state.downstreams.arbitrator().release_lease(request)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The limits applied when granting leases of one resource.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PolicyView {
    resource: String,
    /// Share of capacity all leases together may hold, 0 < x <= 100.
    max_allocation_percent: f64,
    /// Share of capacity one holder may hold, 0 < x <= 100.
    max_per_holder_percent: f64,
    /// Capacity multiplier, at least 1 (1 means none).
    oversubscription_ratio: f64,
    /// Whether higher-priority requests may revoke lower-priority leases.
    preemption_enabled: bool,
}

impl From<pb::ResourcePolicy> for PolicyView {
    fn from(policy: pb::ResourcePolicy) -> Self {
        Self {
            resource: resource_text(policy.resource.as_ref()),
            max_allocation_percent: policy.max_allocation_percent,
            max_per_holder_percent: policy.max_per_holder_percent,
            oversubscription_ratio: policy.oversubscription_ratio,
            preemption_enabled: policy.preemption_enabled,
        }
    }
}

fn policy_view(policy: Option<pb::ResourcePolicy>) -> Result<Json<PolicyView>, ApiError> {
    let policy = policy
        .ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "arbitrator answered without a policy"))?;
    Ok(Json(policy.into()))
}

#[utoipa::path(get, path = "/api/v1/resources/policies/{resource}", tag = "resources",
    params(("resource" = String, Path, description = "cpu, memory, gpu, llm_slots:<provider>/<model> or custom:<name>")),
    responses((status = 200, body = PolicyView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn get_policy(
    State(state): State<AppState>,
    principal: Principal,
    Path(resource): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    require_admin(&principal)?;
    let request = pb::GetPolicyRequest { resource: Some(path_resource(&resource)?) };
    let response =
        state.downstreams.call(ARBITRATOR, state.downstreams.arbitrator().get_policy(request)).await?;
    policy_view(response.policy)
}

/// `PUT /api/v1/resources/policies/{resource}`: the whole policy, replacing the old one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetPolicy {
    /// Optional, so a policy read with GET can be sent back as is; must name the path's resource.
    resource: Option<String>,
    /// 0 < x <= 100.
    max_allocation_percent: f64,
    /// 0 < x <= 100.
    max_per_holder_percent: f64,
    /// At least 1.
    oversubscription_ratio: f64,
    preemption_enabled: bool,
}

fn check_percent(field: &str, value: f64) -> Result<(), ApiError> {
    if value.is_finite() && value > 0.0 && value <= 100.0 {
        return Ok(());
    }
    Err(ApiError::validation(field, "must be greater than 0 and at most 100"))
}

fn check_policy(path_resource: &pb::ResourceRef, body: &SetPolicy) -> Result<(), ApiError> {
    if let Some(resource) = &body.resource {
        let same = parse_resource(resource).is_ok_and(|named| named == *path_resource);
        if !same {
            return Err(ApiError::validation(
                "resource",
                "must name the resource of the path (or be left out)",
            ));
        }
    }
    check_percent("max_allocation_percent", body.max_allocation_percent)?;
    check_percent("max_per_holder_percent", body.max_per_holder_percent)?;
    if !(body.oversubscription_ratio.is_finite() && body.oversubscription_ratio >= 1.0) {
        return Err(ApiError::validation("oversubscription_ratio", "must be at least 1"));
    }
    Ok(())
}

#[utoipa::path(put, path = "/api/v1/resources/policies/{resource}", tag = "resources",
    params(("resource" = String, Path, description = "cpu, memory, gpu, llm_slots:<provider>/<model> or custom:<name>")),
    request_body = SetPolicy,
    responses((status = 200, body = PolicyView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn set_policy(
    State(state): State<AppState>,
    principal: Principal,
    client_ip: ClientIp,
    Path(resource): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<SetPolicy>,
) -> Result<Json<PolicyView>, ApiError> {
    require_admin(&principal)?;
    let resource_ref = path_resource(&resource)?;
    check_policy(&resource_ref, &body)?;
    let target = resource_text(Some(&resource_ref));
    let request = pb::SetPolicyRequest {
        policy: Some(pb::ResourcePolicy {
            resource: Some(resource_ref),
            max_allocation_percent: body.max_allocation_percent,
            max_per_holder_percent: body.max_per_holder_percent,
            oversubscription_ratio: body.oversubscription_ratio,
            preemption_enabled: body.preemption_enabled,
        }),
        updated_by: principal.name.clone(),
    };
    let outcome =
        state.downstreams.call(ARBITRATOR, state.downstreams.arbitrator().set_policy(request)).await;
    state
        .audit
        .record(AuditRecord {
            actor: Some(&principal.name),
            action: "resource_policy_set",
            target: Some(&target),
            ip: client_ip.0,
            outcome: if outcome.is_ok() { "success" } else { "failure" },
            detail: json!({
                "max_allocation_percent": body.max_allocation_percent,
                "max_per_holder_percent": body.max_per_holder_percent,
                "oversubscription_ratio": body.oversubscription_ratio,
                "preemption_enabled": body.preemption_enabled,
            }),
        })
        .await;
    policy_view(outcome?.policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_round_trip() {
        for text in ["cpu", "memory", "gpu", "llm_slots:ollama/llama3.2:1b", "custom:licenses"] {
            let resource = parse_resource(text).unwrap();
            assert_eq!(resource_text(Some(&resource)), text);
        }
        let slots = parse_resource("llm_slots:ollama/llama3.2:1b").unwrap();
        assert_eq!(slots.kind, i32::from(pb::ResourceKind::LlmSlots));
        assert_eq!(slots.name, "ollama/llama3.2:1b");
    }

    #[test]
    fn malformed_resources() {
        for bad in ["", "disk", "cpu:0", "llm_slots", "llm_slots:", "custom:a\nb", "CPU"] {
            assert!(parse_resource(bad).is_err(), "{bad}");
        }
        assert_eq!(path_resource("disk").unwrap_err().code(), ServiceErrorCode::BadRequest);
    }

    #[test]
    fn policies_are_checked() {
        let cpu = parse_resource("cpu").unwrap();
        let policy = |resource: Option<&str>, max: f64, holder: f64, ratio: f64| SetPolicy {
            resource: resource.map(str::to_owned),
            max_allocation_percent: max,
            max_per_holder_percent: holder,
            oversubscription_ratio: ratio,
            preemption_enabled: true,
        };
        assert!(check_policy(&cpu, &policy(None, 80.0, 30.0, 1.0)).is_ok());
        assert!(check_policy(&cpu, &policy(Some("cpu"), 100.0, 100.0, 2.0)).is_ok());
        let field = |body: SetPolicy| check_policy(&cpu, &body).unwrap_err().detail().to_owned();
        assert!(field(policy(Some("gpu"), 80.0, 30.0, 1.0)).starts_with("resource: "));
        assert!(field(policy(None, 0.0, 30.0, 1.0)).starts_with("max_allocation_percent: "));
        assert!(field(policy(None, 80.0, 100.5, 1.0)).starts_with("max_per_holder_percent: "));
        assert!(field(policy(None, 80.0, 30.0, 0.5)).starts_with("oversubscription_ratio: "));
        assert!(field(policy(None, f64::NAN, 30.0, 1.0)).starts_with("max_allocation_percent: "));
    }

    #[test]
    fn routes_build_and_are_documented() {
        // axum checks route syntax (and the policy wildcard) when the router is built.
        let _router = routes();
        let document = <ResourcesDoc as utoipa::OpenApi>::openapi();
        assert_eq!(document.paths.paths.len(), 4);
        assert!(document.paths.paths.contains_key("/api/v1/resources/policies/{resource}"));
    }
}
