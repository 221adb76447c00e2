//! Policy routes: reading and replacing (audited) the limits applied when granting leases of one
//! resource.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sutazai_kit::audit::AuditRecord;
use sutazai_kit::auth::{Principal, require_admin};
use sutazai_kit::http::{ApiError, ClientIp};
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::{parse_resource, path_resource, resource_text};
use crate::downstream::ARBITRATOR;
use crate::http::AppState;

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
}
