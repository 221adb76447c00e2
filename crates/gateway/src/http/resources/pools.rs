//! The pools route: each pool's capacity, allocation and what a new lease can still get.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::ApiError;
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::{resource_kind, resource_kind_name, resource_text};
use crate::downstream::ARBITRATOR;
use crate::http::AppState;

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
