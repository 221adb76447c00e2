//! [`LlmProvider`]: the one trait every backend implements (Ollama, OpenAI-compatible, and the
//! embedded `local` provider of issue 9).
//!
//! A provider does a single attempt of each operation and reports what happened; timeouts,
//! retries, model validation, caching and concurrency limits belong to [`crate::LlmClient`], so
//! every provider gets them the same way. Methods return boxed futures so the trait stays
//! object-safe (`Arc<dyn LlmProvider>`) without an `async-trait` dependency; an in-process
//! provider can run its inference on the blocking pool inside those futures.

use std::fmt;

use futures_util::future::BoxFuture;

use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse, ChatStream, ModelInfo};

/// A backend that lists models, chats (whole or streamed) and embeds text.
pub trait LlmProvider: Send + Sync + fmt::Debug {
    /// Short name for logs, metrics and health output (`ollama`, `openai`, `local`).
    fn name(&self) -> &str;

    /// Every model the backend can serve right now.
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>>;

    /// The whole answer to `request`, whose `model` is already resolved.
    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse, LlmError>>;

    /// The answer to `request` as a stream; the future resolves once the backend has accepted
    /// the request (for HTTP providers: a 200 status), so a failure before the first token is
    /// an `Err` here and can be retried, while a failure later is an `Err` item of the stream.
    fn chat_stream<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatStream, LlmError>>;

    /// One embedding vector per input, in input order.
    fn embed<'a>(
        &'a self,
        model: &'a str,
        inputs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>>;
}
