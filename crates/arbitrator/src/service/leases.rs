//! Acquiring, renewing and releasing leases.
//!
//! An acquire is one atomic decision in the live view (grant, preempting lower priorities when
//! the policy allows and it makes enough room, or deny), then one journal record; nothing is
//! locked across the two, and no request ever holds one pool while waiting for another, so there
//! is nothing to deadlock on. A request that may wait re-tries after each release of its pool (or
//! a bounded poll, for expiries) until its deadline.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Arbitrator;
use crate::domain::lease::{
    Caller, Denial, Grant, Lease, LeaseId, LeaseRequest, LeaseStatus, MAX_HOLDER_BYTES, MAX_PRIORITY,
};
use crate::domain::policy::{Limits, MAX_AMOUNT};
use crate::domain::resource::ResourceKey;
use crate::error::ArbitratorError;
use crate::store::journal::{JournalEntry, JournalError};
use crate::store::live::{AcquireOutcome, LiveLeases, ReleaseOutcome, RenewOutcome};

/// First pause of a waiting request between attempts when no release wakes it.
const FIRST_POLL: Duration = Duration::from_millis(10);
/// Longest pause between attempts.
const MAX_POLL: Duration = Duration::from_millis(250);

/// Attempts of a journal write before the request is answered unavailable.
const JOURNAL_ATTEMPTS: u32 = 3;
/// Pause before the second attempt (each further one waits four times longer).
const JOURNAL_FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The answer while the live view is lost and could not be restored from the journal.
fn live_view_not_restored() -> ArbitratorError {
    ArbitratorError::Unavailable { dependency: "redis", cause: "the live view is not restored".to_owned() }
}

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
        let victim_scope = caller.preempt_scope();
        let outcome = if wait.is_zero() {
            self.try_acquire(&request, limits, victim_scope).await?
        } else {
            self.acquire_waiting(&request, limits, victim_scope, wait).await?
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
        victim_scope: Option<&str>,
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
            let denial = match self.try_acquire(request, limits, victim_scope).await? {
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

    /// One decision and, for a grant, its journal record. Both run in a task of their own: if
    /// the request is dropped mid-way (its client went away), a grant already made in Redis
    /// would otherwise hold capacity for its whole ttl, perhaps without a journal row. The task
    /// always finishes, and takes the grant back when nobody is left to hand it to.
    async fn try_acquire(
        &self,
        request: &LeaseRequest,
        limits: Limits,
        victim_scope: Option<&str>,
    ) -> Result<Result<Grant, Denial>, ArbitratorError> {
        let (answer, answered) = oneshot::channel();
        let service = self.clone();
        let (request, victim_scope) = (request.clone(), victim_scope.map(str::to_owned));
        tokio::spawn(async move {
            let outcome = service.decide_and_record(&request, limits, victim_scope.as_deref()).await;
            if let Err(Ok(Ok(grant))) = answer.send(outcome) {
                service.take_back_abandoned(&grant.lease).await;
            }
        });
        answered
            .await
            .map_err(|_| ArbitratorError::Internal("the acquire task ended without an answer".to_owned()))?
    }

    async fn decide_and_record(
        &self,
        request: &LeaseRequest,
        limits: Limits,
        victim_scope: Option<&str>,
    ) -> Result<Result<Grant, Denial>, ArbitratorError> {
        let id = LeaseId::generate();
        let mut outcome = self.inner.live.acquire(id, request, limits, victim_scope).await?;
        if outcome == AcquireOutcome::Unrestored {
            self.restore_if_lost().await?;
            outcome = self.inner.live.acquire(id, request, limits, victim_scope).await?;
        }
        let (lease, preempted) = match outcome {
            AcquireOutcome::Denied(denial) => return Ok(Err(denial)),
            AcquireOutcome::Unrestored => return Err(live_view_not_restored()),
            AcquireOutcome::Granted { lease, preempted } => (lease, preempted),
        };
        let mut entries = Vec::with_capacity(1 + preempted.len());
        entries.push(JournalEntry::Granted(lease.clone()));
        for victim in &preempted {
            entries.push(JournalEntry::Preempted { lease: victim.clone(), by: id, at: lease.acquired_at });
        }
        if let Err(error) = self.record(entries).await {
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

    /// Releases a grant whose request went away before it was answered.
    async fn take_back_abandoned(&self, lease: &Lease) {
        tracing::info!(lease_id = %lease.id, holder = %lease.holder, "request cancelled after its grant; releasing the lease");
        match self.inner.live.release(lease.id, None).await {
            Ok(ReleaseOutcome::Released(resource)) => self.inner.wakeups.notify(&resource),
            Ok(ReleaseOutcome::Missing | ReleaseOutcome::Unrestored) => {}
            Err(error) => {
                tracing::error!(%error, lease_id = %lease.id, "could not release an abandoned grant; it lapses at its expiry");
                return;
            }
        }
        if let Err(error) = self.record(vec![JournalEntry::Released(lease.id)]).await {
            tracing::error!(%error, lease_id = %lease.id, "release of an abandoned grant not recorded in the journal");
        }
    }

    /// Records `entries`, trying again a few times: the live view has already changed, and
    /// every record is idempotent, so a retry only closes the gap between Redis and Postgres.
    async fn record(&self, entries: Vec<JournalEntry>) -> Result<(), JournalError> {
        let mut backoff = JOURNAL_FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.inner.journal.record(entries.clone()).await {
                Ok(()) => return Ok(()),
                Err(JournalError::Stopped) => return Err(JournalError::Stopped),
                Err(error) if attempt >= JOURNAL_ATTEMPTS => return Err(error),
                Err(error) => tracing::warn!(%error, attempt, "journal write failed; trying again"),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 4;
            attempt += 1;
        }
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
        let mut outcome = self.inner.live.renew(id, ttl_s, scope).await?;
        if outcome == RenewOutcome::Unrestored {
            self.restore_if_lost().await?;
            outcome = self.inner.live.renew(id, ttl_s, scope).await?;
        }
        match outcome {
            RenewOutcome::Renewed(lease) => {
                let entry = JournalEntry::Renewed { id, ttl_s: lease.ttl_s, expires_at: lease.expires_at };
                // Unrecorded, a restore after a Redis loss would bring the lease back with its old
                // expiry; the holder retries the (idempotent) renewal.
                self.record(vec![entry]).await?;
                Ok(lease)
            }
            RenewOutcome::Unrestored => Err(live_view_not_restored()),
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
        let mut outcome = self.inner.live.release(id, scope.as_deref()).await?;
        if outcome == ReleaseOutcome::Unrestored {
            self.restore_if_lost().await?;
            outcome = self.inner.live.release(id, scope.as_deref()).await?;
        }
        let resource = match outcome {
            ReleaseOutcome::Released(resource) => resource,
            ReleaseOutcome::Missing => {
                return Err(ArbitratorError::NotFound(format!("lease {id} not found")));
            }
            ReleaseOutcome::Unrestored => return Err(live_view_not_restored()),
        };
        self.inner.wakeups.notify(&resource);
        // Unrecorded, a restore after a Redis loss would bring the lease back; the holder's retry
        // finds it gone in Redis (not_found) but the row stays active until its expiry.
        self.record(vec![JournalEntry::Released(id)]).await?;
        Ok(())
    }
}
