//! Redis connections and key naming. A `ConnectionManager` reconnects by itself after the server
//! comes back; every key starts with the configured prefix plus the service's own prefix
//! (`gw:`, `auth:`), so deployments and tests can share a server.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisSettings;

/// Opens a reconnecting connection with the configured command timeout.
pub async fn connect(settings: &RedisSettings) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(settings.url.expose())?;
    let timeout = Duration::from_millis(settings.command_timeout_ms);
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config).await
}

/// Builds the keys of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    /// Keys under `<configured prefix><service prefix>`, e.g. `prod:` + `gw:`.
    pub fn new(settings: &RedisSettings, service_prefix: &str) -> Self {
        Self { prefix: format!("{}{service_prefix}", settings.key_prefix) }
    }

    /// The full key for `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The prefix itself, for SCAN patterns (`prefix*`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}
