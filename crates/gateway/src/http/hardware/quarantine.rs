//! Quarantine routes: the files cleanups moved aside, and restoring one (audited).

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sutazai_kit::audit::AuditRecord;
use sutazai_kit::auth::{Principal, require_admin};
use sutazai_kit::http::{ApiError, ClientIp, Page, PageOf, parse_uuid};
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::optimize::optimize_kind_name;
use crate::downstream::HARDWARE;
use crate::http::AppState;
use crate::http::paging::{page_of, page_request};
use crate::http::tasks::time;

/// A file moved aside by a cleanup, restorable until it is purged.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QuarantineEntryView {
    id: String,
    original_path: String,
    size_bytes: u64,
    /// Of the content, checked on restore.
    sha256: String,
    /// The cleanup that moved it.
    reason: String,
    quarantined_at: Option<DateTime<Utc>>,
    /// When it is deleted for good.
    purge_at: Option<DateTime<Utc>>,
}

impl From<pb::QuarantineEntry> for QuarantineEntryView {
    fn from(entry: pb::QuarantineEntry) -> Self {
        Self {
            reason: optimize_kind_name(entry.reason).to_owned(),
            quarantined_at: time(entry.quarantined_at.as_ref()),
            purge_at: time(entry.purge_at.as_ref()),
            id: entry.id,
            original_path: entry.original_path,
            size_bytes: entry.size_bytes,
            sha256: entry.sha256,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/hardware/quarantine", tag = "hardware",
    params(("skip" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200), (status = 401), (status = 422), (status = 503)), security(("bearer" = [])))]
pub(crate) async fn list_quarantine(
    State(state): State<AppState>,
    principal: Principal,
    page: Page,
) -> Result<Json<PageOf<QuarantineEntryView>>, ApiError> {
    // File paths under the allowed roots are not every user's business.
    require_admin(&principal)?;
    let request = pb::ListQuarantineRequest { page: Some(page_request(page)) };
    let response =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().list_quarantine(request)).await?;
    Ok(Json(page_of(response.entries, response.page, page)))
}

#[utoipa::path(post, path = "/api/v1/hardware/quarantine/{id}/restore", tag = "hardware", params(("id" = String, Path)),
    responses((status = 200, body = QuarantineEntryView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 409), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn restore_quarantine(
    State(state): State<AppState>,
    principal: Principal,
    client_ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Json<QuarantineEntryView>, ApiError> {
    require_admin(&principal)?;
    let quarantine_id = parse_uuid("id", &id)?.to_string();
    let request = pb::RestoreQuarantineRequest {
        quarantine_id: quarantine_id.clone(),
        requested_by: principal.name.clone(),
    };
    let outcome =
        state.downstreams.call(HARDWARE, state.downstreams.hardware().restore_quarantine(request)).await;
    let original_path = outcome
        .as_ref()
        .ok()
        .and_then(|response| response.entry.as_ref())
        .map(|entry| entry.original_path.clone());
    state
        .audit
        .record(AuditRecord {
            actor: Some(&principal.name),
            action: "quarantine_restore",
            target: Some(&quarantine_id),
            ip: client_ip.0,
            outcome: if outcome.is_ok() { "success" } else { "failure" },
            detail: json!({"original_path": original_path}),
        })
        .await;
    let entry = outcome?
        .entry
        .ok_or_else(|| ApiError::new(ServiceErrorCode::Internal, "hardware answered without the entry"))?;
    Ok(Json(entry.into()))
}
