//! Inference slots backed by the arbitrator: one `llm_slots:<provider>/<model>` lease per LLM
//! call, so every gateway and agent worker of a deployment together never sends a model more
//! calls at once than its pool allows (a single Ollama with `NUM_PARALLEL=1` gets one at a time).
//! Without a usable arbitrator — no credentials for the call, the arbitrator down, its breaker
//! open, or no pool configured for the model — a local semaphore bounds this process alone.
//!
//! The gateway leases in the name of the user whose request it serves; an agent worker in the
//! name of its service account. [`LeaseClientSource`] is that difference.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sutazai_kit::breaker::{BreakerError, BreakerFailure, CircuitBreaker};
use sutazai_llm::{InferencePermit, InferenceSlots, LlmError, LocalSlots};

use super::{LeaseClient, LeaseError, Resource};

/// A lease outlives a crashed holder by at most this long; while held, its guard renews it every
/// third of it.
pub const LEASE_TTL_S: u32 = 30;

/// Where the lease client of one inference call comes from.
pub trait LeaseClientSource: Send + Sync + fmt::Debug {
    /// The client to lease with for the call being made now, or `None` when no lease can be taken
    /// for it (no caller, no token): the call then takes a local slot.
    fn lease_client(&self) -> BoxFuture<'_, Option<LeaseClient>>;
}

/// A fixed client: every call leases with the same credentials.
impl LeaseClientSource for LeaseClient {
    fn lease_client(&self) -> BoxFuture<'_, Option<LeaseClient>> {
        Box::pin(async move { Some(self.clone()) })
    }
}

/// Inference slots leased from the arbitrator, falling back to a local pool.
#[derive(Debug)]
pub struct ArbitratedSlots {
    source: Box<dyn LeaseClientSource>,
    breaker: Option<Arc<CircuitBreaker>>,
    local: LocalSlots,
    wait_timeout_ms: u32,
}

impl ArbitratedSlots {
    /// Leases through the clients `source` hands out, waiting up to `wait_timeout` for a busy
    /// pool to free a slot; `local_slots` calls at once when the arbitrator cannot be used.
    pub fn new(source: impl LeaseClientSource + 'static, local_slots: usize, wait_timeout: Duration) -> Self {
        Self {
            source: Box::new(source),
            breaker: None,
            local: LocalSlots::new(local_slots),
            wait_timeout_ms: u32::try_from(wait_timeout.as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// Sends lease requests through `breaker`: while the arbitrator is failing, calls take a local
    /// slot at once instead of each waiting for a connection timeout.
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// A held lease, `None` when the arbitrator cannot be used for this call, or an error when the
    /// model's pool stayed full for the whole wait.
    async fn lease(
        &self,
        client: &LeaseClient,
        provider: &str,
        model: &str,
    ) -> Result<Option<InferencePermit>, LlmError> {
        let pool = format!("{provider}/{model}");
        // The holder is left empty: the lease is held in the name of the token's subject.
        let acquiring =
            client.acquire(Resource::LlmSlots(pool.clone()), 1, LEASE_TTL_S, 0, "", self.wait_timeout_ms);
        let outcome = match &self.breaker {
            Some(breaker) => breaker.call_classified(acquiring, counts_against_the_arbitrator).await,
            None => acquiring.await.map_err(BreakerError::Inner),
        };
        match outcome {
            Ok(guard) => Ok(Some(InferencePermit::new(guard))),
            Err(BreakerError::Inner(LeaseError::Denied(_))) => {
                Err(LlmError::unavailable(format!("every inference slot of {pool} is busy")))
            }
            Err(BreakerError::Inner(LeaseError::Rejected(status)))
                if status.code() == tonic::Code::NotFound =>
            {
                tracing::debug!(%pool, "no arbitrator pool for the model; using the local slots");
                Ok(None)
            }
            Err(BreakerError::Inner(LeaseError::Rejected(status)))
                if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) =>
            {
                // A configuration problem an operator must see, not a passing outage.
                tracing::warn!(
                    %pool,
                    error = %status.message(),
                    "the arbitrator refused the credentials; using the local slots"
                );
                Ok(None)
            }
            Err(error) => {
                tracing::debug!(
                    %pool,
                    %error,
                    "arbitrator not usable for an inference slot; using the local slots"
                );
                Ok(None)
            }
        }
    }
}

/// Transport failures and server errors count against the arbitrator's breaker; refusals (a full
/// pool, a missing pool, bad credentials) come from a working arbitrator and do not.
fn counts_against_the_arbitrator(error: &LeaseError) -> bool {
    match error {
        LeaseError::Rejected(status) => status.counts_as_failure(),
        LeaseError::Denied(_) | LeaseError::InvalidToken | LeaseError::MissingLease => false,
    }
}

impl InferenceSlots for ArbitratedSlots {
    fn acquire<'a>(
        &'a self,
        provider: &'a str,
        model: &'a str,
    ) -> BoxFuture<'a, Result<InferencePermit, LlmError>> {
        Box::pin(async move {
            if let Some(client) = self.source.lease_client().await
                && let Some(permit) = self.lease(&client, provider, model).await?
            {
                return Ok(permit);
            }
            self.local.acquire(provider, model).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_arbitrator_itself_open_the_breaker() {
        assert!(counts_against_the_arbitrator(&LeaseError::Rejected(tonic::Status::unavailable("down"))));
        assert!(counts_against_the_arbitrator(&LeaseError::Rejected(tonic::Status::deadline_exceeded(
            "slow"
        ))));
        assert!(!counts_against_the_arbitrator(&LeaseError::Denied("full".to_owned())));
        assert!(!counts_against_the_arbitrator(&LeaseError::Rejected(tonic::Status::not_found("no pool"))));
        assert!(!counts_against_the_arbitrator(&LeaseError::Rejected(tonic::Status::unauthenticated(
            "token"
        ))));
        assert!(!counts_against_the_arbitrator(&LeaseError::InvalidToken));
    }
}
