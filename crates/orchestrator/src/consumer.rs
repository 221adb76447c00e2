//! The results consumer: decodes messages of `orchestrator.results` and applies them.
//!
//! The queue has no delayed-retry tiers, so a handler failure would dead-letter the message.
//! A transient failure (Postgres down, or a transaction it aborted) is therefore retried here with
//! backoff while the delivery stays unacknowledged; at shutdown the handler stops retrying and never
//! returns, so the consumer abandons the delivery unacked after its drain timeout and the broker
//! redelivers it. Only a message that cannot be applied at all (no id, a bug) is dead-lettered.
//!
//! Postgres stores no NUL character in text or JSONB, so NULs in what an agent wrote (its error,
//! its result) are removed on decoding: the outcome is applied rather than refused by the store.

use std::time::Duration;

use serde_json::Value;
use sutazai_messaging::{DeliveryContext, HandlerError, MessageHandler};
use sutazai_types::messages::TaskMessage;
use tokio_util::sync::CancellationToken;

use crate::service::Orchestrator;
use crate::service::results::Applied;

/// First delay before applying a message again after a transient failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Longest delay between such tries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Applies assignments, waits and agent outcomes.
#[derive(Debug)]
pub(crate) struct ResultsHandler {
    orchestrator: Orchestrator,
    shutdown: CancellationToken,
}

impl ResultsHandler {
    pub(crate) fn new(orchestrator: Orchestrator, shutdown: CancellationToken) -> Self {
        Self { orchestrator, shutdown }
    }
}

impl MessageHandler for ResultsHandler {
    type Message = TaskMessage;

    /// Applies the batch in one transaction; when that fails (a message that cannot be applied,
    /// Postgres down, a deadlock with another batch), each message is applied on its own with
    /// the retries and dead-lettering of [`ResultsHandler::handle`].
    async fn handle_batch(
        &self,
        batch: Vec<(TaskMessage, DeliveryContext)>,
    ) -> Vec<Result<(), HandlerError>> {
        let mut reports = Vec::with_capacity(batch.len());
        for (position, (mut message, context)) in batch.iter().cloned().enumerate() {
            strip_nul_characters(&mut message);
            if let Some(message_id) = context.message_id {
                reports.push((position, message_id, message));
            }
        }
        if reports.len() == batch.len() {
            match self.orchestrator.apply_reports(reports).await {
                Ok(_) => return vec![Ok(()); batch.len()],
                Err(error) => {
                    tracing::warn!(%error, messages = batch.len(), "applying a batch failed; applying its reports one by one");
                }
            }
        }
        let handled = batch.into_iter().map(|(message, context)| self.handle(message, context));
        futures_util::future::join_all(handled).await
    }

    async fn handle(&self, mut message: TaskMessage, context: DeliveryContext) -> Result<(), HandlerError> {
        strip_nul_characters(&mut message);
        let Some(message_id) = context.message_id else {
            return Err(no_id());
        };
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            match self.orchestrator.apply_report(&message_id, message.clone()).await {
                Ok(Applied::NotAReport) => {
                    tracing::debug!(routing_key = %context.routing_key, "message is not a report, skipped");
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "applying a report failed, retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.shutdown.cancelled() => return std::future::pending().await,
                    }
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
                Err(error) => {
                    tracing::error!(%error, "report cannot be applied, dead-lettering it");
                    return Err(HandlerError::Permanent(error.to_string()));
                }
            }
        }
    }
}

fn no_id() -> HandlerError {
    HandlerError::Permanent("a message without an id cannot be applied once".to_owned())
}

/// Removes NUL characters from the text an agent supplied.
fn strip_nul_characters(message: &mut TaskMessage) {
    match message {
        TaskMessage::Failed(failed) => strip_nul(&mut failed.error),
        TaskMessage::Succeeded(succeeded) => strip_nul_in_json(&mut succeeded.result),
        TaskMessage::Ready(_)
        | TaskMessage::Assigned(_)
        | TaskMessage::Started(_)
        | TaskMessage::Cancelled(_)
        | TaskMessage::Waiting(_) => {}
    }
}

fn strip_nul(text: &mut String) {
    if text.contains('\0') {
        text.retain(|character| character != '\0');
    }
}

fn strip_nul_in_json(value: &mut Value) {
    match value {
        Value::String(text) => strip_nul(text),
        Value::Array(items) => items.iter_mut().for_each(strip_nul_in_json),
        Value::Object(fields) => {
            if fields.keys().any(|key| key.contains('\0')) {
                let entries = std::mem::take(fields);
                for (mut key, field) in entries {
                    strip_nul(&mut key);
                    fields.insert(key, field);
                }
            }
            fields.values_mut().for_each(strip_nul_in_json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use sutazai_types::messages::{TaskFailed, TaskSucceeded};
    use sutazai_types::{AgentId, TaskId};

    use super::*;

    #[test]
    fn nul_characters_of_agents_are_removed() {
        let (task_id, agent_id) = (TaskId::new(), AgentId::new());
        let mut failed = TaskMessage::Failed(TaskFailed {
            task_id,
            attempt: 1,
            agent_id,
            error: "bad\0 byte".to_owned(),
            retryable: false,
            finished_at: Utc::now(),
        });
        strip_nul_characters(&mut failed);
        assert!(matches!(&failed, TaskMessage::Failed(failed) if failed.error == "bad byte"));
        let mut succeeded = TaskMessage::Succeeded(TaskSucceeded {
            task_id,
            attempt: 1,
            agent_id,
            result: json!({"output": ["a\0b", {"k\0ey": "v\0"}], "n": 1}),
            finished_at: Utc::now(),
        });
        strip_nul_characters(&mut succeeded);
        let TaskMessage::Succeeded(succeeded) = succeeded else { unreachable!() };
        assert_eq!(succeeded.result, json!({"output": ["ab", {"key": "v"}], "n": 1}));
    }
}
