//! `sutazai-orchestrator`: owns task and workflow state (role `orchestrator`, port 8589). gRPC
//! `sutazai.v1.OrchestratorService` plus `/livez`, `/readyz` and `/metrics` on one listener.
//!
//! Postgres (schema `orchestrator`) holds tasks, their append-only event log, attempts, workflows
//! and steps, and the outbox/inbox. A submission stores the task and its `Ready` message in one
//! transaction; the outbox relay publishes it to the coordinator. Assignments and agent outcomes
//! come back on `orchestrator.results` and are applied once each, fenced by attempt number. Beside
//! the server run the relay, the results consumer, the retry scheduler, the timeout sweeper, the
//! inbox janitor and the listener that feeds live event streams.

mod consumer;
pub mod domain;
mod error;
mod grpc;
pub mod service;
pub mod settings;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sutazai_kit::auth::{RevocationKeys, VerifierSettings, verifier_from_auth_url};
use sutazai_kit::config::{AmqpSettings, HttpSettings, PostgresSettings, RedisSettings};
use sutazai_kit::health::{HealthRegistry, PostgresCheck, RedisCheck};
use sutazai_kit::shutdown::Shutdown;
use sutazai_messaging::outbox::{OutboxRelay, OutboxWaker};
use sutazai_messaging::{AmqpCheck, AmqpClient, AmqpError, Consumer, Publisher, pipeline};
use tokio::net::TcpListener;

pub use error::OrchestratorError;
pub use service::Orchestrator;
pub use settings::OrchestratorSettings;

use crate::consumer::ResultsHandler;
use crate::service::OrchestratorParts;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "orchestrator";

/// Unacknowledged reports the results consumer holds: enough for a few batches in flight.
const RESULTS_PREFETCH: u16 = 256;
/// Reports that arrived together are applied in one transaction, up to this many.
const RESULTS_BATCH: usize = 64;

/// Everything the orchestrator role needs from the configuration.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// `[orchestrator]`.
    pub orchestrator: OrchestratorSettings,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[postgres]`.
    pub postgres: PostgresSettings,
    /// `[redis]`: token revocations (a logged-out user's token stops working here too).
    pub redis: RedisSettings,
    /// `[amqp]`.
    pub amqp: AmqpSettings,
    /// The issuer and audience tokens must carry (`auth.issuer`, `auth.audience`).
    pub token: VerifierSettings,
}

/// Why the orchestrator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Postgres could not be prepared.
    #[error(transparent)]
    Database(#[from] sutazai_kit::postgres::DatabaseError),
    /// Redis could not be reached.
    #[error("connect to redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// RabbitMQ could not be reached or the pipeline topology not declared.
    #[error("rabbitmq: {0}")]
    Amqp(#[from] AmqpError),
    /// A configured value is not usable.
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

/// The migrations of this service's schema: its own and the outbox/inbox of sutazai-messaging.
fn migrators() -> Vec<sqlx::migrate::Migrator> {
    vec![sqlx::migrate!("./migrations"), sutazai_messaging::outbox::migrator()]
}

/// The running orchestrator role.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
    orchestrator: Orchestrator,
    pool: PgPool,
    amqp: AmqpClient,
    outbox_batch_size: u16,
    outbox_waker: OutboxWaker,
}

impl Application {
    /// Connects to Postgres (migrating the schema), Redis and RabbitMQ, declares the pipeline
    /// topology and binds the listener. Nothing is consumed or published before
    /// [`Application::run_until_stopped`].
    pub async fn build(config: OrchestratorConfig, shutdown: &Shutdown) -> Result<Self, StartupError> {
        let settings = &config.orchestrator;
        let pool = sutazai_kit::postgres::connect_and_migrate(&config.postgres, SCHEMA, migrators()).await?;
        let redis = sutazai_kit::redis::connect(&config.redis).await?;
        let verifier = Arc::new(
            verifier_from_auth_url(
                &settings.auth_url,
                &config.token,
                Some(redis.clone()),
                RevocationKeys::new(&config.redis),
            )
            .map_err(|error| StartupError::Config(error.to_string()))?,
        );
        let amqp = AmqpClient::connect(config.amqp.clone(), shutdown.token()).await?;
        // Declares the coordinator's queue too, so a task submitted before the coordinator ever
        // started is kept rather than dropped by an exchange with no binding.
        pipeline::orchestrator_topology().declare(&amqp).await?;
        let outbox_waker = OutboxWaker::new();
        let orchestrator = Orchestrator::new(OrchestratorParts {
            pool: pool.clone(),
            limits: settings.task_limits(),
            retry_policy: settings.retry_policy(),
            sweep_interval: settings.sweep_interval(),
            outbox_waker: outbox_waker.clone(),
        });
        let mut health = HealthRegistry::new(shutdown.token());
        health.register("postgres", PostgresCheck(pool.clone()));
        health.register("redis", RedisCheck(redis));
        health.register("rabbitmq", AmqpCheck(amqp.clone()));
        let router = sutazai_kit::server::service_router(axum::Router::new(), health, &config.http);
        let router = sutazai_kit::server::add_grpc_service(
            router,
            grpc::OrchestratorGrpc::into_service(orchestrator.clone(), verifier, shutdown.token()),
        );
        let listener = sutazai_kit::server::bind(settings.listen).await?;
        Ok(Self {
            listener,
            router,
            grace: config.http.shutdown_grace(),
            orchestrator,
            pool,
            amqp,
            outbox_batch_size: settings.outbox_batch_size,
            outbox_waker,
        })
    }

    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The use cases, for the CLI, tests and benchmarks.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    /// Serves until shutdown, with the outbox relay, the results consumer, the retry scheduler,
    /// the timeout sweeper, the inbox janitor and the event listener running beside. After the server drained, waits
    /// for them (the consumer lets in-flight messages finish), then closes the broker connection
    /// and the pool.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let token = shutdown.token();
        let tracker = shutdown.tracker();
        let relay = OutboxRelay::new(self.pool.clone(), Publisher::new(self.amqp.clone()))
            .with_batch_size(self.outbox_batch_size)
            .with_waker(self.outbox_waker);
        let results = Consumer::new(
            self.amqp.clone(),
            pipeline::orchestrator_results_queue(),
            ResultsHandler::new(self.orchestrator.clone(), token.clone()),
        )
        .with_prefetch(RESULTS_PREFETCH)
        .with_max_batch(RESULTS_BATCH)
        .with_drain_timeout(self.grace);
        let background = [
            tracker.spawn(relay.run(token.clone())),
            tracker.spawn(results.run(token.clone())),
            tracker.spawn(service::retries::run_retry_scheduler(self.orchestrator.clone(), token.clone())),
            tracker.spawn(service::timeouts::run_timeout_sweeper(self.orchestrator.clone(), token.clone())),
            tracker.spawn(service::janitor::run_inbox_janitor(self.orchestrator.clone(), token.clone())),
            tracker.spawn(service::watch::listen_for_events(self.orchestrator.clone(), token.clone())),
        ];
        let served = sutazai_kit::server::serve(self.listener, self.router, token, self.grace).await;
        if served.is_ok() {
            for task in background {
                if let Err(error) = task.await {
                    tracing::error!(%error, "orchestrator background task failed");
                }
            }
            self.amqp.close().await;
            self.pool.close().await;
        }
        served
    }
}
