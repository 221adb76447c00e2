//! Fake Ollama: a protocol-faithful stand-in for the Ollama HTTP API, the one test double the
//! project allows (Ollama cannot run on the test machines).
//!
//! It owns the wire behaviour a client of Ollama depends on — `GET /api/tags`, `POST /api/chat`,
//! `POST /api/generate` (NDJSON streaming by default, one JSON object with `"stream": false`),
//! `POST /api/embed`, the legacy `POST /api/embeddings`, `GET /api/version` and `GET /` — plus
//! the knobs a test needs to script it: which models exist, what the model answers, how slow it
//! is, which requests fail and with what, and a record of every request it received.
//!
//! Behaviour worth knowing when writing a test:
//! - Model names follow Ollama: `llama3.2` means `llama3.2:latest`, matching ignores ASCII case,
//!   and responses echo the model name exactly as the request spelled it.
//! - A reply is taken from the scripted queue ([`FakeOllama::script_reply`]) by `/api/chat` and
//!   `/api/generate` only; when the queue is empty the model echoes the last user message
//!   (`/api/generate`: the prompt) verbatim — or, when the request sets `format`, the JSON object
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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, Request, State};
pub use axum::http::StatusCode;
use axum::http::{HeaderValue, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Dimension of the vectors `/api/embed` returns until [`FakeOllama::set_embedding_dimension`]
/// changes it; 384 is what `all-minilm`, Ollama's smallest embedding model, produces.
pub const DEFAULT_EMBEDDING_DIMENSION: usize = 384;

/// Version reported by `GET /api/version`.
pub const FAKE_OLLAMA_VERSION: &str = "0.12.0";

/// Large enough for base64 images in multimodal requests; Ollama itself sets no limit.
const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Synthetic cost of evaluating one prompt word, so clients dividing by the duration never
/// divide by zero.
const PROMPT_EVAL_NANOS_PER_WORD: u64 = 10_000;

const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

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

/// One HTTP request the fake received on an `/api/...` route, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `"POST"`.
    pub method: String,
    /// Request path without the query string, e.g. `"/api/chat"`.
    pub path: String,
    /// Headers with lower-case names, in the order received (values that are not UTF-8 are
    /// converted lossily).
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Value::Null` for an empty body and `Value::String` holding the
    /// raw text when the body is not valid JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of the header `name` (case-insensitive), if the request carried it.
    pub fn header(&self, name: &str) -> Option<&str> {
        for (header_name, header_value) in &self.headers {
            if header_name.eq_ignore_ascii_case(name) {
                return Some(header_value);
            }
        }
        None
    }
}

/// What the fake model answers to one `/api/chat` or `/api/generate` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedReply {
    text: String,
    tool_calls: Vec<ScriptedToolCall>,
    done_reason: String,
    stream_error: Option<ScriptedStreamError>,
}

#[derive(Debug, Clone, PartialEq)]
struct ScriptedToolCall {
    function_name: String,
    arguments: Value,
}

#[derive(Debug, Clone, PartialEq)]
struct ScriptedStreamError {
    after_chunks: usize,
    message: String,
}

impl ScriptedReply {
    /// A reply with this text, finishing with `done_reason` `"stop"`.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), tool_calls: Vec::new(), done_reason: "stop".to_owned(), stream_error: None }
    }

    /// Adds a tool call to the assistant message (`/api/chat` only; `/api/generate` ignores it).
    /// It is sent as `{"id":"call_…","function":{"index":i,"name":…,"arguments":…}}`, in a
    /// `done: false` chunk after the text chunks when streaming, in `message.tool_calls` when not.
    pub fn with_tool_call(mut self, function_name: impl Into<String>, arguments: Value) -> Self {
        self.tool_calls.push(ScriptedToolCall { function_name: function_name.into(), arguments });
        self
    }

    /// Overrides the final `done_reason` (e.g. `"length"`).
    pub fn with_done_reason(mut self, done_reason: impl Into<String>) -> Self {
        self.done_reason = done_reason.into();
        self
    }

    /// Makes the generation fail after `after_chunks` chunks, as a crashing runner does: a
    /// streaming response then ends with the line `{"error":"<message>"}` and no `done: true`
    /// line; a non-streaming response is a 500 with that error body.
    pub fn with_stream_error_after(mut self, after_chunks: usize, message: impl Into<String>) -> Self {
        self.stream_error = Some(ScriptedStreamError { after_chunks, message: message.into() });
        self
    }
}

impl From<&str> for ScriptedReply {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for ScriptedReply {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

/// An error answer the fake gives instead of handling a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedFailure {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
}

impl ScriptedFailure {
    /// A failure with `status` and the message Ollama sends for it: 503 gets the scheduler's
    /// queue-full text, 500 a runner crash, 429 `"rate limit exceeded"`, any other status its
    /// lower-case reason phrase.
    pub fn new(status: StatusCode) -> Self {
        let message = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                // Ollama's ErrMaxQueue text, two spaces included.
                "server busy, please try again.  maximum pending requests exceeded".to_owned()
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                "llama runner process has terminated: exit status 2".to_owned()
            }
            StatusCode::TOO_MANY_REQUESTS => "rate limit exceeded".to_owned(),
            other => other.canonical_reason().map_or_else(|| "unknown error".to_owned(), str::to_lowercase),
        };
        Self { status, message, retry_after: None }
    }

    /// Replaces the `error` text of the body.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds a `Retry-After` header in whole seconds, rounded up.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }
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
        let shared =
            Arc::new(Shared { script: Mutex::new(Script::default()), shutdown: CancellationToken::new() });
        let app = router(Arc::clone(&shared));
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
        let canonical_name = canonical_model_name(name);
        let mut script = self.shared.lock();
        let already_installed =
            script.models.iter().any(|model| model.name.eq_ignore_ascii_case(&canonical_name));
        if !already_installed {
            script.models.push(FakeModel::new(canonical_name));
        }
    }

    /// Uninstalls `name`, so later requests for it answer 404 as when a model was deleted.
    pub fn remove_model(&self, name: &str) {
        let canonical_name = canonical_model_name(name);
        self.shared.lock().models.retain(|model| !model.name.eq_ignore_ascii_case(&canonical_name));
    }

    /// Appends a reply to the queue that `/api/chat` and `/api/generate` answer from, first in
    /// first out. Accepts a `&str`, a `String` or a [`ScriptedReply`].
    pub fn script_reply(&self, reply: impl Into<ScriptedReply>) {
        self.shared.lock().replies.push_back(reply.into());
    }

    /// How many scripted replies have not been consumed yet.
    pub fn pending_replies(&self) -> usize {
        self.shared.lock().replies.len()
    }

    /// Delay before the first byte of every `/api/...` response (the status line included), as a
    /// model load would cause. Zero by default.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Delay between consecutive lines of a streamed response; a non-streaming response waits as
    /// long as its stream would have taken. Zero by default.
    pub fn set_chunk_delay(&self, chunk_delay: Duration) {
        self.shared.lock().chunk_delay = chunk_delay;
    }

    /// Dimension of the vectors `/api/embed` and `/api/embeddings` return (at least 1).
    pub fn set_embedding_dimension(&self, dimension: usize) {
        self.shared.lock().embedding_dimension = dimension.max(1);
    }

    /// The next `count` requests to any `/api/...` route answer `status` with Ollama's error body
    /// (see [`ScriptedFailure::new`]) and do nothing else; they are still recorded.
    pub fn fail_next(&self, count: usize, status: StatusCode) {
        self.fail_next_with(count, ScriptedFailure::new(status));
    }

    /// The next `count` requests to any `/api/...` route answer with `failure`.
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

    /// Every request received on an `/api/...` route so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
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

/// The deterministic embedding the fake returns for `text` at `dimension` (see the module docs),
/// so tests can compute the vector a stored document should have.
pub fn fake_embedding(text: &str, dimension: usize) -> Vec<f32> {
    let mut vector = vec![0.0_f32; dimension];
    for word in text.split_whitespace() {
        let token = word.trim_matches(|character: char| !character.is_alphanumeric()).to_lowercase();
        if token.is_empty() {
            continue;
        }
        add_pseudo_random_direction(&mut vector, fnv1a_64(token.as_bytes()), 1.0);
    }
    // The whole-text part keeps texts with the same words in another order or case apart, and
    // makes the vector non-zero even for empty or punctuation-only input.
    const WHOLE_TEXT_SALT: u64 = 0x9e37_79b9_7f4a_7c15;
    add_pseudo_random_direction(&mut vector, fnv1a_64(text.as_bytes()) ^ WHOLE_TEXT_SALT, 0.25);
    normalize_l2(&mut vector);
    vector
}

#[derive(Debug)]
struct Shared {
    script: Mutex<Script>,
    shutdown: CancellationToken,
}

impl Shared {
    /// A panicking test thread must not turn every later request into a second panic, so a
    /// poisoned lock is used as is: the script holds plain data with no invariant to break.
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps for `duration`; false when the server shut down first.
    async fn sleep(&self, duration: Duration) -> bool {
        if duration.is_zero() {
            return true;
        }
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }
}

#[derive(Debug)]
struct Script {
    models: Vec<FakeModel>,
    replies: VecDeque<ScriptedReply>,
    failures: VecDeque<ScriptedFailure>,
    latency: Duration,
    chunk_delay: Duration,
    embedding_dimension: usize,
    requests: Vec<RecordedRequest>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            replies: VecDeque::new(),
            failures: VecDeque::new(),
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            embedding_dimension: DEFAULT_EMBEDDING_DIMENSION,
            requests: Vec::new(),
        }
    }
}

impl Script {
    fn find_model(&self, requested_name: &str) -> Option<&FakeModel> {
        let canonical_name = canonical_model_name(requested_name);
        self.models.iter().find(|model| model.name.eq_ignore_ascii_case(&canonical_name))
    }
}

#[derive(Debug, Clone)]
struct FakeModel {
    name: String,
    modified_at: DateTime<Utc>,
}

impl FakeModel {
    fn new(name: String) -> Self {
        Self { name, modified_at: Utc::now() }
    }

    /// The `/api/tags` entry, with plausible values derived from the name so they are stable
    /// across runs.
    fn to_tags_entry(&self) -> Value {
        let base_name = self
            .name
            .rsplit('/')
            .next()
            .and_then(|last_segment| last_segment.split(':').next())
            .unwrap_or(&self.name);
        let family: String =
            base_name.chars().take_while(|character| character.is_ascii_alphabetic()).collect();
        let family = if family.is_empty() { "llama".to_owned() } else { family.to_lowercase() };
        let tag = self.name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
        let billions_of_parameters = tag
            .strip_suffix(['b', 'B'])
            .and_then(|count| count.parse::<f64>().ok())
            .filter(|count| count.is_finite() && *count > 0.0)
            .unwrap_or(1.0);
        // About 0.6 bytes per parameter: a Q4_K_M quantization.
        let size_bytes = (billions_of_parameters * 0.6e9).round() as u64;
        json!({
            "name": self.name,
            "model": self.name,
            "modified_at": ollama_timestamp(self.modified_at),
            "size": size_bytes,
            "digest": digest_of(&self.name),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": family,
                "families": [family],
                "parameter_size": format!("{billions_of_parameters}B"),
                "quantization_level": "Q4_K_M",
            },
        })
    }
}

/// When the request reached the fake, before the scripted latency; handlers report the time
/// since then as `load_duration` and `total_duration`.
#[derive(Debug, Clone, Copy)]
struct ReceivedAt(Instant);

/// An error answered with Ollama's body `{"error": "..."}`.
#[derive(Debug)]
struct OllamaError {
    status: StatusCode,
    message: String,
}

impl OllamaError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn model_required() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "model is required")
    }

    fn model_not_found(requested_name: &str) -> Self {
        let quoted_name = Value::String(requested_name.to_owned()).to_string();
        Self::new(StatusCode::NOT_FOUND, format!("model {quoted_name} not found, try pulling it first"))
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        json_response(self.status, &json!({ "error": self.message }))
    }
}

impl IntoResponse for ScriptedFailure {
    fn into_response(self) -> Response {
        let mut response = OllamaError::new(self.status, self.message).into_response();
        if let Some(retry_after) = self.retry_after {
            let whole_seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(whole_seconds));
        }
        response
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let api_routes = Router::new()
        .route("/api/tags", get(list_models))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/embed", post(embed))
        .route("/api/embeddings", post(embeddings_legacy))
        .route("/api/version", get(version))
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), record_and_apply_script))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES));
    Router::new()
        .route("/", get(root))
        .merge(api_routes)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(shared)
}

/// Records the request, waits the scripted latency and answers a scripted failure if one is
/// queued — for every `/api/...` route, before its handler runs.
async fn record_and_apply_script(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let received_at = Instant::now();
    let (mut parts, body) = request.into_parts();
    let body_bytes = match axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES).await {
        Ok(body_bytes) => body_bytes,
        Err(error) => {
            return OllamaError::new(StatusCode::BAD_REQUEST, error.to_string()).into_response();
        }
    };
    tracing::debug!(method = %parts.method, path = parts.uri.path(), "fake ollama received request");
    // The failure is taken at arrival, not after the latency, so concurrent requests fail in
    // the order they were sent.
    let (latency, failure) = {
        let mut script = shared.lock();
        script.requests.push(record_request(&parts, &body_bytes));
        (script.latency, script.failures.pop_front())
    };
    if !shared.sleep(latency).await {
        return OllamaError::new(StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response();
    }
    if let Some(failure) = failure {
        return failure.into_response();
    }
    parts.extensions.insert(ReceivedAt(received_at));
    next.run(Request::from_parts(parts, Body::from(body_bytes))).await
}

fn record_request(parts: &Parts, body_bytes: &Bytes) -> RecordedRequest {
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        headers.push((name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()));
    }
    let body = if body_bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body_bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body_bytes).into_owned()))
    };
    RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers,
        body,
    }
}

async fn root() -> &'static str {
    "Ollama is running"
}

/// Gin's default answer for an unknown route or method, which is what Ollama sends.
async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found")
}

async fn version() -> Response {
    json_response(StatusCode::OK, &json!({ "version": FAKE_OLLAMA_VERSION }))
}

async fn list_models(State(shared): State<Arc<Shared>>) -> Response {
    let script = shared.lock();
    // Ollama lists the most recently modified model first.
    let mut entries = Vec::with_capacity(script.models.len());
    for model in script.models.iter().rev() {
        entries.push(model.to_tags_entry());
    }
    json_response(StatusCode::OK, &json!({ "models": entries }))
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    stream: Option<bool>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    keep_alive: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: String,
}

#[derive(Debug, Deserialize)]
struct GenerateRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    system: String,
    stream: Option<bool>,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    keep_alive: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct EmbedRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    dimensions: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct LegacyEmbeddingsRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    Extension(received_at): Extension<ReceivedAt>,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let request: ChatRequest = parse_body(&body)?;
    check_model_installed(&shared, &request.model)?;
    if request.messages.is_empty() {
        return Ok(load_or_unload_response(Endpoint::Chat, &request.model, request.keep_alive.as_ref()));
    }
    let mut last_user_text = "";
    let mut prompt_word_count = 0;
    for message in &request.messages {
        prompt_word_count += count_words(&message.content);
        if message.role == "user" {
            last_user_text = &message.content;
        }
    }
    let (reply, chunk_delay) = take_reply(&shared, last_user_text, request.format.as_ref());
    let generation = Generation::new(GenerationInput {
        endpoint: Endpoint::Chat,
        model: request.model,
        reply,
        num_predict: num_predict(request.options.as_ref()),
        prompt_text: None,
        prompt_word_count,
        received_at,
        chunk_delay,
    });
    Ok(respond(shared, generation, request.stream.unwrap_or(true)).await)
}

async fn generate(
    State(shared): State<Arc<Shared>>,
    Extension(received_at): Extension<ReceivedAt>,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let request: GenerateRequest = parse_body(&body)?;
    check_model_installed(&shared, &request.model)?;
    if request.prompt.is_empty() {
        return Ok(load_or_unload_response(Endpoint::Generate, &request.model, request.keep_alive.as_ref()));
    }
    let (reply, chunk_delay) = take_reply(&shared, &request.prompt, request.format.as_ref());
    // Raw mode returns no context in Ollama either.
    let prompt_text = (!request.raw).then(|| format!("{} {}", request.system, request.prompt));
    let generation = Generation::new(GenerationInput {
        endpoint: Endpoint::Generate,
        model: request.model,
        reply,
        num_predict: num_predict(request.options.as_ref()),
        prompt_text,
        prompt_word_count: count_words(&request.system) + count_words(&request.prompt),
        received_at,
        chunk_delay,
    });
    Ok(respond(shared, generation, request.stream.unwrap_or(true)).await)
}

async fn embed(
    State(shared): State<Arc<Shared>>,
    Extension(ReceivedAt(received_at)): Extension<ReceivedAt>,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let request: EmbedRequest = parse_body(&body)?;
    // Ollama checks the input before the model, so a bad input wins over an unknown model.
    let inputs = embed_inputs(&request.input)?;
    let dimension = {
        let script = shared.lock();
        check_model_installed_in(&script, &request.model)?;
        script.embedding_dimension
    };
    if inputs.is_empty() {
        return Ok(json_response(StatusCode::OK, &json!({ "model": request.model, "embeddings": [] })));
    }
    let handler_started_at = Instant::now();
    let mut embeddings = Vec::with_capacity(inputs.len());
    let mut prompt_word_count = 0;
    for input in &inputs {
        prompt_word_count += count_words(input);
        let full_vector = fake_embedding(input, dimension);
        let vector = match request.dimensions {
            // Like Ollama: truncate to the requested size and normalize again.
            Some(requested) if requested > 0 && requested < full_vector.len() => {
                let mut truncated = full_vector[..requested].to_vec();
                normalize_l2(&mut truncated);
                truncated
            }
            _ => full_vector,
        };
        embeddings.push(vector);
    }
    let mut response_object = Map::new();
    response_object.insert("model".to_owned(), Value::String(request.model));
    response_object.insert("embeddings".to_owned(), json!(embeddings));
    insert_nonzero(&mut response_object, "total_duration", duration_nanos(received_at.elapsed()));
    insert_nonzero(
        &mut response_object,
        "load_duration",
        duration_nanos(handler_started_at.duration_since(received_at)),
    );
    insert_nonzero(&mut response_object, "prompt_eval_count", prompt_word_count as u64);
    Ok(json_response(StatusCode::OK, &Value::Object(response_object)))
}

async fn embeddings_legacy(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, OllamaError> {
    let request: LegacyEmbeddingsRequest = parse_body(&body)?;
    let dimension = {
        let script = shared.lock();
        check_model_installed_in(&script, &request.model)?;
        script.embedding_dimension
    };
    // An empty prompt only loads the model.
    let embedding: Vec<f64> = if request.prompt.is_empty() {
        Vec::new()
    } else {
        fake_embedding(&request.prompt, dimension).into_iter().map(f64::from).collect()
    };
    Ok(json_response(StatusCode::OK, &json!({ "embedding": embedding })))
}

fn embed_inputs(input: &Value) -> Result<Vec<String>, OllamaError> {
    match input {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) => {
            let mut inputs = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(text) = item else {
                    return Err(OllamaError::new(StatusCode::BAD_REQUEST, "invalid input type"));
                };
                inputs.push(text.clone());
            }
            Ok(inputs)
        }
        _ => Err(OllamaError::new(StatusCode::BAD_REQUEST, "invalid input type")),
    }
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, OllamaError> {
    // Go's decoder reports an empty body as io.EOF, which Ollama turns into this message.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(OllamaError::new(StatusCode::BAD_REQUEST, "missing request body"));
    }
    serde_json::from_slice(body).map_err(|error| OllamaError::new(StatusCode::BAD_REQUEST, error.to_string()))
}

fn check_model_installed(shared: &Shared, requested_name: &str) -> Result<(), OllamaError> {
    check_model_installed_in(&shared.lock(), requested_name)
}

fn check_model_installed_in(script: &Script, requested_name: &str) -> Result<(), OllamaError> {
    if requested_name.trim().is_empty() {
        return Err(OllamaError::model_required());
    }
    if script.find_model(requested_name).is_none() {
        return Err(OllamaError::model_not_found(requested_name));
    }
    Ok(())
}

/// Pops the next scripted reply or builds the default echo; also returns the chunk delay so
/// the lock is taken once.
fn take_reply(shared: &Shared, echo_text: &str, format: Option<&Value>) -> (ScriptedReply, Duration) {
    let mut script = shared.lock();
    let reply = script.replies.pop_front().unwrap_or_else(|| {
        let wants_json = format.is_some_and(|format| match format {
            Value::Null => false,
            Value::String(text) => !text.is_empty(),
            _ => true,
        });
        if wants_json {
            ScriptedReply::text(json!({ "echo": echo_text }).to_string())
        } else {
            ScriptedReply::text(echo_text)
        }
    });
    (reply, script.chunk_delay)
}

/// Ollama's answer to a chat without messages or a generate without prompt: the model is
/// loaded (or, with `keep_alive: 0`, unloaded) and a single object comes back even when
/// streaming was asked for.
fn load_or_unload_response(endpoint: Endpoint, model: &str, keep_alive: Option<&Value>) -> Response {
    let done_reason = if keep_alive.is_some_and(is_zero_keep_alive) { "unload" } else { "load" };
    let mut response_object = Map::new();
    response_object.insert("model".to_owned(), Value::String(model.to_owned()));
    response_object.insert("created_at".to_owned(), Value::String(now_timestamp()));
    match endpoint {
        Endpoint::Chat => {
            response_object.insert("message".to_owned(), json!({ "role": "assistant", "content": "" }));
        }
        Endpoint::Generate => {
            response_object.insert("response".to_owned(), Value::String(String::new()));
        }
    }
    response_object.insert("done".to_owned(), Value::Bool(true));
    response_object.insert("done_reason".to_owned(), Value::String(done_reason.to_owned()));
    json_response(StatusCode::OK, &Value::Object(response_object))
}

/// `keep_alive` is a number of seconds or a Go duration string; zero means "unload now".
fn is_zero_keep_alive(keep_alive: &Value) -> bool {
    match keep_alive {
        Value::Number(seconds) => seconds.as_f64() == Some(0.0),
        Value::String(duration) => {
            let digits = duration.trim_end_matches(|character: char| character.is_ascii_alphabetic());
            !digits.is_empty() && digits.parse::<f64>().ok() == Some(0.0)
        }
        _ => false,
    }
}

fn num_predict(options: Option<&Value>) -> Option<usize> {
    let limit = options?.get("num_predict")?.as_i64()?;
    // Ollama treats -1 (and any negative) as "no limit".
    usize::try_from(limit).ok().filter(|limit| *limit > 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Generate,
}

#[derive(Debug)]
struct GenerationInput {
    endpoint: Endpoint,
    model: String,
    reply: ScriptedReply,
    num_predict: Option<usize>,
    /// The prompt for `/api/generate`'s `context`; `None` for chat and raw mode.
    prompt_text: Option<String>,
    prompt_word_count: usize,
    received_at: ReceivedAt,
    chunk_delay: Duration,
}

/// One model answer, ready to be sent streamed or whole.
#[derive(Debug)]
struct Generation {
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
    fn new(input: GenerationInput) -> Self {
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
        let mut object = Map::new();
        object.insert("model".to_owned(), Value::String(self.model.clone()));
        object.insert("created_at".to_owned(), Value::String(now_timestamp()));
        self.insert_content(&mut object, content, tool_calls);
        object.insert("done".to_owned(), Value::Bool(false));
        Value::Object(object)
    }

    /// The `done: true` object with the counters; `content` is empty when streaming, the whole
    /// answer when not.
    fn final_object(&self, content: &str, tool_calls: Option<&[Value]>, eval_started_at: Instant) -> Value {
        let mut object = Map::new();
        object.insert("model".to_owned(), Value::String(self.model.clone()));
        object.insert("created_at".to_owned(), Value::String(now_timestamp()));
        self.insert_content(&mut object, content, tool_calls);
        object.insert("done".to_owned(), Value::Bool(true));
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

    fn insert_content(&self, object: &mut Map<String, Value>, content: &str, tool_calls: Option<&[Value]>) {
        match self.endpoint {
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
    }

    /// The lines of a streamed answer, in order.
    fn stream_events(&self) -> VecDeque<StreamEvent> {
        let mut events = VecDeque::with_capacity(self.chunks.len() + 2);
        for (index, chunk) in self.chunks.iter().enumerate() {
            if let Some(stream_error) = &self.stream_error
                && index == stream_error.after_chunks
            {
                events.push_back(StreamEvent::Error(stream_error.message.clone()));
                return events;
            }
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

#[derive(Debug)]
enum StreamEvent {
    Content(String),
    ToolCalls,
    Error(String),
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

async fn respond(shared: Arc<Shared>, generation: Generation, stream: bool) -> Response {
    if stream {
        return stream_response(shared, generation);
    }
    let eval_started_at = Instant::now();
    let produced_chunks = match &generation.stream_error {
        Some(stream_error) => stream_error.after_chunks.min(generation.chunks.len()),
        None => generation.chunks.len(),
    };
    let generation_time =
        generation.chunk_delay.saturating_mul(u32::try_from(produced_chunks).unwrap_or(u32::MAX));
    if !shared.sleep(generation_time).await {
        return OllamaError::new(StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response();
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

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE))], body.to_string())
        .into_response()
}

/// Splits at word boundaries so that concatenating the chunks gives `text` back exactly: each
/// chunk after the first starts with the whitespace before its word.
fn split_into_chunks(text: &str) -> Vec<String> {
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

fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Stand-in token ids for `/api/generate`'s `context`: one per word, below Llama 3's vocabulary
/// size.
fn pseudo_token_ids(text: &str) -> Vec<u64> {
    const VOCABULARY_SIZE: u64 = 128_256;
    text.split_whitespace().map(|word| fnv1a_64(word.as_bytes()) % VOCABULARY_SIZE).collect()
}

fn canonical_model_name(name: &str) -> String {
    let name = name.trim();
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    if last_segment.contains(':') { name.to_owned() } else { format!("{name}:latest") }
}

/// A stable 64-hex-digit digest shaped like Ollama's sha256 manifest digests.
fn digest_of(name: &str) -> String {
    let mut state = fnv1a_64(name.as_bytes());
    let mut digest = String::with_capacity(64);
    for _ in 0..4 {
        digest.push_str(&format!("{:016x}", splitmix64(&mut state)));
    }
    digest
}

fn ollama_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn now_timestamp() -> String {
    ollama_timestamp(Utc::now())
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Ollama's metrics are `omitempty`: a zero counter is left out, not sent as 0.
fn insert_nonzero(object: &mut Map<String, Value>, key: &str, value: u64) {
    if value != 0 {
        object.insert(key.to_owned(), Value::from(value));
    }
}

fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut mixed = *state;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

/// Adds `weight` times a pseudo-random vector with components uniform in [-1, 1) seeded by
/// `seed`.
fn add_pseudo_random_direction(vector: &mut [f32], seed: u64, weight: f32) {
    let mut state = seed;
    for component in vector.iter_mut() {
        let unit = (splitmix64(&mut state) >> 11) as f64 / (1_u64 << 53) as f64;
        *component += weight * (unit * 2.0 - 1.0) as f32;
    }
}

fn normalize_l2(vector: &mut [f32]) {
    let norm =
        vector.iter().map(|component| f64::from(*component) * f64::from(*component)).sum::<f64>().sqrt();
    if norm > 0.0 {
        for component in vector.iter_mut() {
            *component = (f64::from(*component) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::{BodyExt, Full};
    use hyper::Method;
    use hyper::body::Incoming;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    type HttpClient = Client<HttpConnector, Full<Bytes>>;

    fn http_client() -> HttpClient {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn send_raw(
        fake: &FakeOllama,
        method: Method,
        path: &str,
        body: &str,
    ) -> hyper::Response<Incoming> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", fake.base_url(), path))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("valid request");
        http_client().request(request).await.expect("fake ollama answers")
    }

    struct TextResponse {
        status: StatusCode,
        content_type: String,
        retry_after: Option<String>,
        body: String,
    }

    impl TextResponse {
        fn json(&self) -> Value {
            serde_json::from_str(&self.body).expect("json body")
        }

        fn ndjson_lines(&self) -> Vec<Value> {
            assert!(self.body.ends_with('\n'), "ndjson ends with a newline: {:?}", self.body);
            self.body.lines().map(|line| serde_json::from_str(line).expect("each line is json")).collect()
        }
    }

    async fn send(fake: &FakeOllama, method: Method, path: &str, body: &str) -> TextResponse {
        let response = send_raw(fake, method, path, body).await;
        let status = response.status();
        let header_text = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .map(|value: &HeaderValue| value.to_str().expect("ascii header").to_owned())
        };
        let content_type = header_text(header::CONTENT_TYPE).unwrap_or_default();
        let retry_after = header_text(header::RETRY_AFTER);
        let bytes = response.into_body().collect().await.expect("whole body").to_bytes();
        TextResponse {
            status,
            content_type,
            retry_after,
            body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
        }
    }

    async fn post_json(fake: &FakeOllama, path: &str, body: Value) -> TextResponse {
        send(fake, Method::POST, path, &body.to_string()).await
    }

    async fn started_with_model(model: &str) -> FakeOllama {
        let fake = FakeOllama::start().await;
        fake.add_model(model);
        fake
    }

    fn concatenated_chat_content(lines: &[Value]) -> String {
        lines.iter().map(|line| line["message"]["content"].as_str().expect("content is a string")).collect()
    }

    #[tokio::test]
    async fn tags_lists_added_models_newest_first_with_ollama_fields() {
        let fake = FakeOllama::start().await;
        fake.add_model("llama3.2:1b");
        fake.add_model("nomic-embed-text");
        fake.add_model("llama3.2:1b");

        let response = send(&fake, Method::GET, "/api/tags", "").await;

        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.content_type, JSON_CONTENT_TYPE);
        let models = response.json()["models"].as_array().expect("models array").clone();
        let names: Vec<&str> = models.iter().map(|model| model["name"].as_str().expect("name")).collect();
        assert_eq!(names, ["nomic-embed-text:latest", "llama3.2:1b"]);
        let llama = &models[1];
        assert_eq!(llama["model"], "llama3.2:1b");
        assert_eq!(llama["size"], 600_000_000);
        assert_eq!(llama["digest"].as_str().expect("digest").len(), 64);
        assert!(llama["modified_at"].as_str().expect("modified_at").ends_with('Z'));
        assert_eq!(
            llama["details"],
            json!({
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "1B",
                "quantization_level": "Q4_K_M",
            })
        );
    }

    #[tokio::test]
    async fn chat_without_streaming_returns_the_scripted_reply_with_counters() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.script_reply("The sky is blue.");

        let response = post_json(
            &fake,
            "/api/chat",
            json!({
                "model": "llama3.2:1b",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "why is the sky blue?"}
                ],
                "stream": false,
                "options": {"temperature": 0}
            }),
        )
        .await;

        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.content_type, JSON_CONTENT_TYPE);
        let body = response.json();
        assert_eq!(body["model"], "llama3.2:1b");
        assert_eq!(body["message"], json!({"role": "assistant", "content": "The sky is blue."}));
        assert_eq!(body["done"], true);
        assert_eq!(body["done_reason"], "stop");
        assert_eq!(body["prompt_eval_count"], 7);
        assert_eq!(body["eval_count"], 4);
        for duration_field in ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"] {
            assert!(body[duration_field].as_u64().expect(duration_field) > 0, "{duration_field}");
        }
        assert_eq!(fake.pending_replies(), 0);
    }

    #[tokio::test]
    async fn chat_streams_by_default_as_ndjson_chunks_that_rebuild_the_reply() {
        let fake = started_with_model("llama3.2").await;
        fake.set_chunk_delay(Duration::from_millis(20));
        let reply = "Rayleigh scattering makes the sky blue.";
        fake.script_reply(reply);

        let response = send_raw(
            &fake,
            Method::POST,
            "/api/chat",
            &json!({"model": "llama3.2", "messages": [{"role": "user", "content": "why?"}]}).to_string(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], NDJSON_CONTENT_TYPE);
        let mut body = response.into_body();
        let mut frame_count = 0;
        let mut text = String::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                frame_count += 1;
                text.push_str(std::str::from_utf8(&data).expect("utf-8"));
            }
        }
        let lines = TextResponse {
            status: StatusCode::OK,
            content_type: NDJSON_CONTENT_TYPE.to_owned(),
            retry_after: None,
            body: text,
        }
        .ndjson_lines();

        // Six words, then the final line; with a delay between lines they arrive one by one.
        assert_eq!(lines.len(), 7);
        assert!(frame_count > 1, "the response arrived in {frame_count} frame(s)");
        assert_eq!(concatenated_chat_content(&lines), reply);
        let (final_line, partial_lines) = lines.split_last().expect("lines");
        for partial in partial_lines {
            assert_eq!(partial["done"], false);
            assert_eq!(partial["model"], "llama3.2");
            assert_eq!(partial["message"]["role"], "assistant");
            assert!(partial.get("done_reason").is_none());
        }
        assert_eq!(final_line["done"], true);
        assert_eq!(final_line["done_reason"], "stop");
        assert_eq!(final_line["message"], json!({"role": "assistant", "content": ""}));
        assert_eq!(final_line["eval_count"], 6);
        assert_eq!(final_line["prompt_eval_count"], 1);
        assert!(final_line["eval_duration"].as_u64().expect("eval_duration") >= 100_000_000);
    }

    #[tokio::test]
    async fn chat_without_a_scripted_reply_echoes_the_last_user_message() {
        let fake = started_with_model("llama3.2:1b").await;

        let response = post_json(
            &fake,
            "/api/chat",
            json!({
                "model": "LLAMA3.2:1B",
                "messages": [
                    {"role": "user", "content": "first question"},
                    {"role": "assistant", "content": "first answer"},
                    {"role": "user", "content": "second question"}
                ],
                "stream": false
            }),
        )
        .await;

        assert_eq!(response.status, StatusCode::OK);
        let body = response.json();
        assert_eq!(body["model"], "LLAMA3.2:1B");
        assert_eq!(body["message"]["content"], "second question");
    }

    #[tokio::test]
    async fn chat_with_format_and_no_scripted_reply_answers_valid_json() {
        let fake = started_with_model("llama3.2:1b").await;

        let response = post_json(
            &fake,
            "/api/chat",
            json!({
                "model": "llama3.2:1b",
                "messages": [{"role": "user", "content": "say \"hi\""}],
                "format": "json",
                "stream": false
            }),
        )
        .await;

        let content = response.json()["message"]["content"].as_str().expect("content").to_owned();
        assert_eq!(
            serde_json::from_str::<Value>(&content).expect("json reply"),
            json!({"echo": "say \"hi\""})
        );
    }

    #[tokio::test]
    async fn unknown_model_answers_404_with_ollamas_error_on_every_endpoint() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.script_reply("kept for later");

        let chat = post_json(
            &fake,
            "/api/chat",
            json!({"model": "mistral", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        let generate = post_json(&fake, "/api/generate", json!({"model": "mistral", "prompt": "hi"})).await;
        let embed = post_json(&fake, "/api/embed", json!({"model": "mistral", "input": "hi"})).await;

        for response in [chat, generate, embed] {
            assert_eq!(response.status, StatusCode::NOT_FOUND);
            assert_eq!(response.content_type, JSON_CONTENT_TYPE);
            assert_eq!(response.body, r#"{"error":"model \"mistral\" not found, try pulling it first"}"#);
        }
        assert_eq!(fake.pending_replies(), 1);
    }

    #[tokio::test]
    async fn removed_model_is_no_longer_served() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.remove_model("llama3.2:1b");

        let response =
            post_json(&fake, "/api/generate", json!({"model": "llama3.2:1b", "prompt": "hi"})).await;

        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(
            response.json(),
            json!({"error": "model \"llama3.2:1b\" not found, try pulling it first"})
        );
    }

    #[tokio::test]
    async fn malformed_missing_and_modelless_bodies_answer_400() {
        let fake = started_with_model("llama3.2:1b").await;

        let malformed = send(&fake, Method::POST, "/api/chat", "{not json").await;
        let missing = send(&fake, Method::POST, "/api/chat", "").await;
        let wrong_type =
            post_json(&fake, "/api/chat", json!({"model": "llama3.2:1b", "messages": "hi"})).await;
        let no_model =
            post_json(&fake, "/api/chat", json!({"messages": [{"role": "user", "content": "hi"}]})).await;
        let bad_input =
            post_json(&fake, "/api/embed", json!({"model": "llama3.2:1b", "input": [1, 2]})).await;

        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert!(malformed.json()["error"].as_str().expect("error text").contains("key must be a string"));
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert_eq!(missing.json(), json!({"error": "missing request body"}));
        assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
        assert!(wrong_type.json()["error"].as_str().expect("error text").contains("invalid type"));
        assert_eq!(no_model.status, StatusCode::BAD_REQUEST);
        assert_eq!(no_model.json(), json!({"error": "model is required"}));
        assert_eq!(bad_input.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad_input.json(), json!({"error": "invalid input type"}));
    }

    #[tokio::test]
    async fn fail_next_answers_the_status_then_recovers_with_the_scripted_reply() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.script_reply("recovered");
        fake.fail_next(2, StatusCode::INTERNAL_SERVER_ERROR);
        let request = json!({
            "model": "llama3.2:1b",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": false
        });

        let first = post_json(&fake, "/api/chat", request.clone()).await;
        let second = post_json(&fake, "/api/chat", request.clone()).await;
        let third = post_json(&fake, "/api/chat", request).await;

        for failed in [&first, &second] {
            assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(failed.content_type, JSON_CONTENT_TYPE);
            assert_eq!(failed.json(), json!({"error": "llama runner process has terminated: exit status 2"}));
        }
        assert_eq!(third.status, StatusCode::OK);
        assert_eq!(third.json()["message"]["content"], "recovered");
        assert_eq!(fake.requests().len(), 3);
    }

    #[tokio::test]
    async fn busy_and_throttled_failures_carry_ollamas_text_and_retry_after() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.fail_next(1, StatusCode::SERVICE_UNAVAILABLE);
        fake.throttle_next(1, Duration::from_millis(1500));
        fake.fail_next_with(1, ScriptedFailure::new(StatusCode::BAD_GATEWAY).with_message("upstream gone"));

        let busy = send(&fake, Method::GET, "/api/tags", "").await;
        let throttled = send(&fake, Method::GET, "/api/tags", "").await;
        let custom = send(&fake, Method::GET, "/api/tags", "").await;
        let healthy = send(&fake, Method::GET, "/api/tags", "").await;

        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            busy.json(),
            json!({"error": "server busy, please try again.  maximum pending requests exceeded"})
        );
        assert_eq!(busy.retry_after, None);
        assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.retry_after.as_deref(), Some("2"));
        assert_eq!(throttled.json(), json!({"error": "rate limit exceeded"}));
        assert_eq!(custom.status, StatusCode::BAD_GATEWAY);
        assert_eq!(custom.json(), json!({"error": "upstream gone"}));
        assert_eq!(healthy.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn latency_delays_the_first_byte() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.set_latency(Duration::from_millis(200));

        let started = Instant::now();
        let response = send_raw(
            &fake,
            Method::POST,
            "/api/chat",
            &json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        )
        .await;

        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let final_line: Value = serde_json::from_slice(
            body.split(|byte| *byte == b'\n').rfind(|line| !line.is_empty()).expect("final line"),
        )
        .expect("json");
        assert!(final_line["load_duration"].as_u64().expect("load_duration") >= 200_000_000);
    }

    #[tokio::test]
    async fn generate_streams_response_chunks_and_returns_context() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.script_reply("Because of scattering");

        let streamed = post_json(
            &fake,
            "/api/generate",
            json!({"model": "llama3.2:1b", "prompt": "Why is the sky blue?", "system": "Be brief."}),
        )
        .await;
        let whole = post_json(
            &fake,
            "/api/generate",
            json!({"model": "llama3.2:1b", "prompt": "Why?", "stream": false}),
        )
        .await;

        assert_eq!(streamed.content_type, NDJSON_CONTENT_TYPE);
        let lines = streamed.ndjson_lines();
        assert_eq!(lines.len(), 4);
        let text: String = lines.iter().map(|line| line["response"].as_str().expect("response")).collect();
        assert_eq!(text, "Because of scattering");
        let final_line = lines.last().expect("final line");
        assert_eq!(final_line["done"], true);
        assert_eq!(final_line["done_reason"], "stop");
        assert_eq!(final_line["prompt_eval_count"], 7);
        assert_eq!(final_line["eval_count"], 3);
        assert_eq!(final_line["context"].as_array().expect("context").len(), 10);
        assert!(final_line.get("message").is_none());

        let body = whole.json();
        assert_eq!(body["response"], "Why?");
        assert_eq!(body["done"], true);
    }

    #[tokio::test]
    async fn empty_messages_or_prompt_load_and_keep_alive_zero_unloads() {
        let fake = started_with_model("llama3.2:1b").await;

        let load = post_json(&fake, "/api/chat", json!({"model": "llama3.2:1b", "messages": []})).await;
        let unload =
            post_json(&fake, "/api/generate", json!({"model": "llama3.2:1b", "keep_alive": 0})).await;

        assert_eq!(load.content_type, JSON_CONTENT_TYPE);
        let load_body = load.json();
        assert_eq!(load_body["done_reason"], "load");
        assert_eq!(load_body["message"], json!({"role": "assistant", "content": ""}));
        assert_eq!(unload.json()["done_reason"], "unload");
    }

    #[tokio::test]
    async fn num_predict_truncates_and_reports_length() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.script_reply("one two three four five");

        let response = post_json(
            &fake,
            "/api/chat",
            json!({
                "model": "llama3.2:1b",
                "messages": [{"role": "user", "content": "count"}],
                "options": {"num_predict": 2},
                "stream": false
            }),
        )
        .await;

        let body = response.json();
        assert_eq!(body["message"]["content"], "one two");
        assert_eq!(body["done_reason"], "length");
        assert_eq!(body["eval_count"], 2);
    }

    #[tokio::test]
    async fn stream_error_ends_the_stream_with_an_error_line() {
        let fake = started_with_model("llama3.2:1b").await;
        fake.script_reply(ScriptedReply::text("one two three").with_stream_error_after(2, "out of memory"));
        fake.script_reply(ScriptedReply::text("one two three").with_stream_error_after(2, "out of memory"));
        let request = json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]});

        let streamed = post_json(&fake, "/api/chat", request.clone()).await;
        let mut whole_request = request;
        whole_request["stream"] = Value::Bool(false);
        let whole = post_json(&fake, "/api/chat", whole_request).await;

        let lines = streamed.ndjson_lines();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["message"]["content"], "one");
        assert_eq!(lines[1]["message"]["content"], " two");
        assert_eq!(lines[2], json!({"error": "out of memory"}));
        assert_eq!(whole.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(whole.json(), json!({"error": "out of memory"}));
    }

    #[tokio::test]
    async fn scripted_tool_calls_appear_in_the_message() {
        let fake = started_with_model("llama3.2:1b").await;
        let reply = ScriptedReply::text("").with_tool_call("get_weather", json!({"city": "Paris"}));
        fake.script_reply(reply.clone());
        fake.script_reply(reply);
        let request = json!({
            "model": "llama3.2:1b",
            "messages": [{"role": "user", "content": "weather in Paris?"}],
            "stream": false
        });

        let whole = post_json(&fake, "/api/chat", request.clone()).await;
        let mut streaming_request = request;
        streaming_request["stream"] = Value::Bool(true);
        let streamed = post_json(&fake, "/api/chat", streaming_request).await;

        let message = &whole.json()["message"];
        assert_eq!(message["content"], "");
        let tool_call = &message["tool_calls"][0];
        assert!(tool_call["id"].as_str().expect("id").starts_with("call_"));
        assert_eq!(
            tool_call["function"],
            json!({"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}})
        );
        let lines = streamed.ndjson_lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["done"], false);
        assert_eq!(lines[0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(lines[1]["done"], true);
    }

    #[tokio::test]
    async fn embed_is_deterministic_per_text_and_normalized() {
        let fake = started_with_model("nomic-embed-text").await;
        fake.set_embedding_dimension(64);

        let batch = post_json(
            &fake,
            "/api/embed",
            json!({"model": "nomic-embed-text", "input": ["the sky is blue", "the grass is green", "the sky is blue"]}),
        )
        .await;
        let single =
            post_json(&fake, "/api/embed", json!({"model": "nomic-embed-text", "input": "the sky is blue"}))
                .await;

        assert_eq!(batch.status, StatusCode::OK);
        let body = batch.json();
        assert_eq!(body["model"], "nomic-embed-text");
        assert_eq!(body["prompt_eval_count"], 12);
        let embeddings: Vec<Vec<f32>> = serde_json::from_value(body["embeddings"].clone()).expect("vectors");
        assert_eq!(embeddings.len(), 3);
        for vector in &embeddings {
            assert_eq!(vector.len(), 64);
            let norm: f32 = vector.iter().map(|component| component * component).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
        assert_eq!(embeddings[0], embeddings[2]);
        assert_ne!(embeddings[0], embeddings[1]);
        let single_vectors: Vec<Vec<f32>> =
            serde_json::from_value(single.json()["embeddings"].clone()).expect("vectors");
        assert_eq!(single_vectors, vec![embeddings[0].clone()]);
        assert_eq!(embeddings[0], fake_embedding("the sky is blue", 64));
    }

    #[tokio::test]
    async fn embed_honours_dimensions_and_empty_input() {
        let fake = started_with_model("all-minilm").await;

        let truncated =
            post_json(&fake, "/api/embed", json!({"model": "all-minilm", "input": "hello", "dimensions": 8}))
                .await;
        let empty = post_json(&fake, "/api/embed", json!({"model": "all-minilm", "input": ""})).await;
        let legacy =
            post_json(&fake, "/api/embeddings", json!({"model": "all-minilm", "prompt": "hello"})).await;

        assert_eq!(truncated.json()["embeddings"][0].as_array().expect("vector").len(), 8);
        assert_eq!(empty.json(), json!({"model": "all-minilm", "embeddings": []}));
        assert_eq!(legacy.json()["embedding"].as_array().expect("vector").len(), DEFAULT_EMBEDDING_DIMENSION);
    }

    #[tokio::test]
    async fn requests_are_recorded_with_path_headers_and_body() {
        let fake = started_with_model("llama3.2:1b").await;
        let chat_body =
            json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}], "stream": false});

        send(&fake, Method::GET, "/api/tags", "").await;
        post_json(&fake, "/api/chat", chat_body.clone()).await;
        send(&fake, Method::POST, "/api/chat", "{oops").await;
        send(&fake, Method::GET, "/", "").await;

        let requests = fake.requests();
        assert_eq!(requests.len(), 3, "GET / is not an /api route and is not recorded");
        assert_eq!(requests[0].method, "GET");
        assert_eq!(requests[0].path, "/api/tags");
        assert_eq!(requests[0].body, Value::Null);
        assert_eq!(requests[1].path, "/api/chat");
        assert_eq!(requests[1].body, chat_body);
        assert_eq!(requests[1].header("Content-Type"), Some("application/json"));
        assert_eq!(requests[2].body, Value::String("{oops".to_owned()));
        fake.clear_requests();
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn root_version_and_unknown_routes_answer_like_ollama() {
        let fake = FakeOllama::start().await;

        let root = send(&fake, Method::GET, "/", "").await;
        let version = send(&fake, Method::GET, "/api/version", "").await;
        let unknown = send(&fake, Method::GET, "/api/nope", "").await;
        let wrong_method = send(&fake, Method::GET, "/api/chat", "").await;

        assert_eq!((root.status, root.body.as_str()), (StatusCode::OK, "Ollama is running"));
        assert_eq!(version.json(), json!({"version": FAKE_OLLAMA_VERSION}));
        assert_eq!((unknown.status, unknown.body.as_str()), (StatusCode::NOT_FOUND, "404 page not found"));
        assert_eq!(wrong_method.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn shutdown_closes_the_listener() {
        let fake = FakeOllama::start().await;
        let addr = fake.addr();

        fake.shutdown().await;

        let connection = tokio::net::TcpStream::connect(addr).await;
        assert_eq!(
            connection.expect_err("nothing listens any more").kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }

    #[test]
    fn chunks_rebuild_the_text_exactly() {
        for text in ["", "one", "Hello world", "  leading and trailing  ", "line\nbreak\ttab", "héllo wörld"]
        {
            let chunks = split_into_chunks(text);
            assert_eq!(chunks.concat(), text);
        }
        assert_eq!(split_into_chunks("Hello big world"), ["Hello", " big", " world"]);
    }

    #[test]
    fn embeddings_of_texts_sharing_words_are_closer() {
        let cosine =
            |left: &[f32], right: &[f32]| -> f32 { left.iter().zip(right).map(|(a, b)| a * b).sum() };
        let query = fake_embedding("why is the sky blue", 256);
        let related = fake_embedding("the sky is blue because of scattering", 256);
        let unrelated = fake_embedding("rust borrow checker lifetimes", 256);

        assert!(cosine(&query, &related) > cosine(&query, &unrelated) + 0.2);
        assert_ne!(fake_embedding("blue sky", 16), fake_embedding("sky blue", 16));
        assert_eq!(fake_embedding("", 16).len(), 16);
    }

    #[test]
    fn model_names_get_latest_tag_only_when_untagged() {
        assert_eq!(canonical_model_name("llama3.2"), "llama3.2:latest");
        assert_eq!(canonical_model_name("llama3.2:1b"), "llama3.2:1b");
        assert_eq!(
            canonical_model_name("registry.local:5000/team/model"),
            "registry.local:5000/team/model:latest"
        );
    }

    #[test]
    fn keep_alive_zero_is_recognized_in_both_encodings() {
        assert!(is_zero_keep_alive(&json!(0)));
        assert!(is_zero_keep_alive(&json!("0")));
        assert!(is_zero_keep_alive(&json!("0s")));
        assert!(!is_zero_keep_alive(&json!("5m")));
        assert!(!is_zero_keep_alive(&json!(-1)));
    }
}
