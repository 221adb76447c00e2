//! The cleanup route: which fields each cleanup takes, the dry-run default, the optional body, and
//! the audit row every cleanup leaves.

use axum::Json;
use axum::body::to_bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sutazai_kit::audit::AuditRecord;
use sutazai_kit::auth::{Principal, require_admin};
use sutazai_kit::http::{ApiError, ClientIp};
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::check_path;
use crate::downstream::HARDWARE;
use crate::http::AppState;

/// Longest docker label filter.
const MAX_LABEL_BYTES: usize = 256;

fn optimize_kind(name: &str) -> Option<pb::OptimizeKind> {
    match name {
        "storage" => Some(pb::OptimizeKind::Storage),
        "duplicates" => Some(pb::OptimizeKind::Duplicates),
        "logs" => Some(pb::OptimizeKind::Logs),
        "memory" => Some(pb::OptimizeKind::Memory),
        "docker" => Some(pb::OptimizeKind::Docker),
        _ => None,
    }
}

pub(super) fn optimize_kind_name(kind: i32) -> &'static str {
    match pb::OptimizeKind::try_from(kind).unwrap_or(pb::OptimizeKind::Unspecified) {
        pb::OptimizeKind::Storage => "storage",
        pb::OptimizeKind::Duplicates => "duplicates",
        pb::OptimizeKind::Logs => "logs",
        pb::OptimizeKind::Memory => "memory",
        pb::OptimizeKind::Docker => "docker",
        pb::OptimizeKind::Unspecified => "unknown",
    }
}

fn action_kind_name(kind: i32) -> &'static str {
    match pb::OptimizeActionKind::try_from(kind).unwrap_or(pb::OptimizeActionKind::Unspecified) {
        pb::OptimizeActionKind::QuarantineFile => "quarantine_file",
        pb::OptimizeActionKind::CompressFile => "compress_file",
        pb::OptimizeActionKind::DropCaches => "drop_caches",
        pb::OptimizeActionKind::RemoveContainer => "remove_container",
        pb::OptimizeActionKind::RemoveImage => "remove_image",
        pb::OptimizeActionKind::Unspecified => "unknown",
    }
}

fn action_outcome_name(outcome: i32) -> &'static str {
    match pb::OptimizeActionOutcome::try_from(outcome).unwrap_or(pb::OptimizeActionOutcome::Unspecified) {
        pb::OptimizeActionOutcome::Planned => "planned",
        pb::OptimizeActionOutcome::Performed => "performed",
        pb::OptimizeActionOutcome::Skipped => "skipped",
        pb::OptimizeActionOutcome::Failed => "failed",
        pb::OptimizeActionOutcome::Unspecified => "unknown",
    }
}

/// `POST /api/v1/hardware/optimize/{kind}`; the body may be left out entirely.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OptimizeBody {
    /// storage, logs: the tree to clean (default: the configured roots); duplicates: required.
    path: Option<String>,
    /// True unless explicitly false: only `false` changes anything.
    dry_run: Option<bool>,
    /// storage, logs: only files last modified at least this many days ago (default 7).
    days_old: Option<i64>,
    /// docker (required): the label filter, e.g. `sutazai.cleanup=true`.
    label: Option<String>,
}

/// Refuses a field that does not apply to the cleanup, so a client never believes it narrowed
/// a cleanup with a field the service would ignore.
fn not_applicable(field: &str, kind_name: &str) -> ApiError {
    ApiError::validation(field, format!("does not apply to the `{kind_name}` cleanup"))
}

/// Checks the body against the cleanup and builds the request; `dry_run` is sent explicitly.
fn optimize_request(
    kind: pb::OptimizeKind,
    kind_name: &str,
    body: OptimizeBody,
    requested_by: String,
) -> Result<pb::OptimizeRequest, ApiError> {
    let takes_path =
        matches!(kind, pb::OptimizeKind::Storage | pb::OptimizeKind::Logs | pb::OptimizeKind::Duplicates);
    let takes_age = matches!(kind, pb::OptimizeKind::Storage | pb::OptimizeKind::Logs);
    let takes_label = kind == pb::OptimizeKind::Docker;
    match &body.path {
        Some(_) if !takes_path => return Err(not_applicable("path", kind_name)),
        Some(path) => check_path(path)?,
        None if kind == pb::OptimizeKind::Duplicates => {
            // Never a default root: duplicate removal over a whole data dir by accident is what
            // this API exists to prevent.
            return Err(ApiError::validation("path", "is required for the `duplicates` cleanup"));
        }
        None => {}
    }
    let days_old = match body.days_old {
        Some(_) if !takes_age => return Err(not_applicable("days_old", kind_name)),
        Some(days) => {
            Some(u32::try_from(days).map_err(|_| ApiError::validation("days_old", "must be 0 or more"))?)
        }
        None => None,
    };
    match &body.label {
        Some(_) if !takes_label => return Err(not_applicable("label", kind_name)),
        Some(label)
            if label.trim().is_empty()
                || label.len() > MAX_LABEL_BYTES
                || label.contains(char::is_control) =>
        {
            return Err(ApiError::validation(
                "label",
                format!("must be 1 to {MAX_LABEL_BYTES} printable bytes"),
            ));
        }
        None if takes_label => {
            return Err(ApiError::validation("label", "is required for the `docker` cleanup"));
        }
        _ => {}
    }
    Ok(pb::OptimizeRequest {
        kind: kind.into(),
        path: body.path,
        // The contract already treats unset as true; sending it spelled out keeps a dry run a dry
        // run even against a service that reads proto3 defaults carelessly.
        dry_run: Some(body.dry_run.unwrap_or(true)),
        days_old,
        label: body.label,
        requested_by,
    })
}

/// Reads a JSON body that may be left out: no `Content-Type` and no bytes is the default body;
/// anything else goes through the kit's extractor (422 naming the field, 413, missing type).
async fn optional_json<T: DeserializeOwned + Default>(request: Request) -> Result<T, ApiError> {
    if request.headers().contains_key(header::CONTENT_TYPE) {
        let sutazai_kit::http::Json(body) = sutazai_kit::http::Json::<T>::from_request(request, &()).await?;
        return Ok(body);
    }
    // A body without a type is refused (as the kit does); reading at most a few bytes is enough
    // to tell it from an empty one.
    match to_bytes(request.into_body(), 64).await {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        _ => Err(ApiError::new(ServiceErrorCode::BadRequest, "expected `Content-Type: application/json`")),
    }
}

/// One step of a cleanup.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OptimizeActionView {
    /// quarantine_file, compress_file, drop_caches, remove_container or remove_image.
    kind: String,
    /// A file path, container id or image id.
    target: String,
    /// planned (dry run), performed, skipped or failed.
    outcome: String,
    /// Freed when performed, or that would be freed when planned.
    reclaimed_bytes: u64,
    detail: Option<String>,
    /// Set when the file went to the quarantine; restore it with this id.
    quarantine_id: Option<String>,
}

/// What a cleanup did, or would do on a dry run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OptimizeView {
    kind: String,
    dry_run: bool,
    /// In the order they were (or would be) taken.
    actions: Vec<OptimizeActionView>,
    reclaimed_bytes: u64,
}

impl From<pb::OptimizeResponse> for OptimizeView {
    fn from(response: pb::OptimizeResponse) -> Self {
        Self {
            kind: optimize_kind_name(response.kind).to_owned(),
            dry_run: response.dry_run,
            actions: response
                .actions
                .into_iter()
                .map(|action| OptimizeActionView {
                    kind: action_kind_name(action.kind).to_owned(),
                    outcome: action_outcome_name(action.outcome).to_owned(),
                    detail: (!action.detail.is_empty()).then_some(action.detail),
                    quarantine_id: (!action.quarantine_id.is_empty()).then_some(action.quarantine_id),
                    target: action.target,
                    reclaimed_bytes: action.reclaimed_bytes,
                })
                .collect(),
            reclaimed_bytes: response.reclaimed_bytes,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/hardware/optimize/{kind}", tag = "hardware",
    params(("kind" = String, Path, description = "storage, duplicates, logs, memory or docker")),
    request_body = Option<OptimizeBody>,
    responses((status = 200, body = OptimizeView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn optimize(
    State(state): State<AppState>,
    principal: Principal,
    client_ip: ClientIp,
    Path(kind_name): Path<String>,
    request: Request,
) -> Result<Json<OptimizeView>, ApiError> {
    require_admin(&principal)?;
    // An unknown cleanup is an unknown path, as if each had its own route.
    let kind = optimize_kind(&kind_name)
        .ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, format!("unknown cleanup `{kind_name}`")))?;
    let body = optional_json::<OptimizeBody>(request).await?;
    let request = optimize_request(kind, &kind_name, body, principal.name.clone())?;
    let audit_path = request.path.clone();
    let audit_detail = json!({
        "kind": kind_name,
        "dry_run": request.dry_run,
        "days_old": request.days_old,
        "label": request.label,
    });
    let outcome = state.downstreams.call(HARDWARE, state.downstreams.hardware().optimize(request)).await;
    let mut detail = audit_detail;
    if let (Ok(response), Some(fields)) = (&outcome, detail.as_object_mut()) {
        fields.insert("actions".to_owned(), json!(response.actions.len()));
        fields.insert("reclaimed_bytes".to_owned(), json!(response.reclaimed_bytes));
    }
    let action = format!("hardware_optimize_{kind_name}");
    state
        .audit
        .record(AuditRecord {
            actor: Some(&principal.name),
            action: &action,
            target: audit_path.as_deref(),
            ip: client_ip.0,
            outcome: if outcome.is_ok() { "success" } else { "failure" },
            detail,
        })
        .await;
    Ok(Json(outcome?.into()))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn body(json: serde_json::Value) -> OptimizeBody {
        serde_json::from_value(json).unwrap()
    }

    fn build(kind: &str, json: serde_json::Value) -> Result<pb::OptimizeRequest, ApiError> {
        let optimize = optimize_kind(kind).unwrap();
        optimize_request(optimize, kind, body(json), "admin".to_owned())
    }

    #[test]
    fn dry_run_unless_explicitly_false() {
        assert_eq!(build("logs", json!({})).unwrap().dry_run, Some(true));
        assert_eq!(build("logs", json!({"dry_run": true})).unwrap().dry_run, Some(true));
        assert_eq!(build("logs", json!({"dry_run": false})).unwrap().dry_run, Some(false));
    }

    #[test]
    fn fields_are_checked_per_cleanup() {
        let detail = |kind: &str, json| build(kind, json).unwrap_err().detail().to_owned();
        assert!(detail("logs", json!({"days_old": -1})).starts_with("days_old: "));
        assert_eq!(build("logs", json!({"days_old": 0})).unwrap().days_old, Some(0));
        assert!(detail("memory", json!({"days_old": 3})).starts_with("days_old: does not apply"));
        assert!(detail("duplicates", json!({})).starts_with("path: is required"));
        assert!(detail("docker", json!({})).starts_with("label: is required"));
        assert!(detail("storage", json!({"label": "x"})).starts_with("label: does not apply"));
        assert!(detail("memory", json!({"path": "/tmp"})).starts_with("path: does not apply"));
        assert_eq!(
            build("storage", json!({"path": "/tmp\u{0}x"})).unwrap_err().code(),
            ServiceErrorCode::BadRequest
        );
        assert_eq!(
            build("docker", json!({"label": "sutazai.cleanup=true"})).unwrap().label.as_deref(),
            Some("sutazai.cleanup=true")
        );
        assert!(serde_json::from_value::<OptimizeBody>(json!({"dry_run": "no"})).is_err());
        assert!(optimize_kind("everything").is_none());
    }

    #[tokio::test]
    async fn empty_body_is_the_default() {
        let request = Request::builder().uri("/").body(Body::empty()).unwrap();
        let parsed: OptimizeBody = optional_json(request).await.unwrap();
        assert!(parsed.dry_run.is_none() && parsed.path.is_none());

        let untyped = Request::builder().uri("/").body(Body::from("{\"dry_run\":false}")).unwrap();
        let error = optional_json::<OptimizeBody>(untyped).await.unwrap_err();
        assert_eq!(error.code(), ServiceErrorCode::BadRequest);

        let typed = Request::builder()
            .uri("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"dry_run\":false}"))
            .unwrap();
        assert_eq!(optional_json::<OptimizeBody>(typed).await.unwrap().dry_run, Some(false));
    }
}
