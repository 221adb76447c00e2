//! The HTTP edge: problem documents, request ids, security headers, limits, CORS, metrics.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_kit::http::{ApiError, Json, parse_uuid};
use sutazai_testkit::http_settings;

#[derive(Debug, Deserialize)]
struct Widget {
    name: String,
    count: u8,
}

async fn create_widget(Json(widget): Json<Widget>) -> Json<Value> {
    Json(json!({"name": widget.name, "count": widget.count}))
}

async fn get_widget(axum::extract::Path(id): axum::extract::Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(json!({"id": id})))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(3)).await;
    "late"
}

async fn failing() -> Result<(), ApiError> {
    Err(ApiError::internal(&std::io::Error::other("disk quota of tenant secret-co exceeded")))
}

fn routes() -> Router {
    Router::new()
        .route("/api/v1/widgets", post(create_widget))
        .route("/api/v1/widgets/{id}", get(get_widget))
        .route("/api/v1/slow", get(slow))
        .route("/api/v1/failing", get(failing))
}

async fn server() -> sutazai_testkit::TestServer {
    let mut settings = http_settings();
    settings.request_timeout_ms = 300;
    settings.body_limit_bytes = 1024;
    crate::spawn(routes(), crate::empty_health(), &settings).await
}

async fn problem(response: reqwest::Response) -> Value {
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn unknown_path_is_a_problem_with_the_request_id() {
    let server = server().await;
    let response = reqwest::get(server.url("/api/v1/nothing-here")).await.unwrap();
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(request_id.len(), 36, "a generated UUID");
    let body = problem(response).await;
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "urn:sutazai:problem:not_found");
    assert_eq!(body["request_id"], request_id);
}

#[tokio::test]
async fn client_request_id_is_echoed() {
    let server = server().await;
    let response = reqwest::Client::new()
        .get(server.url("/api/v1/widgets/not-a-uuid"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    assert_eq!(response.status(), 400);
    let body = problem(response).await;
    assert_eq!(body["code"], "bad_request");
    assert_eq!(body["detail"], "id: not a UUID");
    assert_eq!(body["request_id"], "req-abc-123");
}

#[tokio::test]
async fn security_and_cache_headers() {
    let server = server().await;
    let id = uuid::Uuid::new_v4();
    let response = reqwest::get(server.url(&format!("/api/v1/widgets/{id}"))).await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.get("strict-transport-security").is_none(), "no HSTS over plain http");
    let livez = reqwest::get(server.url("/livez")).await.unwrap();
    assert!(livez.headers().get("cache-control").is_none(), "only /api responses are no-store");
}

#[tokio::test]
async fn wrong_field_type_is_422_naming_the_field() {
    let server = server().await;
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/widgets"))
        .json(&json!({"name": "a", "count": "many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body = problem(response).await;
    assert_eq!(body["code"], "validation_failed");
    assert!(body["detail"].as_str().unwrap().contains("count"), "{body}");
}

#[tokio::test]
async fn malformed_json_is_422() {
    let server = server().await;
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/widgets"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body = problem(response).await;
    assert!(body["detail"].as_str().unwrap().starts_with("malformed JSON"), "{body}");
}

#[tokio::test]
async fn valid_json_is_accepted() {
    let server = server().await;
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/widgets"))
        .json(&json!({"name": "gear", "count": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"name": "gear", "count": 3}));
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = server().await;
    let big_name = "x".repeat(4096);
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/widgets"))
        .json(&json!({"name": big_name, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body = problem(response).await;
    assert_eq!(body["code"], "payload_too_large");
}

#[tokio::test]
async fn slow_request_times_out_with_504() {
    let server = server().await;
    let response = reqwest::get(server.url("/api/v1/slow")).await.unwrap();
    assert_eq!(response.status(), 504);
    let body = problem(response).await;
    assert_eq!(body["code"], "timeout");
}

#[tokio::test]
async fn internal_errors_do_not_leak() {
    let server = server().await;
    let response = reqwest::get(server.url("/api/v1/failing")).await.unwrap();
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(!text.contains("secret-co"), "{text}");
    assert!(!text.contains("quota"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], "internal");
}

#[tokio::test]
async fn method_not_allowed_is_a_problem() {
    let server = server().await;
    let response = reqwest::Client::new().delete(server.url("/api/v1/widgets")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let body = problem(response).await;
    assert_eq!(body["status"], 405);
}

#[tokio::test]
async fn cors_allows_only_listed_origins() {
    let server = server().await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, server.url("/api/v1/widgets"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("http://localhost:3000").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(allowed.headers()["access-control-allow-credentials"], "true");
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn metrics_are_prometheus_text_by_route() {
    let server = server().await;
    let id = uuid::Uuid::new_v4();
    reqwest::get(server.url(&format!("/api/v1/widgets/{id}"))).await.unwrap();
    let response = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let line = text
        .lines()
        .find(|line| {
            line.starts_with("http_requests_total{") && line.contains("route=\"/api/v1/widgets/{id}\"")
        })
        .unwrap_or_else(|| panic!("no request counter for the route in:\n{text}"));
    assert!(!line.contains(&id.to_string()), "raw ids must not become labels: {line}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "latency histogram present");
}
