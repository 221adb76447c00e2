//! The OpenAI API's JSON for `/chat/completions` (request, whole answer, stream chunk),
//! `/models` and `/embeddings`.

use serde::{Deserialize, Serialize};

use crate::error::LlmError;
use crate::types::{ChatMessage, ChatRequest, ChatResponse, ModelInfo, Usage};

#[derive(Debug, Serialize)]
pub(super) struct ChatCompletionBody<'a> {
    model: &'a str,
    /// `{"role", "content"}` objects: `ChatMessage` serializes exactly as both APIs spell it.
    messages: &'a [ChatMessage],
    stream: bool,
    /// Asks for a final usage chunk when streaming; without it the token counts are unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl<'a> ChatCompletionBody<'a> {
    pub(super) fn new(request: &'a ChatRequest, stream: bool) -> Self {
        Self {
            model: &request.model,
            messages: &request.messages,
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
            temperature: request.temperature,
            top_p: request.top_p,
            max_tokens: request.max_tokens,
            seed: request.seed,
            stop: &request.stop,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl From<&WireUsage> for Usage {
    fn from(usage: &WireUsage) -> Self {
        Self { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens }
    }
}

/// A `chat.completion` object.
#[derive(Debug, Deserialize)]
pub(super) struct ChatCompletion {
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    /// `null` when the model answered only with tool calls.
    #[serde(default)]
    content: Option<String>,
}

impl ChatCompletion {
    pub(super) fn into_response(self) -> Result<ChatResponse, LlmError> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(LlmError::internal("the chat completion has no choices"));
        };
        let content = choice.message.and_then(|message| message.content).unwrap_or_default();
        Ok(ChatResponse {
            message: ChatMessage::assistant(content),
            model: self.model,
            usage: self.usage.as_ref().map(Usage::from).unwrap_or_default(),
            finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".to_owned()),
        })
    }
}

/// A `chat.completion.chunk` object: one server-sent event of a stream.
#[derive(Debug, Deserialize)]
pub(super) struct ChatCompletionChunk {
    #[serde(default)]
    pub(super) choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChunkChoice {
    #[serde(default)]
    pub(super) delta: Option<Delta>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Delta {
    #[serde(default)]
    pub(super) content: Option<String>,
}

/// `GET /models`; Ollama sends `"data": null` when no model is installed.
#[derive(Debug, Deserialize)]
pub(super) struct ModelList {
    #[serde(default)]
    data: Option<Vec<ModelEntry>>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
}

impl ModelList {
    pub(super) fn into_models(self) -> Vec<ModelInfo> {
        let entries = self.data.unwrap_or_default();
        let mut models = Vec::with_capacity(entries.len());
        for entry in entries {
            models.push(ModelInfo { name: entry.id, size_bytes: None, family: None });
        }
        models
    }
}

#[derive(Debug, Serialize)]
pub(super) struct EmbeddingsBody<'a> {
    pub(super) model: &'a str,
    pub(super) input: &'a [String],
    pub(super) encoding_format: &'static str,
}

#[derive(Debug, Deserialize)]
pub(super) struct EmbeddingList {
    #[serde(default)]
    data: Option<Vec<EmbeddingEntry>>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingEntry {
    embedding: Vec<f32>,
    index: usize,
}

impl EmbeddingList {
    /// The vectors in input order (the API numbers them with `index`), checked to be exactly
    /// one per input.
    pub(super) fn into_vectors(self, input_count: usize) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; input_count];
        for entry in self.data.unwrap_or_default() {
            match slots.get_mut(entry.index) {
                Some(slot @ None) => *slot = Some(entry.embedding),
                _ => return Err(LlmError::internal(format!("unexpected embedding index {}", entry.index))),
            }
        }
        let mut vectors = Vec::with_capacity(input_count);
        for (index, slot) in slots.into_iter().enumerate() {
            let Some(vector) = slot else {
                return Err(LlmError::internal(format!("no embedding for input {index}")));
            };
            vectors.push(vector);
        }
        Ok(vectors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::ChatMessage;

    #[test]
    fn streaming_requests_ask_for_usage_and_omit_unset_options() {
        let mut request =
            ChatRequest::new("gpt", vec![ChatMessage::system("be brief"), ChatMessage::user("hi")]);
        request.max_tokens = Some(5);
        let body = serde_json::to_value(ChatCompletionBody::new(&request, true)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt",
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 5,
            })
        );
    }

    #[test]
    fn embeddings_are_put_back_in_input_order() {
        let list: EmbeddingList = serde_json::from_value(json!({
            "data": [{"embedding": [2.0], "index": 1}, {"embedding": [1.0], "index": 0}]
        }))
        .unwrap();
        assert_eq!(list.into_vectors(2).unwrap(), [vec![1.0], vec![2.0]]);
        let short: EmbeddingList =
            serde_json::from_value(json!({"data": [{"embedding": [1.0], "index": 0}]})).unwrap();
        assert!(short.into_vectors(2).is_err());
    }

    #[test]
    fn a_null_model_list_is_empty() {
        let list: ModelList = serde_json::from_value(json!({"object": "list", "data": null})).unwrap();
        assert!(list.into_models().is_empty());
    }
}
