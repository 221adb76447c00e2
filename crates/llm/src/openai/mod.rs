//! [`OpenAiProvider`]: any server speaking the OpenAI API — `POST /chat/completions` (whole, or
//! server-sent events with `stream: true`), `POST /embeddings` and `GET /models` — including
//! Ollama's own compatibility endpoints under `/v1`.

mod sse;
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
use sse::SseChatDecoder;
use wire::{ChatCompletion, ChatCompletionBody, EmbeddingList, EmbeddingsBody, ModelList};

/// An OpenAI-compatible server. As with the official SDKs, `base_url` includes the version
/// prefix: `https://api.openai.com/v1`, or `http://127.0.0.1:11434/v1` for Ollama.
#[derive(Debug)]
pub struct OpenAiProvider {
    transport: HttpTransport,
}

impl OpenAiProvider {
    /// A provider for the server at `base_url`, sending `api_key` as a bearer token when set.
    pub fn new(
        base_url: &ConnectionUrl,
        api_key: Option<Secret>,
        connect_timeout: Duration,
    ) -> Result<Self, LlmError> {
        Ok(Self { transport: HttpTransport::new(base_url, api_key, connect_timeout)? })
    }
}

impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        async move {
            let response = self.transport.get("/models").await?;
            let list: ModelList = decode_json(response, "model list").await?;
            Ok(list.into_models())
        }
        .boxed()
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        async move {
            let body = ChatCompletionBody::new(request, false);
            let response = self.transport.post_json("/chat/completions", &body, Some(&request.model)).await?;
            let completion: ChatCompletion = decode_json(response, "chat completion").await?;
            completion.into_response()
        }
        .boxed()
    }

    fn chat_stream<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatStream, LlmError>> {
        async move {
            let body = ChatCompletionBody::new(request, true);
            let response = self.transport.post_json("/chat/completions", &body, Some(&request.model)).await?;
            Ok(decode_chat_stream(response, SseChatDecoder::default()))
        }
        .boxed()
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        inputs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        async move {
            let body = EmbeddingsBody { model, input: inputs, encoding_format: "float" };
            let response = self.transport.post_json("/embeddings", &body, Some(model)).await?;
            let list: EmbeddingList = decode_json(response, "embeddings").await?;
            list.into_vectors(inputs.len())
        }
        .boxed()
    }
}
