//! Postgres persistence of the dispatcher's state (schema `coordinator`): loading the snapshot a
//! restart rebuilds the state from, and writing each step's changes with their outbox messages
//! in the step's transaction.

pub mod janitor;
mod rows;
mod write;

use sqlx::{PgPool, Postgres, Transaction};
use sutazai_messaging::outbox::{self, OutboxError, OutboxWaker};

use crate::domain::state::{SeenAttempt, Snapshot};

/// The inbox consumer name under which handled Ready messages are recorded.
pub const READY_INBOX: &str = "coordinator.tasks";

/// Why reading or writing the state failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres failed.
    #[error("coordinator store: {0}")]
    Database(#[from] sqlx::Error),
    /// The outbox or inbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A stored row holds a value the domain rejects (written by another version?).
    #[error("coordinator store: corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same step may succeed when tried again: Postgres unreachable, restarting or
    /// short of resources, or aborting the transaction to resolve a conflict. Anything else (a
    /// value Postgres refuses, a corrupt row) fails again the same way.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) | Self::Outbox(OutboxError::Database(error)) => is_transient(error),
            Self::Outbox(_) | Self::Corrupt(_) => false,
        }
    }
}

/// SQLSTATE classes of failures that pass: connection exception, transaction rollback
/// (serialization failure, deadlock), insufficient resources, operator intervention (shutdown).
const TRANSIENT_SQLSTATE_CLASSES: [&str; 4] = ["08", "40", "53", "57"];

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database_error) => database_error
            .code()
            .is_some_and(|code| TRANSIENT_SQLSTATE_CLASSES.iter().any(|class| code.starts_with(class))),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// The coordinator's tables.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    outbox_waker: OutboxWaker,
}

impl PgStore {
    /// The store on `pool` (whose search path is the coordinator's schema).
    pub fn new(pool: PgPool) -> Self {
        Self { pool, outbox_waker: OutboxWaker::new() }
    }

    /// The waker of the outbox relay that publishes what the steps commit.
    pub fn outbox_waker(&self) -> OutboxWaker {
        self.outbox_waker.clone()
    }

    /// Commits a step that wrote, then wakes the outbox relay for its messages.
    pub async fn commit(&self, transaction: Transaction<'static, Postgres>) -> Result<(), StoreError> {
        Ok(self.outbox_waker.commit(transaction).await?)
    }

    /// Starts a step's transaction.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Everything the state is rebuilt from.
    pub async fn load(&self) -> Result<Snapshot, StoreError> {
        let strategy = sqlx::query_as::<_, rows::StrategyRow>(
            "SELECT kind, owner_fairness, max_active_per_owner, assignment_lease_s, updated_by, updated_at
             FROM strategy",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(rows::StrategyRow::into_domain)
        .transpose()?;
        let task_rows = sqlx::query_as::<_, rows::TaskRow>(
            "SELECT task_id, task_type, priority, capabilities, owner, payload, deadline, enqueued_at,
                    fair_tag, attempt, agent_id, assigned_at, lease_deadline, started, waiting_reason,
                    reassign_reason, previous_agent, traceparent
             FROM tasks ORDER BY priority DESC, enqueued_at, task_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut tasks = Vec::with_capacity(task_rows.len());
        for row in task_rows {
            tasks.push(row.into_domain()?);
        }
        let agent_rows = sqlx::query_as::<_, rows::AgentRow>(
            "SELECT agent_id, name, capabilities, slots, status, running, last_heartbeat, version,
                    tasks_succeeded, tasks_failed, registered_at
             FROM agents",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut agents = Vec::with_capacity(agent_rows.len());
        for row in agent_rows {
            agents.push(row.into_domain()?);
        }
        let attempt_rows: Vec<(uuid::Uuid, i64, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT task_id, highest_attempt, expires_at FROM task_attempts")
                .fetch_all(&self.pool)
                .await?;
        let attempts = attempt_rows
            .into_iter()
            .map(|(task_id, attempt, expires_at)| {
                let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
                (task_id.into(), SeenAttempt { attempt, expires_at })
            })
            .collect();
        Ok(Snapshot { strategy, tasks, agents, attempts })
    }

    /// Records a Ready message in the inbox inside the step's transaction; false when it was
    /// recorded before (a redelivery, whose effect is already stored).
    pub async fn record_ready(
        transaction: &mut Transaction<'static, Postgres>,
        inbox_key: &str,
    ) -> Result<bool, StoreError> {
        Ok(outbox::record_once(&mut **transaction, READY_INBOX, inbox_key).await?)
    }
}
