//! `/readyz` really checks its dependencies: it fails naming Redis when Redis is cut off and
//! recovers when it is back; `/livez` never does I/O.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use sutazai_kit::health::{HealthRegistry, PostgresCheck, RedisCheck};
use sutazai_testkit::{TcpProxy, TestDatabase, TestRedis, http_settings, wait_for};
use tokio_util::sync::CancellationToken;

async fn readyz(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn readyz_names_redis_while_it_is_unreachable_and_recovers() {
    let redis_address: SocketAddr = "127.0.0.1:6379".parse().unwrap();
    let proxy = TcpProxy::start(redis_address).await;
    let test_redis = TestRedis::new();
    let settings = test_redis.settings_with_url(&format!("redis://{}/0", proxy.address));
    let redis = sutazai_kit::redis::connect(&settings).await.unwrap();
    let database = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();

    let mut health = HealthRegistry::new(CancellationToken::new());
    health.register("redis", RedisCheck(redis));
    health.register("postgres", PostgresCheck(pool.clone()));
    let server = crate::spawn(Router::new(), health, &http_settings()).await;
    let url = server.url("/readyz");

    let (status, body) = readyz(&url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["redis"]["status"], "ok");
    assert_eq!(body["checks"]["postgres"]["status"], "ok");

    proxy.set_down(true).await;
    let (status, body) = readyz(&url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unready");
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    assert_eq!(body["checks"]["redis"]["status"], "error");
    assert_eq!(body["checks"]["postgres"]["status"], "ok", "only redis is down");
    assert!(body["checks"]["redis"]["error"].is_string());

    let live = reqwest::get(server.url("/livez")).await.unwrap();
    assert_eq!(live.status(), 200, "liveness does not depend on redis");

    proxy.set_down(false).await;
    wait_for("readyz to recover after redis is back", Duration::from_secs(15), || async {
        readyz(&url).await.0 == 200
    })
    .await;

    pool.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn readyz_is_unready_once_shutdown_starts() {
    let stopping = CancellationToken::new();
    let health = HealthRegistry::new(stopping.clone());
    let server = crate::spawn(Router::new(), health, &http_settings()).await;
    assert_eq!(readyz(&server.url("/readyz")).await.0, 200);
    stopping.cancel();
    let (status, body) = readyz(&server.url("/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["failing"], serde_json::json!(["shutdown"]));
}
