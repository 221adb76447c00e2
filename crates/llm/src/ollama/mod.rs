//! [`OllamaProvider`]: Ollama's native API — `POST /api/chat` (one JSON object, or NDJSON when
//! streaming), `POST /api/embed` and `GET /api/tags`.

mod wire;

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sutazai_kit::config::{ConnectionUrl, Secret};

use crate::error::LlmError;
use crate::http::{HttpTransport, decode_json};
use crate::lines::decode_chat_stream;
use crate::provider::LlmProvider;
use crate::types::{ChatRequest, ChatResponse, ChatStream, ModelInfo};
use wire::{ChatAnswer, ChatBody, EmbedAnswer, EmbedBody, NdjsonChatDecoder, TagsAnswer};

/// An Ollama server, e.g. `http://127.0.0.1:11434`.
#[derive(Debug)]
pub struct OllamaProvider {
    transport: HttpTransport,
}

impl OllamaProvider {
    /// A provider for the server at `base_url`. Ollama itself takes no key; `api_key` is sent
    /// as a bearer token for deployments that put an authenticating proxy in front of it.
    pub fn new(
        base_url: &ConnectionUrl,
        api_key: Option<Secret>,
        connect_timeout: Duration,
    ) -> Result<Self, LlmError> {
        Ok(Self { transport: HttpTransport::new(base_url, api_key, connect_timeout)? })
    }
}

impl LlmProvider for OllamaProvider {
    fn name(&self) -> &str {
        "ollama"
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        async move {
            let response = self.transport.get("/api/tags").await?;
            let tags: TagsAnswer = decode_json(response, "model list").await?;
            Ok(tags.into_models())
        }
        .boxed()
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        async move {
            let body = ChatBody::new(request, false);
            let response = self.transport.post_json("/api/chat", &body, Some(&request.model)).await?;
            let answer: ChatAnswer = decode_json(response, "chat answer").await?;
            answer.into_response()
        }
        .boxed()
    }

    fn chat_stream<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatStream, LlmError>> {
        async move {
            let body = ChatBody::new(request, true);
            let response = self.transport.post_json("/api/chat", &body, Some(&request.model)).await?;
            Ok(decode_chat_stream(response, NdjsonChatDecoder))
        }
        .boxed()
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        inputs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        async move {
            let body = EmbedBody { model, input: inputs };
            let response = self.transport.post_json("/api/embed", &body, Some(model)).await?;
            let answer: EmbedAnswer = decode_json(response, "embeddings").await?;
            if answer.embeddings.len() != inputs.len() {
                return Err(LlmError::internal(format!(
                    "ollama returned {} embeddings for {} inputs",
                    answer.embeddings.len(),
                    inputs.len()
                )));
            }
            Ok(answer.embeddings)
        }
        .boxed()
    }
}
