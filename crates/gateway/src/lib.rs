//! `sutazai-gateway`: the public REST API (role `gateway`, port 10010). Chat goes to the LLM through
//! `sutazai-llm`; tasks, workflows, agents, vectors, hardware and resources go to their services
//! over gRPC, each behind a circuit breaker; tokens are verified with the kit's verifier against
//! the auth service's JWKS; requests are rate limited in Redis.

mod downstream;
mod http;
mod llm_slots;
pub mod settings;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sutazai_kit::auth::{RevocationKeys, VerifierSettings, verifier_from_auth_url};
use sutazai_kit::breaker::{BreakerRegistry, BreakerSettings};
use sutazai_kit::config::{HttpSettings, PostgresSettings, RedisSettings};
use sutazai_kit::health::{HealthRegistry, PostgresCheck, RedisCheck};
use sutazai_kit::ratelimit::{RateLimit, RateLimitSettings, SlidingWindowLimiter};
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::{LlmClient, LlmSettings, ResponseCache};
use tokio::net::TcpListener;

pub use settings::GatewaySettings;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "gateway";

/// The OpenAPI document this service serves at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    http::openapi::document()
}

/// Everything the gateway role needs from the configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `[gateway]`.
    pub gateway: GatewaySettings,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[postgres]`.
    pub postgres: PostgresSettings,
    /// `[redis]`.
    pub redis: RedisSettings,
    /// `[llm]`.
    pub llm: LlmSettings,
    /// `[rate_limit]`.
    pub rate_limit: RateLimitSettings,
    /// `[circuit_breaker]`.
    pub breakers: BreakerSettings,
    /// The issuer and audience tokens must carry (`auth.issuer`, `auth.audience`).
    pub token: VerifierSettings,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Postgres could not be prepared.
    #[error(transparent)]
    Database(#[from] sutazai_kit::postgres::DatabaseError),
    /// Redis could not be reached.
    #[error("connect to redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A configured URL is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] sutazai_kit::server::BindError),
}

/// Migrates the schema (for `sutazai migrate`).
pub async fn migrate(postgres: &PostgresSettings) -> Result<(), sutazai_kit::postgres::DatabaseError> {
    sutazai_kit::postgres::migrate(postgres, SCHEMA, migrators()).await
}

/// The migrations of this service's schema: its own and the kit's audit log.
fn migrators() -> Vec<sqlx::migrate::Migrator> {
    vec![sqlx::migrate!("./migrations"), sutazai_kit::audit::migrator()]
}

/// The running gateway role.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
}

impl Application {
    /// Connects, migrates and binds.
    pub async fn build(config: GatewayConfig, shutdown: &Shutdown) -> Result<Self, StartupError> {
        let pool = sutazai_kit::postgres::connect_and_migrate(&config.postgres, SCHEMA, migrators()).await?;
        let redis = sutazai_kit::redis::connect(&config.redis).await?;
        let verifier = Arc::new(
            verifier_from_auth_url(
                &config.gateway.auth_url,
                &config.token,
                Some(redis.clone()),
                RevocationKeys::new(&config.redis),
            )
            .map_err(|error| StartupError::Config(error.to_string()))?,
        );
        let breakers = Arc::new(BreakerRegistry::new(config.breakers));
        // Behind an Arc: axum clones the state per request, and cloning five tonic channels each
        // time cost a quarter of the CPU of a cheap request (measured with perf in the gateway
        // benchmark).
        let downstreams = Arc::new(
            downstream::Downstreams::new(&config.gateway, Arc::clone(&breakers))
                .map_err(|error| StartupError::Config(error.to_string()))?,
        );
        let response_cache = ResponseCache::new(
            redis.clone(),
            &sutazai_kit::redis::RedisKeys::new(&config.redis, "gw:"),
            config.llm.cache_ttl(),
        );
        let llm = Arc::new(
            LlmClient::connect(&config.llm)
                .await
                .map_err(|error| StartupError::Config(format!("llm: {error}")))?
                .with_response_cache(response_cache)
                .with_inference_slots(Arc::new(llm_slots::inference_slots(
                    &downstreams,
                    config.llm.max_concurrent_requests,
                    config.llm.request_timeout(),
                ))),
        );
        let limiter = SlidingWindowLimiter::new(
            redis.clone(),
            sutazai_kit::redis::RedisKeys::new(&config.redis, "gw:"),
            &config.rate_limit,
        );
        let state = http::AppState {
            rate_limiter: limiter.clone(),
            settings: Arc::new(http::HandlerSettings {
                auth_url: config.gateway.auth_url.clone(),
                health_check_timeout: Duration::from_millis(config.gateway.health_check_timeout_ms),
            }),
            verifier,
            llm,
            pool: pool.clone(),
            redis: redis.clone(),
            conversations: store::conversations::ConversationStore::new(pool.clone()),
            audit: sutazai_kit::audit::AuditLog::new(pool.clone()),
            downstreams,
            breakers,
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(config.gateway.health_check_timeout_ms))
                .build()
                .map_err(|error| StartupError::Config(error.to_string()))?,
        };
        let mut health = HealthRegistry::new(shutdown.token());
        health.register("postgres", PostgresCheck(pool));
        health.register("redis", RedisCheck(redis));
        let rate_limit = RateLimit::from_settings(limiter, &config.rate_limit);
        let router =
            sutazai_kit::server::service_router(http::routes(state, rate_limit), health, &config.http);
        let address = config.gateway.listen;
        let listener = sutazai_kit::server::bind(address).await?;
        Ok(Self { listener, router, grace: config.http.shutdown_grace() })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until shutdown.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        sutazai_kit::server::serve(self.listener, self.router, shutdown.token(), self.grace).await
    }
}
