//! Health: `/health` (no I/O), the detailed report with a real check and latency per dependency,
//! and the circuit breakers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::{ApiError, ClientIp};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use utoipa::ToSchema;

use super::AppState;
use sutazai_kit::audit::AuditRecord;

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Liveness {
    status: &'static str,
    version: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Liveness)))]
pub(crate) async fn health() -> Json<Liveness> {
    Json(Liveness { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// One dependency's check.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Check {
    status: &'static str,
    latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn timed<F>(timeout: Duration, check: F) -> Check
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, check).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    };
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(()) => Check { status: "healthy", latency_ms, error: None },
        Err(error) => Check { status: "unhealthy", latency_ms, error: Some(error) },
    }
}

async fn grpc_serving(channel: tonic::transport::Channel) -> Result<(), String> {
    let mut client = HealthClient::new(channel);
    match client.check(HealthCheckRequest { service: String::new() }).await {
        Ok(response) if response.get_ref().status == ServingStatus::Serving as i32 => Ok(()),
        Ok(_) => Err("not serving".to_owned()),
        Err(status) if status.code() == tonic::Code::Unavailable => Err("unreachable".to_owned()),
        Err(status) => Err(format!("health check failed: {:?}", status.code())),
    }
}

/// Postgres and Redis carry the gateway itself; without them it is unhealthy. Downstream services
/// and the LLM only degrade it (their routes answer 503 on their own).
const ESSENTIAL: [&str; 2] = ["postgres", "redis"];

#[utoipa::path(get, path = "/api/v1/health/detailed", tag = "health",
    responses((status = 200, description = "healthy or degraded"), (status = 503, description = "unhealthy")))]
pub(crate) async fn detailed(State(state): State<AppState>) -> Response {
    let timeout = state.settings.health_check_timeout;
    let mut checks: BTreeMap<String, Check> = BTreeMap::new();
    let pool = state.pool.clone();
    let postgres = timed(timeout, async move {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&pool)
            .await
            .map(|_| ())
            .map_err(|_| "query failed".to_owned())
    });
    let mut redis = state.redis.clone();
    let redis_check = timed(timeout, async move {
        redis::cmd("PING")
            .query_async::<String>(&mut redis)
            .await
            .map(|_| ())
            .map_err(|_| "PING failed".to_owned())
    });
    let llm = std::sync::Arc::clone(&state.llm);
    // The page is public: say what kind of failure, not the provider's words.
    let llm_check = timed(timeout, async move {
        llm.probe().await.map_err(|error| match error.code() {
            sutazai_types::ServiceErrorCode::Timeout => "timed out".to_owned(),
            sutazai_types::ServiceErrorCode::Unavailable => "unreachable".to_owned(),
            _ => "probe failed".to_owned(),
        })
    });
    let auth_url = format!("{}/.well-known/jwks.json", state.settings.auth_url);
    let http = state.http.clone();
    let auth_check = timed(timeout, async move {
        match http.get(&auth_url).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("answered {}", response.status().as_u16())),
            Err(_) => Err("unreachable".to_owned()),
        }
    });
    let downstream_checks = futures_util::future::join_all(state.downstreams.all().map(|downstream| {
        let channel = downstream.channel();
        let name = downstream.name();
        async move { (name, timed(timeout, grpc_serving(channel)).await) }
    }));
    let limiter_health = state.rate_limiter.health_check();
    let limiter_check = timed(timeout, async move {
        use sutazai_kit::health::HealthCheck;
        limiter_health.check().await
    });
    let (postgres, redis_result, llm_result, auth_result, downstream_results, limiter_result) =
        tokio::join!(postgres, redis_check, llm_check, auth_check, downstream_checks, limiter_check);
    checks.insert("rate_limiter".to_owned(), limiter_result);
    checks.insert("postgres".to_owned(), postgres);
    checks.insert("redis".to_owned(), redis_result);
    checks.insert("llm".to_owned(), llm_result);
    checks.insert("auth".to_owned(), auth_result);
    for (name, check) in downstream_results {
        checks.insert(name.to_owned(), check);
    }
    let essential_down =
        ESSENTIAL.iter().any(|name| checks.get(*name).is_some_and(|check| check.status != "healthy"));
    let any_down = checks.values().any(|check| check.status != "healthy");
    let (status, code) = match (essential_down, any_down) {
        (true, _) => ("unhealthy", StatusCode::SERVICE_UNAVAILABLE),
        (false, true) => ("degraded", StatusCode::OK),
        (false, false) => ("healthy", StatusCode::OK),
    };
    let body = json!({"status": status, "checks": checks, "breakers": state.breakers.snapshot()});
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/api/v1/health/circuit-breakers", tag = "health", responses((status = 200)))]
pub(crate) async fn breakers(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.breakers.snapshot()))
}

#[utoipa::path(post, path = "/api/v1/health/circuit-breakers/reset", tag = "health",
    responses((status = 200), (status = 401), (status = 403)), security(("bearer" = [])))]
pub(crate) async fn reset_breakers(
    State(state): State<AppState>,
    principal: Principal,
    client_ip: ClientIp,
) -> Result<Json<Value>, ApiError> {
    sutazai_kit::auth::require_admin(&principal)?;
    state.breakers.reset_all();
    state
        .audit
        .record(AuditRecord {
            actor: Some(&principal.name),
            action: "circuit_breakers_reset",
            target: None,
            ip: client_ip.0,
            outcome: "success",
            detail: json!({}),
        })
        .await;
    Ok(Json(json!(state.breakers.snapshot())))
}
