//! Nothing secret leaks: not in responses, not in logs; and no start without a master key.

use serde_json::{Value, json};
use sutazai_testkit::{TestDatabase, TestRedis};

use crate::{MASTER_KEY, PASSWORD, captured_logs, config_for, settings, spawn};

#[tokio::test]
async fn no_response_or_log_line_contains_a_secret() {
    let auth = spawn().await;
    let admin = auth.admin("leakadmin").await;
    let mut bodies = String::new();
    let mut record = |label: &str, text: String| bodies.push_str(&format!("\n--- {label}\n{text}"));

    let register = auth
        .post(
            "/api/v1/auth/register",
            json!({"username": "leaky", "email": "leaky@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    record("register", register.text().await.unwrap());
    let weak = auth
        .post(
            "/api/v1/auth/register",
            json!({"username": "leaky2", "email": "l2@example.com", "password": "leaky2-password-x"}),
            None,
        )
        .await;
    record("weak", weak.text().await.unwrap());
    let wrong = auth.login_response("leaky", "Wrong-Horse-Battery-9").await;
    record("wrong", wrong.text().await.unwrap());
    let login = auth.login_response("leaky", PASSWORD).await;
    let tokens: Value = login.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let rotated = auth.post("/api/v1/auth/refresh", json!({"refresh_token": refresh}), None).await;
    record("refresh", rotated.text().await.unwrap());
    let created = auth
        .post("/api/v1/auth/service-accounts", json!({"client_id": "leaksvc", "scopes": ["x"]}), Some(&admin))
        .await;
    let client_secret = created.json::<Value>().await.unwrap()["client_secret"].as_str().unwrap().to_owned();
    let bad_client = auth
        .client
        .post(auth.url("/api/v1/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "leaksvc"),
            ("client_secret", "cs_guess-1234"),
        ])
        .send()
        .await
        .unwrap();
    record("bad client", bad_client.text().await.unwrap());
    let enroll = auth.post("/api/v1/auth/mfa/enroll", json!({}), Some(&access)).await;
    let totp_secret = enroll.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
    let change = auth
        .post(
            "/api/v1/auth/password",
            json!({"old_password": "Not-The-Password-7", "new_password": "whatever else 123"}),
            Some(&access),
        )
        .await;
    record("password change", change.text().await.unwrap());
    let users = auth.get("/api/v1/auth/users", &admin).await;
    record("users", users.text().await.unwrap());
    let audit = auth.get("/api/v1/auth/audit?limit=1000", &admin).await;
    record("audit", audit.text().await.unwrap());
    let jwks = auth.client.get(auth.url("/.well-known/jwks.json")).send().await.unwrap();
    record("jwks", jwks.text().await.unwrap());

    let pool = sqlx::PgPool::connect(auth.database.url()).await.unwrap();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM auth.users WHERE username = 'leaky'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let sealed_key: Vec<u8> = sqlx::query_scalar("SELECT private_key_enc FROM auth.signing_keys LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let private_der = sutazai_auth::domain::crypto_box::SecretBox::new(MASTER_KEY, "signing-keys")
        .open(&sealed_key)
        .unwrap();
    let private_b64 = crate::b64(&private_der);

    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(logs.contains("request finished"), "the requests above were logged at debug level");
    let secrets = [
        ("password", PASSWORD.to_owned()),
        ("wrong password", "Wrong-Horse-Battery-9".to_owned()),
        ("weak password", "leaky2-password-x".to_owned()),
        ("old password attempt", "Not-The-Password-7".to_owned()),
        ("password hash", hash.clone()),
        ("hash prefix", "$argon2id$".to_owned()),
        ("refresh token", refresh.clone()),
        ("client secret", client_secret.clone()),
        ("guessed client secret", "cs_guess-1234".to_owned()),
        ("totp secret", totp_secret.clone()),
        ("private key", private_b64.clone()),
        ("master key", MASTER_KEY.to_owned()),
    ];
    for (label, secret) in &secrets {
        assert!(!bodies.contains(secret.as_str()), "{label} appears in a response body:{bodies}");
        assert!(!logs.contains(secret.as_str()), "{label} appears in the logs");
    }
}

#[tokio::test]
async fn refuses_to_start_without_a_master_key() {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let mut config = config_for(settings(), &database, &redis).await;
    config.master_key = None;
    let shutdown = sutazai_kit::shutdown::Shutdown::new();
    let error = sutazai_auth::Application::build(config, &shutdown).await.unwrap_err();
    assert_eq!(error.to_string(), "security.master_key is required to encrypt signing keys at rest");
    database.drop_database().await;
}
