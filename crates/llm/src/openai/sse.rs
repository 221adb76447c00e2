//! Server-sent events of a streamed `/chat/completions`: `data: {chunk}` events separated by
//! blank lines, ended by `data: [DONE]`.
//!
//! Usage arrives in its own final chunk (we ask for it with `stream_options.include_usage`) and
//! the finish reason in the last content chunk, so both are remembered until `[DONE]`. An error
//! during generation may come as a `data: {"error": ...}` event or — Ollama's compatibility
//! layer — as the bare error object on a line without `data:`; both end the stream with an
//! error.

use serde_json::Value;

use super::wire::ChatCompletionChunk;
use crate::error::{LlmError, shorten_upstream_message};
use crate::http::upstream_error_message;
use crate::lines::{Decoded, LineDecoder};
use crate::types::{ChatChunk, Usage};

const DONE_MARKER: &str = "[DONE]";

#[derive(Debug, Default)]
pub(super) struct SseChatDecoder {
    event_data: Vec<String>,
    finish_reason: Option<String>,
    usage: Usage,
}

impl LineDecoder for SseChatDecoder {
    fn decode_line(&mut self, line: &str) -> Result<Decoded, LlmError> {
        if line.is_empty() {
            return self.dispatch_event();
        }
        if let Some(value) = line.strip_prefix("data:") {
            // The field value starts after one optional space (the SSE spec).
            self.event_data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            return Ok(Decoded::nothing());
        }
        // Comments (`: keep-alive`) and the fields we do not use (`event:`, `id:`, `retry:`).
        if line.starts_with(':')
            || line.starts_with("event:")
            || line.starts_with("id:")
            || line.starts_with("retry:")
        {
            return Ok(Decoded::nothing());
        }
        if let Ok(document) = serde_json::from_str::<Value>(line)
            && document.get("error").is_some()
        {
            return Err(generation_error(line));
        }
        Ok(Decoded::nothing())
    }

    fn decode_end_of_body(&mut self) -> Result<Decoded, LlmError> {
        self.dispatch_event()
    }
}

impl SseChatDecoder {
    fn dispatch_event(&mut self) -> Result<Decoded, LlmError> {
        if self.event_data.is_empty() {
            return Ok(Decoded::nothing());
        }
        let data = self.event_data.join("\n");
        self.event_data.clear();
        if data.trim() == DONE_MARKER {
            let finish_reason = self.finish_reason.take().unwrap_or_else(|| "stop".to_owned());
            return Ok(Decoded {
                chunks: vec![ChatChunk::Done { usage: self.usage, finish_reason }],
                finished: true,
            });
        }
        let document: Value = serde_json::from_str(&data)
            .map_err(|error| LlmError::internal(format!("undecodable stream event: {error}")))?;
        if document.get("error").is_some() {
            return Err(generation_error(&data));
        }
        let chunk: ChatCompletionChunk = serde_json::from_value(document)
            .map_err(|error| LlmError::internal(format!("undecodable stream chunk: {error}")))?;
        if let Some(usage) = &chunk.usage {
            self.usage = Usage::from(usage);
        }
        let mut decoded = Decoded::nothing();
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(finish_reason) = choice.finish_reason {
                self.finish_reason = Some(finish_reason);
            }
            let content = choice.delta.and_then(|delta| delta.content).unwrap_or_default();
            if !content.is_empty() {
                decoded.chunks.push(ChatChunk::Delta(content));
            }
        }
        Ok(decoded)
    }
}

fn generation_error(body: &str) -> LlmError {
    let message = shorten_upstream_message(&upstream_error_message(body));
    LlmError::unavailable(format!("the model failed during generation: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(decoder: &mut SseChatDecoder, text: &str) -> Vec<Result<Decoded, LlmError>> {
        text.split('\n').map(|line| decoder.decode_line(line)).collect()
    }

    fn chunks(results: Vec<Result<Decoded, LlmError>>) -> (Vec<ChatChunk>, bool) {
        let mut all = Vec::new();
        let mut finished = false;
        for result in results {
            let decoded = result.unwrap();
            all.extend(decoded.chunks);
            finished |= decoded.finished;
        }
        (all, finished)
    }

    #[test]
    fn deltas_then_done_with_the_remembered_reason_and_usage() {
        let mut decoder = SseChatDecoder::default();
        let stream = concat!(
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"a\\nb\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n",
            "data: [DONE]\n\n",
        );
        let (chunks, finished) = chunks(feed(&mut decoder, stream));
        assert!(finished);
        assert_eq!(
            chunks,
            [
                ChatChunk::Delta("a\nb".to_owned()),
                ChatChunk::Done {
                    usage: Usage { prompt_tokens: 4, completion_tokens: 2 },
                    finish_reason: "length".to_owned()
                },
            ]
        );
    }

    #[test]
    fn a_final_event_without_blank_line_is_dispatched_at_end_of_body() {
        let mut decoder = SseChatDecoder::default();
        assert_eq!(decoder.decode_line("data: [DONE]").unwrap(), Decoded::nothing());
        assert!(decoder.decode_end_of_body().unwrap().finished);
    }

    #[test]
    fn errors_end_the_stream_framed_or_not() {
        let mut decoder = SseChatDecoder::default();
        decoder.decode_line("data: {\"error\":{\"message\":\"boom\"}}").unwrap();
        assert_eq!(
            decoder.decode_line("").unwrap_err(),
            LlmError::unavailable("the model failed during generation: boom")
        );
        let bare =
            SseChatDecoder::default().decode_line(r#"{"error":{"message":"crashed","type":"api_error"}}"#);
        assert_eq!(bare.unwrap_err(), LlmError::unavailable("the model failed during generation: crashed"));
    }
}
