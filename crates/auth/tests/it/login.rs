//! Registration rules, login by username or email (JSON and form), lockout and throttling.

use serde_json::{Value, json};

use crate::{PASSWORD, settings, spawn, spawn_with};

#[tokio::test]
async fn register_returns_the_user_without_secrets() {
    let auth = spawn().await;
    let user = auth.register("ann").await;
    assert_eq!(user["username"], "ann");
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["roles"], json!(["user"]));
    assert_eq!(user["mfa_enabled"], false);
    let text = user.to_string();
    assert!(!text.contains("password") && !text.contains("hash") && !text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn weak_passwords_are_422_naming_the_rule() {
    let auth = spawn().await;
    let cases = [
        ("short", "password must be between 10 and 128 characters"),
        ("1234567890", "password is too common"),
        ("my-bobby-tables-pass", "password must not contain the username"),
    ];
    for (password, rule) in cases {
        let response = auth
            .post(
                "/api/v1/auth/register",
                json!({"username": "bobby", "email": "b@example.com", "password": password}),
                None,
            )
            .await;
        assert_eq!(response.status(), 422, "{password}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], "password");
        assert_eq!(problem["detail"], format!("password: {rule}"));
    }
}

#[tokio::test]
async fn duplicates_are_409_and_bad_fields_422() {
    let auth = spawn().await;
    auth.register("dup").await;
    let again = auth
        .post(
            "/api/v1/auth/register",
            json!({"username": "DUP", "email": "other@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(again.status(), 409, "usernames are case-insensitive");
    let email = auth
        .post(
            "/api/v1/auth/register",
            json!({"username": "dup2", "email": "dup@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(email.status(), 409);
    let bad_email = auth
        .post(
            "/api/v1/auth/register",
            json!({"username": "x_y", "email": "nope", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(bad_email.status(), 422);
    assert_eq!(bad_email.json::<Value>().await.unwrap()["field"], "email");
    let missing = auth.post("/api/v1/auth/register", json!({"username": "x_y"}), None).await;
    assert_eq!(missing.status(), 422);
}

#[tokio::test]
async fn login_by_email_and_by_form() {
    let auth = spawn().await;
    auth.register("carol").await;
    assert_eq!(auth.login_response("CAROL@example.com", PASSWORD).await.status(), 200);
    let form = auth
        .client
        .post(auth.url("/api/v1/auth/login"))
        .form(&[("username", "carol"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let body: Value = form.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(auth.login_response("carol", "wrong password!").await.status(), 401);
    assert_eq!(auth.login_response("nobody", PASSWORD).await.status(), 401);
}

#[tokio::test]
async fn five_failures_lock_the_account_even_for_the_right_password() {
    let auth = spawn().await;
    auth.register("dave").await;
    for attempt in 1..=5 {
        let response = auth.login_response("dave", "wrong password!").await;
        assert_eq!(response.status(), 401, "attempt {attempt}");
    }
    let locked = auth.login_response("dave", "wrong password!").await;
    assert_eq!(locked.status(), 423);
    let retry_after: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((890..=900).contains(&retry_after), "{retry_after}");
    let right_password = auth.login_response("dave", PASSWORD).await;
    assert_eq!(right_password.status(), 423, "the correct password does not unlock early");
    assert_eq!(right_password.json::<Value>().await.unwrap()["code"], "locked");
}

#[tokio::test]
async fn too_many_attempts_are_throttled_with_retry_after() {
    let mut strict = settings();
    strict.login_attempts_per_account_per_minute = 3;
    let auth = spawn_with(strict).await;
    auth.register("erin").await;
    // The window is the wall-clock minute: start well inside one.
    let second_of_minute = chrono::Utc::now().timestamp() % 60;
    if second_of_minute > 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second_of_minute as u64)).await;
    }
    // Spelling variants and the email of one account share its budget.
    for name in ["erin", " ERIN ", "erin@example.com"] {
        assert_eq!(auth.login_response(name, PASSWORD).await.status(), 200, "{name:?}");
    }
    let throttled = auth.login_response("Erin@Example.com", PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    let retry_after: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(throttled.json::<Value>().await.unwrap()["code"], "too_many_requests");
}
