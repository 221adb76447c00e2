//! `sutazai-vector`: the vector service (role `vector`, port 10103). Named collections of vectors
//! with caller ids and JSON payloads, searched through the `sutazai-vector-index` engine (Flat,
//! IVF, HNSW; L2, inner product, cosine) with payload filters, made durable by a write-ahead log
//! per collection (group-committed, fsynced before an answer) and snapshots. gRPC
//! `sutazai.v1.VectorService` plus `/livez`, `/readyz` and `/metrics`, on one listener; the
//! gateway serves the public REST routes over it.

pub mod domain;
mod error;
mod grpc;
mod metrics;
pub mod settings;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sutazai_kit::auth::{RevocationKeys, VerifierSettings, verifier_from_auth_url};
use sutazai_kit::config::{HttpSettings, RedisSettings};
use sutazai_kit::health::{HealthCheck, HealthRegistry, RedisCheck};
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::{LlmClient, LlmSettings};
use tokio::net::TcpListener;

pub use error::{StoreError, VectorError};
pub use settings::{VECTOR_DEFAULTS_TOML, VectorSettings};

use crate::domain::collections::Collections;
use crate::domain::documents::Embedder;
use crate::domain::service::{Limits, VectorService};

/// Everything the vector role needs from the configuration.
#[derive(Debug, Clone)]
pub struct VectorConfig {
    /// `[vector]`.
    pub vector: VectorSettings,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[redis]`: token revocations.
    pub redis: RedisSettings,
    /// How tokens are verified (the `[auth]` issuer and audience).
    pub token: VerifierSettings,
    /// `[llm]`: the provider documents are embedded with.
    pub llm: LlmSettings,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Redis could not be reached.
    #[error("connect to redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The token verifier or the LLM client could not be built from the configuration.
    #[error("{0}")]
    Config(String),
    /// The data directory could not be opened or a collection could not be loaded (the cause
    /// names the file).
    #[error("load collections")]
    Load(#[source] VectorError),
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] sutazai_kit::server::BindError),
}

/// The running vector role.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
    service: VectorService,
}

impl Application {
    /// Connects to Redis, opens the data directory (loading every collection: snapshot, then log
    /// replay), and binds the listener.
    pub async fn build(config: VectorConfig, shutdown: &Shutdown) -> Result<Self, StartupError> {
        let redis = sutazai_kit::redis::connect(&config.redis).await?;
        let verifier = Arc::new(
            verifier_from_auth_url(
                &config.vector.auth_url,
                &config.token,
                Some(redis.clone()),
                RevocationKeys::new(&config.redis),
            )
            .map_err(|error| StartupError::Config(error.to_string()))?,
        );
        let llm = LlmClient::connect(&config.llm)
            .await
            .map_err(|error| StartupError::Config(format!("llm: {error}")))?;
        let collections = Arc::new(
            Collections::open(
                &config.vector.data_dir,
                config.vector.snapshot_log_bytes,
                shutdown.tracker().clone(),
            )
            .await
            .map_err(StartupError::Load)?,
        );
        let embedder = Embedder::new(
            Arc::new(llm),
            config.vector.embedding_model.clone(),
            config.vector.embedding_batch_size,
        );
        let limits = Limits {
            max_batch_points: config.vector.max_batch_points,
            max_search_queries: config.vector.max_search_queries,
        };
        let service = VectorService::new(Arc::clone(&collections), embedder, limits);
        let mut health = HealthRegistry::new(shutdown.token());
        health.register("redis", RedisCheck(redis));
        health.register("storage", StorageCheck(collections));
        let router = sutazai_kit::server::service_router(axum::Router::new(), health, &config.http);
        let router = sutazai_kit::server::add_grpc_service(
            router,
            grpc::VectorGrpc::into_service(service.clone(), verifier, config.vector.max_message_bytes),
        );
        let address = config.vector.listen;
        let listener = sutazai_kit::server::bind(address).await?;
        Ok(Self { listener, router, grace: config.http.shutdown_grace(), service })
    }

    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The use cases, for tests and tools in the same process.
    pub fn service(&self) -> &VectorService {
        &self.service
    }

    /// Serves until shutdown. Each collection's writer stops once the last request that could
    /// queue a write is gone, after logging what was queued; writers run on the shutdown
    /// tracker, so the process waits for them. The data directory's lock is released with the
    /// router, when serving ends.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        // The router holds its own handle on the collections; this one must not keep the data
        // directory locked after serving ends.
        let Self { listener, router, grace, service: _ } = self;
        sutazai_kit::server::serve(listener, router, shutdown.token(), grace).await
    }
}

/// Readiness of the data directory: every collection can still write its log.
#[derive(Debug)]
struct StorageCheck(Arc<Collections>);

impl HealthCheck for StorageCheck {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let root = self.0.root();
            if !root.is_dir() {
                return Err(format!("data directory {} is gone", root.display()));
            }
            let failed = self.0.failed();
            if failed.is_empty() {
                return Ok(());
            }
            Err(format!("log writes failed for: {}", failed.join(", ")))
        })
    }
}
