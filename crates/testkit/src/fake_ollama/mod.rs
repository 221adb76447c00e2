//! Fake Ollama: a protocol-faithful stand-in for the Ollama HTTP API, the one test double the
//! project allows (Ollama cannot run on the test machines).
//!
//! It owns the wire behaviour a client of Ollama depends on — `GET /api/tags`, `POST /api/chat`,
//! `POST /api/generate` (NDJSON streaming by default, one JSON object with `"stream": false`),
//! `POST /api/embed`, the legacy `POST /api/embeddings`, `GET /api/version` and `GET /` — and
//! Ollama's OpenAI-compatible layer: `GET /v1/models`, `POST /v1/chat/completions` (one
//! `chat.completion` object, or with `"stream": true` server-sent `chat.completion.chunk` events
//! ended by `data: [DONE]`) and `POST /v1/embeddings`. On top come the knobs a test needs to
//! script it: which models exist, what the model answers, how slow it is, which requests fail
//! and with what, and a record of every request it received.
//!
//! Behaviour worth knowing when writing a test:
//! - Model names follow Ollama: `llama3.2` means `llama3.2:latest`, matching ignores ASCII case,
//!   and responses echo the model name exactly as the request spelled it.
//! - A reply is taken from the scripted queue ([`FakeOllama::script_reply`]) by `/api/chat`,
//!   `/api/generate` and `/v1/chat/completions` only; when the queue is empty the model echoes
//!   the last user message (`/api/generate`: the prompt) verbatim — or, when the request sets
//!   `format` (`/v1`: a JSON `response_format`), the JSON object
//!   `{"echo":"<that text>"}` so the reply is valid JSON. Requests that fail (scripted failure,
//!   unknown model, bad body) and load/unload requests do not consume a reply, so a retried
//!   request gets the reply the failed one would have got.
//! - A reply is split into chunks at word boundaries (each chunk after the first starts with the
//!   whitespace that preceded its word), so concatenating the streamed chunks gives back the
//!   reply exactly. `options.num_predict` caps the number of chunks and then sets
//!   `done_reason` to `"length"`, like the real server.
//! - Token counts are approximations: `prompt_eval_count` is the number of whitespace-separated
//!   words in the prompt (all message contents for chat, system + prompt for generate, all inputs
//!   for embed) and `eval_count` is the number of chunks produced plus the number of tool calls.
//!   Counters that are zero are omitted, as Ollama's `omitempty` fields are.
//! - Durations are nanoseconds as in Ollama: `load_duration` is the scripted latency actually
//!   waited, `eval_duration` the time spent producing chunks, `prompt_eval_duration` a synthetic
//!   10 µs per prompt word; `total_duration` is at least their sum.
//! - Embeddings are deterministic: [`fake_embedding`] hashes each lower-cased word to a
//!   pseudo-random direction, sums them with a smaller whole-text component and L2-normalizes.
//!   Equal text gives an equal vector, different text a different one, and texts sharing words
//!   are closer in cosine similarity, so ranking tests behave plausibly.
//! - An unknown model answers 404 `{"error":"model \"x\" not found, try pulling it first"}` on
//!   every endpoint (the text Ollama's scheduler returns; some newer Ollama handlers say
//!   `model 'x' not found` instead, so clients should key on the 404, not on the text).
//! - The `/v1/...` routes behave as Ollama's middleware makes them: the same replies, scripting
//!   and recording as `/api/chat` and `/api/embed`, errors (an unknown model, a scripted
//!   failure with its `Retry-After`) as `{"error":{"message","type","param":null,"code":null}}`
//!   whose type is `invalid_request_error` for 400, `not_found_error` for 404 and `api_error`
//!   otherwise, and JSON bodies ending in a newline. `stream` defaults to false there;
//!   `max_tokens` caps the chunks like `num_predict`; `stream_options.include_usage` adds a
//!   usage-only chunk before `[DONE]`. A scripted stream error arrives after the 200 status, so
//!   it is written as the bare error object on its own line, without `data:` and without
//!   `[DONE]`. `/v1/models` lists `"data": null` when no model is installed, as Go marshals an
//!   empty list.

// `scripting` has the public script types and `state` what a test scripted and the server
// recorded; `routes` is the router with the recording middleware; `tags`, `completion` (with
// `generation` for the streamed or whole answer) and `embed` serve one endpoint family each;
// `wire` has Ollama's JSON conventions; `embedding` and `hashing` the deterministic numbers;
// `openai_chat`, `openai_models` and `openai_wire` are the OpenAI-compatible layer over them.
mod completion;
mod embed;
mod embedding;
mod generation;
mod hashing;
mod openai_chat;
mod openai_models;
mod openai_wire;
mod routes;
mod scripting;
mod state;
mod tags;
#[cfg(test)]
mod tests;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use embedding::fake_embedding;
pub use scripting::{RecordedRequest, ScriptedFailure, ScriptedReply};
use state::Shared;

/// Dimension of the vectors `/api/embed` returns until [`FakeOllama::set_embedding_dimension`]
/// changes it; 384 is what `all-minilm`, Ollama's smallest embedding model, produces.
pub const DEFAULT_EMBEDDING_DIMENSION: usize = 384;

/// Version reported by `GET /api/version`.
pub const FAKE_OLLAMA_VERSION: &str = "0.12.0";

/// A running fake Ollama server on `127.0.0.1` with a random port.
///
/// Every setter takes `&self` and may be called while requests are in flight; a change applies
/// to requests that arrive after it. The server stops when the value is dropped (in-flight
/// streams end at their next chunk) or, awaiting the stop, with [`FakeOllama::shutdown`].
#[derive(Debug)]
pub struct FakeOllama {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl FakeOllama {
    /// Binds `127.0.0.1:0` and serves in a background task, with no models and an empty reply
    /// queue.
    ///
    /// # Panics
    ///
    /// When the loopback listener cannot be bound; a test cannot proceed without it. Use
    /// [`FakeOllama::try_start`] to handle that error instead.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(fake) => fake,
            Err(error) => panic!("fake ollama could not bind 127.0.0.1:0: {error}"),
        }
    }

    /// Like [`FakeOllama::start`], returning the bind error instead of panicking.
    pub async fn try_start() -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new());
        let app = routes::router(Arc::clone(&shared));
        let shutdown = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
            if let Err(error) = serving.await {
                tracing::error!(%error, "fake ollama server stopped with an error");
            }
        });
        Ok(Self { addr, shared, server: Some(server) })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash — what an Ollama client takes as its
    /// base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `name` an installed model (listed by `/api/tags`, accepted by every endpoint).
    /// A name without a tag gets `:latest`; adding an installed model again changes nothing.
    pub fn add_model(&self, name: &str) {
        self.shared.lock().add_model(name);
    }

    /// Uninstalls `name`, so later requests for it answer 404 as when a model was deleted.
    pub fn remove_model(&self, name: &str) {
        self.shared.lock().remove_model(name);
    }

    /// Appends a reply to the queue that `/api/chat`, `/api/generate` and
    /// `/v1/chat/completions` answer from, first in first out. Accepts a `&str`, a `String` or a [`ScriptedReply`].
    pub fn script_reply(&self, reply: impl Into<ScriptedReply>) {
        self.shared.lock().replies.push_back(reply.into());
    }

    /// How many scripted replies have not been consumed yet.
    pub fn pending_replies(&self) -> usize {
        self.shared.lock().replies.len()
    }

    /// Delay before the first byte of every `/api/...` and `/v1/...` response (the status line
    /// included), as a model load would cause. Zero by default.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Delay between consecutive lines of a streamed response; a non-streaming response waits as
    /// long as its stream would have taken. Zero by default.
    pub fn set_chunk_delay(&self, chunk_delay: Duration) {
        self.shared.lock().chunk_delay = chunk_delay;
    }

    /// Dimension of the vectors `/api/embed`, `/api/embeddings` and `/v1/embeddings` return (at
    /// least 1).
    pub fn set_embedding_dimension(&self, dimension: usize) {
        self.shared.lock().embedding_dimension = dimension.max(1);
    }

    /// The next `count` requests to any `/api/...` or `/v1/...` route answer `status` with
    /// Ollama's error body (see [`ScriptedFailure::new`]; the OpenAI error object on `/v1/...`)
    /// and do nothing else; they are still recorded.
    pub fn fail_next(&self, count: usize, status: StatusCode) {
        self.fail_next_with(count, ScriptedFailure::new(status));
    }

    /// The next `count` requests to any `/api/...` or `/v1/...` route answer with `failure`.
    pub fn fail_next_with(&self, count: usize, failure: ScriptedFailure) {
        let mut script = self.shared.lock();
        for _ in 0..count {
            script.failures.push_back(failure.clone());
        }
    }

    /// The next `count` requests answer 429 with a `Retry-After` header of `retry_after`
    /// (whole seconds, rounded up).
    pub fn throttle_next(&self, count: usize, retry_after: Duration) {
        self.fail_next_with(
            count,
            ScriptedFailure::new(StatusCode::TOO_MANY_REQUESTS).with_retry_after(retry_after),
        );
    }

    /// Every request received on an `/api/...` or `/v1/...` route so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The most `/api/...` and `/v1/...` requests it was ever handling at once (a request counts
    /// until its handler returns the response head: for a stream, until the stream starts).
    pub fn max_concurrent_requests(&self) -> usize {
        self.shared.max_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Stops accepting connections, ends in-flight streams and waits until the listener is
    /// closed, so a test can then observe "Ollama is down".
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(server) = self.server.take()
            && let Err(error) = server.await
        {
            tracing::error!(%error, "fake ollama server task failed");
        }
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
