//! Lease routes: acquiring capacity in the caller's name, and releasing it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::{ApiError, parse_uuid};
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::{parse_resource, resource_text};
use crate::downstream::ARBITRATOR;
use crate::http::AppState;
use crate::http::tasks::time;

/// Longest lease a client may ask for. Leases are meant to be renewed while in use; a day-long
/// one left behind by a crashed client would hold its capacity for that long.
const MAX_TTL_S: u64 = 86_400;
const MAX_PRIORITY: u64 = 9;

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

/// The highest priority a non-admin may ask for; higher ones preempt other holders.
const MAX_USER_PRIORITY: u32 = 5;

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
    // High priorities preempt other holders (agents, the LLM slots of other users): admins only.
    if priority > MAX_USER_PRIORITY && !principal.is_admin() {
        return Err(ApiError::new(
            ServiceErrorCode::Forbidden,
            format!("priority above {MAX_USER_PRIORITY} needs the `admin` role"),
        ));
    }
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
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let lease_id = parse_uuid("id", &id)?.to_string();
    // The arbitrator answers not_found for another holder's lease; admins may release any.
    let holder = if principal.is_admin() { String::new() } else { principal.subject.clone() };
    let request = pb::ReleaseLeaseRequest { lease_id, holder };
    state.downstreams.call(ARBITRATOR, state.downstreams.arbitrator().release_lease(request)).await?;
    Ok(StatusCode::NO_CONTENT)
}
