//! The provider-neutral vocabulary of a chat: roles, messages, the request with its sampling
//! options, the answer with its token usage, stream items and model descriptions.

use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::LlmError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions that frame the conversation.
    System,
    /// The person (or program) asking.
    User,
    /// The model.
    Assistant,
}

impl ChatRole {
    /// The wire name shared by Ollama and the OpenAI API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: ChatRole,
    /// The text, verbatim (whitespace and newlines are significant).
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: ChatRole::System, content: content.into() }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: ChatRole::User, content: content.into() }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: ChatRole::Assistant, content: content.into() }
    }
}

/// A chat completion request.
///
/// An empty (or blank) `model` asks [`crate::LlmClient`] for its configured default model;
/// providers themselves always receive a resolved name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name as the provider lists it (`llama3.2:1b`); empty for the default model.
    pub model: String,
    /// The conversation so far, oldest first; must not be empty.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature; the provider's default when `None`.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass; the provider's default when `None`.
    pub top_p: Option<f32>,
    /// Sample only among the `top_k` likeliest tokens (0 = no limit); the provider's default
    /// when `None`. Ollama and the embedded models honour it; the OpenAI API has no such option.
    pub top_k: Option<u32>,
    /// Largest number of tokens to generate (Ollama's `num_predict`).
    pub max_tokens: Option<u32>,
    /// Sampling seed, for reproducible answers.
    pub seed: Option<u64>,
    /// Strings that end the generation when produced.
    pub stop: Vec<String>,
}

impl ChatRequest {
    /// A request with the provider's default sampling options.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self { model: model.into(), messages, ..Self::default() }
    }
}

/// Token counts as the provider reported them (zero when it reported none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

/// A whole chat answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The assistant's message.
    pub message: ChatMessage,
    /// The model that answered, as the provider named it.
    pub model: String,
    /// Token counts.
    pub usage: Usage,
    /// Why generation stopped: `stop` (natural end or a stop string), `length` (`max_tokens`),
    /// or whatever other reason the provider gave.
    pub finish_reason: String,
}

/// One item of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatChunk {
    /// The next piece of the answer's text; pieces concatenate to the whole answer.
    Delta(String),
    /// The answer is complete; always the last item of a successful stream.
    Done {
        /// Token counts.
        usage: Usage,
        /// Why generation stopped (see [`ChatResponse::finish_reason`]).
        finish_reason: String,
    },
}

/// A streamed answer: deltas, then exactly one [`ChatChunk::Done`], or an error that ends it.
pub type ChatStream = BoxStream<'static, Result<ChatChunk, LlmError>>;

/// A model the provider can serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name to put in a request.
    pub name: String,
    /// Size on disk, when the provider tells it (Ollama does, the OpenAI API does not).
    pub size_bytes: Option<u64>,
    /// Architecture family (`llama`, `bert`), when the provider tells it.
    pub family: Option<String>,
}
