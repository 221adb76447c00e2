//! `sutazai-hardware`: host metrics, storage analysis under allowed roots, and safe cleanups
//! (role `hardware`, port 11110). gRPC `sutazai.v1.HardwareService` plus `/livez`, `/readyz` and
//! `/metrics` on one listener.
//!
//! Safety is the point of this crate. Every request path passes one gate
//! ([`domain::paths::AllowedRoots::resolve`]) before anything is read; scans never follow
//! symlinks or cross filesystems; every cleanup is a dry run unless `dry_run` is explicitly
//! false; a real cleanup moves files into a quarantine, restorable by id, instead of deleting
//! them; and every cleanup and restore is audited. No Postgres: the quarantine is a directory
//! with a manifest entry per file. Redis is used only to check token revocations.

pub mod audit;
pub mod docker;
pub mod domain;
mod error;
mod gauges;
mod grpc;
pub mod service;
pub mod settings;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sutazai_kit::auth::{RevocationKeys, TokenVerifier, VerifierSettings, verifier_from_auth_url};
use sutazai_kit::config::{HttpSettings, RedisSettings};
use sutazai_kit::health::{HealthRegistry, RedisCheck};
use sutazai_kit::shutdown::Shutdown;
use tokio::net::TcpListener;

pub use error::HardwareError;
pub use service::{HardwareService, ServiceSetupError};
pub use settings::HardwareSettings;

use crate::domain::host::REFRESH_INTERVAL;

/// How often expired quarantine entries are purged, at most (a shorter TTL purges more often).
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Everything the hardware role needs from the configuration.
#[derive(Debug, Clone)]
pub struct HardwareConfig {
    /// `[hardware]`.
    pub hardware: HardwareSettings,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[redis]`: token revocations only.
    pub redis: RedisSettings,
    /// How callers' access tokens are verified (issuer and audience of the auth service).
    pub token: VerifierSettings,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The quarantine, the roots or the host sampler could not be set up.
    #[error(transparent)]
    Service(#[from] ServiceSetupError),
    /// Redis could not be reached.
    #[error("connect to redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The setup task died.
    #[error("setup task: {0}")]
    SetupTask(String),
    /// The token verifier could not be built.
    #[error("token verifier: {0}")]
    Verifier(String),
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] sutazai_kit::server::BindError),
}

/// The running hardware role.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
    service: HardwareService,
    purge_interval: Duration,
}

impl Application {
    /// Opens the quarantine, resolves the allowed roots, connects to Redis and binds.
    pub async fn build(config: HardwareConfig, shutdown: &Shutdown) -> Result<Self, StartupError> {
        let settings = config.hardware.clone();
        let purge_interval = settings.quarantine_ttl().min(PURGE_INTERVAL);
        let service = tokio::task::spawn_blocking(move || HardwareService::new(settings))
            .await
            .map_err(|error| StartupError::SetupTask(error.to_string()))??;
        for root in service.allowed_roots() {
            tracing::info!(root = %root.display(), "allowed root");
        }
        let redis = sutazai_kit::redis::connect(&config.redis).await?;
        let verifier: Arc<TokenVerifier> = Arc::new(
            verifier_from_auth_url(
                &config.hardware.auth_url,
                &config.token,
                Some(redis.clone()),
                RevocationKeys::new(&config.redis),
            )
            .map_err(|error| StartupError::Verifier(error.to_string()))?,
        );
        let mut health = HealthRegistry::new(shutdown.token());
        health.register("redis", RedisCheck(redis));
        let router = sutazai_kit::server::service_router(axum::Router::new(), health, &config.http);
        let router = sutazai_kit::server::add_grpc_service(
            router,
            grpc::HardwareGrpc::into_service(service.clone(), verifier),
        );
        let address = config.hardware.listen;
        let listener = sutazai_kit::server::bind(address).await?;
        Ok(Self { listener, router, grace: config.http.shutdown_grace(), service, purge_interval })
    }

    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The use cases, for the CLI and tests.
    pub fn service(&self) -> &HardwareService {
        &self.service
    }

    /// Serves until shutdown, refreshing the host sampler and purging the quarantine meanwhile.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let sampler_service = self.service.clone();
        let sampler_stop = shutdown.token();
        shutdown.tracker().spawn(async move {
            let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        if let Err(error) = sampler_service.refresh_sampler().await {
                            tracing::warn!(%error, "refreshing host metrics failed");
                        }
                    }
                    () = sampler_stop.cancelled() => break,
                }
            }
        });
        let purge_service = self.service.clone();
        let purge_stop = shutdown.token();
        let purge_interval = self.purge_interval;
        shutdown.tracker().spawn(async move {
            let mut ticks = tokio::time::interval(purge_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => match purge_service.purge_quarantine().await {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "purged expired quarantine entries"),
                        Err(error) => tracing::error!(%error, "purging the quarantine failed"),
                    },
                    () = purge_stop.cancelled() => break,
                }
            }
        });
        sutazai_kit::server::serve(self.listener, self.router, shutdown.token(), self.grace).await
    }
}
