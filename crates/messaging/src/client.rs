//! The broker connection: opened with exponential backoff, re-opened on demand when it drops, and
//! checked by readiness. Channels are cheap and handed out per user (publisher, each consumer), so
//! a channel-level error (a failed declare) never takes the others down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lapin::{Channel, Connection, ConnectionProperties};
use rand::Rng;
use sutazai_kit::config::AmqpSettings;
use sutazai_kit::health::HealthCheck;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Failures talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// The broker could not be reached or refused an operation.
    #[error("amqp: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker ended a consumer (its queue was deleted or the channel closed).
    #[error("consumer ended by the broker")]
    ConsumerEnded,
    /// Shutdown started while waiting for the broker.
    #[error("shutting down")]
    ShuttingDown,
}

/// A shared, reconnecting connection to RabbitMQ.
#[derive(Clone)]
pub struct AmqpClient {
    settings: Arc<AmqpSettings>,
    connection: Arc<Mutex<Option<Connection>>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for AmqpClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AmqpClient").field("url", &self.settings.url).finish()
    }
}

impl AmqpClient {
    /// Connects, retrying with backoff until the broker answers or `shutdown` fires.
    pub async fn connect(settings: AmqpSettings, shutdown: CancellationToken) -> Result<Self, AmqpError> {
        let client = Self { settings: Arc::new(settings), connection: Arc::new(Mutex::new(None)), shutdown };
        client.channel().await?;
        Ok(client)
    }

    /// The settings the client was built with.
    pub fn settings(&self) -> &AmqpSettings {
        &self.settings
    }

    /// Applies the configured name prefix (tests share one broker by prefix). The default
    /// exchange (`""`) keeps its empty name.
    pub fn name(&self, name: &str) -> String {
        if name.is_empty() { String::new() } else { format!("{}{name}", self.settings.name_prefix) }
    }

    /// Opens a channel, reconnecting first if the connection is gone.
    pub async fn channel(&self) -> Result<Channel, AmqpError> {
        let mut guard = self.connection.lock().await;
        if let Some(connection) = guard.as_ref()
            && connection.status().connected()
        {
            match connection.create_channel().await {
                Ok(channel) => return Ok(channel),
                Err(error) => tracing::warn!(%error, "amqp channel failed, reconnecting"),
            }
        }
        let connection = self.connect_with_backoff().await?;
        let channel = connection.create_channel().await?;
        *guard = Some(connection);
        Ok(channel)
    }

    async fn connect_with_backoff(&self) -> Result<Connection, AmqpError> {
        let mut delay = Duration::from_millis(self.settings.reconnect_initial_ms);
        let max_delay = Duration::from_millis(self.settings.reconnect_max_ms);
        loop {
            let properties = ConnectionProperties::default().with_connection_name("sutazai".into());
            match Connection::connect(self.settings.url.expose(), properties).await {
                Ok(connection) => {
                    tracing::info!(url = %self.settings.url.redacted(), "connected to rabbitmq");
                    return Ok(connection);
                }
                Err(error) => {
                    // Full jitter keeps many services from reconnecting in lockstep after an outage.
                    let jittered = rand::rng().random_range(delay / 2..=delay);
                    tracing::warn!(%error, retry_in_ms = jittered.as_millis() as u64, "rabbitmq unreachable");
                    tokio::select! {
                        () = tokio::time::sleep(jittered) => {},
                        () = self.shutdown.cancelled() => return Err(AmqpError::ShuttingDown),
                    }
                    delay = (delay * 2).min(max_delay);
                }
            }
        }
    }

    /// Closes the connection (at shutdown, after consumers stopped).
    pub async fn close(&self) {
        if let Some(connection) = self.connection.lock().await.take()
            && let Err(error) = connection.close(200, "shutdown".into()).await
        {
            tracing::debug!(%error, "closing rabbitmq connection");
        }
    }

    /// Whether the current connection is open, without I/O.
    pub async fn is_connected(&self) -> bool {
        self.connection.lock().await.as_ref().is_some_and(|connection| connection.status().connected())
    }
}

/// Readiness check: the connection is open and a channel can be opened and closed on it.
#[derive(Debug, Clone)]
pub struct AmqpCheck(pub AmqpClient);

impl HealthCheck for AmqpCheck {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let guard = self.0.connection.lock().await;
            let Some(connection) = guard.as_ref().filter(|connection| connection.status().connected()) else {
                return Err("not connected".to_owned());
            };
            let channel =
                connection.create_channel().await.map_err(|_| "cannot open a channel".to_owned())?;
            channel.close(200, "health check".into()).await.map_err(|_| "cannot close a channel".to_owned())
        })
    }
}
