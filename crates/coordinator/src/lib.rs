//! `sutazai-coordinator`: the dispatcher of the task pipeline (role `coordinator`, port 8551).
//! gRPC `sutazai.v1.CoordinatorService` plus `/livez`, `/readyz` and `/metrics` on one listener.
//!
//! It consumes ready tasks, withdrawals and attempt outcomes from `coordinator.tasks`, and agent
//! registrations and heartbeats from `coordinator.agents`; keeps pending tasks by priority, then
//! owner turn, then arrival; and assigns each to an online agent with every required capability
//! and a free slot, as the strategy picks. Assignments (`task.assigned.v1.<agent>`), waiting
//! reasons and refusals leave through the transactional outbox, committed with the state change
//! that caused them, so a crash neither loses nor doubles a task.
//!
//! One task, the [`dispatcher`], owns the state and is the only writer of the `coordinator`
//! schema; it sleeps until the next message or timer, so an idle coordinator uses no CPU.

mod consumers;
mod dispatcher;
pub mod domain;
mod error;
mod grpc;
pub mod settings;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sutazai_kit::auth::{RevocationKeys, VerifierSettings, verifier_from_auth_url};
use sutazai_kit::config::{AmqpSettings, HttpSettings, PostgresSettings, RedisSettings};
use sutazai_kit::health::{HealthRegistry, PostgresCheck};
use sutazai_kit::shutdown::Shutdown;
use sutazai_messaging::outbox::{OutboxRelay, OutboxWaker};
use sutazai_messaging::{AmqpCheck, AmqpClient, AmqpError, Consumer, Publisher, pipeline};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use domain::state::NO_AGENT;
pub use domain::strategy::StrategyKind;
pub use error::CoordinatorError;
pub use settings::CoordinatorSettings;

use crate::consumers::{AgentMessages, TaskMessages};
use crate::dispatcher::{Dispatcher, DispatcherCheck, DispatcherHandle};
use crate::domain::state::DispatchState;
use crate::store::{PgStore, StoreError};

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "coordinator";

/// How long in-flight messages may take to finish once shutdown starts.
const CONSUMER_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the outbox rows of the last steps may take to publish at shutdown; the rest are
/// published by the next start.
const OUTBOX_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the coordinator role needs from the configuration.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// `[coordinator]`.
    pub coordinator: CoordinatorSettings,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[postgres]`.
    pub postgres: PostgresSettings,
    /// `[redis]`: where token revocations are checked.
    pub redis: RedisSettings,
    /// `[amqp]`.
    pub amqp: AmqpSettings,
    /// The issuer and audience tokens must carry (`auth.issuer`, `auth.audience`).
    pub token: VerifierSettings,
}

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Postgres could not be prepared.
    #[error(transparent)]
    Database(#[from] sutazai_kit::postgres::DatabaseError),
    /// Redis could not be reached.
    #[error("connect to redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// RabbitMQ could not be reached or the topology not declared.
    #[error("prepare rabbitmq: {0}")]
    Amqp(#[from] AmqpError),
    /// The stored state could not be loaded.
    #[error("load the dispatcher state: {0}")]
    State(#[from] StoreError),
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

/// The migrations of this service's schema: its own and the outbox and inbox of messaging.
fn migrators() -> Vec<sqlx::migrate::Migrator> {
    vec![sqlx::migrate!("./migrations"), sutazai_messaging::outbox::migrator()]
}

/// The running coordinator role.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
    dispatcher: Dispatcher,
    handle: DispatcherHandle,
    pool: sqlx::PgPool,
    amqp: AmqpClient,
    prefetch: u16,
    outbox_waker: OutboxWaker,
}

impl Application {
    /// Connects, migrates, declares the pipeline topology, restores the dispatcher state from
    /// Postgres and binds the listener. Nothing is consumed before
    /// [`Application::run_until_stopped`].
    pub async fn build(config: CoordinatorConfig, shutdown: &Shutdown) -> Result<Self, StartupError> {
        let settings = &config.coordinator;
        let pool = sutazai_kit::postgres::connect_and_migrate(&config.postgres, SCHEMA, migrators()).await?;
        let redis = sutazai_kit::redis::connect(&config.redis).await?;
        let verifier = Arc::new(
            verifier_from_auth_url(
                &settings.auth_url,
                &config.token,
                Some(redis),
                RevocationKeys::new(&config.redis),
            )
            .map_err(|error| StartupError::Config(error.to_string()))?,
        );
        let amqp = AmqpClient::connect(config.amqp.clone(), shutdown.token()).await?;
        pipeline::coordinator_topology().declare(&amqp).await?;
        let store = PgStore::new(pool.clone());
        let outbox_waker = store.outbox_waker();
        let snapshot = store.load().await?;
        let limits = settings.limits();
        let configured = settings.default_strategy();
        let state = DispatchState::restore(limits, configured, snapshot, Utc::now());
        tracing::info!(
            pending = state.pending_len(),
            assigned = state.assigned_len(),
            agents = state.agents().count(),
            "dispatcher state restored"
        );
        let (dispatcher, handle) = Dispatcher::new(state, store, limits, configured);
        let mut health = HealthRegistry::new(shutdown.token());
        health.register("postgres", PostgresCheck(pool.clone()));
        health.register("rabbitmq", AmqpCheck(amqp.clone()));
        health.register("dispatcher", DispatcherCheck(handle.clone()));
        let router = sutazai_kit::server::service_router(axum::Router::new(), health, &config.http);
        let router = sutazai_kit::server::add_grpc_service(
            router,
            grpc::CoordinatorGrpc::into_service(handle.clone(), verifier),
        );
        let listener = sutazai_kit::server::bind(settings.listen).await?;
        Ok(Self {
            listener,
            router,
            grace: config.http.shutdown_grace(),
            dispatcher,
            handle,
            pool,
            amqp,
            prefetch: settings.prefetch,
            outbox_waker,
        })
    }

    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until shutdown, with the dispatcher, the two consumers, the outbox relay and the
    /// inbox janitor running beside.
    ///
    /// Shutdown order: the consumers stop taking deliveries and finish the ones in flight (the
    /// dispatcher still answers them), then the dispatcher stops, then the relay publishes what
    /// the last steps committed, then the broker connection closes. Everything runs on the
    /// shutdown tracker, so `Shutdown::wait_for_tasks` waits for all of it.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let tracker = shutdown.tracker();
        let token = shutdown.token();
        // Not children of the shutdown token: they stop after the consumers, in order.
        let dispatcher_stop = CancellationToken::new();
        let relay_stop = CancellationToken::new();
        let dispatcher_task = tracker.spawn(self.dispatcher.run(dispatcher_stop.clone()));
        let relay = OutboxRelay::new(self.pool.clone(), Publisher::new(self.amqp.clone()))
            .with_waker(self.outbox_waker);
        let relay_task = tracker.spawn(relay.run(relay_stop.clone()));
        let tasks = Consumer::new(
            self.amqp.clone(),
            pipeline::coordinator_tasks_queue(),
            TaskMessages { dispatcher: self.handle.clone() },
        )
        .with_prefetch(self.prefetch)
        .with_drain_timeout(CONSUMER_DRAIN_TIMEOUT);
        let agents = Consumer::new(
            self.amqp.clone(),
            pipeline::coordinator_agents_queue(),
            AgentMessages { dispatcher: self.handle.clone() },
        )
        .with_prefetch(self.prefetch)
        .with_drain_timeout(CONSUMER_DRAIN_TIMEOUT);
        tracker.spawn(store::janitor::run(self.pool.clone(), token.clone()));
        let tasks_task = tracker.spawn(tasks.run(token.clone()));
        let agents_task = tracker.spawn(agents.run(token.clone()));
        let pool = self.pool.clone();
        let amqp = self.amqp.clone();
        tracker.spawn(async move {
            // Join errors are panics already reported by the runtime; the order still holds.
            let _ = tasks_task.await;
            let _ = agents_task.await;
            dispatcher_stop.cancel();
            let _ = dispatcher_task.await;
            relay_stop.cancel();
            let _ = relay_task.await;
            flush_outbox(pool, amqp.clone()).await;
            amqp.close().await;
        });
        sutazai_kit::server::serve(self.listener, self.router, token, self.grace).await
    }
}

/// Publishes the outbox rows still unsent, for at most [`OUTBOX_FLUSH_TIMEOUT`].
async fn flush_outbox(pool: sqlx::PgPool, amqp: AmqpClient) {
    let relay = OutboxRelay::new(pool, Publisher::new(amqp));
    let flush = async {
        loop {
            match relay.relay_batch().await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "flushing the outbox at shutdown failed; the next start publishes it");
                    break;
                }
            }
        }
    };
    if tokio::time::timeout(OUTBOX_FLUSH_TIMEOUT, flush).await.is_err() {
        tracing::warn!("flushing the outbox at shutdown timed out; the next start publishes the rest");
    }
}
