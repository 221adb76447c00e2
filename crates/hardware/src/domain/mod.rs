//! The hardware domain: path safety, tree scans, cleanups and host metrics. Nothing here knows
//! about gRPC or HTTP; every function is blocking and runs on the blocking pool.

pub mod cleanup;
pub mod duplicates;
pub mod hashing;
pub mod host;
pub mod large_files;
pub mod open_files;
pub mod optimize;
pub mod paths;
pub mod pool;
pub mod storage;
pub mod verified_open;
pub mod walk;

#[cfg(test)]
pub(crate) mod test_support;
