//! Audit rows for every security event of the auth service (the kit's `AuditLog` on the `auth`
//! schema). High-volume successes (token issues, refreshes) are counted in metrics instead.

use serde_json::Value;
pub use sutazai_kit::audit::AuditEntry;
use sutazai_kit::audit::AuditRecord;

use super::{AuthService, RequestContext};
use crate::error::AuthError;

/// One event to record.
#[derive(Debug)]
pub(crate) struct AuditEvent<'a> {
    /// What happened, e.g. `login`, `refresh_reuse`.
    pub(crate) action: &'a str,
    /// What it happened to (a user id, a client id).
    pub(crate) target: Option<&'a str>,
    /// `success`, `failure` or `denied`.
    pub(crate) outcome: &'a str,
    /// Extra facts (never secrets).
    pub(crate) detail: Value,
}

impl<'a> AuditEvent<'a> {
    /// An event without extra facts.
    pub(crate) fn new(action: &'a str, target: Option<&'a str>, outcome: &'a str) -> Self {
        Self { action, target, outcome, detail: Value::Object(serde_json::Map::new()) }
    }

    /// Adds facts (never secrets).
    pub(crate) fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

impl AuthService {
    /// Records an event.
    pub(super) async fn audit(&self, context: &RequestContext, event: AuditEvent<'_>) {
        self.audit_log
            .record(AuditRecord {
                actor: context.actor.as_deref(),
                action: event.action,
                target: event.target,
                ip: context.client_ip,
                outcome: event.outcome,
                detail: event.detail,
            })
            .await;
    }

    /// The newest audit rows first, paginated.
    pub async fn list_audit(&self, skip: i64, limit: i64) -> Result<(Vec<AuditEntry>, i64), AuthError> {
        Ok(self.audit_log.list(skip, limit).await?)
    }
}
