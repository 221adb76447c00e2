//! Readiness of the LLM: the provider answers its model list (the kit checks RabbitMQ).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sutazai_kit::health::HealthCheck;
use sutazai_llm::LlmClient;

/// The LLM server answers.
pub(crate) struct LlmCheck(pub(crate) Arc<LlmClient>);

impl HealthCheck for LlmCheck {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.probe().await.map_err(|error| error.to_string()) })
    }
}
