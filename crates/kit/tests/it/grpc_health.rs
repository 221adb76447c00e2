//! gRPC and HTTP share one listener: `grpc.health.v1` answers from the same readiness checks.

use std::net::SocketAddr;

use axum::Router;
use sutazai_kit::health::{HealthRegistry, RedisCheck};
use sutazai_testkit::{TcpProxy, TestRedis, http_settings};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn grpc_health_follows_readiness_on_the_http_port() {
    let redis_address: SocketAddr = "127.0.0.1:6379".parse().unwrap();
    let proxy = TcpProxy::start(redis_address).await;
    let settings = TestRedis::new().settings_with_url(&format!("redis://{}/0", proxy.address));
    let redis = sutazai_kit::redis::connect(&settings).await.unwrap();
    let mut health = HealthRegistry::new(CancellationToken::new());
    health.register("redis", RedisCheck(redis));
    let server = crate::spawn(Router::new(), health, &http_settings()).await;

    let channel = tonic::transport::Endpoint::from_shared(server.url("")).unwrap().connect().await.unwrap();
    let mut client = HealthClient::new(channel);
    let request = || HealthCheckRequest { service: String::new() };
    let status = client.check(request()).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);

    proxy.set_down(true).await;
    let status = client.check(request()).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::NotServing as i32);

    // The same port still serves plain HTTP.
    let livez = reqwest::get(server.url("/livez")).await.unwrap();
    assert_eq!(livez.status(), 200);
}
