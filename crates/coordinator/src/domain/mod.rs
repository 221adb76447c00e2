//! The coordinator's domain, without I/O: tasks and agents, the pending order with owner
//! fairness, the strategies that pick an agent, waiting reasons, and the state machine the
//! dispatcher drives.

pub mod agent;
pub mod changes;
pub mod pending;
pub mod reasons;
pub mod selection;
pub mod state;
pub mod strategy;
pub mod task;
