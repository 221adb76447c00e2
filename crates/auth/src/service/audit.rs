//! Audit rows for every security event: who, what, when, from where, outcome. Recording never
//! fails the operation it describes (a lost audit row is logged instead), and rows never carry
//! passwords, tokens or secrets.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

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

/// A stored audit row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who acted (user name, client id), when known.
    pub actor: Option<String>,
    /// What happened.
    pub(crate) action: String,
    /// What it happened to.
    pub(crate) target: Option<String>,
    /// From where.
    pub ip: Option<String>,
    /// How it ended.
    pub(crate) outcome: String,
    /// Extra facts.
    pub(crate) detail: Value,
}

impl AuthService {
    /// Records an event.
    pub(super) async fn audit(&self, context: &RequestContext, event: AuditEvent<'_>) {
        let stored = sqlx::query(
            "INSERT INTO audit_log (actor, action, target, ip, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(context.actor.as_deref())
        .bind(event.action)
        .bind(event.target)
        .bind(context.client_ip.map(|ip| ip.to_string()))
        .bind(event.outcome)
        .bind(&event.detail)
        .execute(&self.pool)
        .await;
        if let Err(error) = stored {
            tracing::error!(%error, action = event.action, "audit row lost");
        }
    }

    /// The newest audit rows first, paginated.
    pub async fn list_audit(&self, skip: i64, limit: i64) -> Result<(Vec<AuditEntry>, i64), AuthError> {
        let rows = sqlx::query_as::<_, AuditEntry>(
            "SELECT id, at, actor, action, target, ip, outcome, detail FROM audit_log ORDER BY id DESC OFFSET $1 LIMIT $2",
        )
        .bind(skip)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&self.pool).await?;
        Ok((rows, total))
    }
}
