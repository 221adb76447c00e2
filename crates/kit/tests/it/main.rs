//! Integration tests of the kit against real servers: one binary, one module per concern.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod edge;
mod grpc_health;
mod rate_limit;
mod readiness;
mod schemas;
mod token_verifier;

use axum::Router;
use sutazai_kit::config::HttpSettings;
use sutazai_kit::health::HealthRegistry;
use sutazai_testkit::TestServer;
use tokio_util::sync::CancellationToken;

/// Serves `routes` behind the kit's full service router with `health`.
pub(crate) async fn spawn(routes: Router, health: HealthRegistry, settings: &HttpSettings) -> TestServer {
    sutazai_testkit::init_tracing();
    TestServer::spawn(sutazai_kit::server::service_router(routes, health, settings)).await
}

/// A registry with no dependencies.
pub(crate) fn empty_health() -> HealthRegistry {
    HealthRegistry::new(CancellationToken::new())
}
