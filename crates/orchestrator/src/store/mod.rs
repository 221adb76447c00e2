//! Postgres access for the schema `orchestrator`. Functions that change state take the caller's
//! connection (a transaction), so one use case composes several of them atomically; reads that
//! need no transaction take the pool.

pub(crate) mod attempts;
pub(crate) mod events;
pub(crate) mod tasks;
pub(crate) mod workflows;

use crate::error::OrchestratorError;

/// A stored number that does not fit the domain type: the row was written by something else.
fn corrupt(what: &str, value: impl std::fmt::Display) -> OrchestratorError {
    OrchestratorError::Internal(format!("stored {what} `{value}` is invalid"))
}

/// A domain count as the SQL integer type; domain values are validated far below `i32::MAX`.
fn sql_int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// A non-negative SQL integer as a domain count.
fn count(what: &str, value: i32) -> Result<u32, OrchestratorError> {
    u32::try_from(value).map_err(|_| corrupt(what, value))
}
