//! The LLM client of SutazAI: providers behind one [`LlmProvider`] trait — Ollama's native API
//! ([`OllamaProvider`]), any OpenAI-compatible server ([`OpenAiProvider`]) and the embedded
//! models that run in process ([`LocalProvider`]) — and the
//! [`LlmClient`] a service holds, which adds model validation, timeouts, retries, a Redis
//! response cache ([`ResponseCache`]) and bounded inference concurrency.
//!
//! Nothing here knows about axum or tonic: errors carry a [`sutazai_types::ServiceErrorCode`]
//! through [`LlmError::code`] and the service's transport layer maps it once.

mod cache;
mod client;
mod error;
mod http;
mod lines;
mod local;
mod ollama;
mod openai;
mod provider;
mod retry;
mod settings;
mod slots;
mod types;

pub use cache::{CacheStats, ResponseCache};
pub use client::{CachePolicy, ChatOutcome, LlmClient};
pub use error::LlmError;
pub use local::{FETCH_MODELS_COMMAND, LocalProvider, LocalSettings};
pub use ollama::OllamaProvider;
pub use openai::OpenAiProvider;
pub use provider::LlmProvider;
pub use settings::{LLM_DEFAULTS_TOML, LlmSettings, ProviderKind};
pub use slots::{InferencePermit, InferenceSlots, LocalSlots};
pub use types::{ChatChunk, ChatMessage, ChatRequest, ChatResponse, ChatRole, ChatStream, ModelInfo, Usage};
