//! The vector service's domain: collections of points (caller id, vector, JSON payload) over the
//! index engine, payload filters, the per-collection writer that logs before it applies, and the
//! use cases the transport calls. Nothing here knows about gRPC or HTTP.

pub mod collection;
pub mod collections;
pub mod documents;
pub mod filter;
pub(crate) mod load;
pub mod name;
pub mod point_id;
pub mod points;
pub mod service;
pub mod spec;
pub mod state;
pub mod writer;
