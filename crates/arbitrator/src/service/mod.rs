//! The arbitrator's use cases over the live view, the journal and the stored policies: listing
//! pools, acquiring (with preemption and waiting), renewing and releasing leases, reading and
//! setting policies, and the periodic sweep. Transport-free: the gRPC adapter decodes into these
//! calls and maps their one error type.

mod leases;
mod policies;
mod pools;
pub mod sweeper;
pub mod wakeups;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use sutazai_kit::audit::AuditLog;

pub use self::leases::AcquireInput;
pub use self::pools::PoolView;
use self::wakeups::Wakeups;
use crate::domain::policy::{Limits, Policy};
use crate::domain::resource::{Catalog, ResourceKey};
use crate::error::ArbitratorError;
use crate::store::journal::Journal;
use crate::store::leases::PgLeaseStore;
use crate::store::live::LiveLeases;
use crate::store::policies::PgPolicyStore;

/// What the service is built from.
#[derive(Debug)]
pub struct ArbitratorParts {
    /// The pools and their capacities.
    pub catalog: Catalog,
    /// The policy of resources without a stored one.
    pub default_policy: Policy,
    /// Longest lease lifetime.
    pub max_ttl_s: u32,
    /// Longest wait for capacity.
    pub max_wait_ms: u32,
    /// The live view in Redis.
    pub live: LiveLeases,
    /// The lease journal writer.
    pub journal: Journal,
    /// The journal's reads.
    pub leases: PgLeaseStore,
    /// Stored policies.
    pub policies: PgPolicyStore,
    /// The audit log (policy changes).
    pub audit: AuditLog,
}

#[derive(Debug)]
struct Inner {
    catalog: Catalog,
    default_policy: Policy,
    max_ttl_s: u32,
    max_wait_ms: u32,
    live: LiveLeases,
    journal: Journal,
    leases: PgLeaseStore,
    policy_store: PgPolicyStore,
    audit: AuditLog,
    /// Stored policies, refreshed by every sweep; a policy set on this replica is here at once.
    /// Only read and written in short synchronous sections, never across an await.
    policies: RwLock<HashMap<ResourceKey, Policy>>,
    wakeups: Arc<Wakeups>,
}

/// The arbitrator. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Arbitrator {
    inner: Arc<Inner>,
}

impl Arbitrator {
    /// The service over its parts.
    pub fn new(parts: ArbitratorParts) -> Self {
        let wakeups = Arc::new(Wakeups::new(&parts.catalog));
        Self {
            inner: Arc::new(Inner {
                catalog: parts.catalog,
                default_policy: parts.default_policy,
                max_ttl_s: parts.max_ttl_s,
                max_wait_ms: parts.max_wait_ms,
                live: parts.live,
                journal: parts.journal,
                leases: parts.leases,
                policy_store: parts.policies,
                audit: parts.audit,
                policies: RwLock::new(HashMap::new()),
                wakeups,
            }),
        }
    }

    /// The pools and their capacities.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The wake-ups of requests waiting for capacity (fed by the release listener).
    pub fn wakeups(&self) -> Arc<Wakeups> {
        Arc::clone(&self.inner.wakeups)
    }

    /// The live view (for the release listener's channel name and for tests).
    pub fn live(&self) -> &LiveLeases {
        &self.inner.live
    }

    /// The policy `resource` is governed by: the stored one, else the default.
    fn policy_of(&self, resource: &ResourceKey) -> Policy {
        let policies = self.inner.policies.read().unwrap_or_else(PoisonError::into_inner);
        policies.get(resource).copied().unwrap_or(self.inner.default_policy)
    }

    /// The limits of `resource` under its policy.
    fn limits_of(&self, resource: &ResourceKey, capacity: u64) -> Limits {
        self.policy_of(resource).limits(capacity)
    }

    /// Re-reads the stored policies into the cache.
    pub async fn load_policies(&self) -> Result<(), ArbitratorError> {
        let stored = self.inner.policy_store.all().await?;
        let mut fresh = HashMap::new();
        for (resource_text, policy) in stored {
            // Rows of pools no longer configured are kept but unused.
            if let Ok(resource) = ResourceKey::parse(&resource_text)
                && self.inner.catalog.capacity(&resource).is_some()
            {
                fresh.insert(resource, policy);
            }
        }
        *self.inner.policies.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// Stores every pool's limits in Redis, so all replicas decide with this replica's capacities
    /// and policies (at start: the configuration may have changed since Redis last heard).
    pub async fn publish_limits(&self) -> Result<(), ArbitratorError> {
        let limits: Vec<(&ResourceKey, Limits)> = self
            .inner
            .catalog
            .pools()
            .map(|(resource, capacity)| (resource, self.limits_of(resource, capacity)))
            .collect();
        self.inner.live.store_limits(&limits).await?;
        Ok(())
    }

    /// Rebuilds the live view from the journal if Redis lost it; how many leases were restored
    /// (`None` when the live view was intact).
    pub async fn restore_if_lost(&self) -> Result<Option<u64>, ArbitratorError> {
        if !self.inner.live.needs_restore().await? {
            return Ok(None);
        }
        let active = self.inner.leases.active().await?;
        let restored = self.inner.live.restore(&active).await?;
        if let Some(count) = restored {
            tracing::warn!(
                restored = count,
                recorded_active = active.len(),
                "live leases restored from the journal"
            );
        }
        Ok(restored)
    }
}
