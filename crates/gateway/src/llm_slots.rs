//! Inference slots of the gateway's LLM calls: one `llm_slots` lease of the arbitrator per call,
//! so the gateways and agent workers of a deployment together never send a model more calls at
//! once than its pool allows (a single Ollama with `NUM_PARALLEL=1` gets one at a time). Without
//! a usable arbitrator — down, its breaker open, or no pool configured for the model — the
//! gateway's own semaphore (`llm.max_concurrent_requests`) bounds this process alone.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sutazai_kit::breaker::BreakerError;
use sutazai_llm::{InferencePermit, InferenceSlots, LlmError, LocalSlots};
use sutazai_proto::v1 as pb;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};

use crate::downstream::{ARBITRATOR, Downstreams, caller_authorization, with_caller_authorization};

/// A lease outlives a crashed gateway by at most this long; while held it is renewed every third
/// of it.
const LEASE_TTL_S: u32 = 30;

/// Slots from the arbitrator, falling back to the local pool.
#[derive(Debug)]
pub(crate) struct ArbitratedSlots {
    downstreams: Arc<Downstreams>,
    local: LocalSlots,
    wait_timeout_ms: u32,
}

impl ArbitratedSlots {
    /// Leases through `downstreams`' arbitrator, waiting up to `wait_timeout` for a free slot;
    /// `local_slots` calls at once when the arbitrator cannot be used.
    pub(crate) fn new(downstreams: Arc<Downstreams>, local_slots: usize, wait_timeout: Duration) -> Self {
        Self {
            downstreams,
            local: LocalSlots::new(local_slots),
            wait_timeout_ms: u32::try_from(wait_timeout.as_millis()).unwrap_or(u32::MAX),
        }
    }

    async fn lease(
        &self,
        authorization: MetadataValue<Ascii>,
        provider: &str,
        model: &str,
    ) -> Result<Option<InferencePermit>, LlmError> {
        let request = pb::AcquireLeaseRequest {
            resource: Some(pb::ResourceRef {
                kind: pb::ResourceKind::LlmSlots.into(),
                name: format!("{provider}/{model}"),
            }),
            amount: 1,
            ttl_s: LEASE_TTL_S,
            priority: 0,
            // The caller's own subject: a lease is held in the name of whoever asked.
            holder: String::new(),
            wait_timeout_ms: self.wait_timeout_ms,
        };
        let mut client = self.downstreams.arbitrator();
        let breaker = self.downstreams.breaker(ARBITRATOR);
        match breaker.call(client.acquire_lease(request)).await {
            Ok(response) => {
                let Some(lease) = response.into_inner().lease else {
                    return Ok(None);
                };
                Ok(Some(InferencePermit::new(HeldLease::start(
                    Arc::clone(&self.downstreams),
                    authorization,
                    lease,
                ))))
            }
            // `conflict`: every slot of the model stayed busy for the whole wait.
            Err(BreakerError::Inner(status)) if status.code() == tonic::Code::AlreadyExists => {
                Err(LlmError::unavailable(format!("every inference slot of {provider}/{model} is busy")))
            }
            Err(BreakerError::Inner(status)) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(error) => {
                tracing::debug!(error = %error, "arbitrator not usable for an inference slot; using the local pool");
                Ok(None)
            }
        }
    }
}

impl InferenceSlots for ArbitratedSlots {
    fn acquire<'a>(
        &'a self,
        provider: &'a str,
        model: &'a str,
    ) -> BoxFuture<'a, Result<InferencePermit, LlmError>> {
        Box::pin(async move {
            // Every LLM route is authenticated; the lease is taken in the caller's name.
            if let Some(authorization) = caller_authorization()
                && let Some(permit) = self.lease(authorization, provider, model).await?
            {
                return Ok(permit);
            }
            self.local.acquire(provider, model).await
        })
    }
}

/// A granted lease: renewed in the background while held, released when dropped.
struct HeldLease {
    downstreams: Arc<Downstreams>,
    authorization: MetadataValue<Ascii>,
    lease_id: String,
    holder: String,
    renewal: JoinHandle<()>,
}

impl HeldLease {
    fn start(downstreams: Arc<Downstreams>, authorization: MetadataValue<Ascii>, lease: pb::Lease) -> Self {
        let renewal = tokio::spawn(with_caller_authorization(
            authorization.clone(),
            renew_until_aborted(Arc::clone(&downstreams), lease.id.clone()),
        ));
        Self { downstreams, authorization, lease_id: lease.id, holder: lease.holder, renewal }
    }
}

async fn renew_until_aborted(downstreams: Arc<Downstreams>, lease_id: String) {
    let interval = Duration::from_secs(u64::from(LEASE_TTL_S) / 3);
    loop {
        tokio::time::sleep(interval).await;
        let request = pb::RenewLeaseRequest { lease_id: lease_id.clone(), ttl_s: 0 };
        if let Err(status) = downstreams.arbitrator().renew_lease(request).await {
            tracing::warn!(lease_id = %lease_id, error = %status.message(), "inference slot lease not renewed");
            return;
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewal.abort();
        let request =
            pb::ReleaseLeaseRequest { lease_id: self.lease_id.clone(), holder: self.holder.clone() };
        let downstreams = Arc::clone(&self.downstreams);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        // Released in the caller's name, after the request may have ended; a lost release only
        // holds the slot until the lease's ttl runs out.
        runtime.spawn(with_caller_authorization(self.authorization.clone(), async move {
            if let Err(status) = downstreams.arbitrator().release_lease(request).await {
                tracing::warn!(error = %status.message(), "inference slot lease not released; it expires by itself");
            }
        }));
    }
}
