//! Integration tests of the LLM client against the fake Ollama (both its native API and its
//! OpenAI-compatible layer) and the real Redis: one binary, one module per concern.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod cache;
mod chat;
mod failures;
mod local;
mod models;

use std::time::Duration;

use sutazai_kit::config::ConnectionUrl;
use sutazai_llm::{ChatMessage, ChatRequest, LlmClient, LlmSettings, ProviderKind};
use sutazai_testkit::fake_ollama::FakeOllama;

/// The chat model every test installs and configures as the default.
const CHAT_MODEL: &str = "llama3.2:1b";
/// The embedding model every test installs.
const EMBEDDING_MODEL: &str = "all-minilm:latest";

/// Which of the fake's two APIs a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Ollama,
    OpenAi,
}

/// Every test that can runs once per protocol.
const PROTOCOLS: [Protocol; 2] = [Protocol::Ollama, Protocol::OpenAi];

impl Protocol {
    fn base_url(self, fake: &FakeOllama) -> String {
        match self {
            Self::Ollama => fake.base_url(),
            Self::OpenAi => format!("{}/v1", fake.base_url()),
        }
    }

    fn kind(self) -> ProviderKind {
        match self {
            Self::Ollama => ProviderKind::Ollama,
            Self::OpenAi => ProviderKind::Openai,
        }
    }

    /// The path of a chat request on the fake.
    fn chat_path(self) -> &'static str {
        match self {
            Self::Ollama => "/api/chat",
            Self::OpenAi => "/v1/chat/completions",
        }
    }

    /// The path of a model-list request on the fake.
    fn models_path(self) -> &'static str {
        match self {
            Self::Ollama => "/api/tags",
            Self::OpenAi => "/v1/models",
        }
    }
}

/// Settings with short timeouts and delays, so failure tests finish quickly.
fn settings(protocol: Protocol, base_url: &str) -> LlmSettings {
    LlmSettings {
        provider: protocol.kind(),
        base_url: ConnectionUrl::new(base_url),
        api_key: None,
        default_model: CHAT_MODEL.to_owned(),
        request_timeout_ms: 5_000,
        connect_timeout_ms: 500,
        max_retries: 2,
        retry_base_delay_ms: 20,
        retry_max_delay_ms: 3_000,
        model_list_ttl_s: 30,
        cache_ttl_s: 60,
        max_concurrent_requests: 4,
        local: sutazai_llm::LocalSettings::default(),
    }
}

/// A fake Ollama with the chat and embedding models installed.
async fn fake_with_models() -> FakeOllama {
    sutazai_testkit::init_tracing();
    let fake = FakeOllama::start().await;
    fake.add_model(CHAT_MODEL);
    fake.add_model(EMBEDDING_MODEL);
    fake
}

fn client(protocol: Protocol, fake: &FakeOllama) -> LlmClient {
    LlmClient::from_settings(&settings(protocol, &protocol.base_url(fake))).unwrap()
}

/// A one-turn request for the default model.
fn user_request(text: &str) -> ChatRequest {
    ChatRequest::new("", vec![ChatMessage::user(text)])
}

/// How many requests reached `path` on the fake.
fn requests_to(fake: &FakeOllama, path: &str) -> usize {
    fake.requests().iter().filter(|request| request.path == path).count()
}

/// A port nothing listens on: bound, read, then released.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    // Give the kernel a moment to release the port before a client connects to it.
    tokio::time::sleep(Duration::from_millis(10)).await;
    format!("http://{address}")
}
