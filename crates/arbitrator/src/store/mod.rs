//! Where lease state lives: the live view in Redis (what is allocated right now, decided
//! atomically in Lua) and the journal in Postgres (every lease and how it ended, the source the
//! live view is restored from), plus the stored policies.

pub mod journal;
pub mod leases;
pub mod live;
pub mod policies;

use chrono::{DateTime, Utc};

/// A Redis-clock millisecond timestamp as a UTC time (the epoch for a value out of range, which
/// the clock never produces).
pub(crate) fn time_from_ms(milliseconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(milliseconds).unwrap_or_default()
}
