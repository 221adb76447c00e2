//! The worker's clients of other services, each called with the worker's own service token:
//! the auth service (the token itself), the arbitrator (inference-slot leases) and the vector
//! service (memory-chat's memory).

pub(crate) mod leases;
pub(crate) mod memory;
pub(crate) mod token;
