//! The periodic sweep: restore the live view if Redis lost it, mark leases past their expiry
//! expired in the journal, refresh the policy cache and the limits stored in Redis, and publish each pool's allocation as
//! metrics. Capacity never waits for this: expired leases stop counting inside the scripts.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Arbitrator;

/// Sweeps every `interval` until `stop`.
pub async fn run(service: Arbitrator, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = service.sweep().await {
            tracing::warn!(%error, "lease sweep failed");
        }
    }
}

impl Arbitrator {
    /// One sweep.
    pub async fn sweep(&self) -> Result<(), crate::error::ArbitratorError> {
        self.restore_if_lost().await?;
        let expired = self.inner.leases.mark_expired().await?;
        if expired > 0 {
            metrics::counter!("arbitrator_leases_expired_total").increment(expired);
            tracing::debug!(expired, "leases expired");
        }
        self.load_policies().await?;
        // Redis' stored limits outlive replicas: one that ran with another configuration (or a
        // policy change that reached Postgres but not Redis) would otherwise decide forever.
        self.publish_limits().await?;
        let resources: Vec<_> = self.inner.catalog.pools().map(|(resource, _)| resource).collect();
        let usages = self.inner.live.usage(&resources).await?;
        for (resource, usage) in resources.iter().zip(usages) {
            let label = resource.to_string();
            metrics::gauge!("arbitrator_pool_allocated", "resource" => label.clone())
                .set(usage.allocated as f64);
            metrics::gauge!("arbitrator_pool_active_leases", "resource" => label)
                .set(f64::from(usage.active_leases));
        }
        Ok(())
    }
}
