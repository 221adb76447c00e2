//! The worker's inference-slot leases: the arbitrator crate's shared `ArbitratedSlots`, leasing in
//! the name of the worker's service account.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sutazai_arbitrator::client::LeaseClient;
use sutazai_arbitrator::client::slots::{ArbitratedSlots, LeaseClientSource};
use sutazai_kit::breaker::{BreakerSettings, CircuitBreaker};
use tonic::transport::{Channel, Endpoint};

use super::token::ServiceToken;

/// Lease clients carrying the worker's service token.
#[derive(Debug)]
struct ServiceLeases {
    arbitrator: Channel,
    token: Arc<ServiceToken>,
}

impl LeaseClientSource for ServiceLeases {
    fn lease_client(&self) -> BoxFuture<'_, Option<LeaseClient>> {
        Box::pin(async move {
            if let Err(error) = self.token.bearer().await {
                tracing::warn!(%error, "no service token for an inference slot lease; using the local slots");
                return None;
            }
            // Renewals read the latest token, so a lease outlives the token it was taken with.
            let token = Arc::clone(&self.token);
            Some(LeaseClient::with_token_provider(self.arbitrator.clone(), move || token.latest()))
        })
    }
}

/// Slots leased from the arbitrator at `arbitrator_url`, waiting up to `wait_timeout` for a busy
/// model; `local_slots` calls at once without it.
pub(crate) fn arbitrated_slots(
    arbitrator_url: &str,
    token: Arc<ServiceToken>,
    local_slots: usize,
    wait_timeout: Duration,
) -> Result<ArbitratedSlots, tonic::transport::Error> {
    // A lease request waits up to `wait_timeout` inside the arbitrator; the channel allows a
    // little more so the arbitrator's own answer (busy) arrives instead of a local timeout.
    let arbitrator = Endpoint::from_shared(arbitrator_url.to_owned())?
        .connect_timeout(Duration::from_millis(500))
        .timeout(wait_timeout + Duration::from_secs(5))
        .connect_lazy();
    let breaker = Arc::new(CircuitBreaker::new("arbitrator", BreakerSettings::default()));
    let source = ServiceLeases { arbitrator, token };
    Ok(ArbitratedSlots::new(source, local_slots, wait_timeout).with_breaker(breaker))
}
