//! Per-test isolation on the shared servers: a fresh Postgres database, a unique Redis key
//! prefix, a unique RabbitMQ name prefix.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sutazai_kit::config::{AmqpSettings, ConnectionUrl, HttpSettings, PostgresSettings, RedisSettings};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn postgres_admin_url() -> String {
    env_or("SUTAZAI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
}

/// The Redis URL tests use.
pub fn redis_url() -> String {
    env_or("SUTAZAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
}

/// The RabbitMQ URL tests use.
pub fn amqp_url() -> String {
    env_or("SUTAZAI_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// HTTP settings for tests: one allowed origin, a 64 KiB body limit, a 5 s timeout.
pub fn http_settings() -> HttpSettings {
    HttpSettings {
        cors_allowed_origins: vec!["http://localhost:3000".to_owned()],
        body_limit_bytes: 64 * 1024,
        request_timeout_ms: 5_000,
        shutdown_grace_ms: 2_000,
        trusted_proxies: Vec::new(),
    }
}

/// Databases older than this are left-overs of crashed test runs and are dropped.
const STALE_DATABASE_AGE: Duration = Duration::from_secs(2 * 3600);
const DATABASE_PREFIX: &str = "sutazai_test_";

/// A database of its own for one test, named `sutazai_test_<unix seconds>_<random>`.
#[derive(Debug)]
pub struct TestDatabase {
    /// The database name.
    pub name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database (and drops stale ones from crashed runs).
    pub async fn create() -> Self {
        let admin_url = postgres_admin_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("connect to test postgres at {admin_url}: {error}"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        drop_stale_databases(&mut admin, now).await;
        let name = format!("{DATABASE_PREFIX}{now}_{}", unique_suffix());
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("create database {name}: {error}"));
        let base = admin_url.rsplit_once('/').map(|(base, _)| base.to_owned()).unwrap_or(admin_url);
        Self { url: format!("{base}/{name}"), name }
    }

    /// Settings pointing a service at this database.
    pub fn settings(&self) -> PostgresSettings {
        PostgresSettings { url: ConnectionUrl::new(&self.url), max_connections: 5, acquire_timeout_ms: 5_000 }
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database (closing its connections).
    pub async fn drop_database(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
                .execute(&mut admin)
                .await;
        }
    }
}

async fn drop_stale_databases(admin: &mut sqlx::PgConnection, now: u64) {
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
        .bind(format!("{DATABASE_PREFIX}%"))
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix(DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|seconds| seconds.parse::<u64>().ok());
        if created.is_some_and(|created| now.saturating_sub(created) > STALE_DATABASE_AGE.as_secs()) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// A unique key prefix on the shared Redis.
#[derive(Debug, Clone)]
pub struct TestRedis {
    /// `test:<random>:`.
    pub key_prefix: String,
}

impl TestRedis {
    /// A fresh prefix.
    pub fn new() -> Self {
        Self { key_prefix: format!("test:{}:", unique_suffix()) }
    }

    /// Settings pointing a service at Redis with this prefix.
    pub fn settings(&self) -> RedisSettings {
        self.settings_with_url(&redis_url())
    }

    /// Settings with another URL (a [`crate::TcpProxy`] in front of Redis).
    pub fn settings_with_url(&self, url: &str) -> RedisSettings {
        RedisSettings {
            url: ConnectionUrl::new(url),
            key_prefix: self.key_prefix.clone(),
            command_timeout_ms: 1_000,
        }
    }

    /// Deletes every key under the prefix.
    pub async fn cleanup(&self) {
        let Ok(client) = redis::Client::open(redis_url()) else { return };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else { return };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.key_prefix))
            .query_async(&mut connection)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut connection).await;
        }
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

/// A unique exchange and queue name prefix on the shared RabbitMQ. Tests delete the topology
/// they declared (`Topology::delete`) when they finish.
#[derive(Debug, Clone)]
pub struct TestAmqp {
    /// `t<random>.`.
    pub name_prefix: String,
}

impl TestAmqp {
    /// A fresh prefix.
    pub fn new() -> Self {
        Self { name_prefix: format!("t{}.", unique_suffix()) }
    }

    /// Settings pointing a service at RabbitMQ with this prefix.
    pub fn settings(&self) -> AmqpSettings {
        AmqpSettings {
            url: ConnectionUrl::new(amqp_url()),
            name_prefix: self.name_prefix.clone(),
            prefetch: 10,
            reconnect_initial_ms: 100,
            reconnect_max_ms: 1_000,
        }
    }
}

impl Default for TestAmqp {
    fn default() -> Self {
        Self::new()
    }
}
