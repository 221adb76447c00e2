//! The auth service against real Postgres and Redis: each test starts its own service with its
//! own database and Redis prefix.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod clients;
mod login;
mod mfa;
mod refresh;
mod secrets;
mod tokens;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use sutazai_auth::domain::crypto_box::SecretBox;
use sutazai_auth::{Application, AuthConfig, AuthService, AuthSettings, SigningAlgorithm};
use sutazai_kit::config::Secret;
use sutazai_kit::shutdown::Shutdown;
use sutazai_testkit::{TestDatabase, TestRedis, http_settings};

pub(crate) const MASTER_KEY: &str = "test-master-key-0123456789abcdefghijkl";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const ISSUER: &str = "http://auth.sutazai.test";
pub(crate) const AUDIENCE: &str = "sutazai-test";

/// Every log line of this test binary, for the no-secrets-in-logs test.
pub(crate) fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    sutazai_testkit::captured_logs("debug,hyper=warn,h2=warn,tower=warn,reqwest=warn")
}

pub(crate) fn settings() -> AuthSettings {
    AuthSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        signing_algorithm: SigningAlgorithm::Eddsa,
        access_token_ttl_s: 900,
        refresh_token_ttl_s: 3600,
        refresh_grace_s: 10,
        lockout_max_failures: 5,
        lockout_window_s: 900,
        lockout_duration_s: 900,
        login_attempts_per_ip_per_minute: 1000,
        login_attempts_per_account_per_minute: 1000,
    }
}

/// A running auth service.
pub(crate) struct TestAuth {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) service: AuthService,
    pub(crate) _config: AuthConfig,
    pub(crate) database: TestDatabase,
    pub(crate) redis: TestRedis,
    shutdown: Shutdown,
}

impl Drop for TestAuth {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub(crate) async fn spawn() -> TestAuth {
    spawn_with(settings()).await
}

pub(crate) async fn config_for(
    settings: AuthSettings,
    database: &TestDatabase,
    redis: &TestRedis,
) -> AuthConfig {
    AuthConfig {
        auth: settings,
        http: http_settings(),
        postgres: database.settings(),
        redis: redis.settings(),
        master_key: Some(Secret::new(MASTER_KEY)),
    }
}

pub(crate) async fn spawn_with(settings: AuthSettings) -> TestAuth {
    captured_logs();
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let config = config_for(settings, &database, &redis).await;
    let shutdown = Shutdown::new();
    let application = Application::build(config.clone(), &shutdown).await.unwrap();
    let base = format!("http://{}", application.address());
    let service = application.service().clone();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestAuth { base, client: reqwest::Client::new(), service, _config: config, database, redis, shutdown }
}

impl TestAuth {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn post(&self, path: &str, body: Value, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    /// Registers `username` with [`PASSWORD`]; returns the user document.
    pub(crate) async fn register(&self, username: &str) -> Value {
        let response = self
            .post(
                "/api/v1/auth/register",
                json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub(crate) async fn login_response(&self, username: &str, password: &str) -> reqwest::Response {
        self.post("/api/v1/auth/login", json!({"username_or_email": username, "password": password}), None)
            .await
    }

    /// Logs in with [`PASSWORD`]; returns `(access, refresh)`.
    pub(crate) async fn login(&self, username: &str) -> (String, String) {
        let response = self.login_response(username, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// A registered, logged-in user: `(user id, access, refresh)`.
    pub(crate) async fn user(&self, username: &str) -> (String, String, String) {
        let user = self.register(username).await;
        let (access, refresh) = self.login(username).await;
        (user["id"].as_str().unwrap().to_owned(), access, refresh)
    }

    /// The status of `GET /me` with `token`.
    pub(crate) async fn me_status(&self, token: &str) -> u16 {
        self.get("/api/v1/auth/me", token).await.status().as_u16()
    }

    /// An admin's access token.
    pub(crate) async fn admin(&self, username: &str) -> String {
        self.service
            .create_admin(username.to_owned(), format!("{username}@example.com"), PASSWORD.to_owned())
            .await
            .unwrap();
        self.login(username).await.0
    }

    /// The active signing key, read the way an attacker with database and master key would.
    pub(crate) async fn signing_key(&self) -> (String, EncodingKey) {
        let pool = sqlx::PgPool::connect(self.database.url()).await.unwrap();
        let (kid, sealed): (String, Vec<u8>) = sqlx::query_as(
            "SELECT kid, private_key_enc FROM auth.signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        let der = SecretBox::new(MASTER_KEY, "signing-keys").open(&sealed).unwrap();
        (kid, EncodingKey::from_ed_der(&der))
    }

    /// Valid claims for `subject`, to be altered by a test.
    pub(crate) fn claims(&self, subject: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "exp": now + 600, "iat": now, "nbf": now,
            "jti": uuid::Uuid::new_v4().to_string(), "typ": "access", "kind": "user", "name": "forger",
            "roles": ["user"], "scopes": [], "ver": 0
        })
    }

    /// Signs `claims` with the real key.
    pub(crate) async fn forge(&self, claims: &Value) -> String {
        let (kid, key) = self.signing_key().await;
        let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid);
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// base64url without padding.
pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
