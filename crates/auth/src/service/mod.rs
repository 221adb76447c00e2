//! The auth service's operations, free of HTTP and gRPC: each public method is one use case
//! (login, refresh, register, …) over Postgres, Redis and the key ring. The HTTP and gRPC adapters
//! call these and map `AuthError` once.

mod accounts;
mod api_keys;
mod audit;
mod clients;
mod mfa;
mod sessions;
mod throttle;
mod users;

pub use users::KNOWN_ROLES;

use std::net::IpAddr;
use std::time::Duration;

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use sutazai_kit::auth::{ACCESS_TOKEN_TYPE, AccessClaims, PrincipalKind, RevocationKeys};

pub use accounts::{NewUser, UserView};
pub use api_keys::{ApiKeyView, CreatedApiKey};
pub use audit::AuditEntry;
pub use clients::{CreatedServiceAccount, Introspection};
pub use mfa::MfaEnrollment;
pub use sessions::{LoginRequest, TokenPair};

use crate::domain::crypto_box::{SecretBox, derive_key};
use crate::error::AuthError;
use crate::keys::KeyRing;
use crate::settings::AuthSettings;

/// Scopes every user has.
pub const USER_SCOPES: [&str; 6] =
    ["chat", "tasks:read", "tasks:write", "vectors:read", "vectors:write", "agents:read"];

/// Who is acting and from where, for audit rows and throttling.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The acting principal's name, when authenticated.
    pub actor: Option<String>,
    /// The client's IP address as the edge determined it.
    pub client_ip: Option<IpAddr>,
}

/// The auth use cases.
#[derive(Clone)]
pub struct AuthService {
    pool: PgPool,
    redis: ConnectionManager,
    keys: KeyRing,
    settings: AuthSettings,
    revocation: RevocationKeys,
    redis_prefix: String,
    totp_box: SecretBox,
    refresh_key: [u8; 32],
    audit_log: sutazai_kit::audit::AuditLog,
    hashing: std::sync::Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AuthService").field("issuer", &self.settings.issuer).finish()
    }
}

/// Everything the service is built from.
#[derive(Debug)]
pub struct AuthServiceParts {
    /// Pool on the `auth` schema.
    pub pool: PgPool,
    /// Redis connection.
    pub redis: ConnectionManager,
    /// Redis settings (prefixes).
    pub redis_settings: sutazai_kit::config::RedisSettings,
    /// Signing keys.
    pub keys: KeyRing,
    /// Settings.
    pub settings: AuthSettings,
    /// The configured master key.
    pub master_key: String,
}

impl AuthService {
    /// Builds the service.
    pub fn new(parts: AuthServiceParts) -> Self {
        Self {
            revocation: RevocationKeys::new(&parts.redis_settings),
            redis_prefix: format!(
                "{}{}",
                parts.redis_settings.key_prefix,
                sutazai_kit::auth::AUTH_KEY_PREFIX
            ),
            totp_box: SecretBox::new(&parts.master_key, "totp-secrets"),
            refresh_key: derive_key(&parts.master_key, "refresh-successor"),
            audit_log: sutazai_kit::audit::AuditLog::new(parts.pool.clone()),
            hashing: std::sync::Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map(usize::from).unwrap_or(2),
            )),
            pool: parts.pool,
            redis: parts.redis,
            keys: parts.keys,
            settings: parts.settings,
        }
    }

    /// The key ring (JWKS, rotation).
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn redis_key(&self, name: &str) -> String {
        format!("{}{name}", self.redis_prefix)
    }

    /// Signs an access token for a subject.
    fn issue_access_token(&self, subject: AccessSubject<'_>) -> Result<(String, u64), AuthError> {
        let now = chrono::Utc::now().timestamp();
        let ttl_s = self.settings.access_token_ttl_s;
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: subject.subject.to_owned(),
            exp: now + i64::try_from(ttl_s).unwrap_or(i64::MAX / 2),
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            kind: subject.kind,
            name: subject.name.to_owned(),
            roles: subject.roles.to_vec(),
            scopes: subject.scopes.to_vec(),
            ver: subject.version,
            sid: subject.session_id.map(str::to_owned),
        };
        Ok((self.keys.sign(&claims)?, ttl_s))
    }

    /// Raises a subject's token version in Postgres' mirror in Redis, killing its earlier tokens.
    async fn publish_token_version(&self, subject: &str, version: i64) -> Result<(), AuthError> {
        let mut redis = self.redis.clone();
        // Kept for a day past the longest token life; a token older than that is expired anyway.
        let ttl_s = self.settings.access_token_ttl_s + 86_400;
        let () = redis::cmd("SET")
            .arg(self.revocation.token_version(subject))
            .arg(version)
            .arg("EX")
            .arg(ttl_s)
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Marks one access token revoked until it expires.
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), AuthError> {
        let remaining_s = (expires_at - chrono::Utc::now().timestamp()).max(1);
        let mut redis = self.redis.clone();
        let () = redis::cmd("SET")
            .arg(self.revocation.revoked_token(jti))
            .arg(1)
            .arg("EX")
            .arg(remaining_s)
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Runs CPU-heavy password hashing off the async workers, at most one per core at a time:
    /// each argon2 hash holds 19 MiB, so a flood of logins or registrations must queue rather
    /// than run hundreds of hashes (and gigabytes) at once.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self.hashing.acquire().await.map_err(AuthError::internal)?;
        tokio::task::spawn_blocking(work).await.map_err(AuthError::internal)
    }
}

/// What an access token is issued for.
struct AccessSubject<'a> {
    subject: &'a str,
    kind: PrincipalKind,
    name: &'a str,
    roles: &'a [String],
    scopes: &'a [String],
    version: u64,
    session_id: Option<&'a str>,
}

/// The lifetime of a refresh token.
fn refresh_ttl(settings: &AuthSettings) -> Duration {
    Duration::from_secs(settings.refresh_token_ttl_s)
}
