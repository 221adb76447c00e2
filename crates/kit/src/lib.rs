//! The service kit: everything a SutazAI service needs besides its own domain — configuration,
//! telemetry, shutdown, health, the HTTP and gRPC layers, and connections to Postgres and Redis.
//!
//! A service crate builds its routers and gRPC services, hands them to [`server::ServiceServer`]
//! and runs until the [`shutdown::Shutdown`] token fires; the kit makes every service behave the
//! same at the edges (errors, headers, limits, probes, metrics).

pub mod audit;
pub mod auth;
pub mod breaker;
pub mod config;
pub mod grpc;
pub mod health;
pub mod http;
pub mod metrics;
pub mod postgres;
pub mod ratelimit;
pub mod redis;
pub mod server;
pub mod shutdown;
pub mod telemetry;
