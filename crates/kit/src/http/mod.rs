//! The HTTP edge every service shares: problem+json errors, the layer stack (request id, security
//! headers, CORS, body limit, timeout, metrics) and extractors that turn bad input into 4xx
//! problems naming the field.

mod extract;
mod layers;
mod problem;

pub use extract::{Json, parse_uuid};
pub use layers::{REQUEST_ID_HEADER, apply_edge_layers};
pub use problem::{ApiError, PROBLEM_CONTENT_TYPE, Problem};
