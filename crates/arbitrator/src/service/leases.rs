//! Acquiring, renewing and releasing leases.
//!
//! An acquire is one atomic decision in the live view (grant, preempting lower priorities when
//! the policy allows and it makes enough room, or deny), then one journal record; nothing is
//! locked across the two, and no request ever holds one pool while waiting for another, so there
//! is nothing to deadlock on. A request that may wait re-tries after each release of its pool (or
//! a bounded poll, for expiries) until its deadline.

use std::time::Duration;

use tokio::time::Instant;

use super::Arbitrator;
use crate::domain::lease::{
    Caller, Denial, Grant, Lease, LeaseId, LeaseRequest, LeaseStatus, MAX_HOLDER_BYTES, MAX_PRIORITY,
};
use crate::domain::policy::{Limits, MAX_AMOUNT};
use crate::domain::resource::ResourceKey;
use crate::error::ArbitratorError;
use crate::store::journal::JournalEntry;
use crate::store::live::{AcquireOutcome, LiveLeases, RenewOutcome};

/// First pause of a waiting request between attempts when no release wakes it.
const FIRST_POLL: Duration = Duration::from_millis(10);
/// Longest pause between attempts.
const MAX_POLL: Duration = Duration::from_millis(250);

/// An acquire request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireInput {
    /// The pool.
    pub resource: ResourceKey,
    /// In the resource's unit.
    pub amount: u64,
    /// Lifetime without renewal.
    pub ttl_s: u32,
    /// 0 ..= 9.
    pub priority: u32,
    /// Who will hold it; empty for the caller.
    pub holder: String,
    /// How long to wait for capacity; 0 answers at once.
    pub wait_timeout_ms: u32,
}

/// A waiting request's mark in Redis, so releases of its pool are announced; removed on drop
/// (also when the caller goes away mid-wait).
struct WaiterMark {
    live: LiveLeases,
    resource: ResourceKey,
}

impl WaiterMark {
    async fn add(live: &LiveLeases, resource: &ResourceKey, max_wait_ms: u32) -> Option<Self> {
        match live.add_waiter(resource, u64::from(max_wait_ms)).await {
            Ok(()) => Some(Self { live: live.clone(), resource: resource.clone() }),
            Err(error) => {
                // Polling still finds the capacity, only later.
                tracing::warn!(%error, %resource, "could not mark a waiting request");
                None
            }
        }
    }
}

impl Drop for WaiterMark {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (live, resource) = (self.live.clone(), self.resource.clone());
        runtime.spawn(async move {
            if let Err(error) = live.remove_waiter(&resource).await {
                tracing::warn!(%error, %resource, "could not unmark a waiting request");
            }
        });
    }
}

impl Arbitrator {
    fn check_acquire(
        &self,
        caller: &Caller,
        input: AcquireInput,
    ) -> Result<(LeaseRequest, u64), ArbitratorError> {
        if input.amount == 0 {
            return Err(ArbitratorError::validation("amount", "must be at least 1"));
        }
        if input.amount > MAX_AMOUNT {
            return Err(ArbitratorError::validation("amount", "must be at most 2^53"));
        }
        if input.ttl_s == 0 || input.ttl_s > self.inner.max_ttl_s {
            return Err(ArbitratorError::validation(
                "ttl_s",
                format!("must be between 1 and {}", self.inner.max_ttl_s),
            ));
        }
        if input.priority > MAX_PRIORITY {
            return Err(ArbitratorError::validation(
                "priority",
                format!("must be between 0 and {MAX_PRIORITY}"),
            ));
        }
        if input.wait_timeout_ms > self.inner.max_wait_ms {
            return Err(ArbitratorError::validation(
                "wait_timeout_ms",
                format!("must be at most {}", self.inner.max_wait_ms),
            ));
        }
        if input.holder.len() > MAX_HOLDER_BYTES || input.holder.contains(char::is_control) {
            return Err(ArbitratorError::validation(
                "holder",
                format!("must be at most {MAX_HOLDER_BYTES} printable bytes"),
            ));
        }
        let holder = caller.holder_for_acquire(&input.holder)?;
        caller.check_priority(input.priority)?;
        let capacity =
            self.inner.catalog.capacity(&input.resource).ok_or_else(|| {
                ArbitratorError::NotFound(format!("resource `{}` not found", input.resource))
            })?;
        let request = LeaseRequest {
            resource: input.resource,
            amount: input.amount,
            ttl_s: input.ttl_s,
            priority: input.priority,
            holder,
        };
        Ok((request, capacity))
    }

    /// Grants a lease, preempting lower-priority leases if the policy allows and that makes
    /// room, or waits up to `wait_timeout_ms` for capacity; denied (conflict) with the reason.
    pub async fn acquire(&self, caller: &Caller, input: AcquireInput) -> Result<Grant, ArbitratorError> {
        let wait = Duration::from_millis(u64::from(input.wait_timeout_ms));
        let (request, capacity) = self.check_acquire(caller, input)?;
        let limits = self.limits_of(&request.resource, capacity);
        let outcome = if wait.is_zero() {
            self.try_acquire(&request, limits).await?
        } else {
            self.acquire_waiting(&request, limits, wait).await?
        };
        let kind = request.resource.kind().as_str();
        match outcome {
            Ok(grant) => {
                metrics::counter!("arbitrator_lease_requests_total", "kind" => kind, "outcome" => "granted")
                    .increment(1);
                Ok(grant)
            }
            Err(denial) => {
                metrics::counter!("arbitrator_lease_requests_total", "kind" => kind, "outcome" => "denied")
                    .increment(1);
                Err(ArbitratorError::Denied(denial.reason(&request.resource, &request.holder)))
            }
        }
    }

    async fn acquire_waiting(
        &self,
        request: &LeaseRequest,
        limits: Limits,
        wait: Duration,
    ) -> Result<Result<Grant, Denial>, ArbitratorError> {
        let deadline = Instant::now() + wait;
        let notify = self.inner.wakeups.watcher(&request.resource).unwrap_or_default();
        let _mark = WaiterMark::add(&self.inner.live, &request.resource, self.inner.max_wait_ms).await;
        let mut poll = FIRST_POLL;
        loop {
            // Registered before the attempt, so a release between the attempt and the wait is not
            // missed.
            let released = notify.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let denial = match self.try_acquire(request, limits).await? {
                Ok(grant) => return Ok(Ok(grant)),
                Err(denial) => denial,
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(Err(denial));
            }
            tokio::select! {
                () = released => {}
                () = tokio::time::sleep(poll.min(deadline - now)) => {}
            }
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// One decision and, for a grant, its journal record.
    async fn try_acquire(
        &self,
        request: &LeaseRequest,
        limits: Limits,
    ) -> Result<Result<Grant, Denial>, ArbitratorError> {
        let id = LeaseId::generate();
        let outcome = self.inner.live.acquire(id, request, limits).await?;
        let (lease, preempted) = match outcome {
            AcquireOutcome::Denied(denial) => return Ok(Err(denial)),
            AcquireOutcome::Granted { lease, preempted } => (lease, preempted),
        };
        let mut entries = Vec::with_capacity(1 + preempted.len());
        entries.push(JournalEntry::Granted(lease.clone()));
        for victim in &preempted {
            entries.push(JournalEntry::Preempted { lease: victim.clone(), by: id, at: lease.acquired_at });
        }
        if let Err(error) = self.inner.journal.record(entries).await {
            // A grant the journal does not know could not be restored or audited: take it back.
            // The preemptions stand (their holders were told); the sweeper expires their rows.
            if let Err(undo) = self.inner.live.release(id, None).await {
                tracing::error!(error = %undo, lease_id = %id, "could not take back an unrecorded grant; it lapses at its expiry");
            }
            return Err(error.into());
        }
        for victim in &preempted {
            metrics::counter!("arbitrator_leases_preempted_total", "kind" => victim.resource.kind().as_str())
                .increment(1);
            tracing::info!(
                lease_id = %victim.id,
                holder = %victim.holder,
                resource = %victim.resource,
                amount = victim.amount,
                priority = victim.priority,
                preempted_by = %id,
                preempted_by_priority = request.priority,
                "lease preempted"
            );
        }
        Ok(Ok(Grant { lease, preempted }))
    }

    /// Extends a live lease by `ttl_s` from now (0 keeps its ttl). Expired, released, unknown or
    /// (for a user) another holder's: not_found; preempted: conflict.
    pub async fn renew(&self, caller: &Caller, id: LeaseId, ttl_s: u32) -> Result<Lease, ArbitratorError> {
        if ttl_s > self.inner.max_ttl_s {
            return Err(ArbitratorError::validation(
                "ttl_s",
                format!("must be at most {} (0 keeps the lease's)", self.inner.max_ttl_s),
            ));
        }
        let scope = caller.renew_scope();
        match self.inner.live.renew(id, ttl_s, scope).await? {
            RenewOutcome::Renewed(lease) => {
                let entry = JournalEntry::Renewed { id, ttl_s: lease.ttl_s, expires_at: lease.expires_at };
                if let Err(error) = self.inner.journal.record(vec![entry]).await {
                    // The live view decides; the journal's expiry catches up at the next renewal.
                    tracing::error!(%error, lease_id = %id, "renewal not recorded in the journal");
                }
                Ok(lease)
            }
            RenewOutcome::Preempted => Err(ArbitratorError::Preempted(id)),
            RenewOutcome::Missing => {
                // The live view forgets a preemption after a while (or with a flushed Redis); the
                // journal remembers it, so the holder still learns why.
                match self.inner.leases.status(id).await? {
                    Some((LeaseStatus::Preempted, holder)) if scope.is_none_or(|scope| scope == holder) => {
                        Err(ArbitratorError::Preempted(id))
                    }
                    _ => Err(ArbitratorError::NotFound(format!("lease {id} not found"))),
                }
            }
        }
    }

    /// Returns a lease to its pool. `holder` names whose lease it is (empty: the caller's own,
    /// or any for an admin); another holder's, unknown, expired or preempted: not_found.
    pub async fn release(&self, caller: &Caller, id: LeaseId, holder: &str) -> Result<(), ArbitratorError> {
        let scope = caller.release_scope(holder)?;
        let Some(resource) = self.inner.live.release(id, scope.as_deref()).await? else {
            return Err(ArbitratorError::NotFound(format!("lease {id} not found")));
        };
        self.inner.wakeups.notify(&resource);
        if let Err(error) = self.inner.journal.record(vec![JournalEntry::Released(id)]).await {
            // The amount is back in the pool either way; the row expires at its expiry.
            tracing::error!(%error, lease_id = %id, "release not recorded in the journal");
        }
        Ok(())
    }
}
