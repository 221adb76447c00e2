//! Listing pools: capacity, what live leases hold, and what a new lease can still get.

use super::Arbitrator;
use crate::domain::resource::{ResourceKey, ResourceKind};
use crate::error::ArbitratorError;

/// One pool's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView {
    /// The pool.
    pub resource: ResourceKey,
    /// What the host (or the configuration) has.
    pub capacity: u64,
    /// Held by live leases.
    pub allocated: u64,
    /// What a new holder's lease can still get: the room under the pool's limit, capped by the
    /// per-holder limit.
    pub available: u64,
    /// Live leases.
    pub active_leases: u32,
}

impl Arbitrator {
    /// Every pool of `kind` (all with `None`), ordered by kind then name.
    pub async fn list_pools(&self, kind: Option<ResourceKind>) -> Result<Vec<PoolView>, ArbitratorError> {
        let pools: Vec<(&ResourceKey, u64)> = self
            .inner
            .catalog
            .pools()
            .filter(|(resource, _)| kind.is_none_or(|kind| resource.kind() == kind))
            .collect();
        let resources: Vec<&ResourceKey> = pools.iter().map(|(resource, _)| *resource).collect();
        let usages = self.inner.live.usage(&resources).await?;
        let mut views = Vec::with_capacity(pools.len());
        for ((resource, capacity), usage) in pools.into_iter().zip(usages) {
            // The limits the replicas decide with, when stored; else this replica's own.
            let limits = usage.limits.unwrap_or_else(|| self.limits_of(resource, capacity));
            views.push(PoolView {
                resource: resource.clone(),
                capacity,
                allocated: usage.allocated,
                available: limits.total.saturating_sub(usage.allocated).min(limits.per_holder),
                active_leases: usage.active_leases,
            });
        }
        Ok(views)
    }
}
