//! The client other crates lease through: [`LeaseClient::acquire`] returns a [`LeaseGuard`] that
//! renews a short lease in the background while held and releases it when released or dropped.
//! The gateway and agent workers hold an `llm_slots` lease around each inference call, so a
//! single Ollama with `OLLAMA_NUM_PARALLEL=1` is never sent two generations at once.
//!
//! [`slots::ArbitratedSlots`] is that lease as the LLM client's source of inference slots.
//!
//! Only tonic, the generated contract and tokio are used here, nothing of the server.

pub mod slots;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sutazai_proto::v1 as pb;
use sutazai_proto::v1::arbitrator_service_client::ArbitratorServiceClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Leases whose ttl is at most this long are renewed in the background while held; longer ones
/// are expected to outlive their use.
pub const RENEW_TTL_AT_MOST_S: u32 = 300;

/// Shortest pause between background renewals.
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(200);

/// A pool to lease from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// CPU time in millicores.
    Cpu,
    /// Memory in bytes.
    Memory,
    /// Whole GPU devices.
    Gpu,
    /// Inference slots of `<provider>/<model>`, e.g. `ollama/smollm2:135m`.
    LlmSlots(String),
    /// An operator-defined counted resource.
    Custom(String),
}

impl Resource {
    fn to_message(&self) -> pb::ResourceRef {
        let (kind, name) = match self {
            Self::Cpu => (pb::ResourceKind::Cpu, ""),
            Self::Memory => (pb::ResourceKind::Memory, ""),
            Self::Gpu => (pb::ResourceKind::Gpu, ""),
            Self::LlmSlots(name) => (pb::ResourceKind::LlmSlots, name.as_str()),
            Self::Custom(name) => (pb::ResourceKind::Custom, name.as_str()),
        };
        pb::ResourceRef { kind: kind.into(), name: name.to_owned() }
    }
}

/// Why a lease call failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Not enough capacity (after waiting, if asked to): the arbitrator's reason.
    #[error("lease denied: {0}")]
    Denied(String),
    /// The arbitrator refused or could not answer the call.
    #[error("arbitrator: {} ({:?})", .0.message(), .0.code())]
    Rejected(tonic::Status),
    /// The bearer token is not a valid header value.
    #[error("the bearer token is not a valid header value")]
    InvalidToken,
    /// The arbitrator answered without the lease it granted.
    #[error("the arbitrator answered without a lease")]
    MissingLease,
}

impl LeaseError {
    fn from_status(status: tonic::Status) -> Self {
        // `conflict` travels as ALREADY_EXISTS (the ServiceErrorCode table).
        if status.code() == tonic::Code::AlreadyExists {
            return Self::Denied(status.message().to_owned());
        }
        Self::Rejected(status)
    }
}

type TokenProvider = Arc<dyn Fn() -> String + Send + Sync>;

/// A client of the arbitrator. Cheap to clone (one HTTP/2 channel underneath).
#[derive(Clone)]
pub struct LeaseClient {
    rpc: ArbitratorServiceClient<Channel>,
    token: TokenProvider,
}

impl fmt::Debug for LeaseClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("LeaseClient").finish_non_exhaustive()
    }
}

impl LeaseClient {
    /// A client sending the same bearer token with every call.
    pub fn new(channel: Channel, token: impl Into<String>) -> Self {
        let token = token.into();
        Self::with_token_provider(channel, move || token.clone())
    }

    /// A client asking `provider` for the bearer token before every call (a service whose token
    /// is refreshed elsewhere hands in a closure reading the current one).
    pub fn with_token_provider(
        channel: Channel,
        provider: impl Fn() -> String + Send + Sync + 'static,
    ) -> Self {
        Self { rpc: ArbitratorServiceClient::new(channel), token: Arc::new(provider) }
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, LeaseError> {
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {}", (self.token)()).parse().map_err(|_| LeaseError::InvalidToken)?;
        request.metadata_mut().insert("authorization", value);
        // The lease joins the caller's trace (a chat, an agent's task) in the arbitrator's spans.
        sutazai_kit::telemetry::inject_current(&mut sutazai_kit::telemetry::MetadataCarrier(
            request.metadata_mut(),
        ));
        Ok(request)
    }

    /// Acquires `amount` of `resource` for `holder` (empty: the token's subject), waiting up to
    /// `wait_timeout_ms` for capacity. The guard renews the lease while held when `ttl_s` is at
    /// most [`RENEW_TTL_AT_MOST_S`], and releases it on [`LeaseGuard::release`] or drop.
    pub async fn acquire(
        &self,
        resource: Resource,
        amount: u64,
        ttl_s: u32,
        priority: u32,
        holder: &str,
        wait_timeout_ms: u32,
    ) -> Result<LeaseGuard, LeaseError> {
        let request = self.request(pb::AcquireLeaseRequest {
            resource: Some(resource.to_message()),
            amount,
            ttl_s,
            priority,
            holder: holder.to_owned(),
            wait_timeout_ms,
        })?;
        let response =
            self.rpc.clone().acquire_lease(request).await.map_err(LeaseError::from_status)?.into_inner();
        let lease = response.lease.ok_or(LeaseError::MissingLease)?;
        Ok(LeaseGuard::start(self.clone(), lease, response.preempted_lease_ids))
    }

    /// Extends lease `lease_id` by `ttl_s` from now (0 keeps its ttl).
    pub async fn renew(&self, lease_id: &str, ttl_s: u32) -> Result<pb::Lease, LeaseError> {
        let request = self.request(pb::RenewLeaseRequest { lease_id: lease_id.to_owned(), ttl_s })?;
        let response = self.rpc.clone().renew_lease(request).await.map_err(LeaseError::from_status)?;
        response.into_inner().lease.ok_or(LeaseError::MissingLease)
    }

    /// Releases lease `lease_id` of `holder` (empty: the token's subject's).
    pub async fn release(&self, lease_id: &str, holder: &str) -> Result<(), LeaseError> {
        let request = self
            .request(pb::ReleaseLeaseRequest { lease_id: lease_id.to_owned(), holder: holder.to_owned() })?;
        self.rpc.clone().release_lease(request).await.map_err(LeaseError::from_status)?;
        Ok(())
    }
}

/// A held lease. Dropping it releases the lease in the background; [`LeaseGuard::release`]
/// releases it and reports the outcome.
pub struct LeaseGuard {
    client: LeaseClient,
    lease: pb::Lease,
    preempted_lease_ids: Vec<String>,
    renewer: Option<JoinHandle<()>>,
    lost: watch::Receiver<Option<String>>,
    released: bool,
}

impl fmt::Debug for LeaseGuard {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LeaseGuard")
            .field("lease", &self.lease)
            .field("lost", &*self.lost.borrow())
            .finish_non_exhaustive()
    }
}

impl LeaseGuard {
    fn start(client: LeaseClient, lease: pb::Lease, preempted_lease_ids: Vec<String>) -> Self {
        let (lost_sender, lost) = watch::channel(None);
        let renewer = (lease.ttl_s <= RENEW_TTL_AT_MOST_S).then(|| {
            // A third of the ttl leaves two more tries before the lease lapses.
            let interval = (Duration::from_secs(u64::from(lease.ttl_s)) / 3).max(MIN_RENEW_INTERVAL);
            let expires_at = lease.expires_at.and_then(|time| SystemTime::try_from(time).ok());
            let held =
                HeldLease { id: lease.id.clone(), expires_at: expires_at.unwrap_or_else(SystemTime::now) };
            tokio::spawn(renew_while_held(client.clone(), held, interval, lost_sender))
        });
        Self { client, lease, preempted_lease_ids, renewer, lost, released: false }
    }

    /// The lease id.
    pub fn id(&self) -> &str {
        &self.lease.id
    }

    /// The lease as granted.
    pub fn lease(&self) -> &pb::Lease {
        &self.lease
    }

    /// Ids of the lower-priority leases revoked for this one.
    pub fn preempted_lease_ids(&self) -> &[String] {
        &self.preempted_lease_ids
    }

    /// Why the lease is gone (preempted, or expired before a renewal got through), once a
    /// background renewal has found out.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Resolves when a background renewal finds the lease gone, with the reason. Never resolves
    /// for a lease that is not renewed in the background.
    pub async fn lost(&mut self) -> String {
        loop {
            if let Some(reason) = self.lost.borrow_and_update().clone() {
                return reason;
            }
            if self.lost.changed().await.is_err() {
                // The renewer ended without a loss (it never does before the guard goes away).
                std::future::pending::<()>().await;
            }
        }
    }

    /// Releases the lease.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        let outcome = self.client.release(&self.lease.id, &self.lease.holder).await;
        // Only a release that got through (or found nothing left to release) is final; after a
        // transient failure the drop tries once more in the background.
        self.released = match &outcome {
            Ok(()) => true,
            Err(LeaseError::Rejected(status)) => status.code() == tonic::Code::NotFound,
            Err(_) => false,
        };
        outcome
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to release from: the lease lapses at its expiry.
            return;
        };
        let (client, id, holder) = (self.client.clone(), self.lease.id.clone(), self.lease.holder.clone());
        runtime.spawn(async move {
            if let Err(error) = client.release(&id, &holder).await {
                tracing::debug!(%error, lease_id = %id, "releasing a dropped lease failed; it lapses at its expiry");
            }
        });
    }
}

/// The lease a renewer keeps alive: its id and when it lapses unless renewed.
struct HeldLease {
    id: String,
    expires_at: SystemTime,
}

async fn renew_while_held(
    client: LeaseClient,
    mut held: HeldLease,
    interval: Duration,
    lost: watch::Sender<Option<String>>,
) {
    let lease_id = held.id.clone();
    loop {
        tokio::time::sleep(interval).await;
        // A renewal that hangs longer than the pause between renewals would otherwise keep the
        // holder believing in a lease that lapsed meanwhile.
        let outcome = match tokio::time::timeout(interval, client.renew(&lease_id, 0)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(LeaseError::Rejected(tonic::Status::deadline_exceeded("renewal timed out"))),
        };
        match outcome {
            Ok(lease) => {
                if let Some(expires_at) = lease.expires_at.and_then(|time| SystemTime::try_from(time).ok()) {
                    held.expires_at = expires_at;
                }
            }
            // Preempted (conflict) or gone (not_found): tell the holder and stop.
            Err(LeaseError::Denied(reason)) => {
                tracing::warn!(%lease_id, %reason, "held lease was preempted");
                let _ = lost.send(Some(reason));
                return;
            }
            Err(LeaseError::Rejected(status)) if status.code() == tonic::Code::NotFound => {
                tracing::warn!(%lease_id, "held lease expired before it was renewed");
                let _ = lost.send(Some(status.message().to_owned()));
                return;
            }
            // Transient (unavailable, timeout): the next tick tries again while the ttl allows.
            Err(error) => {
                tracing::warn!(%error, %lease_id, "renewing a held lease failed");
                if SystemTime::now() >= held.expires_at {
                    let _ = lost.send(Some(format!("lease {lease_id} expired before a renewal got through")));
                    return;
                }
            }
        }
    }
}
