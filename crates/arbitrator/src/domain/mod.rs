//! The arbitrator's domain: what a resource is, the policy limits applied when granting, and what
//! a lease is. Pure values and rules, no I/O, no transport.

pub mod lease;
pub mod policy;
pub mod resource;
