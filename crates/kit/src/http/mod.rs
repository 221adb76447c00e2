//! The HTTP edge every service shares: problem+json errors, the layer stack (request id, security
//! headers, CORS, body limit, timeout, metrics) and extractors that turn bad input into 4xx
//! problems naming the field.

mod client_ip;
mod extract;
mod layers;
mod pagination;
mod problem;

pub use client_ip::{ClientIp, TrustedProxies, resolve_client_ip};
pub use extract::{Json, JsonOrForm, parse_uuid};
pub(crate) use layers::trace_grpc_call;
pub use layers::{REQUEST_ID_HEADER, apply_edge_layers};
pub use pagination::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageOf};
pub use problem::{ApiError, DisplayChain, PROBLEM_CONTENT_TYPE, Problem};
