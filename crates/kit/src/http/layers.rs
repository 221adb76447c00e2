//! The layer stack in front of every HTTP route, outermost first: request id (set, then echoed on
//! the response), a tracing span joined to the caller's trace, RED metrics, security headers, CORS,
//! problem documents for every error, a request timeout and the body-size limit.
//!
//! gRPC routes are mounted after these layers (see `server`), so a 413 page or an HTTP timeout
//! can never corrupt a gRPC stream.

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use sutazai_types::ServiceErrorCode;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use super::{PROBLEM_CONTENT_TYPE, Problem};
use crate::config::HttpSettings;
use crate::telemetry::{HeaderExtractor, set_remote_parent};

/// The request id header, set when the client sent none and echoed on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Wraps every route of `router` (and its fallback) in the shared edge layers.
pub fn apply_edge_layers(router: Router, settings: &HttpSettings) -> Router {
    let request_id_header = HeaderName::from_static(REQUEST_ID_HEADER);
    router
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, settings.request_timeout()))
        .layer(from_fn(finish_problems))
        .layer(cors_layer(&settings.cors_allowed_origins))
        .layer(from_fn(security_headers))
        .layer(from_fn(crate::metrics::record_http_metrics))
        .layer(from_fn(trace_request))
        .layer(PropagateRequestIdLayer::new(request_id_header.clone()))
        .layer(SetRequestIdLayer::new(request_id_header, MakeRequestUuid))
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    // Origins were validated at startup (no `*`), so each parses; one that does not is skipped.
    let allowed: Vec<HeaderValue> =
        origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            HeaderName::from_static(REQUEST_ID_HEADER),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .allow_credentials(true)
}

/// Runs the request inside a span that continues the caller's trace (W3C `traceparent`).
async fn trace_request(request: Request, next: Next) -> Response {
    let request_id = header_text(&request, REQUEST_ID_HEADER).unwrap_or_default();
    let route =
        request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned()).unwrap_or_default();
    let span = tracing::info_span!(
        "http.request",
        http.method = %request.method(),
        http.route = %route,
        request_id = %request_id,
        http.status = tracing::field::Empty,
    );
    set_remote_parent(&span, &HeaderExtractor(request.headers()));
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.status", response.status().as_u16());
    tracing::debug!(parent: &span, latency_ms = started.elapsed().as_millis() as u64, "request finished");
    response
}

/// Runs a gRPC call inside a span that continues the caller's trace: gRPC routes are mounted
/// after the edge layers (see `server`), so [`trace_request`] never sees them, and the metadata
/// carrying `traceparent` travels as HTTP/2 headers.
pub(crate) async fn trace_grpc_call(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!("grpc.request", rpc.service = %service, rpc.method = %method);
    set_remote_parent(&span, &HeaderExtractor(request.headers()));
    next.run(request).instrument(span).await
}

/// Adds the security headers a browser needs; a route that sets its own CSP keeps it.
async fn security_headers(request: Request, next: Next) -> Response {
    let behind_tls = request.uri().scheme_str() == Some("https")
        || header_text(&request, "x-forwarded-proto").as_deref() == Some("https");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    if behind_tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// Turns every error response into a problem document carrying the request id, and marks API
/// responses uncacheable.
async fn finish_problems(request: Request, next: Next) -> Response {
    let request_id = header_text(&request, REQUEST_ID_HEADER);
    let is_api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let is_error = parts.status.is_client_error() || parts.status.is_server_error();
    let problem = match parts.extensions.remove::<Problem>() {
        Some(problem) => Some(problem),
        None if is_error && is_bare(&parts.headers) => Some(problem_for_bare_status(parts.status)),
        None => None,
    };
    let mut response = match problem {
        Some(mut problem) => {
            problem.request_id = request_id;
            let bytes = serde_json::to_vec(&problem).unwrap_or_default();
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.extensions.insert(problem);
            Response::from_parts(parts, Body::from(bytes))
        }
        None => Response::from_parts(parts, body),
    };
    if is_api {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An error body made by a layer or the router (empty or plain text), not a JSON document a
/// handler chose to send (such as the `/readyz` report).
fn is_bare(headers: &axum::http::HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) {
        None => true,
        Some(content_type) => content_type.starts_with("text/plain"),
    }
}

/// A problem for an error produced by a layer or the router rather than a handler.
fn problem_for_bare_status(status: StatusCode) -> Problem {
    let code = ServiceErrorCode::from_http_status(status);
    let detail = match status {
        StatusCode::NOT_FOUND => "no resource at this path",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this path",
        StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than the configured limit",
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => "the request did not finish in time",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported content type",
        _ => code.title(),
    };
    let mut problem = Problem::new(code, detail);
    // Keep the status the layer chose (405 has no code of its own) so the document matches it.
    problem.status = status.as_u16();
    problem
}

fn header_text(request: &Request, name: &str) -> Option<String> {
    request.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}
