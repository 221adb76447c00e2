//! `make bench-gateway`'s server: the auth service, the fake Ollama and the gateway in one process,
//! on a fresh database and Redis prefix, with rate limits so high that every request is checked in
//! Redis but none is refused. Registers one user and prints what the load generator and the
//! FastAPI peer need, one `NAME value` line each, ending with `READY`; then serves until SIGTERM
//! or SIGINT, and drops its database and Redis keys on the way out.
//!
//! Usage: `bench_server [GATEWAY_PORT] [AUTH_PORT]` (or `BENCH_GATEWAY_PORT`, `BENCH_AUTH_PORT`);
//! defaults 18010 and 18011. Logging stays off: no subscriber is installed, so the measured path
//! formats no log line.

use std::net::SocketAddr;
use std::time::Duration;

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
use sutazai_testkit::{TestDatabase, TestRedis, http_settings, redis_url};

const DEFAULT_GATEWAY_PORT: u16 = 18_010;
const DEFAULT_AUTH_PORT: u16 = 18_011;
const ISSUER: &str = "http://auth.bench.local";
const AUDIENCE: &str = "sutazai";
const MODEL: &str = "smollm2:135m";
const USERNAME: &str = "bench-user";
const PASSWORD: &str = "bench passphrase long enough";
/// An hour: longer than any run, well under the auth service's 86 400 s ceiling.
const ACCESS_TOKEN_TTL_S: u64 = 3_600;
/// High enough that no run reaches it, so every request pays for the Redis check and none is
/// refused.
const UNREACHABLE_PER_MINUTE: u32 = 100_000_000;

/// The port from the positional argument at `position`, else the environment variable, else the
/// default.
fn port(position: usize, variable: &str, default: u16) -> Result<u16, Box<dyn std::error::Error>> {
    let given = std::env::args().nth(position).or_else(|| std::env::var(variable).ok());
    match given {
        Some(text) => Ok(text.parse().map_err(|error| format!("port `{text}` ({variable}): {error}"))?),
        None => Ok(default),
    }
}

fn auth_config(port: u16, database: &TestDatabase, redis: &TestRedis) -> AuthConfig {
    AuthConfig {
        auth: AuthSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            issuer: ISSUER.to_owned(),
            audience: AUDIENCE.to_owned(),
            signing_algorithm: SigningAlgorithm::Eddsa,
            access_token_ttl_s: ACCESS_TOKEN_TTL_S,
            refresh_token_ttl_s: ACCESS_TOKEN_TTL_S,
            refresh_grace_s: 10,
            lockout_max_failures: 5,
            lockout_window_s: 900,
            lockout_duration_s: 900,
            login_attempts_per_ip_per_minute: 1_000,
            login_attempts_per_account_per_minute: 1_000,
        },
        http: http_settings(),
        postgres: database.settings(),
        redis: redis.settings(),
        master_key: Some(Secret::new("bench-master-key-0123456789abcdefghijkl")),
    }
}

fn gateway_config(
    port: u16,
    auth_url: &str,
    ollama_url: &str,
    database: &TestDatabase,
    redis: &TestRedis,
) -> GatewayConfig {
    // Services the models route never calls: a port that refuses connections.
    let unused_service = "http://127.0.0.1:9".to_owned();
    let llm = LlmSettings {
        provider: ProviderKind::Ollama,
        base_url: ConnectionUrl::new(ollama_url),
        api_key: None,
        default_model: MODEL.to_owned(),
        request_timeout_ms: 5_000,
        connect_timeout_ms: 500,
        max_retries: 0,
        retry_base_delay_ms: 50,
        retry_max_delay_ms: 200,
        model_list_ttl_s: 60,
        cache_ttl_s: 600,
        max_concurrent_requests: 4,
        local: sutazai_llm::LocalSettings::default(),
    };
    let rate_limit = RateLimitSettings {
        default_per_minute: UNREACHABLE_PER_MINUTE,
        chat_per_minute: UNREACHABLE_PER_MINUTE,
        auth_per_minute: UNREACHABLE_PER_MINUTE,
        health_per_minute: UNREACHABLE_PER_MINUTE,
        ..RateLimitSettings::default()
    };
    GatewayConfig {
        gateway: GatewaySettings {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            auth_url: auth_url.to_owned(),
            orchestrator_url: unused_service.clone(),
            coordinator_url: unused_service.clone(),
            vector_url: unused_service.clone(),
            hardware_url: unused_service.clone(),
            arbitrator_url: unused_service,
            downstream_timeout_ms: 2_000,
            health_check_timeout_ms: 1_000,
        },
        http: http_settings(),
        postgres: database.settings(),
        redis: redis.settings(),
        llm,
        rate_limit,
        breakers: BreakerSettings::default(),
        token: VerifierSettings::new(ISSUER, AUDIENCE),
    }
}

/// Registers the bench user and logs in; returns the access token.
async fn access_token(auth_url: &str) -> Result<String, Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let registration = json!({"username": USERNAME, "email": "bench@example.com", "password": PASSWORD});
    let registered =
        client.post(format!("{auth_url}/api/v1/auth/register")).json(&registration).send().await?;
    if registered.status() != reqwest::StatusCode::CREATED {
        return Err(format!("register answered {}: {}", registered.status(), registered.text().await?).into());
    }
    let credentials = json!({"username_or_email": USERNAME, "password": PASSWORD});
    let login: Value =
        client.post(format!("{auth_url}/api/v1/auth/login")).json(&credentials).send().await?.json().await?;
    match login["access_token"].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => Err(format!("login answered without an access token: {login}").into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway_port = port(1, "BENCH_GATEWAY_PORT", DEFAULT_GATEWAY_PORT)?;
    let auth_port = port(2, "BENCH_AUTH_PORT", DEFAULT_AUTH_PORT)?;
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals()?;

    let auth = sutazai_auth::Application::build(auth_config(auth_port, &database, &redis), &shutdown).await?;
    let auth_url = format!("http://{}", auth.address());
    let auth_server = tokio::spawn(auth.run_until_stopped(shutdown.clone()));

    let ollama = FakeOllama::start().await;
    ollama.add_model(MODEL);
    let config = gateway_config(gateway_port, &auth_url, &ollama.base_url(), &database, &redis);
    let gateway = sutazai_gateway::Application::build(config, &shutdown).await?;
    let gateway_url = format!("http://{}", gateway.address());
    let gateway_server = tokio::spawn(gateway.run_until_stopped(shutdown.clone()));

    let token = access_token(&auth_url).await?;
    println!("AUTH {auth_url}");
    println!("GATEWAY {gateway_url}");
    println!("OLLAMA {}", ollama.base_url());
    println!("MODEL {MODEL}");
    println!("ISSUER {ISSUER}");
    println!("AUDIENCE {AUDIENCE}");
    println!("DATABASE {}", database.name);
    println!("REDIS_URL {}", redis_url());
    println!("REDIS_PREFIX {}", redis.key_prefix);
    println!("TOKEN {token}");
    println!("READY");

    shutdown.token().cancelled().await;
    // The servers drain within the HTTP grace period; a server error at this point changes
    // nothing about the cleanup, which must run regardless.
    let _ = tokio::time::timeout(Duration::from_secs(5), gateway_server).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), auth_server).await;
    ollama.shutdown().await;
    redis.cleanup().await;
    database.drop_database().await;
    Ok(())
}
