//! `sutazai-auth`: users, rotating refresh tokens, JWKS, service accounts, MFA, lockout and audit
//! (role `auth`, port 10054). REST per API.md "Auth", gRPC `sutazai.v1.AuthService` for the other
//! services, on one listener.

pub mod domain;
mod error;
mod grpc;
mod http;
pub mod keys;
pub mod service;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sutazai_kit::auth::{RevocationKeys, TokenVerifier, VerifierSettings};
use sutazai_kit::config::{HttpSettings, PostgresSettings, RedisSettings, Secret};
use sutazai_kit::health::{HealthRegistry, PostgresCheck, RedisCheck};
use sutazai_kit::shutdown::Shutdown;
use tokio::net::TcpListener;

pub use error::AuthError;
pub use service::{
    AuthService, AuthServiceParts, LoginRequest, NewUser, RequestContext, TokenPair, UserView,
};
pub use settings::{AuthSettings, SigningAlgorithm};

use crate::domain::crypto_box::SecretBox;
use crate::keys::KeyRing;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "auth";

/// The HTTP paths this service serves, as axum templates (`{id}` for a parameter): what a proxy in
/// front of it (Kong) may route here.
pub fn http_route_paths() -> Vec<&'static str> {
    http::route_paths()
}

/// How often keys are re-read, so a rotation by `sutazai auth rotate-keys` in another process is
/// served within this time.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// Everything the auth role needs from the configuration.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[postgres]`.
    pub postgres: PostgresSettings,
    /// `[redis]`.
    pub redis: RedisSettings,
    /// `security.master_key`: encrypts signing keys and TOTP secrets at rest.
    pub master_key: Option<Secret>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// No key-encryption secret is configured.
    #[error("security.master_key is required to encrypt signing keys at rest")]
    MissingMasterKey,
    /// Postgres could not be prepared.
    #[error(transparent)]
    Database(#[from] sutazai_kit::postgres::DatabaseError),
    /// Redis could not be reached.
    #[error("connect to redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Keys could not be loaded or created.
    #[error("signing keys: {0}")]
    Keys(#[from] AuthError),
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] sutazai_kit::server::BindError),
}

/// The running auth role.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    keys: KeyRing,
    grace: Duration,
    service: AuthService,
}

/// Migrates the schema (for `sutazai migrate`).
pub async fn migrate(postgres: &PostgresSettings) -> Result<(), sutazai_kit::postgres::DatabaseError> {
    sutazai_kit::postgres::migrate(postgres, SCHEMA, migrators()).await
}

/// Makes sure the service account `client_id` exists, active, with exactly `secret` and `scopes`
/// (created, or its secret and scopes replaced). For platform bootstrap: `sutazai up` gives its
/// agent workers their account this way, from the secret `make up` generated, so no admin has
/// to create one by hand. Only the secret's hash is stored.
pub async fn ensure_service_account(
    postgres: &PostgresSettings,
    client_id: &str,
    secret: &str,
    scopes: &[String],
) -> Result<(), sutazai_kit::postgres::DatabaseError> {
    let pool = sutazai_kit::postgres::connect_and_migrate(postgres, SCHEMA, migrators()).await?;
    let upsert = sqlx::query(
        "INSERT INTO service_accounts (client_id, secret_hash, scopes) VALUES ($1, $2, $3)
         ON CONFLICT (client_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, scopes = EXCLUDED.scopes, active = true",
    )
    .bind(client_id)
    .bind(domain::secrets::token_hash(secret))
    .bind(scopes)
    .execute(&pool)
    .await;
    pool.close().await;
    upsert.map(|_| ()).map_err(sutazai_kit::postgres::DatabaseError::from)
}

/// The migrations of this service's schema: its own and the kit's audit log.
fn migrators() -> Vec<sqlx::migrate::Migrator> {
    vec![sqlx::migrate!("./migrations"), sutazai_kit::audit::migrator()]
}

impl Application {
    /// Connects, migrates, loads keys and binds the listener.
    pub async fn build(config: AuthConfig, shutdown: &Shutdown) -> Result<Self, StartupError> {
        let master_key =
            config.master_key.as_ref().ok_or(StartupError::MissingMasterKey)?.expose().to_owned();
        let pool = sutazai_kit::postgres::connect_and_migrate(&config.postgres, SCHEMA, migrators()).await?;
        let redis = sutazai_kit::redis::connect(&config.redis).await?;
        let publish_retired_for = config.auth.access_token_ttl() + Duration::from_secs(300);
        let keys = KeyRing::load(
            pool.clone(),
            SecretBox::new(&master_key, "signing-keys"),
            config.auth.signing_algorithm,
            publish_retired_for,
        )
        .await?;
        let verifier = Arc::new(TokenVerifier::new(
            VerifierSettings::new(config.auth.issuer.clone(), config.auth.audience.clone()),
            keys.key_source(),
            Some(redis.clone()),
            RevocationKeys::new(&config.redis),
        ));
        let service = AuthService::new(AuthServiceParts {
            pool: pool.clone(),
            redis: redis.clone(),
            redis_settings: config.redis.clone(),
            keys: keys.clone(),
            settings: config.auth.clone(),
            master_key,
        });
        let mut health = HealthRegistry::new(shutdown.token());
        health.register("postgres", PostgresCheck(pool));
        health.register("redis", RedisCheck(redis));
        let state = http::AppState { service: service.clone(), verifier };
        let router = sutazai_kit::server::service_router(http::routes(state.clone()), health, &config.http);
        let router = sutazai_kit::server::add_grpc_service(router, grpc::AuthGrpc::into_service(state));
        let address = config.auth.listen;
        let listener = sutazai_kit::server::bind(address).await?;
        Ok(Self { listener, router, keys, grace: config.http.shutdown_grace(), service })
    }

    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The use cases, for the CLI and tests.
    pub fn service(&self) -> &AuthService {
        &self.service
    }

    /// Serves until shutdown, reloading keys periodically.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let keys = self.keys.clone();
        let token = shutdown.token();
        shutdown.tracker().spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(KEY_RELOAD_INTERVAL) => {
                        if let Err(error) = keys.reload().await {
                            tracing::warn!(%error, "reloading signing keys failed");
                        }
                    }
                    () = token.cancelled() => break,
                }
            }
        });
        sutazai_kit::server::serve(self.listener, self.router, shutdown.token(), self.grace).await
    }
}
