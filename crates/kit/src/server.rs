//! One listener per service for HTTP and gRPC: axum routes requests by path, and gRPC paths
//! (`/package.Service/Method`) go to the tonic services mounted beside the HTTP routes. HTTP/1.1
//! and HTTP/2 (h2c, which gRPC uses) are both accepted on the same port.
//!
//! Shutdown: once the token fires, `/readyz` answers 503, the listener stops accepting, and
//! in-flight requests get the grace period to finish before their connections are dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tower::{Service, ServiceExt};

use crate::config::HttpSettings;
use crate::health::{self, GrpcHealth, HealthRegistry};
use crate::http::{ApiError, apply_edge_layers};

/// Builds a service's router: its own HTTP routes, the operational routes (`/livez`, `/readyz`,
/// `/metrics`), a problem+json 404 for unknown paths, the edge layers, and `grpc.health.v1`.
pub fn service_router(routes: Router, health: HealthRegistry, settings: &HttpSettings) -> Router {
    // Install the recorder before the first request is measured.
    let _ = crate::metrics::prometheus();
    let operational = Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .with_state(health.clone())
        .route("/metrics", get(render_metrics));
    let trusted_proxies = crate::http::TrustedProxies(std::sync::Arc::new(settings.trusted_proxies.clone()));
    let routes = routes.merge(operational).fallback(unknown_path).layer(axum::Extension(trusted_proxies));
    let layered = apply_edge_layers(routes, settings);
    add_grpc_service(layered, GrpcHealth::new(health).into_service())
}

async fn render_metrics() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::prometheus().render(),
    )
}

/// Unknown paths: a problem document for HTTP clients, and for gRPC clients the status the
/// protocol defines for a service this server does not have (`UNIMPLEMENTED`), so a gRPC client
/// sees a clear answer rather than an HTTP 404 it has to guess about.
async fn unknown_path(headers: http::HeaderMap) -> axum::response::Response {
    let is_grpc = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| content_type.starts_with("application/grpc"));
    if is_grpc {
        return tonic::Status::unimplemented("no such service on this server")
            .into_http::<axum::body::Body>();
    }
    ApiError::new(sutazai_types::ServiceErrorCode::NotFound, "no resource at this path").into_response()
}

/// Mounts a tonic service on the router under `/<service name>/*`, next to the HTTP routes.
pub fn add_grpc_service<S>(router: Router, service: S) -> Router
where
    S: Service<http::Request<tonic::body::Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    let adapted = service.map_request(|request: Request| request.map(tonic::body::Body::new));
    let traced =
        axum::routing::any_service(adapted).layer(axum::middleware::from_fn(crate::http::trace_grpc_call));
    router.route(&format!("/{}/{{*rpc}}", S::NAME), traced)
}

/// A listener that could not be bound, naming the address (every service's startup error).
#[derive(Debug, thiserror::Error)]
#[error("bind {address}: {source}")]
pub struct BindError {
    /// The address.
    pub address: SocketAddr,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Binds a listener; port 0 picks a free port (tests).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(address).await.map_err(|source| BindError { address, source })
}

/// Serves `router` on `listener` until `shutdown` fires, then drains for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening for http and grpc");
    // Without TCP_NODELAY a small HTTP/2 frame written after another small one waits for the
    // peer's delayed ACK (up to 40 ms): every unary gRPC call paid that stall.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
        }
    });
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let draining = shutdown.clone();
    let server =
        axum::serve(listener, service).with_graceful_shutdown(async move { draining.cancelled().await });
    let grace_expired = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = grace_expired => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over, dropping open connections");
            Ok(())
        }
    }
}
