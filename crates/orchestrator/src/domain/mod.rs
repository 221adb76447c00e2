//! The orchestrator's domain: tasks and their state machine, who may act on them, result fencing,
//! retry backoff, workflow DAGs and planner output. No I/O here: the store persists these types and
//! the service composes them inside transactions.

pub mod access;
pub mod backoff;
pub mod dag;
pub mod fencing;
pub mod page;
pub mod plan;
pub mod task;
pub mod validation;
pub mod workflow;
