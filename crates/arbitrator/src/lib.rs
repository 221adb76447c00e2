//! `sutazai-arbitrator`: leases of host resources — cpu (millicores), memory (bytes), gpu
//! (devices), LLM inference slots per `<provider>/<model>` and operator-defined counters — with
//! TTLs, renewal, priorities and preemption (role `arbitrator`, port 8588). gRPC
//! `sutazai.v1.ArbitratorService` plus `/livez`, `/readyz` and `/metrics` on one listener.
//!
//! Redis holds the live view and decides every grant atomically in Lua, so any number of
//! replicas share one truth and none can over-allocate; Postgres (schema `arbitrator`) holds the
//! policies and the lease journal the live view is restored from when Redis loses it.
//! [`client::LeaseClient`] is the client other crates use.

pub mod capacity;
pub mod client;
pub mod domain;
mod error;
mod grpc;
pub mod service;
pub mod settings;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sutazai_kit::auth::{RevocationKeys, VerifierSettings, verifier_from_auth_url};
use sutazai_kit::config::{HttpSettings, PostgresSettings, RedisSettings};
use sutazai_kit::health::{HealthRegistry, PostgresCheck, RedisCheck};
use sutazai_kit::shutdown::Shutdown;
use tokio::net::TcpListener;

pub use error::ArbitratorError;
pub use service::Arbitrator;
pub use settings::ArbitratorSettings;

use crate::service::ArbitratorParts;
use crate::store::journal::Journal;
use crate::store::leases::PgLeaseStore;
use crate::store::live::LiveLeases;
use crate::store::policies::PgPolicyStore;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "arbitrator";

/// Everything the arbitrator role needs from the configuration.
#[derive(Debug, Clone)]
pub struct ArbitratorConfig {
    /// `[arbitrator]`.
    pub arbitrator: ArbitratorSettings,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[postgres]`.
    pub postgres: PostgresSettings,
    /// `[redis]`.
    pub redis: RedisSettings,
    /// The issuer and audience tokens must carry (`auth.issuer`, `auth.audience`).
    pub token: VerifierSettings,
}

/// Why the arbitrator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Postgres could not be prepared.
    #[error(transparent)]
    Database(#[from] sutazai_kit::postgres::DatabaseError),
    /// Redis could not be reached.
    #[error("connect to redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A configured value is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// Policies could not be loaded or the live view could not be restored.
    #[error("prepare lease state: {0}")]
    State(#[from] ArbitratorError),
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

/// The running arbitrator role.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
    service: Arbitrator,
    pubsub_client: redis::Client,
    sweep_interval: Duration,
}

impl Application {
    /// Connects, migrates, detects capacity, loads policies, restores the live view if Redis
    /// lost it, and binds the listener. The journal writer starts here (on the shutdown tracker),
    /// so the service is usable before [`Application::run_until_stopped`].
    pub async fn build(config: ArbitratorConfig, shutdown: &Shutdown) -> Result<Self, StartupError> {
        let settings = &config.arbitrator;
        let pool = sutazai_kit::postgres::connect_and_migrate(&config.postgres, SCHEMA, migrators()).await?;
        let redis = sutazai_kit::redis::connect(&config.redis).await?;
        let pubsub_client = redis::Client::open(config.redis.url.expose())?;
        let verifier = Arc::new(
            verifier_from_auth_url(
                &settings.auth_url,
                &config.token,
                Some(redis.clone()),
                RevocationKeys::new(&config.redis),
            )
            .map_err(|error| StartupError::Config(error.to_string()))?,
        );
        let catalog = capacity::catalog(settings).await.map_err(StartupError::Config)?;
        let (journal, journal_writer) = Journal::new(pool.clone());
        shutdown.tracker().spawn(journal_writer);
        let service = Arbitrator::new(ArbitratorParts {
            catalog,
            default_policy: settings.default_policy(),
            max_ttl_s: settings.max_ttl_s,
            max_wait_ms: settings.max_wait_ms,
            live: LiveLeases::new(redis.clone(), &config.redis),
            journal,
            leases: PgLeaseStore::new(pool.clone()),
            policies: PgPolicyStore::new(pool.clone()),
            audit: sutazai_kit::audit::AuditLog::new(pool.clone()),
        });
        service.load_policies().await?;
        service.publish_limits().await?;
        service.restore_if_lost().await?;
        let mut health = HealthRegistry::new(shutdown.token());
        health.register("postgres", PostgresCheck(pool));
        health.register("redis", RedisCheck(redis));
        let router = sutazai_kit::server::service_router(axum::Router::new(), health, &config.http);
        let router = sutazai_kit::server::add_grpc_service(
            router,
            grpc::ArbitratorGrpc::into_service(service.clone(), verifier),
        );
        let address = settings.listen;
        let listener = sutazai_kit::server::bind(address).await?;
        Ok(Self {
            listener,
            router,
            grace: config.http.shutdown_grace(),
            service,
            pubsub_client,
            sweep_interval: settings.sweep_interval(),
        })
    }

    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The use cases, for the CLI, tests and benchmarks.
    pub fn service(&self) -> &Arbitrator {
        &self.service
    }

    /// Serves until shutdown, with the sweeper and the release listener running beside.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        shutdown.tracker().spawn(service::sweeper::run(
            self.service.clone(),
            self.sweep_interval,
            shutdown.token(),
        ));
        shutdown.tracker().spawn(service::wakeups::listen_for_releases(
            self.pubsub_client,
            self.service.live().released_channel(),
            self.service.wakeups(),
            shutdown.token(),
        ));
        sutazai_kit::server::serve(self.listener, self.router, shutdown.token(), self.grace).await
    }
}
