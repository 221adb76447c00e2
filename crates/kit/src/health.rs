//! Liveness and readiness. `/livez` does no I/O: the process is up. `/readyz` really exercises each
//! registered dependency (a query, a PING, an open channel) with a timeout and reports each one,
//! so an operator sees which dependency is failing; it answers 503 while any fails or while the
//! service is shutting down. The same checks answer gRPC `grpc.health.v1`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// How long one dependency check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a gRPC `Watch` stream re-evaluates readiness.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// A dependency whose health is checked on every readiness probe.
pub trait HealthCheck: Send + Sync {
    /// Exercises the dependency. The error text is shown in /readyz, so it must be short and carry
    /// no secrets (no URLs with credentials).
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The result of one dependency check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckResult {
    /// `ok` or `error`.
    pub status: &'static str,
    /// How long the check took.
    pub latency_ms: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The readiness report served by `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    /// `ready` or `unready`.
    pub status: &'static str,
    /// Names of the failing dependencies, for a quick look.
    pub failing: Vec<String>,
    /// Each dependency's result.
    pub checks: BTreeMap<String, CheckResult>,
}

impl ReadinessReport {
    /// Whether every dependency is healthy and the service is not stopping.
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// The named dependencies of one service.
#[derive(Clone, Default)]
pub struct HealthRegistry {
    checks: Vec<(String, Arc<dyn HealthCheck>)>,
    stopping: CancellationToken,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(name, _)| name.as_str()).collect();
        formatter.debug_struct("HealthRegistry").field("checks", &names).finish()
    }
}

impl HealthRegistry {
    /// A registry that reports unready once `stopping` fires (shutdown drains traffic first).
    pub fn new(stopping: CancellationToken) -> Self {
        Self { checks: Vec::new(), stopping }
    }

    /// Adds a dependency.
    pub fn register(&mut self, name: impl Into<String>, check: impl HealthCheck + 'static) {
        self.checks.push((name.into(), Arc::new(check)));
    }

    /// Runs every check concurrently, each bounded by [`CHECK_TIMEOUT`].
    pub async fn readiness(&self) -> ReadinessReport {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
            };
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let result = match outcome {
                Ok(()) => CheckResult { status: "ok", latency_ms, error: None },
                Err(error) => CheckResult { status: "error", latency_ms, error: Some(error) },
            };
            (name.clone(), result)
        });
        let checks: BTreeMap<String, CheckResult> =
            futures_util::future::join_all(runs).await.into_iter().collect();
        let mut failing: Vec<String> =
            checks.iter().filter(|(_, result)| result.status != "ok").map(|(name, _)| name.clone()).collect();
        if self.stopping.is_cancelled() {
            failing.push("shutdown".to_owned());
        }
        let status = if failing.is_empty() { "ready" } else { "unready" };
        ReadinessReport { status, failing, checks }
    }
}

/// `GET /livez`: the process answers.
pub async fn livez() -> impl IntoResponse {
    Json(serde_json::json!({"status": "alive"}))
}

/// `GET /readyz`: 200 when every dependency answers, 503 naming the failing ones otherwise.
pub async fn readyz(State(registry): State<HealthRegistry>) -> Response {
    let report = registry.readiness().await;
    let status = if report.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if !report.is_ready() {
        tracing::warn!(failing = ?report.failing, "readiness check failed");
    }
    (status, Json(report)).into_response()
}

/// Checks Postgres with a real round trip.
#[derive(Debug, Clone)]
pub struct PostgresCheck(pub sqlx::PgPool);

impl HealthCheck for PostgresCheck {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&self.0)
                .await
                .map(|_| ())
                .map_err(|error| describe_sqlx_error(&error))
        })
    }
}

fn describe_sqlx_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::PoolTimedOut => "no connection available (pool timed out)".to_owned(),
        sqlx::Error::Io(io_error) => format!("connection failed: {}", io_error.kind()),
        sqlx::Error::Database(database_error) => format!("query failed: {}", database_error.message()),
        _ => "query failed".to_owned(),
    }
}

/// Checks Redis with a PING.
#[derive(Clone)]
pub struct RedisCheck(pub redis::aio::ConnectionManager);

impl std::fmt::Debug for RedisCheck {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RedisCheck")
    }
}

impl HealthCheck for RedisCheck {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut connection = self.0.clone();
            let reply: Result<String, redis::RedisError> =
                redis::cmd("PING").query_async(&mut connection).await;
            match reply {
                Ok(pong) if pong == "PONG" => Ok(()),
                Ok(other) => Err(format!("unexpected PING reply `{other}`")),
                Err(error) if error.is_timeout() => Err("PING timed out".to_owned()),
                Err(error)
                    if error.is_connection_dropped()
                        || error.is_connection_refusal()
                        || error.is_io_error() =>
                {
                    Err("connection failed".to_owned())
                }
                Err(error) => Err(format!("PING failed: {:?}", error.kind())),
            }
        })
    }
}

/// `grpc.health.v1.Health` answered from the same readiness checks.
#[derive(Debug, Clone)]
pub struct GrpcHealth {
    registry: HealthRegistry,
}

impl GrpcHealth {
    /// Serves the registry's readiness over gRPC.
    pub fn new(registry: HealthRegistry) -> Self {
        Self { registry }
    }

    /// The tonic service to mount next to the service's own gRPC services.
    pub fn into_service(self) -> tonic_health::pb::health_server::HealthServer<Self> {
        tonic_health::pb::health_server::HealthServer::new(self)
    }

    async fn serving_status(&self) -> ServingStatus {
        if self.registry.readiness().await.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for GrpcHealth {
    async fn check(
        &self,
        _request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        // One process serves one service per listener, so every service name shares its readiness.
        let status = self.serving_status().await;
        Ok(tonic::Response::new(HealthCheckResponse { status: status.into() }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        // Watch sends the status now and then whenever it changes, re-checking only while a
        // client is watching.
        let health = self.clone();
        let stream = futures_util::stream::unfold((health, None), |(health, previous)| async move {
            loop {
                if previous.is_some() {
                    tokio::time::sleep(WATCH_INTERVAL).await;
                }
                let status = health.serving_status().await;
                if previous != Some(status) {
                    let response = HealthCheckResponse { status: status.into() };
                    return Some((Ok(response), (health, Some(status))));
                }
            }
        });
        Ok(tonic::Response::new(stream.boxed()))
    }
}
