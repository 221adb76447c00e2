//! Ollama's native JSON: the `/api/chat` request and answer (one object, or NDJSON lines when
//! streaming), `/api/tags` and `/api/embed`.

use serde::{Deserialize, Serialize};

use crate::error::LlmError;
use crate::lines::{Decoded, LineDecoder};
use crate::types::{ChatChunk, ChatMessage, ChatRequest, ChatResponse, ModelInfo, Usage};

#[derive(Debug, Serialize)]
pub(super) struct ChatBody<'a> {
    model: &'a str,
    /// `{"role", "content"}` objects: `ChatMessage` serializes exactly as both APIs spell it.
    messages: &'a [ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<Options<'a>>,
}

/// Sampling options under Ollama's names; absent ones keep the model's defaults.
#[derive(Debug, Serialize)]
struct Options<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
}

impl<'a> ChatBody<'a> {
    pub(super) fn new(request: &'a ChatRequest, stream: bool) -> Self {
        let options = Options {
            temperature: request.temperature,
            top_p: request.top_p,
            top_k: request.top_k,
            seed: request.seed,
            num_predict: request.max_tokens,
            stop: &request.stop,
        };
        let has_options = options.temperature.is_some()
            || options.top_p.is_some()
            || options.top_k.is_some()
            || options.seed.is_some()
            || options.num_predict.is_some()
            || !options.stop.is_empty();
        Self {
            model: &request.model,
            messages: &request.messages,
            stream,
            options: has_options.then_some(options),
        }
    }
}

/// One `/api/chat` answer object: the whole answer, or one NDJSON line of a stream.
#[derive(Debug, Deserialize)]
pub(super) struct ChatAnswer {
    #[serde(default)]
    model: String,
    #[serde(default)]
    message: Option<AnswerMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: u32,
    #[serde(default)]
    eval_count: u32,
    /// Set on the line Ollama sends when generation fails after streaming began.
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: String,
}

impl ChatAnswer {
    fn usage(&self) -> Usage {
        Usage { prompt_tokens: self.prompt_eval_count, completion_tokens: self.eval_count }
    }

    fn finish_reason(&self) -> String {
        self.done_reason.clone().filter(|reason| !reason.is_empty()).unwrap_or_else(|| "stop".to_owned())
    }

    fn content(&self) -> &str {
        self.message.as_ref().map_or("", |message| message.content.as_str())
    }

    pub(super) fn into_response(self) -> Result<ChatResponse, LlmError> {
        if let Some(error) = &self.error {
            return Err(mid_generation_error(error));
        }
        Ok(ChatResponse {
            message: ChatMessage::assistant(self.content()),
            usage: self.usage(),
            finish_reason: self.finish_reason(),
            model: self.model,
        })
    }
}

fn mid_generation_error(message: &str) -> LlmError {
    LlmError::unavailable(format!(
        "the model failed during generation: {}",
        crate::error::shorten_upstream_message(message)
    ))
}

/// Reads `/api/chat` NDJSON: each line a partial answer, the last one `done: true`.
#[derive(Debug, Default)]
pub(super) struct NdjsonChatDecoder;

impl LineDecoder for NdjsonChatDecoder {
    fn decode_line(&mut self, line: &str) -> Result<Decoded, LlmError> {
        if line.trim().is_empty() {
            return Ok(Decoded::nothing());
        }
        let answer: ChatAnswer = serde_json::from_str(line)
            .map_err(|error| LlmError::internal(format!("undecodable ollama stream line: {error}")))?;
        if let Some(error) = &answer.error {
            return Err(mid_generation_error(error));
        }
        let mut decoded = Decoded::nothing();
        if !answer.content().is_empty() {
            decoded.chunks.push(ChatChunk::Delta(answer.content().to_owned()));
        }
        if answer.done {
            decoded
                .chunks
                .push(ChatChunk::Done { usage: answer.usage(), finish_reason: answer.finish_reason() });
            decoded.finished = true;
        }
        Ok(decoded)
    }

    fn decode_end_of_body(&mut self) -> Result<Decoded, LlmError> {
        Ok(Decoded::nothing())
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct TagsAnswer {
    #[serde(default)]
    models: Vec<TagsModel>,
}

#[derive(Debug, Deserialize)]
struct TagsModel {
    name: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    details: Option<TagsDetails>,
}

#[derive(Debug, Deserialize)]
struct TagsDetails {
    #[serde(default)]
    family: Option<String>,
}

impl TagsAnswer {
    pub(super) fn into_models(self) -> Vec<ModelInfo> {
        let mut models = Vec::with_capacity(self.models.len());
        for model in self.models {
            let family = model.details.and_then(|details| details.family).filter(|family| !family.is_empty());
            models.push(ModelInfo { name: model.name, size_bytes: model.size, family });
        }
        models
    }
}

#[derive(Debug, Serialize)]
pub(super) struct EmbedBody<'a> {
    pub(super) model: &'a str,
    pub(super) input: &'a [String],
}

#[derive(Debug, Deserialize)]
pub(super) struct EmbedAnswer {
    #[serde(default)]
    pub(super) embeddings: Vec<Vec<f32>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn options_use_ollama_names_and_are_omitted_when_unset() {
        let mut request = ChatRequest::new("llama3.2", vec![ChatMessage::user("hi")]);
        let plain = serde_json::to_value(ChatBody::new(&request, false)).unwrap();
        assert_eq!(
            plain,
            json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": false})
        );
        request.temperature = Some(0.5);
        request.top_p = Some(0.25);
        request.top_k = Some(20);
        request.seed = Some(7);
        request.max_tokens = Some(64);
        request.stop = vec!["\n\n".to_owned()];
        let with_options = serde_json::to_value(ChatBody::new(&request, true)).unwrap();
        assert_eq!(
            with_options["options"],
            json!({"temperature": 0.5, "top_p": 0.25, "top_k": 20, "seed": 7, "num_predict": 64, "stop": ["\n\n"]})
        );
        assert_eq!(with_options["stream"], true);
    }

    #[test]
    fn ndjson_lines_become_deltas_then_done() {
        let mut decoder = NdjsonChatDecoder;
        let first = decoder
            .decode_line(r#"{"model":"m","message":{"role":"assistant","content":"a\nb"},"done":false}"#)
            .unwrap();
        assert_eq!(first, Decoded { chunks: vec![ChatChunk::Delta("a\nb".to_owned())], finished: false });
        let last = decoder
            .decode_line(r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":3,"eval_count":2}"#)
            .unwrap();
        assert!(last.finished);
        assert_eq!(
            last.chunks,
            [ChatChunk::Done {
                usage: Usage { prompt_tokens: 3, completion_tokens: 2 },
                finish_reason: "length".to_owned()
            }]
        );
    }

    #[test]
    fn an_error_line_ends_the_stream_with_unavailable() {
        let error = NdjsonChatDecoder.decode_line(r#"{"error":"runner crashed"}"#).unwrap_err();
        assert_eq!(error, LlmError::unavailable("the model failed during generation: runner crashed"));
    }
}
