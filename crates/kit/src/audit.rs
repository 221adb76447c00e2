//! Audit logs: who did what, when, from where, with what outcome. Each service keeps its own
//! `audit_log` table in its schema (same columns everywhere); this is the one writer and reader.
//! Recording never fails the action it describes (a lost row is logged), and rows never carry
//! passwords, tokens or secrets — callers put only facts in `detail`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

/// The migration creating `audit_log`; run it with the service's own migrations.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// A stored audit row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who acted (a user or client name), when known.
    pub actor: Option<String>,
    /// What happened, e.g. `login`, `cache_clear`.
    pub action: String,
    /// What it happened to.
    pub target: Option<String>,
    /// From where.
    pub ip: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Extra facts.
    pub detail: Value,
}

/// One event to record.
#[derive(Debug)]
pub struct AuditRecord<'a> {
    /// Who acted.
    pub actor: Option<&'a str>,
    /// What happened.
    pub action: &'a str,
    /// What it happened to.
    pub target: Option<&'a str>,
    /// From where.
    pub ip: Option<std::net::IpAddr>,
    /// How it ended.
    pub outcome: &'a str,
    /// Extra facts (never secrets).
    pub detail: Value,
}

/// The `audit_log` table of a service's schema.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pool: PgPool,
}

impl AuditLog {
    /// The log in the pool's schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records an event; a failure is logged, never raised.
    pub async fn record(&self, record: AuditRecord<'_>) {
        let stored = sqlx::query(
            "INSERT INTO audit_log (actor, action, target, ip, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(record.actor)
        .bind(record.action)
        .bind(record.target)
        .bind(record.ip.map(|ip| ip.to_string()))
        .bind(record.outcome)
        .bind(&record.detail)
        .execute(&self.pool)
        .await;
        if let Err(error) = stored {
            tracing::error!(%error, action = record.action, "audit row lost");
        }
    }

    /// Newest first, paginated, with the total.
    pub async fn list(&self, skip: i64, limit: i64) -> Result<(Vec<AuditEntry>, i64), sqlx::Error> {
        let items = sqlx::query_as::<_, AuditEntry>(
            "SELECT id, at, actor, action, target, ip, outcome, detail FROM audit_log ORDER BY id DESC OFFSET $1 LIMIT $2",
        )
        .bind(skip)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&self.pool).await?;
        Ok((items, total))
    }
}
