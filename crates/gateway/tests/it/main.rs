//! The gateway against real Postgres, Redis and the real auth service, with the fake Ollama as its
//! LLM. Services that are not built yet (orchestrator, coordinator, ...) are closed ports, so their
//! routes must answer 503.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod breakers;
mod chat;
mod local_models;
mod rag;
mod rate_limit;
mod routes;
mod services;

use std::net::SocketAddr;

use serde_json::{Value, json};
use sutazai_auth::{AuthConfig, AuthSettings, SigningAlgorithm};
use sutazai_gateway::{GatewayConfig, GatewaySettings};
use sutazai_kit::auth::VerifierSettings;
use sutazai_kit::breaker::BreakerSettings;
use sutazai_kit::config::{ConnectionUrl, Secret};
use sutazai_kit::ratelimit::RateLimitSettings;
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::{LlmSettings, ProviderKind};
use sutazai_testkit::fake_ollama::FakeOllama;
use sutazai_testkit::{TestDatabase, TestRedis, http_settings};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const MODEL: &str = "smollm2:135m";
/// The model the vector service embeds documents with (the fake serves it with `services`).
pub(crate) const EMBEDDING_MODEL: &str = "all-minilm";

/// A URL nothing answers at: the discard port, which no test binds. (A port freed by binding
/// port 0 could be taken by another test's service running in parallel.)
fn closed_port_url() -> String {
    "http://127.0.0.1:9".to_owned()
}

/// Knobs a test can turn before the gateway starts.
pub(crate) struct Options {
    pub(crate) rate_limit: RateLimitSettings,
    pub(crate) breakers: BreakerSettings,
    pub(crate) orchestrator_url: Option<String>,
    /// Runs the real vector, hardware and arbitrator services behind the gateway.
    pub(crate) services: bool,
    /// The gateway and the vector service use the embedded models instead of the fake Ollama.
    pub(crate) local_models: bool,
}

impl Default for Options {
    fn default() -> Self {
        let rate_limit = RateLimitSettings {
            default_per_minute: 10_000,
            chat_per_minute: 10_000,
            health_per_minute: 10_000,
            auth_per_minute: 10_000,
            ..RateLimitSettings::default()
        };
        Self {
            rate_limit,
            breakers: BreakerSettings::default(),
            orchestrator_url: None,
            services: false,
            local_models: false,
        }
    }
}

/// The auth service, the fake Ollama and the gateway, running.
pub(crate) struct Platform {
    pub(crate) gateway: String,
    pub(crate) auth: String,
    pub(crate) ollama: FakeOllama,
    pub(crate) client: reqwest::Client,
    pub(crate) auth_service: sutazai_auth::AuthService,
    pub(crate) services: Option<services::Services>,
    _database: TestDatabase,
    shutdown: Shutdown,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub(crate) async fn platform() -> Platform {
    platform_with(Options::default()).await
}

pub(crate) async fn platform_with(options: Options) -> Platform {
    sutazai_testkit::init_tracing();
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let shutdown = Shutdown::new();
    let issuer = "http://auth.gateway.test".to_owned();
    let auth_config = AuthConfig {
        auth: AuthSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: issuer.clone(),
            audience: "sutazai".into(),
            signing_algorithm: SigningAlgorithm::Eddsa,
            access_token_ttl_s: 900,
            refresh_token_ttl_s: 3600,
            refresh_grace_s: 10,
            lockout_max_failures: 5,
            lockout_window_s: 900,
            lockout_duration_s: 900,
            login_attempts_per_ip_per_minute: 10_000,
            login_attempts_per_account_per_minute: 10_000,
        },
        http: http_settings(),
        postgres: database.settings(),
        redis: redis.settings(),
        master_key: Some(Secret::new("gateway-test-master-key-0123456789abcdef")),
    };
    let auth = sutazai_auth::Application::build(auth_config, &shutdown).await.unwrap();
    let auth_url = format!("http://{}", auth.address());
    let auth_service = auth.service().clone();
    tokio::spawn(auth.run_until_stopped(shutdown.clone()));

    let ollama = FakeOllama::start().await;
    ollama.add_model(MODEL);
    let llm = if options.local_models { local_llm_settings() } else { llm_settings(&ollama.base_url()) };
    let services = if options.services {
        ollama.add_model(EMBEDDING_MODEL);
        Some(services::start_services(&auth_url, &issuer, &database, &redis, llm.clone(), &shutdown).await)
    } else {
        None
    };
    let config = GatewayConfig {
        gateway: GatewaySettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            auth_url: auth_url.clone(),
            orchestrator_url: options.orchestrator_url.unwrap_or_else(closed_port_url),
            coordinator_url: closed_port_url(),
            vector_url: services.as_ref().map_or_else(closed_port_url, |running| running.vector_url.clone()),
            hardware_url: services
                .as_ref()
                .map_or_else(closed_port_url, |running| running.hardware_url.clone()),
            arbitrator_url: services
                .as_ref()
                .map_or_else(closed_port_url, |running| running.arbitrator_url.clone()),
            // The embedded models load on first use, unoptimised in test builds.
            downstream_timeout_ms: if options.local_models { 60_000 } else { 2_000 },
            health_check_timeout_ms: 1_000,
        },
        // Inference on the embedded models shares two cores with the whole test suite.
        http: if options.local_models {
            sutazai_kit::config::HttpSettings { request_timeout_ms: 120_000, ..http_settings() }
        } else {
            http_settings()
        },
        postgres: database.settings(),
        redis: redis.settings(),
        llm,
        rate_limit: options.rate_limit,
        breakers: options.breakers,
        token: VerifierSettings::new(issuer, "sutazai"),
    };
    let gateway = sutazai_gateway::Application::build(config, &shutdown).await.unwrap();
    let gateway_url = format!("http://{}", gateway.address());
    tokio::spawn(gateway.run_until_stopped(shutdown.clone()));
    Platform {
        gateway: gateway_url,
        auth: auth_url,
        ollama,
        client: reqwest::Client::new(),
        auth_service,
        services,
        _database: database,
        shutdown,
    }
}

/// LLM settings for the embedded models (SmolLM2 chat, MiniLM embeddings), with room for
/// tests' unoptimised candle builds.
pub(crate) fn local_llm_settings() -> LlmSettings {
    LlmSettings {
        provider: ProviderKind::Local,
        default_model: sutazai_llm::LocalSettings::default().chat_model,
        request_timeout_ms: 300_000,
        ..llm_settings(&closed_port_url())
    }
}

/// LLM settings for a provider at `base_url`: short timeouts, no retries.
pub(crate) fn llm_settings(base_url: &str) -> LlmSettings {
    LlmSettings {
        provider: ProviderKind::Ollama,
        base_url: ConnectionUrl::new(base_url),
        api_key: None,
        default_model: MODEL.into(),
        request_timeout_ms: 5_000,
        connect_timeout_ms: 500,
        max_retries: 0,
        retry_base_delay_ms: 50,
        retry_max_delay_ms: 200,
        model_list_ttl_s: 30,
        cache_ttl_s: 600,
        max_concurrent_requests: 4,
        local: sutazai_llm::LocalSettings::default(),
    }
}

impl Platform {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    /// Registers and logs in `username`; returns an access token.
    pub(crate) async fn user(&self, username: &str) -> String {
        let registered = self
            .client
            .post(format!("{}/api/v1/auth/register", self.auth))
            .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 201);
        self.login(username).await
    }

    pub(crate) async fn login(&self, username: &str) -> String {
        let login: Value = self
            .client
            .post(format!("{}/api/v1/auth/login", self.auth))
            .json(&json!({"username_or_email": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["access_token"].as_str().unwrap().to_owned()
    }

    /// An admin's access token.
    pub(crate) async fn admin(&self, username: &str) -> String {
        self.auth_service
            .create_admin(username.into(), format!("{username}@example.com"), PASSWORD.into())
            .await
            .unwrap();
        self.login(username).await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub(crate) async fn put(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.client.put(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
    }

    pub(crate) async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
    }
}

/// The problem document of an error response, checking its media type.
pub(crate) async fn problem(response: reqwest::Response) -> Value {
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.unwrap()
}
