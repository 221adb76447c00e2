//! Integration tests of the public engine API: exactness of Flat, recall of HNSW and IVF with their
//! defaults, filtered search, tombstones and compaction, and concurrent mutation (proptest).

mod common;
mod concurrency;
mod config;
mod filters;
mod flat_exact;
mod ivf_training;
mod recall;
mod tombstones;
