//! Reads of the lease journal and the sweeper's update: the active leases a lost live view is
//! restored from, one lease's recorded status, and marking leases past their expiry expired.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::lease::{Lease, LeaseId, LeaseStatus};
use crate::domain::resource::ResourceKey;

/// A lease row as stored.
#[derive(sqlx::FromRow)]
struct LeaseRow {
    id: Uuid,
    resource: String,
    amount: i64,
    holder: String,
    priority: i16,
    ttl_s: i32,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl LeaseRow {
    /// The lease, or `None` for a row no current code could have written (logged by the caller).
    fn into_lease(self) -> Option<Lease> {
        Some(Lease {
            id: LeaseId(self.id),
            resource: ResourceKey::parse(&self.resource).ok()?,
            amount: u64::try_from(self.amount).ok()?,
            holder: self.holder,
            priority: u32::try_from(self.priority).ok()?,
            ttl_s: u32::try_from(self.ttl_s).ok()?,
            acquired_at: self.acquired_at,
            expires_at: self.expires_at,
        })
    }
}

/// The journal's reads and the sweeper's update.
#[derive(Debug, Clone)]
pub struct PgLeaseStore {
    pool: PgPool,
}

impl PgLeaseStore {
    /// The store in the pool's schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Leases recorded active whose expiry has not passed.
    pub async fn active(&self) -> Result<Vec<Lease>, sqlx::Error> {
        let rows: Vec<LeaseRow> = sqlx::query_as(
            "SELECT id, resource, amount, holder, priority, ttl_s, acquired_at, expires_at
             FROM leases WHERE status = 'active' AND expires_at > now() ORDER BY acquired_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut leases = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            match row.into_lease() {
                Some(lease) => leases.push(lease),
                None => {
                    tracing::warn!(lease_id = %id, "skipping a journal row that does not describe a lease")
                }
            }
        }
        Ok(leases)
    }

    /// The recorded status and holder of lease `id`.
    pub async fn status(&self, id: LeaseId) -> Result<Option<(LeaseStatus, String)>, sqlx::Error> {
        let row: Option<(String, String)> = sqlx::query_as("SELECT status, holder FROM leases WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(status, holder)| LeaseStatus::parse(&status).map(|status| (status, holder))))
    }

    /// Marks active leases past their expiry expired; how many.
    pub async fn mark_expired(&self) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE leases SET status = 'expired', ended_at = expires_at
             WHERE status = 'active' AND expires_at <= now()",
        )
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }
}
