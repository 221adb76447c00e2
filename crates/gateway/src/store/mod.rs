//! The gateway's own state in Postgres (schema `gateway`): conversations (the audit log is the
//! kit's `AuditLog` on the same schema).

pub mod conversations;

/// A store failure; the HTTP layer logs it and answers 500 or 503.
#[derive(Debug, thiserror::Error)]
#[error("gateway store: {0}")]
pub struct StoreError(#[from] pub sqlx::Error);
