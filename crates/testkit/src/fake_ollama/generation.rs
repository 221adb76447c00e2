//! One model answer for `/api/chat` or `/api/generate` — chunks, tool calls, counters and
//! durations — and sending it as an NDJSON stream or as one JSON object.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::hashing::fnv1a_64;
use super::routes::ReceivedAt;
use super::scripting::{ScriptedReply, ScriptedStreamError, ScriptedToolCall};
use super::state::Shared;
use super::wire::{
    NDJSON_CONTENT_TYPE, OllamaError, duration_nanos, insert_nonzero, json_response, now_timestamp,
};

/// Synthetic cost of evaluating one prompt word, so clients dividing by the duration never
/// divide by zero.
const PROMPT_EVAL_NANOS_PER_WORD: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Chat,
    Generate,
}

#[derive(Debug)]
pub(super) struct GenerationInput {
    pub(super) endpoint: Endpoint,
    pub(super) model: String,
    pub(super) reply: ScriptedReply,
    pub(super) num_predict: Option<usize>,
    /// The prompt for `/api/generate`'s `context`; `None` for chat and raw mode.
    pub(super) prompt_text: Option<String>,
    pub(super) prompt_word_count: usize,
    pub(super) received_at: ReceivedAt,
    pub(super) chunk_delay: Duration,
}

/// One model answer, ready to be sent streamed or whole.
#[derive(Debug)]
pub(super) struct Generation {
    endpoint: Endpoint,
    model: String,
    chunks: Vec<String>,
    tool_calls: Vec<Value>,
    done_reason: String,
    stream_error: Option<ScriptedStreamError>,
    context: Option<Vec<u64>>,
    prompt_word_count: usize,
    received_at: Instant,
    handler_started_at: Instant,
    chunk_delay: Duration,
}

impl Generation {
    pub(super) fn new(input: GenerationInput) -> Self {
        let mut chunks = split_into_chunks(&input.reply.text);
        let mut done_reason = input.reply.done_reason;
        if let Some(limit) = input.num_predict
            && chunks.len() > limit
        {
            chunks.truncate(limit);
            done_reason = "length".to_owned();
        }
        let tool_calls = if input.endpoint == Endpoint::Chat {
            tool_calls_json(&input.reply.tool_calls)
        } else {
            Vec::new()
        };
        let context = input
            .prompt_text
            .map(|prompt_text| pseudo_token_ids(&format!("{prompt_text} {}", chunks.concat())));
        Self {
            endpoint: input.endpoint,
            model: input.model,
            chunks,
            tool_calls,
            done_reason,
            stream_error: input.reply.stream_error,
            context,
            prompt_word_count: input.prompt_word_count,
            received_at: input.received_at.0,
            handler_started_at: Instant::now(),
            chunk_delay: input.chunk_delay,
        }
    }

    /// A `done: false` object carrying `content` (and the tool calls, when given).
    fn partial_object(&self, content: &str, tool_calls: Option<&[Value]>) -> Value {
        Value::Object(answer_object(self.endpoint, &self.model, content, tool_calls, false))
    }

    /// The `done: true` object with the counters; `content` is empty when streaming, the whole
    /// answer when not.
    fn final_object(&self, content: &str, tool_calls: Option<&[Value]>, eval_started_at: Instant) -> Value {
        let mut object = answer_object(self.endpoint, &self.model, content, tool_calls, true);
        object.insert("done_reason".to_owned(), Value::String(self.done_reason.clone()));
        if let Some(context) = &self.context {
            object.insert("context".to_owned(), json!(context));
        }
        let prompt_eval_count = self.prompt_word_count as u64;
        let eval_count = (self.chunks.len() + self.tool_calls.len()) as u64;
        let load_nanos = duration_nanos(self.handler_started_at.duration_since(self.received_at));
        let prompt_eval_nanos = prompt_eval_count.max(1) * PROMPT_EVAL_NANOS_PER_WORD;
        let eval_nanos = duration_nanos(eval_started_at.elapsed()).max(1);
        let total_nanos = duration_nanos(self.received_at.elapsed())
            .max(load_nanos.saturating_add(prompt_eval_nanos).saturating_add(eval_nanos));
        insert_nonzero(&mut object, "total_duration", total_nanos);
        insert_nonzero(&mut object, "load_duration", load_nanos);
        insert_nonzero(&mut object, "prompt_eval_count", prompt_eval_count);
        insert_nonzero(&mut object, "prompt_eval_duration", prompt_eval_nanos);
        insert_nonzero(&mut object, "eval_count", eval_count);
        insert_nonzero(&mut object, "eval_duration", eval_nanos);
        Value::Object(object)
    }

    /// The model name as the request spelled it.
    pub(super) fn model(&self) -> &str {
        &self.model
    }

    /// The whole answer text (every chunk, even those a stream error would cut off).
    pub(super) fn content(&self) -> String {
        self.chunks.concat()
    }

    /// The tool calls in Ollama's JSON form.
    pub(super) fn tool_calls(&self) -> &[Value] {
        &self.tool_calls
    }

    /// `stop`, `length` or the scripted reason.
    pub(super) fn done_reason(&self) -> &str {
        &self.done_reason
    }

    /// `prompt_eval_count`: the words of the prompt.
    pub(super) fn prompt_eval_count(&self) -> u64 {
        self.prompt_word_count as u64
    }

    /// `eval_count`: the chunks plus the tool calls.
    pub(super) fn eval_count(&self) -> u64 {
        (self.chunks.len() + self.tool_calls.len()) as u64
    }

    /// The pause between streamed lines.
    pub(super) fn chunk_delay(&self) -> Duration {
        self.chunk_delay
    }

    /// The scripted mid-generation failure, if any.
    pub(super) fn stream_error_message(&self) -> Option<&str> {
        self.stream_error.as_ref().map(|stream_error| stream_error.message.as_str())
    }

    /// How long a non-streaming answer takes: as long as its stream would have.
    pub(super) fn generation_time(&self) -> Duration {
        self.chunk_delay.saturating_mul(u32::try_from(self.produced_chunk_count()).unwrap_or(u32::MAX))
    }

    /// How many chunks are produced before the scripted stream error cuts the answer short.
    fn produced_chunk_count(&self) -> usize {
        match &self.stream_error {
            Some(stream_error) => stream_error.after_chunks.min(self.chunks.len()),
            None => self.chunks.len(),
        }
    }

    /// The lines of a streamed answer, in order.
    pub(super) fn stream_events(&self) -> VecDeque<StreamEvent> {
        let mut events = VecDeque::with_capacity(self.chunks.len() + 2);
        for chunk in &self.chunks[..self.produced_chunk_count()] {
            events.push_back(StreamEvent::Content(chunk.clone()));
        }
        if let Some(stream_error) = &self.stream_error {
            events.push_back(StreamEvent::Error(stream_error.message.clone()));
            return events;
        }
        if !self.tool_calls.is_empty() {
            events.push_back(StreamEvent::ToolCalls);
        }
        events.push_back(StreamEvent::Done);
        events
    }
}

/// The fields every `/api/chat` or `/api/generate` answer starts with: `model`, `created_at`,
/// the content (chat: an assistant `message` with the tool calls, when given and not empty;
/// generate: `response`) and `done`.
pub(super) fn answer_object(
    endpoint: Endpoint,
    model: &str,
    content: &str,
    tool_calls: Option<&[Value]>,
    done: bool,
) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("model".to_owned(), Value::String(model.to_owned()));
    object.insert("created_at".to_owned(), Value::String(now_timestamp()));
    match endpoint {
        Endpoint::Chat => {
            let mut message = Map::new();
            message.insert("role".to_owned(), Value::String("assistant".to_owned()));
            message.insert("content".to_owned(), Value::String(content.to_owned()));
            if let Some(tool_calls) = tool_calls.filter(|tool_calls| !tool_calls.is_empty()) {
                message.insert("tool_calls".to_owned(), Value::Array(tool_calls.to_vec()));
            }
            object.insert("message".to_owned(), Value::Object(message));
        }
        Endpoint::Generate => {
            object.insert("response".to_owned(), Value::String(content.to_owned()));
        }
    }
    object.insert("done".to_owned(), Value::Bool(done));
    object
}

/// One line of a streamed answer, before it is put in a protocol's words.
#[derive(Debug)]
pub(super) enum StreamEvent {
    /// A piece of the answer text.
    Content(String),
    /// The tool calls, after the text.
    ToolCalls,
    /// The scripted failure that ends the stream.
    Error(String),
    /// The final line with the counters.
    Done,
}

#[derive(Debug)]
struct StreamState {
    shared: Arc<Shared>,
    generation: Generation,
    events: VecDeque<StreamEvent>,
    is_first_line: bool,
    eval_started_at: Instant,
}

pub(super) async fn respond(shared: Arc<Shared>, generation: Generation, stream: bool) -> Response {
    if stream {
        return stream_response(shared, generation);
    }
    let eval_started_at = Instant::now();
    if !shared.sleep(generation.generation_time()).await {
        return OllamaError::shutting_down().into_response();
    }
    if let Some(stream_error) = &generation.stream_error {
        return OllamaError::new(StatusCode::INTERNAL_SERVER_ERROR, stream_error.message.clone())
            .into_response();
    }
    let content = generation.chunks.concat();
    let final_object = generation.final_object(&content, Some(&generation.tool_calls), eval_started_at);
    json_response(StatusCode::OK, &final_object)
}

fn stream_response(shared: Arc<Shared>, generation: Generation) -> Response {
    let events = generation.stream_events();
    let state =
        StreamState { shared, generation, events, is_first_line: true, eval_started_at: Instant::now() };
    let lines = futures_util::stream::unfold(state, |mut state| async move {
        let event = state.events.pop_front()?;
        if !state.is_first_line && !state.shared.sleep(state.generation.chunk_delay).await {
            return None;
        }
        state.is_first_line = false;
        let object = match event {
            StreamEvent::Content(chunk) => state.generation.partial_object(&chunk, None),
            StreamEvent::ToolCalls => state.generation.partial_object("", Some(&state.generation.tool_calls)),
            // Once the status line is out, Ollama reports a failure as an error line.
            StreamEvent::Error(message) => json!({ "error": message }),
            StreamEvent::Done => state.generation.final_object("", None, state.eval_started_at),
        };
        let line = format!("{object}\n");
        Some((Ok::<String, Infallible>(line), state))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON_CONTENT_TYPE))],
        Body::from_stream(lines),
    )
        .into_response()
}

fn tool_calls_json(tool_calls: &[ScriptedToolCall]) -> Vec<Value> {
    let mut calls = Vec::with_capacity(tool_calls.len());
    for (index, tool_call) in tool_calls.iter().enumerate() {
        let random_suffix = uuid::Uuid::new_v4().simple().to_string();
        calls.push(json!({
            "id": format!("call_{}", &random_suffix[..8]),
            "function": {
                "index": index,
                "name": tool_call.function_name,
                "arguments": tool_call.arguments,
            },
        }));
    }
    calls
}

/// Splits at word boundaries so that concatenating the chunks gives `text` back exactly: each
/// chunk after the first starts with the whitespace before its word.
pub(super) fn split_into_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current_chunk = String::new();
    let mut previous_was_whitespace = false;
    for character in text.chars() {
        let is_whitespace = character.is_whitespace();
        if is_whitespace && !previous_was_whitespace && !current_chunk.is_empty() {
            chunks.push(std::mem::take(&mut current_chunk));
        }
        current_chunk.push(character);
        previous_was_whitespace = is_whitespace;
    }
    if !current_chunk.is_empty() {
        chunks.push(current_chunk);
    }
    chunks
}

/// Stand-in token ids for `/api/generate`'s `context`: one per word, below Llama 3's vocabulary
/// size.
fn pseudo_token_ids(text: &str) -> Vec<u64> {
    const VOCABULARY_SIZE: u64 = 128_256;
    text.split_whitespace().map(|word| fnv1a_64(word.as_bytes()) % VOCABULARY_SIZE).collect()
}
