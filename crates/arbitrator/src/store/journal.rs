//! The lease journal in Postgres, written with group commit: every grant, preemption, renewal and
//! release is recorded after the live view decided it, and the request is answered only once its
//! record is committed. The writer drains whatever requests are queued into one statement (a few
//! batches in flight at once), so under load a commit carries many records instead of each
//! request paying for its own.
//!
//! Records commute where it matters: a grant is an insert that yields to an existing row, a
//! preemption an upsert (it may reach Postgres before the grant it revokes), a renewal revives a
//! row the sweeper marked expired while the renewal was in flight (the live view had not expired
//! it), and a release ends only a live row. A renewal never moves the recorded expiry backwards:
//! concurrent batches (and retries) may commit renewals of one lease out of order. A batch is one statement (see [`merge`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::domain::lease::{Lease, LeaseId};

/// Most records per statement.
const MAX_BATCH_RECORDS: usize = 1024;
/// Submissions queued before writers wait (backpressure instead of unbounded memory).
const QUEUE_CAPACITY: usize = 4096;
/// Batches committing at once. A commit waits mostly for the WAL flush, which Postgres shares
/// between concurrent commits, so a few batches in flight multiply what one writer achieves.
const CONCURRENT_BATCHES: usize = 4;
/// Postgres' SQLSTATE for a transaction rolled back to break a deadlock.
const DEADLOCK_DETECTED: &str = "40P01";

/// One state change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalEntry {
    /// A new lease.
    Granted(Lease),
    /// A lease revoked for the lease `by`, at `at`.
    Preempted {
        /// The revoked lease.
        lease: Lease,
        /// The lease it made room for.
        by: LeaseId,
        /// When (the new lease's grant time).
        at: DateTime<Utc>,
    },
    /// A lease extended.
    Renewed {
        /// The lease.
        id: LeaseId,
        /// Its lifetime from the renewal.
        ttl_s: u32,
        /// Its new expiry.
        expires_at: DateTime<Utc>,
    },
    /// A lease returned by its holder.
    Released(LeaseId),
}

/// The journal could not record a change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The transaction failed.
    #[error("journal write failed: {0}")]
    Write(Arc<sqlx::Error>),
    /// The writer has stopped (shutdown).
    #[error("journal writer stopped")]
    Stopped,
}

struct Submission {
    entries: Vec<JournalEntry>,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// The handle requests record through. Cheap to clone; the writer stops when the last handle is
/// dropped, after committing what was queued.
#[derive(Debug, Clone)]
pub struct Journal {
    sender: mpsc::Sender<Submission>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Submission").field("entries", &self.entries.len()).finish()
    }
}

impl Journal {
    /// The handle and the writer future (to be spawned on the shutdown tracker).
    pub fn new(pool: PgPool) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        (Self { sender }, run_writer(pool, receiver))
    }

    /// Records `entries` and waits until they are committed.
    pub async fn record(&self, entries: Vec<JournalEntry>) -> Result<(), JournalError> {
        let (done, committed) = oneshot::channel();
        self.sender.send(Submission { entries, done }).await.map_err(|_| JournalError::Stopped)?;
        committed.await.map_err(|_| JournalError::Stopped)?
    }
}

async fn run_writer(pool: PgPool, mut receiver: mpsc::Receiver<Submission>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_BATCHES));
    let mut writes = JoinSet::new();
    loop {
        // A slot first, then the batch: while every slot is busy the queue grows, so the next
        // batch carries everything that arrived meanwhile.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { break };
        let Some(first) = receiver.recv().await else { break };
        let mut record_count = first.entries.len();
        let mut batch = vec![first];
        while record_count < MAX_BATCH_RECORDS {
            let Ok(next) = receiver.try_recv() else { break };
            record_count += next.entries.len();
            batch.push(next);
        }
        let pool = pool.clone();
        writes.spawn(async move {
            let _slot = slot;
            let started = std::time::Instant::now();
            let outcome =
                write_with_retry(&pool, &batch).await.map_err(|error| JournalError::Write(Arc::new(error)));
            metrics::histogram!("arbitrator_journal_commit_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("arbitrator_journal_batch_records").record(record_count as f64);
            for submission in batch {
                // The request may have been cancelled; its record is committed regardless.
                let _ = submission.done.send(outcome.clone());
            }
        });
        while writes.try_join_next().is_some() {}
    }
    while writes.join_next().await.is_some() {}
}

/// Writes a batch, once more if Postgres chose it as a deadlock victim. Concurrent batches touch
/// disjoint rows except when one lease is renewed and released at the same moment; two such
/// pairs in opposite orders can deadlock, and the rolled-back batch is simply written again
/// (every part of the statement is idempotent).
async fn write_with_retry(pool: &PgPool, batch: &[Submission]) -> Result<(), sqlx::Error> {
    match write_batch(pool, batch).await {
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some(DEADLOCK_DETECTED) => {
            tracing::debug!("journal batch was a deadlock victim; writing it again");
            write_batch(pool, batch).await
        }
        outcome => outcome,
    }
}

/// Column arrays of one statement.
#[derive(Default)]
struct LeaseColumns {
    ids: Vec<Uuid>,
    resources: Vec<String>,
    amounts: Vec<i64>,
    holders: Vec<String>,
    priorities: Vec<i16>,
    ttls: Vec<i32>,
    acquired: Vec<DateTime<Utc>>,
    expires: Vec<DateTime<Utc>>,
}

impl LeaseColumns {
    fn push(&mut self, lease: &Lease) {
        self.ids.push(lease.id.0);
        self.resources.push(lease.resource.to_string());
        // Amounts are validated to at most 2^53 and priorities to 0..=9 before any grant.
        self.amounts.push(i64::try_from(lease.amount).unwrap_or(i64::MAX));
        self.holders.push(lease.holder.clone());
        self.priorities.push(i16::try_from(lease.priority).unwrap_or(i16::MAX));
        self.ttls.push(i32::try_from(lease.ttl_s).unwrap_or(i32::MAX));
        self.acquired.push(lease.acquired_at);
        self.expires.push(lease.expires_at);
    }
}

/// The whole batch in one statement: one round trip and one commit however many records. Each
/// row is touched by at most one of the parts (the batch is merged first), because a statement
/// that modifies a row twice keeps only one of the changes.
const WRITE_BATCH: &str = "
    WITH granted AS (
        INSERT INTO leases (id, resource, amount, holder, priority, ttl_s, status, acquired_at, expires_at)
        SELECT id, resource, amount, holder, priority, ttl_s, 'active', acquired_at, expires_at
        FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::int2[], $6::int4[],
                    $7::timestamptz[], $8::timestamptz[])
            AS granted(id, resource, amount, holder, priority, ttl_s, acquired_at, expires_at)
        ON CONFLICT (id) DO NOTHING
    ), preempted AS (
        INSERT INTO leases (id, resource, amount, holder, priority, ttl_s, status, acquired_at, expires_at,
                            ended_at, preempted_by)
        SELECT id, resource, amount, holder, priority, ttl_s, 'preempted', acquired_at, expires_at,
               ended_at, preempted_by
        FROM UNNEST($9::uuid[], $10::text[], $11::int8[], $12::text[], $13::int2[], $14::int4[],
                    $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::uuid[])
            AS preempted(id, resource, amount, holder, priority, ttl_s, acquired_at, expires_at,
                         ended_at, preempted_by)
        ON CONFLICT (id) DO UPDATE
            SET status = 'preempted', ended_at = EXCLUDED.ended_at, preempted_by = EXCLUDED.preempted_by
    ), renewed AS (
        UPDATE leases
        SET expires_at = GREATEST(leases.expires_at, renewal.expires_at),
            ttl_s = CASE WHEN renewal.expires_at >= leases.expires_at THEN renewal.ttl_s ELSE leases.ttl_s END,
            status = CASE WHEN leases.status = 'expired' THEN 'active' ELSE leases.status END,
            ended_at = CASE WHEN leases.status = 'expired' THEN NULL ELSE leases.ended_at END
        FROM UNNEST($19::uuid[], $20::int4[], $21::timestamptz[]) AS renewal(id, ttl_s, expires_at)
        WHERE leases.id = renewal.id
    )
    UPDATE leases SET status = 'released', ended_at = now()
    WHERE id = ANY($22::uuid[]) AND status IN ('active', 'expired')";

/// A batch merged so that each lease appears in at most one part of [`WRITE_BATCH`].
#[derive(Default)]
struct MergedBatch {
    granted: LeaseColumns,
    preempted: LeaseColumns,
    preempted_at: Vec<DateTime<Utc>>,
    preempted_by: Vec<Uuid>,
    renewed_ids: Vec<Uuid>,
    renewed_ttls: Vec<i32>,
    renewed_expiries: Vec<DateTime<Utc>>,
    released: Vec<Uuid>,
}

/// Merges a batch. A lease granted and preempted in the same batch is written once, preempted
/// (the row carries everything). A renewal of a lease preempted or released in the same batch
/// is dropped: it happened before the lease ended (the live view decided in that order) and
/// would only overwrite the end. Two renewals of one lease keep the later expiry.
fn merge(entries: &[&JournalEntry]) -> MergedBatch {
    let mut preempted_ids: HashSet<Uuid> = HashSet::new();
    let mut released_ids: HashSet<Uuid> = HashSet::new();
    for entry in entries {
        match entry {
            JournalEntry::Preempted { lease, .. } => {
                preempted_ids.insert(lease.id.0);
            }
            JournalEntry::Released(id) => {
                released_ids.insert(id.0);
            }
            JournalEntry::Granted(_) | JournalEntry::Renewed { .. } => {}
        }
    }
    let mut merged = MergedBatch::default();
    let mut renewals: HashMap<Uuid, (i32, DateTime<Utc>)> = HashMap::new();
    for entry in entries {
        match entry {
            JournalEntry::Granted(lease) => {
                if !preempted_ids.contains(&lease.id.0) {
                    merged.granted.push(lease);
                }
            }
            JournalEntry::Preempted { lease, by, at } => {
                merged.preempted.push(lease);
                merged.preempted_at.push(*at);
                merged.preempted_by.push(by.0);
            }
            JournalEntry::Renewed { id, ttl_s, expires_at } => {
                if preempted_ids.contains(&id.0) || released_ids.contains(&id.0) {
                    continue;
                }
                let ttl_s = i32::try_from(*ttl_s).unwrap_or(i32::MAX);
                let slot = renewals.entry(id.0).or_insert((ttl_s, *expires_at));
                if *expires_at > slot.1 {
                    *slot = (ttl_s, *expires_at);
                }
            }
            JournalEntry::Released(id) => merged.released.push(id.0),
        }
    }
    for (id, (ttl_s, expires_at)) in renewals {
        merged.renewed_ids.push(id);
        merged.renewed_ttls.push(ttl_s);
        merged.renewed_expiries.push(expires_at);
    }
    merged
}

async fn write_batch(pool: &PgPool, batch: &[Submission]) -> Result<(), sqlx::Error> {
    let entries: Vec<&JournalEntry> = batch.iter().flat_map(|submission| &submission.entries).collect();
    let merged = merge(&entries);
    sqlx::query(WRITE_BATCH)
        .bind(&merged.granted.ids)
        .bind(&merged.granted.resources)
        .bind(&merged.granted.amounts)
        .bind(&merged.granted.holders)
        .bind(&merged.granted.priorities)
        .bind(&merged.granted.ttls)
        .bind(&merged.granted.acquired)
        .bind(&merged.granted.expires)
        .bind(&merged.preempted.ids)
        .bind(&merged.preempted.resources)
        .bind(&merged.preempted.amounts)
        .bind(&merged.preempted.holders)
        .bind(&merged.preempted.priorities)
        .bind(&merged.preempted.ttls)
        .bind(&merged.preempted.acquired)
        .bind(&merged.preempted.expires)
        .bind(&merged.preempted_at)
        .bind(&merged.preempted_by)
        .bind(&merged.renewed_ids)
        .bind(&merged.renewed_ttls)
        .bind(&merged.renewed_expiries)
        .bind(&merged.released)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::resource::ResourceKey;

    fn lease(seconds: i64) -> Lease {
        let acquired_at = DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap();
        Lease {
            id: LeaseId::generate(),
            resource: ResourceKey::parse("gpu").unwrap(),
            amount: 1,
            holder: "agent-1".to_owned(),
            priority: 1,
            ttl_s: 60,
            acquired_at,
            expires_at: acquired_at + TimeDelta::seconds(60),
        }
    }

    #[test]
    fn each_lease_lands_in_one_part_of_the_statement() {
        let (kept, revoked, renewed, released) = (lease(0), lease(1), lease(2), lease(3));
        let preemptor = lease(4);
        let later = renewed.expires_at + TimeDelta::seconds(30);
        let entries = [
            JournalEntry::Granted(kept.clone()),
            JournalEntry::Granted(revoked.clone()),
            JournalEntry::Renewed { id: revoked.id, ttl_s: 60, expires_at: later },
            JournalEntry::Granted(preemptor.clone()),
            JournalEntry::Preempted { lease: revoked.clone(), by: preemptor.id, at: preemptor.acquired_at },
            JournalEntry::Renewed { id: renewed.id, ttl_s: 60, expires_at: later },
            JournalEntry::Renewed { id: renewed.id, ttl_s: 90, expires_at: renewed.expires_at },
            JournalEntry::Renewed { id: released.id, ttl_s: 60, expires_at: later },
            JournalEntry::Released(released.id),
        ];
        let references: Vec<&JournalEntry> = entries.iter().collect();
        let merged = merge(&references);
        assert_eq!(merged.granted.ids, [kept.id.0, preemptor.id.0]);
        assert_eq!(merged.preempted.ids, [revoked.id.0]);
        assert_eq!(merged.preempted_by, [preemptor.id.0]);
        assert_eq!(merged.preempted_at, [preemptor.acquired_at]);
        // The later of two renewals; none for the leases that ended in the batch.
        assert_eq!(merged.renewed_ids, [renewed.id.0]);
        assert_eq!((merged.renewed_ttls[0], merged.renewed_expiries[0]), (60, later));
        assert_eq!(merged.released, [released.id.0]);
    }
}
