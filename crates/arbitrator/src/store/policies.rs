//! Stored policies: one row per resource an admin has set a policy for; the others use the
//! configured default.

use sqlx::PgPool;

use crate::domain::policy::Policy;
use crate::domain::resource::ResourceKey;

type PolicyRow = (String, f64, f64, f64, bool);

fn policy_of(row: &PolicyRow) -> Policy {
    Policy {
        max_allocation_percent: row.1,
        max_per_holder_percent: row.2,
        oversubscription_ratio: row.3,
        preemption_enabled: row.4,
    }
}

const COLUMNS: &str =
    "resource, max_allocation_percent, max_per_holder_percent, oversubscription_ratio, preemption_enabled";

/// The `policies` table.
#[derive(Debug, Clone)]
pub struct PgPolicyStore {
    pool: PgPool,
}

impl PgPolicyStore {
    /// The store in the pool's schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Every stored policy, by resource text (rows for resources no longer configured included;
    /// the caller ignores them).
    pub async fn all(&self) -> Result<Vec<(String, Policy)>, sqlx::Error> {
        let rows: Vec<PolicyRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM policies")).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|row| (row.0.clone(), policy_of(row))).collect())
    }

    /// The stored policy of `resource`.
    pub async fn get(&self, resource: &ResourceKey) -> Result<Option<Policy>, sqlx::Error> {
        let row: Option<PolicyRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM policies WHERE resource = $1"))
                .bind(resource.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(policy_of))
    }

    /// Replaces the policy of `resource`.
    pub async fn put(
        &self,
        resource: &ResourceKey,
        policy: &Policy,
        updated_by: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO policies (resource, max_allocation_percent, max_per_holder_percent,
                                   oversubscription_ratio, preemption_enabled, updated_by, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, now())
             ON CONFLICT (resource) DO UPDATE SET
                 max_allocation_percent = EXCLUDED.max_allocation_percent,
                 max_per_holder_percent = EXCLUDED.max_per_holder_percent,
                 oversubscription_ratio = EXCLUDED.oversubscription_ratio,
                 preemption_enabled = EXCLUDED.preemption_enabled,
                 updated_by = EXCLUDED.updated_by,
                 updated_at = now()",
        )
        .bind(resource.to_string())
        .bind(policy.max_allocation_percent)
        .bind(policy.max_per_holder_percent)
        .bind(policy.oversubscription_ratio)
        .bind(policy.preemption_enabled)
        .bind(updated_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
