//! Inference slots of the gateway's LLM calls: the shared [`ArbitratedSlots`] of the arbitrator
//! crate, leasing in the name of the user whose request is being served (the gateway has no power
//! of its own at the arbitrator), through the arbitrator's circuit breaker. Outside a request, or
//! without a usable arbitrator, the gateway's own semaphore (`llm.max_concurrent_requests`) bounds
//! this process alone.

use std::time::Duration;

use futures_util::future::BoxFuture;
use sutazai_arbitrator::client::LeaseClient;
use sutazai_arbitrator::client::slots::{ArbitratedSlots, LeaseClientSource};
use tonic::transport::Channel;

use crate::downstream::{ARBITRATOR, Downstreams, caller_authorization};

/// Lease clients carrying the verified caller's token.
#[derive(Debug)]
struct CallerLeases {
    arbitrator: Channel,
}

impl LeaseClientSource for CallerLeases {
    fn lease_client(&self) -> BoxFuture<'_, Option<LeaseClient>> {
        Box::pin(async move {
            let authorization = caller_authorization()?;
            let token = authorization.to_str().ok()?.strip_prefix("Bearer ")?.to_owned();
            // The token is fixed for the lease's life: its renewals and its release, which may
            // happen after the request ended, still act in the caller's name.
            Some(LeaseClient::new(self.arbitrator.clone(), token))
        })
    }
}

/// Slots leased from `downstreams`' arbitrator, waiting up to `wait_timeout` for a free one;
/// `local_slots` calls at once when the arbitrator cannot be used.
pub(crate) fn inference_slots(
    downstreams: &Downstreams,
    local_slots: usize,
    wait_timeout: Duration,
) -> ArbitratedSlots {
    let source = CallerLeases { arbitrator: downstreams.arbitrator_channel() };
    ArbitratedSlots::new(source, local_slots, wait_timeout).with_breaker(downstreams.breaker(ARBITRATOR))
}
