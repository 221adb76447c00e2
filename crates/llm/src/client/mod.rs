//! [`LlmClient`]: what a service holds to talk to its LLM. It wraps one [`LlmProvider`] and adds
//! what every provider needs the same way: the default model, validation of the requested
//! model against the (briefly cached) model list, a timeout per attempt, retries with backoff,
//! the Redis response cache for whole answers, and a bound on concurrent inference calls.

mod models;
mod stream;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{CacheStats, ResponseCache};
use crate::error::LlmError;
use crate::local::LocalProvider;
use crate::ollama::OllamaProvider;
use crate::openai::OpenAiProvider;
use crate::provider::LlmProvider;
use crate::retry::RetryPolicy;
use crate::settings::{LlmSettings, ProviderKind};
use crate::slots::{InferencePermit, InferenceSlots, LocalSlots};
use crate::types::{ChatRequest, ChatResponse, ChatStream, ModelInfo};
use models::ModelListCache;
pub(crate) use models::model_names_match;

/// Whether a chat may be answered from, and stored in, the response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Answer from the cache when possible; store a fresh answer.
    Use,
    /// Neither read nor write the cache (the API's `use_cache: false`).
    Bypass,
}

impl CachePolicy {
    /// The policy for the API's `use_cache` flag.
    pub fn from_use_cache(use_cache: bool) -> Self {
        if use_cache { Self::Use } else { Self::Bypass }
    }
}

/// A whole chat answer and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatOutcome {
    /// The answer.
    pub response: ChatResponse,
    /// True when it came from the response cache rather than the provider.
    pub cached: bool,
}

/// Whether an attempt occupies an inference slot, and of which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot<'a> {
    Inference { model: &'a str },
    Free,
}

/// The LLM client a service holds (share it behind an `Arc`).
#[derive(Debug)]
pub struct LlmClient {
    provider: Arc<dyn LlmProvider>,
    default_model: String,
    request_timeout: Duration,
    retry_policy: RetryPolicy,
    model_list: ModelListCache,
    response_cache: Option<ResponseCache>,
    inference_slots: Arc<dyn InferenceSlots>,
}

impl LlmClient {
    /// A client for the provider `settings` name. With `auto`, the server at `base_url` is
    /// asked for its models, first as Ollama and then as an OpenAI-compatible server; the first
    /// that answers is used, and the embedded models when neither does. A missing model file of
    /// the embedded models is an error naming it.
    pub async fn connect(settings: &LlmSettings) -> Result<Self, LlmError> {
        let provider = match settings.provider {
            ProviderKind::Auto => auto_provider(settings).await?,
            kind => provider_of_kind(kind, settings)?,
        };
        tracing::info!(provider = provider.name(), "llm provider selected");
        Ok(Self::new(provider, settings))
    }

    /// A client for a provider named outright (`ollama`, `openai`, `local`); `auto` needs the
    /// probes of [`LlmClient::connect`].
    pub fn from_settings(settings: &LlmSettings) -> Result<Self, LlmError> {
        Ok(Self::new(provider_of_kind(settings.provider, settings)?, settings))
    }

    /// A client for `provider`, with its own pool of `max_concurrent_requests` inference slots
    /// and no response cache.
    pub fn new(provider: Arc<dyn LlmProvider>, settings: &LlmSettings) -> Self {
        Self {
            provider,
            default_model: settings.default_model.trim().to_owned(),
            request_timeout: settings.request_timeout(),
            retry_policy: RetryPolicy::new(settings),
            model_list: ModelListCache::new(settings.model_list_ttl()),
            response_cache: None,
            inference_slots: Arc::new(LocalSlots::new(settings.max_concurrent_requests)),
        }
    }

    /// Caches whole chat answers in `cache`.
    pub fn with_response_cache(mut self, cache: ResponseCache) -> Self {
        self.response_cache = Some(cache);
        self
    }

    /// Takes inference slots from `slots` instead of the client's own pool, so several clients
    /// (or every process, through the arbitrator's leases) share one bound. Each chat, stream and
    /// embedding holds one slot while it runs — a stream until its last item — and waits for one
    /// when none is free.
    pub fn with_inference_slots(mut self, slots: Arc<dyn InferenceSlots>) -> Self {
        self.inference_slots = slots;
        self
    }

    /// The provider's name (`ollama`, `openai`).
    pub fn provider_name(&self) -> &str {
        self.provider.name()
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    /// The provider's models, from a list fetched at most once per `model_list_ttl_s`.
    pub async fn list_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        Ok(self.cached_models().await?.as_ref().clone())
    }

    /// Asks the provider for its model list once, without cache or retries: a readiness check
    /// that really reaches the LLM server.
    pub async fn probe(&self) -> Result<(), LlmError> {
        match tokio::time::timeout(self.request_timeout, self.provider.list_models()).await {
            Ok(outcome) => outcome.map(|_| ()),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// The whole answer to `request`. An empty `model` means the default model; an unknown model
    /// fails with [`LlmError::UnknownModel`] listing the available ones. With
    /// [`CachePolicy::Use`] and a response cache, an identical earlier request is answered from
    /// the cache.
    pub async fn chat(
        &self,
        request: ChatRequest,
        cache_policy: CachePolicy,
    ) -> Result<ChatOutcome, LlmError> {
        let request = self.prepare(request)?;
        let cache = self.response_cache.as_ref().filter(|_| cache_policy == CachePolicy::Use);
        let cache_key = cache.map(|cache| cache.key_for(&request));
        // The cache is read before the model is validated: only answers of valid models are
        // stored, and a cached answer stays available while the provider is down.
        if let (Some(cache), Some(cache_key)) = (cache, &cache_key)
            && let Some(response) = cache.lookup(cache_key).await
        {
            return Ok(ChatOutcome { response, cached: true });
        }
        self.ensure_model_available(&request.model).await?;
        let outcome = self
            .call_with_retries("chat", Slot::Inference { model: &request.model }, || {
                self.provider.chat(&request)
            })
            .await;
        let response = match outcome {
            Ok((response, _permit)) => response,
            Err(error) => return Err(self.explain_unknown_model(error, &request.model).await),
        };
        if let (Some(cache), Some(cache_key)) = (cache, &cache_key) {
            cache.store(cache_key, &response).await;
        }
        Ok(ChatOutcome { response, cached: false })
    }

    /// The answer to `request` as a stream of deltas ending in `Done`. Streams are never cached.
    /// Failures before the first token are retried like [`LlmClient::chat`]; a failure later
    /// ends the stream with an error item. The request timeout applies to the first item and
    /// then to each gap between items.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let request = self.prepare(request)?;
        self.ensure_model_available(&request.model).await?;
        let outcome = self
            .call_with_retries("chat_stream", Slot::Inference { model: &request.model }, || {
                self.provider.chat_stream(&request)
            })
            .await;
        match outcome {
            Ok((inner, permit)) => Ok(stream::guard_stream(inner, self.request_timeout, permit)),
            Err(error) => Err(self.explain_unknown_model(error, &request.model).await),
        }
    }

    /// One embedding per input, in order, from `model` (the default model when blank).
    pub async fn embed(&self, model: &str, inputs: Vec<String>) -> Result<Vec<Vec<f32>>, LlmError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let model = self.resolve_model(model);
        self.ensure_model_available(&model).await?;
        let outcome = self
            .call_with_retries("embed", Slot::Inference { model: &model }, || {
                self.provider.embed(&model, &inputs)
            })
            .await;
        match outcome {
            Ok((vectors, _permit)) => Ok(vectors),
            Err(error) => Err(self.explain_unknown_model(error, &model).await),
        }
    }

    /// Cache hits and misses of this process and the number of cached answers; zeros without a
    /// response cache.
    pub async fn cache_stats(&self) -> Result<CacheStats, LlmError> {
        match &self.response_cache {
            Some(cache) => cache.stats().await,
            None => Ok(CacheStats { hits: 0, misses: 0, keys: 0 }),
        }
    }

    /// Deletes cached answers (see [`ResponseCache::clear`]); returns how many.
    pub async fn clear_cache(&self, pattern: Option<&str>) -> Result<u64, LlmError> {
        match &self.response_cache {
            Some(cache) => cache.clear(pattern).await,
            None => Ok(0),
        }
    }

    /// The model a request naming `requested` would use (the default when empty), checked
    /// against the provider's list: callers validating many requests at once (a batch) fail
    /// early with one `UnknownModel` instead of one per request.
    pub async fn available_model(&self, requested: &str) -> Result<String, LlmError> {
        let model = self.resolve_model(requested);
        self.ensure_model_available(&model).await?;
        Ok(model)
    }

    fn resolve_model(&self, requested: &str) -> String {
        let requested = requested.trim();
        if requested.is_empty() { self.default_model.clone() } else { requested.to_owned() }
    }

    /// Applies the default model and refuses a request no provider could answer.
    fn prepare(&self, mut request: ChatRequest) -> Result<ChatRequest, LlmError> {
        if request.messages.is_empty() {
            return Err(LlmError::BadRequest { reason: "a chat needs at least one message".to_owned() });
        }
        request.model = self.resolve_model(&request.model);
        Ok(request)
    }

    async fn cached_models(&self) -> Result<Arc<Vec<ModelInfo>>, LlmError> {
        self.model_list
            .get_or_fetch(|| async {
                let (models, _) =
                    self.call_with_retries("list_models", Slot::Free, || self.provider.list_models()).await?;
                Ok(models)
            })
            .await
    }

    async fn ensure_model_available(&self, model: &str) -> Result<(), LlmError> {
        let models = self.cached_models().await?;
        if models.iter().any(|listed| model_names_match(model, &listed.name)) {
            return Ok(());
        }
        Err(LlmError::UnknownModel { model: model.to_owned(), available: model_names(&models) })
    }

    /// A provider that answered "no such model" for a model the cached list still showed: the
    /// list is stale, so it is refetched to tell the caller what is available now.
    async fn explain_unknown_model(&self, error: LlmError, model: &str) -> LlmError {
        let LlmError::UnknownModel { available, .. } = &error else { return error };
        if !available.is_empty() {
            return error;
        }
        self.model_list.invalidate().await;
        let available = match self.cached_models().await {
            Ok(models) => model_names(&models),
            Err(_) => Vec::new(),
        };
        LlmError::UnknownModel { model: model.to_owned(), available }
    }

    fn timeout_error(&self) -> LlmError {
        LlmError::Timeout { timeout_ms: u64::try_from(self.request_timeout.as_millis()).unwrap_or(u64::MAX) }
    }

    /// Runs `attempt` until it succeeds or fails for good, each attempt bounded by the request
    /// timeout and, for inference, holding a permit (released while waiting to retry, so a
    /// backing-off call does not block others). Returns the permit of the successful attempt.
    async fn call_with_retries<Output, Attempt, AttemptFuture>(
        &self,
        operation: &'static str,
        slot: Slot<'_>,
        mut attempt: Attempt,
    ) -> Result<(Output, Option<InferencePermit>), LlmError>
    where
        Attempt: FnMut() -> AttemptFuture,
        AttemptFuture: Future<Output = Result<Output, LlmError>>,
    {
        let provider = self.provider.name().to_owned();
        let mut retry_index = 0;
        loop {
            let permit = match slot {
                Slot::Inference { model } => Some(self.inference_slots.acquire(&provider, model).await?),
                Slot::Free => None,
            };
            let started_at = Instant::now();
            let outcome = match tokio::time::timeout(self.request_timeout, attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(self.timeout_error()),
            };
            let outcome_label = match &outcome {
                Ok(_) => "ok",
                Err(error) => error.code().as_str(),
            };
            metrics::counter!(
                "llm_requests_total",
                "provider" => provider.clone(),
                "operation" => operation,
                "outcome" => outcome_label
            )
            .increment(1);
            metrics::histogram!("llm_request_duration_seconds", "provider" => provider.clone(), "operation" => operation)
                .record(started_at.elapsed().as_secs_f64());
            let error = match outcome {
                Ok(output) => return Ok((output, permit)),
                Err(error) => error,
            };
            drop(permit);
            let Some(delay) = self.retry_policy.delay_before_retry(retry_index, &error) else {
                return Err(error);
            };
            retry_index += 1;
            tracing::warn!(
                provider = %provider,
                operation,
                retry = retry_index,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "llm call failed; retrying"
            );
            metrics::counter!("llm_retries_total", "provider" => provider.clone(), "operation" => operation)
                .increment(1);
            tokio::time::sleep(delay).await;
        }
    }
}

fn provider_of_kind(kind: ProviderKind, settings: &LlmSettings) -> Result<Arc<dyn LlmProvider>, LlmError> {
    let api_key = settings.api_key.clone();
    Ok(match kind {
        ProviderKind::Ollama => {
            Arc::new(OllamaProvider::new(&settings.base_url, api_key, settings.connect_timeout())?)
        }
        ProviderKind::Openai => {
            Arc::new(OpenAiProvider::new(&settings.base_url, api_key, settings.connect_timeout())?)
        }
        ProviderKind::Local => Arc::new(LocalProvider::new(&settings.local)?),
        ProviderKind::Auto => {
            return Err(LlmError::internal("provider `auto` is resolved by LlmClient::connect"));
        }
    })
}

/// The server at `base_url` if it lists its models as Ollama or as an OpenAI-compatible server
/// within the connect timeout (twice it, for the whole answer), else the embedded models.
async fn auto_provider(settings: &LlmSettings) -> Result<Arc<dyn LlmProvider>, LlmError> {
    let deadline = settings.connect_timeout() * 2;
    for kind in [ProviderKind::Ollama, ProviderKind::Openai] {
        let provider = provider_of_kind(kind, settings)?;
        match tokio::time::timeout(deadline, provider.list_models()).await {
            Ok(Ok(_)) => return Ok(provider),
            Ok(Err(error)) => tracing::debug!(provider = provider.name(), %error, "llm server probe failed"),
            Err(_) => tracing::debug!(provider = provider.name(), "llm server probe timed out"),
        }
    }
    tracing::info!("no LLM server answers at llm.base_url; using the embedded models");
    Ok(Arc::new(LocalProvider::new(&settings.local)?))
}

fn model_names(models: &[ModelInfo]) -> Vec<String> {
    models.iter().map(|model| model.name.clone()).collect()
}
