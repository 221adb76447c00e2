//! The circuit breaker of a downstream service: a stopped service opens it after the threshold,
//! calls then fail fast, and a half-open probe closes it once the service answers again. The
//! "service" here is the real auth service behind a cuttable proxy: when it answers, it answers
//! that it does not implement the orchestrator (a reply, so the breaker closes).

use std::time::{Duration, Instant};

use serde_json::Value;
use sutazai_kit::breaker::BreakerSettings;
use sutazai_testkit::TcpProxy;

use crate::{Options, platform, platform_with, problem};

#[tokio::test]
async fn breaker_opens_fails_fast_and_closes_after_a_probe() {
    // The proxy forwards to an auth service started by a first platform.
    let upstream = platform().await;
    let auth_address = upstream.auth.trim_start_matches("http://").parse().unwrap();
    let proxy = TcpProxy::start(auth_address).await;
    proxy.set_down(true).await;
    let options = Options {
        breakers: BreakerSettings { failure_threshold: 3, open_ms: 500 },
        orchestrator_url: Some(format!("http://{}", proxy.address)),
        ..Options::default()
    };
    let platform = platform_with(options).await;
    let token = platform.user("breakeruser").await;
    let task = format!("/api/v1/tasks/{}", uuid::Uuid::new_v4());

    for attempt in 0..3 {
        let response = platform.get(&task, &token).await;
        assert_eq!(response.status(), 503, "attempt {attempt}");
    }
    let breakers = orchestrator_breaker(&platform).await;
    assert_eq!(breakers["state"], "open", "{breakers}");

    let started = Instant::now();
    let fast = platform.get(&task, &token).await;
    assert_eq!(fast.status(), 503);
    assert!(fast.headers().contains_key("retry-after"));
    assert!(problem(fast).await["detail"].as_str().unwrap().contains("circuit open"));
    assert!(started.elapsed() < Duration::from_millis(300), "fails fast while open");

    proxy.set_down(false).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let probe = platform.get(&task, &token).await;
    let probe_status = probe.status();
    let probe_body = probe.text().await.unwrap();
    assert_ne!(probe_status, 503, "the probe reached the service, which answered: {probe_body}");
    let breakers = orchestrator_breaker(&platform).await;
    assert_eq!(breakers["state"], "closed", "{breakers}");
}

/// The orchestrator's entry of `/api/v1/health/circuit-breakers`.
async fn orchestrator_breaker(platform: &crate::Platform) -> Value {
    let breakers: Value = platform
        .client
        .get(platform.url("/api/v1/health/circuit-breakers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    breakers["orchestrator"].clone()
}
