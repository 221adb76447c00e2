//! Refresh-token rotation: a new pair per use, the same successor for a retry within the grace
//! window, and the whole family revoked on reuse.

use serde_json::{Value, json};

use crate::{TestAuth, settings, spawn, spawn_with};

async fn refresh(auth: &TestAuth, token: &str) -> (u16, Value) {
    let response = auth.post("/api/v1/auth/refresh", json!({"refresh_token": token}), None).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn refresh_rotates_the_pair() {
    let auth = spawn().await;
    let (_, _, first) = auth.user("rotate").await;
    let (status, body) = refresh(&auth, &first).await;
    assert_eq!(status, 200);
    let second = body["refresh_token"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(auth.me_status(body["access_token"].as_str().unwrap()).await, 200);
    let (status, _) = refresh(&auth, second).await;
    assert_eq!(status, 200, "the successor rotates in turn");
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_family() {
    let mut no_grace = settings();
    no_grace.refresh_grace_s = 0;
    let auth = spawn_with(no_grace).await;
    let (_, _, first) = auth.user("reuse").await;
    let (_, body) = refresh(&auth, &first).await;
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    let (_, body) = refresh(&auth, &second).await;
    let newest = body["refresh_token"].as_str().unwrap().to_owned();

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, problem) = refresh(&auth, &first).await;
    assert_eq!(status, 401);
    assert!(problem["detail"].as_str().unwrap().contains("reuse"), "{problem}");
    let (status, _) = refresh(&auth, &newest).await;
    assert_eq!(status, 401, "the newest token of the family is dead too");
    let (status, _) = refresh(&auth, &second).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_successor() {
    let auth = spawn().await;
    let (_, _, first) = auth.user("retry").await;
    let (status, original) = refresh(&auth, &first).await;
    assert_eq!(status, 200);
    let (status, retried) = refresh(&auth, &first).await;
    assert_eq!(status, 200, "a lost answer can be fetched again");
    assert_eq!(retried["refresh_token"], original["refresh_token"]);
    let (status, _) = refresh(&auth, original["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "the family continues");
}

#[tokio::test]
async fn reusing_a_token_whose_successor_was_used_revokes_even_within_grace() {
    let auth = spawn().await;
    let (_, _, first) = auth.user("stolen").await;
    let (_, body) = refresh(&auth, &first).await;
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) = refresh(&auth, &second).await;
    assert_eq!(status, 200);
    let (status, _) = refresh(&auth, &first).await;
    assert_eq!(status, 401, "the chain moved on: replaying the first token is theft");
}

#[tokio::test]
async fn two_concurrent_refreshes_continue_exactly_one_family() {
    let auth = spawn().await;
    let (_, _, first) = auth.user("concurrent").await;
    let (left, right) = tokio::join!(refresh(&auth, &first), refresh(&auth, &first));
    assert_eq!((left.0, right.0), (200, 200), "both callers are answered, per the grace rule");
    assert_eq!(left.1["refresh_token"], right.1["refresh_token"], "one successor, one family");
    let pool = sqlx::PgPool::connect(auth.database.url()).await.unwrap();
    let (families, tokens): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM auth.refresh_families WHERE revoked_at IS NULL),
                (SELECT count(*) FROM auth.refresh_tokens)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((families, tokens), (1, 2), "one live family holding the first token and its one successor");
    pool.close().await;
    let (status, _) = refresh(&auth, left.1["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn garbage_refresh_tokens_are_401() {
    let auth = spawn().await;
    for token in ["", "rt_nothing", "not-even-prefixed"] {
        let (status, problem) = refresh(&auth, token).await;
        assert_eq!(status, 401, "{token}");
        assert_eq!(problem["code"], "unauthenticated");
    }
}
