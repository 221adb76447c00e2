//! Resource pools, leases and policies (API.md "Hardware and resources"), forwarded to the
//! arbitrator, which owns capacity and decides every grant. A denial is the arbitrator's conflict
//! status and reaches the client as a 409 with its reason; the gateway only checks the request's
//! shape and names the holder after the caller, so nobody leases in another's name.
//!
//! A resource is written `kind` for the host-wide pools (`cpu`, `memory`, `gpu`) and `kind:name`
//! for the named ones (`llm_slots:ollama/llama3.2:1b`, `custom:licenses`): the kind is what comes
//! before the first `:`, since model names carry colons of their own.

mod leases;
mod policies;
mod pools;

use axum::Router;
use axum::routing::{delete, get, post};
use sutazai_kit::http::ApiError;
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;

use self::leases::{AcquireLease, LeaseView, acquire_lease, release_lease};
use self::policies::{PolicyView, SetPolicy, get_policy, set_policy};
use self::pools::{PoolView, PoolsView, list_pools};
use super::AppState;

/// Longest pool name (`<provider>/<model>` or an operator's name).
const MAX_RESOURCE_NAME_BYTES: usize = 200;

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
    paths(pools::list_pools, leases::acquire_lease, leases::release_lease, policies::get_policy, policies::set_policy),
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
    fn routes_build_and_are_documented() {
        // axum checks route syntax (and the policy wildcard) when the router is built.
        let _router = routes();
        let document = <ResourcesDoc as utoipa::OpenApi>::openapi();
        assert_eq!(document.paths.paths.len(), 4);
        assert!(document.paths.paths.contains_key("/api/v1/resources/policies/{resource}"));
    }
}
