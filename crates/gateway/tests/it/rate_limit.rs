//! Rate limits through the whole gateway: exact admission under concurrency, no budget reset by a
//! forged X-Forwarded-For, headers on 200 and 429.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sutazai_kit::ratelimit::RateLimitSettings;

use crate::{Options, platform_with};

#[tokio::test]
async fn concurrent_clients_are_admitted_up_to_the_limit() {
    const LIMIT: u32 = 40;
    let options = Options {
        rate_limit: RateLimitSettings {
            default_per_minute: LIMIT,
            health_per_minute: 10_000,
            ..RateLimitSettings::default()
        },
        ..Options::default()
    };
    let platform = Arc::new(platform_with(options).await);
    let token = Arc::new(platform.user("limited").await);
    let admitted = Arc::new(AtomicU32::new(0));
    let limited = Arc::new(AtomicU32::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (platform, token, admitted, limited) =
            (platform.clone(), token.clone(), admitted.clone(), limited.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..10 {
                let response = platform.get("/api/v1/conversations", &token).await;
                assert!(response.headers().contains_key("ratelimit-limit"));
                match response.status().as_u16() {
                    200 => admitted.fetch_add(1, Ordering::SeqCst),
                    429 => {
                        assert!(response.headers().contains_key("retry-after"));
                        limited.fetch_add(1, Ordering::SeqCst)
                    }
                    other => panic!("unexpected status {other}"),
                };
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::SeqCst), LIMIT, "exactly the limit is admitted");
    assert_eq!(limited.load(Ordering::SeqCst), 80 - LIMIT);
}

#[tokio::test]
async fn forged_forwarded_for_does_not_reset_the_budget() {
    let options = Options {
        rate_limit: RateLimitSettings { health_per_minute: 3, ..RateLimitSettings::default() },
        ..Options::default()
    };
    let platform = platform_with(options).await;
    for attempt in 0..3 {
        let response = platform.client.get(platform.url("/health")).send().await.unwrap();
        assert_eq!(response.status(), 200, "attempt {attempt}");
        assert_eq!(response.headers()["ratelimit-limit"], "3");
    }
    let forged = platform
        .client
        .get(platform.url("/health"))
        .header("x-forwarded-for", "203.0.113.99")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 429, "the untrusted peer's header is ignored");
    assert_eq!(forged.headers()["ratelimit-remaining"], "0");
}
