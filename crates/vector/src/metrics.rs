//! The vector service's Prometheus metrics, through the `metrics` facade the kit exports. The
//! `collection` label is a collection name: bounded by what operators create, never a user id.

use std::time::Duration;

/// Live points of a collection (`vector_points`).
pub(crate) fn set_points(collection: &str, count: usize) {
    metrics::gauge!("vector_points", "collection" => collection.to_owned()).set(count as f64);
}

/// Memory of a collection (`vector_memory_bytes`): engine plus ids and payloads.
pub(crate) fn set_memory_bytes(collection: &str, bytes: usize) {
    metrics::gauge!("vector_memory_bytes", "collection" => collection.to_owned()).set(bytes as f64);
}

/// One acknowledged write request, from arrival to durable (`vector_upsert_duration_seconds`).
pub(crate) fn record_upsert(collection: &str, elapsed: Duration) {
    metrics::histogram!("vector_upsert_duration_seconds", "collection" => collection.to_owned())
        .record(elapsed.as_secs_f64());
}

/// One search request, all its queries (`vector_search_duration_seconds`).
pub(crate) fn record_search(collection: &str, elapsed: Duration) {
    metrics::histogram!("vector_search_duration_seconds", "collection" => collection.to_owned())
        .record(elapsed.as_secs_f64());
}

/// One group commit: the write and fsync of the log (`vector_wal_sync_duration_seconds`) and how
/// many write requests shared it (`vector_wal_group_commit_writes`).
pub(crate) fn record_commit(elapsed: Duration, writes: usize) {
    metrics::histogram!("vector_wal_sync_duration_seconds").record(elapsed.as_secs_f64());
    metrics::histogram!("vector_wal_group_commit_writes").record(writes as f64);
}

/// One written snapshot (`vector_snapshot_duration_seconds`, `vector_snapshots_total`).
pub(crate) fn record_snapshot(collection: &str, elapsed: Duration) {
    metrics::histogram!("vector_snapshot_duration_seconds", "collection" => collection.to_owned())
        .record(elapsed.as_secs_f64());
    metrics::counter!("vector_snapshots_total", "collection" => collection.to_owned()).increment(1);
}
