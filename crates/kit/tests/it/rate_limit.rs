//! The rate limiter end to end, behind the kit's full service router and against the real
//! Redis: the atomic window admits exactly the limit under concurrency, a forged
//! `X-Forwarded-For` buys nothing, every response carries the `RateLimit-*` headers, budgets are
//! per principal and per route group, the window slides, and a Redis outage falls back to the
//! local window (reported by /readyz) and back again.

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::get;
use futures_util::future::join_all;
use serde_json::Value;
use sutazai_kit::auth::{Principal, PrincipalKind};
use sutazai_kit::config::{HttpSettings, RedisSettings};
use sutazai_kit::health::HealthRegistry;
use sutazai_kit::ratelimit::{
    DEGRADED_MESSAGE, RateLimit, RateLimitSettings, RatePolicies, RatePolicy, RouteGroup,
    SlidingWindowLimiter,
};
use sutazai_kit::redis::RedisKeys;
use sutazai_testkit::{TcpProxy, TestRedis, TestServer, http_settings, wait_for};
use sutazai_types::ServiceErrorCode;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);

/// Stands in for the gateway's auth layer, which runs before the limiter and leaves the
/// verified principal in the request extensions.
async fn test_auth_layer(mut request: Request, next: Next) -> Response {
    let user = request.headers().get("x-test-user").and_then(|value| value.to_str().ok()).map(str::to_owned);
    if let Some(subject) = user {
        request.extensions_mut().insert(Principal {
            subject: subject.clone(),
            kind: PrincipalKind::User,
            name: subject,
            roles: vec!["user".to_owned()],
            scopes: Vec::new(),
            token_id: uuid::Uuid::new_v4().to_string(),
            expires_at: i64::MAX,
            session_id: None,
        });
    }
    next.run(request).await
}

fn routes() -> Router {
    Router::new()
        .route("/api/v1/things", get(|| async { "things" }))
        .route("/api/v1/chat", get(|| async { "chat" }))
        .route("/health", get(|| async { "ok" }))
}

struct Limited {
    server: TestServer,
    limiter: SlidingWindowLimiter,
    client: reqwest::Client,
}

impl Limited {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.server.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn status(&self, path: &str, headers: &[(&str, &str)]) -> u16 {
        self.get(path, headers).await.status().as_u16()
    }
}

async fn spawn_limited(
    redis_settings: &RedisSettings,
    limit_settings: &RateLimitSettings,
    policies: Option<RatePolicies>,
    http: &HttpSettings,
    mut health: HealthRegistry,
) -> Limited {
    let redis = sutazai_kit::redis::connect(redis_settings).await.unwrap();
    let limiter = SlidingWindowLimiter::new(redis, RedisKeys::new(redis_settings, "gw:"), limit_settings);
    health.register("rate_limiter", limiter.health_check());
    let rate_limit = match policies {
        Some(policies) => RateLimit::new(limiter.clone(), policies),
        None => RateLimit::from_settings(limiter.clone(), limit_settings),
    };
    let routes = rate_limit.layer(routes()).layer(from_fn(test_auth_layer));
    let server = crate::spawn(routes, health, http).await;
    Limited { server, limiter, client: reqwest::Client::new() }
}

async fn spawn_with_policies(test_redis: &TestRedis, policies: RatePolicies) -> Limited {
    // A generous Redis timeout: on a loaded test machine a slow answer must not hand a decision
    // to the local window, which would count separately and make exact counts flaky.
    let settings = RateLimitSettings { redis_timeout_ms: 2_000, ..RateLimitSettings::default() };
    spawn_limited(&test_redis.settings(), &settings, Some(policies), &http_settings(), crate::empty_health())
        .await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).unwrap_or_else(|| panic!("missing header {name}")).to_str().unwrap()
}

fn header_number(response: &reqwest::Response, name: &str) -> u64 {
    header(response, name).parse().unwrap()
}

#[tokio::test]
async fn eight_concurrent_clients_get_exactly_the_limit() {
    let test_redis = TestRedis::new();
    let limited = spawn_with_policies(&test_redis, RatePolicies::uniform(RatePolicy::new(100, MINUTE))).await;
    let clients = (0..8).map(|_| async {
        // Each client has its own connection pool, as separate callers would.
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let response = client.get(limited.server.url("/api/v1/things")).send().await.unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    });
    let statuses: Vec<u16> = join_all(clients).await.into_iter().flatten().collect();
    let admitted = statuses.iter().filter(|status| **status == 200).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!(admitted, 100, "the atomic script admits exactly the limit across 8 clients");
    assert_eq!(refused, 220, "everything else is refused: {statuses:?}");
    test_redis.cleanup().await;
}

#[tokio::test]
async fn forged_forwarded_for_from_an_untrusted_peer_gets_no_fresh_budget() {
    let test_redis = TestRedis::new();
    let limited = spawn_with_policies(&test_redis, RatePolicies::uniform(RatePolicy::new(3, MINUTE))).await;
    for _ in 0..3 {
        assert_eq!(limited.status("/api/v1/things", &[]).await, 200);
    }
    for forged in ["203.0.113.1", "203.0.113.2", "198.51.100.7, 203.0.113.3", "not-an-ip"] {
        let response = limited.get("/api/v1/things", &[("x-forwarded-for", forged)]).await;
        assert_eq!(
            response.status(),
            429,
            "X-Forwarded-For {forged:?} from 127.0.0.1 must not reset the budget"
        );
        assert_eq!(header(&response, "ratelimit-remaining"), "0");
    }
    test_redis.cleanup().await;
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_keys_by_the_client_behind_it() {
    let test_redis = TestRedis::new();
    let mut http = http_settings();
    http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let policies = RatePolicies::uniform(RatePolicy::new(1, MINUTE));
    let limited = spawn_limited(
        &test_redis.settings(),
        &RateLimitSettings::default(),
        Some(policies),
        &http,
        crate::empty_health(),
    )
    .await;
    assert_eq!(limited.status("/api/v1/things", &[("x-forwarded-for", "198.51.100.1")]).await, 200);
    assert_eq!(limited.status("/api/v1/things", &[("x-forwarded-for", "198.51.100.1")]).await, 429);
    assert_eq!(limited.status("/api/v1/things", &[("x-forwarded-for", "198.51.100.2")]).await, 200);
    test_redis.cleanup().await;
}

#[tokio::test]
async fn headers_on_admitted_and_refused_responses() {
    let test_redis = TestRedis::new();
    let limited = spawn_with_policies(&test_redis, RatePolicies::uniform(RatePolicy::new(2, MINUTE))).await;

    let first = limited.get("/api/v1/things", &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-limit"), "2");
    assert_eq!(header(&first, "ratelimit-remaining"), "1");
    assert_eq!(header_number(&first, "ratelimit-reset"), 60, "one request, just made: the full window");
    assert_eq!(header(&first, "ratelimit-policy"), "2;w=60");
    assert!(first.headers().get("retry-after").is_none());
    assert_eq!(first.text().await.unwrap(), "things");

    let second = limited.get("/api/v1/things", &[]).await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "ratelimit-remaining"), "0");

    let refused = limited.get("/api/v1/things", &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "content-type"), "application/problem+json");
    assert_eq!(header(&refused, "ratelimit-limit"), "2");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    assert_eq!(header(&refused, "ratelimit-policy"), "2;w=60");
    let retry_after = header_number(&refused, "retry-after");
    assert!(
        (59..=60).contains(&retry_after),
        "the first request leaves the window in about 60 s: {retry_after}"
    );
    assert_eq!(header_number(&refused, "ratelimit-reset"), retry_after);
    let request_id = header(&refused, "x-request-id").to_owned();
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["code"], "too_many_requests");
    assert_eq!(problem["title"], ServiceErrorCode::TooManyRequests.title());
    assert_eq!(problem["type"], "urn:sutazai:problem:too_many_requests");
    assert_eq!(
        problem["detail"],
        format!("rate limit of 2 requests per 60 s exceeded; retry in {retry_after} s"),
        "{problem}"
    );
    assert_eq!(problem["request_id"], request_id);
    test_redis.cleanup().await;
}

#[tokio::test]
async fn principals_and_route_groups_have_independent_budgets() {
    let test_redis = TestRedis::new();
    let policies =
        RatePolicies::uniform(RatePolicy::new(2, MINUTE)).with(RouteGroup::Chat, RatePolicy::new(1, MINUTE));
    let limited = spawn_with_policies(&test_redis, policies).await;

    let alice = [("x-test-user", "alice")];
    assert_eq!(limited.status("/api/v1/things", &alice).await, 200);
    assert_eq!(limited.status("/api/v1/things", &alice).await, 200);
    assert_eq!(limited.status("/api/v1/things", &alice).await, 429);
    assert_eq!(
        limited.status("/api/v1/things", &[("x-test-user", "bob")]).await,
        200,
        "bob has his own budget"
    );
    assert_eq!(limited.status("/api/v1/things", &[]).await, 200, "anonymous callers are keyed by IP");

    let chat = limited.get("/api/v1/chat", &alice).await;
    assert_eq!(chat.status(), 200, "chat is a separate group");
    assert_eq!(header(&chat, "ratelimit-policy"), "1;w=60");
    assert_eq!(limited.status("/api/v1/chat", &alice).await, 429);
    let health = limited.get("/health", &alice).await;
    assert_eq!(health.status(), 200);
    assert_eq!(header(&health, "ratelimit-remaining"), "1");
    test_redis.cleanup().await;
}

#[tokio::test]
async fn the_window_slides() {
    let test_redis = TestRedis::new();
    let limited =
        spawn_with_policies(&test_redis, RatePolicies::uniform(RatePolicy::new(2, Duration::from_secs(1))))
            .await;
    assert_eq!(limited.status("/api/v1/things", &[]).await, 200);
    assert_eq!(limited.status("/api/v1/things", &[]).await, 200);
    let refused = limited.get("/api/v1/things", &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "ratelimit-policy"), "2;w=1");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let admitted = limited.get("/api/v1/things", &[]).await;
    assert_eq!(admitted.status(), 200, "the first two requests have left the window");
    assert_eq!(header(&admitted, "ratelimit-remaining"), "1");
    test_redis.cleanup().await;
}

#[tokio::test]
async fn disabled_limits_pass_everything_without_headers() {
    let test_redis = TestRedis::new();
    let settings =
        RateLimitSettings { enabled: false, default_per_minute: 1, ..RateLimitSettings::default() };
    let limited =
        spawn_limited(&test_redis.settings(), &settings, None, &http_settings(), crate::empty_health()).await;
    for _ in 0..5 {
        let response = limited.get("/api/v1/things", &[]).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("ratelimit-limit").is_none());
    }
}

async fn readyz(limited: &Limited) -> (u16, Value) {
    let response = limited.client.get(limited.server.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn redis_outage_falls_back_to_the_local_limiter_and_recovers() {
    let proxy = TcpProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let test_redis = TestRedis::new();
    let redis_settings = test_redis.settings_with_url(&format!("redis://{}/0", proxy.address));
    let limit_settings = RateLimitSettings { redis_retry_ms: 300, ..RateLimitSettings::default() };
    let policies = RatePolicies::uniform(RatePolicy::new(3, MINUTE));
    let health = HealthRegistry::new(CancellationToken::new());
    let limited =
        spawn_limited(&redis_settings, &limit_settings, Some(policies), &http_settings(), health).await;

    let before = limited.get("/api/v1/things", &[]).await;
    assert_eq!(before.status(), 200);
    assert_eq!(header(&before, "ratelimit-remaining"), "2", "counted in redis");
    assert_eq!(readyz(&limited).await.0, 200);

    proxy.set_down(true).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = limited.get("/api/v1/things", &[]).await;
        assert_eq!(header(&response, "ratelimit-limit"), "3", "headers are kept during the outage");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429], "the local window enforces the same limit");
    assert!(limited.limiter.is_degraded());
    let (status, report) = readyz(&limited).await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["failing"], serde_json::json!(["rate_limiter"]));
    assert_eq!(report["checks"]["rate_limiter"]["error"], DEGRADED_MESSAGE);
    let metrics =
        limited.client.get(limited.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rate_limit_fallback_decisions_total"), "{metrics}");

    proxy.set_down(false).await;
    wait_for("the limiter to report redis back", Duration::from_secs(15), || async {
        readyz(&limited).await.0 == 200
    })
    .await;
    assert!(!limited.limiter.is_degraded());
    let after = limited.get("/api/v1/things", &[]).await;
    assert_eq!(after.status(), 200, "redis still holds one request of this window, not the local three");
    assert_eq!(header(&after, "ratelimit-remaining"), "1", "decided by the shared window again");
    test_redis.cleanup().await;
}
