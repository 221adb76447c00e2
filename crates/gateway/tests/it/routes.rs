//! The edge of every route: health, OpenAPI, errors, auth, and 503 for services not built yet.

use serde_json::{Value, json};

use crate::{platform, problem};

#[tokio::test]
async fn health_is_fast_and_static() {
    let platform = platform().await;
    let response = platform.client.get(platform.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}));
}

#[tokio::test]
async fn detailed_health_checks_every_dependency() {
    let platform = platform().await;
    let response = platform.client.get(platform.url("/api/v1/health/detailed")).send().await.unwrap();
    assert_eq!(response.status(), 200, "postgres and redis are up, so at worst degraded");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    for healthy in ["postgres", "redis", "llm", "auth", "rate_limiter"] {
        assert_eq!(body["checks"][healthy]["status"], "healthy", "{healthy}: {body}");
        assert!(body["checks"][healthy]["latency_ms"].is_u64());
    }
    for missing in ["orchestrator", "coordinator", "vector", "hardware", "arbitrator"] {
        assert_eq!(body["checks"][missing]["status"], "unhealthy", "{missing}: {body}");
        assert_eq!(body["checks"][missing]["error"], "unreachable");
    }
    assert!(body["breakers"].is_object());
}

#[tokio::test]
async fn openapi_document_and_swagger_ui() {
    let platform = platform().await;
    let document: Value =
        platform.client.get(platform.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
    for path in ["/api/v1/chat", "/api/v1/chat/stream", "/api/v1/tasks", "/api/v1/tasks/{id}", "/health"] {
        assert!(document["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    let docs = platform.client.get(platform.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn errors_are_problems_with_the_right_status() {
    let platform = platform().await;
    let token = platform.user("edgeuser").await;
    let unknown = platform.get("/api/v1/nowhere", &token).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(problem(unknown).await["code"], "not_found");

    let malformed = platform.post("/api/v1/chat", &token, json!({"messages": "hello"})).await;
    assert_eq!(malformed.status(), 422);
    let body = problem(malformed).await;
    assert!(body["detail"].as_str().unwrap().contains("messages"), "{body}");

    let not_uuid = platform.get("/api/v1/tasks/abc", &token).await;
    assert_eq!(not_uuid.status(), 400);
    assert_eq!(problem(not_uuid).await["detail"], "id: not a UUID");

    for limit in ["0", "1001"] {
        let response = platform.get(&format!("/api/v1/conversations?limit={limit}"), &token).await;
        assert_eq!(response.status(), 422, "limit={limit}");
        assert_eq!(problem(response).await["field"], "limit");
    }
    let unauthenticated = platform
        .client
        .post(platform.url("/api/v1/chat"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let headers = unauthenticated.headers().clone();
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn routes_of_services_not_running_answer_503() {
    let platform = platform().await;
    let token = platform.user("downstreamuser").await;
    let task_id = uuid::Uuid::new_v4();
    let submit =
        platform.post("/api/v1/tasks", &token, json!({"type": "summarize", "payload": {"text": "x"}})).await;
    assert_eq!(submit.status(), 503);
    assert_eq!(problem(submit).await["detail"], "orchestrator unavailable");
    let get = platform.get(&format!("/api/v1/tasks/{task_id}"), &token).await;
    assert_eq!(get.status(), 503);
    let follow = platform.get(&format!("/api/v1/tasks/{task_id}/events?follow=true"), &token).await;
    assert_eq!(follow.status(), 503, "known before streaming: an ordinary error response");
    let agents = platform.get("/api/v1/agents", &token).await;
    assert_eq!(agents.status(), 503);
    assert_eq!(problem(agents).await["detail"], "coordinator unavailable");
    let preempting = platform
        .post(
            "/api/v1/resources/leases",
            &token,
            json!({"resource": "cpu", "amount": 1, "ttl_s": 60, "priority": 9}),
        )
        .await;
    assert_eq!(preempting.status(), 403, "preempting priorities are for admins");
    let bad_priority = platform.post("/api/v1/tasks", &token, json!({"type": "x", "priority": 12})).await;
    assert_eq!(bad_priority.status(), 422, "validation happens before the downstream call");
}

#[tokio::test]
async fn admin_routes_need_the_admin_role_and_are_audited() {
    let platform = platform().await;
    let user = platform.user("plainuser").await;
    let admin = platform.admin("gwadmin").await;
    assert_eq!(platform.post("/api/v1/cache/clear", &user, json!({})).await.status(), 403);
    assert_eq!(platform.get("/api/v1/audit", &user).await.status(), 403);
    assert_eq!(platform.post("/api/v1/health/circuit-breakers/reset", &user, json!({})).await.status(), 403);
    let cleared = platform.post("/api/v1/cache/clear", &admin, json!({"pattern": "*"})).await;
    assert_eq!(cleared.status(), 200);
    let reset = platform.post("/api/v1/health/circuit-breakers/reset", &admin, json!({})).await;
    assert_eq!(reset.status(), 200);
    let audit: Value = platform.get("/api/v1/audit", &admin).await.json().await.unwrap();
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().map(|entry| entry["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["circuit_breakers_reset", "cache_clear"]);
    assert_eq!(audit["items"][0]["actor"], "gwadmin");
    assert_eq!(audit["items"][0]["ip"], "127.0.0.1");
    let stats: Value = platform.get("/api/v1/cache/stats", &user).await.json().await.unwrap();
    assert!(stats["hits"].is_u64() && stats["keys"].is_u64(), "{stats}");
}
