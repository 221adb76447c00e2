//! [`LocalProvider`]: the embedded models, in process — chat and streaming from a llama-family
//! GGUF model (SmolLM2-135M-Instruct by default) and sentence embeddings from a BERT-family
//! model (all-MiniLM-L6-v2), both with candle. The platform answers with no LLM server at all.
//!
//! The files are checked when the provider is created (a missing one is an error naming the
//! path and the command that fetches it) and loaded on first use. Inference runs on tokio's
//! blocking pool, never on the async workers; how many run at once is bounded by the
//! [`crate::LlmClient`]'s inference slots (the arbitrator's `llm_slots` or a local semaphore).
//! A generation whose caller went away (a dropped stream, a timed-out chat) stops at the next
//! token.

mod chat_model;
mod embedding_model;
mod generate;
mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Mutex, OnceCell, mpsc};

pub use settings::{FETCH_MODELS_COMMAND, LocalSettings};

use crate::client::model_names_match;
use crate::error::LlmError;
use crate::provider::LlmProvider;
use crate::types::{ChatChunk, ChatMessage, ChatRequest, ChatResponse, ChatStream, ModelInfo};
use chat_model::ChatModel;
use embedding_model::EmbeddingModel;
use generate::Plan;

/// Stream items buffered between the generating thread and the consumer.
const STREAM_BUFFER: usize = 32;

/// The embedded models.
#[derive(Debug)]
pub struct LocalProvider {
    settings: LocalSettings,
    chat_path: PathBuf,
    embedding_path: PathBuf,
    chat: OnceCell<Arc<ChatModel>>,
    embedding: OnceCell<Arc<EmbeddingModel>>,
}

impl LocalProvider {
    /// A provider for the models `settings` name; fails when a model file is missing.
    pub fn new(settings: &LocalSettings) -> Result<Self, LlmError> {
        settings.check_files()?;
        Ok(Self {
            settings: settings.clone(),
            chat_path: settings.chat_model_path(),
            embedding_path: settings.embedding_model_path(),
            chat: OnceCell::new(),
            embedding: OnceCell::new(),
        })
    }

    /// Loads both models now rather than on first use (a service warming up before it
    /// reports ready, a benchmark keeping load time out of its figures).
    pub async fn preload(&self) -> Result<(), LlmError> {
        self.chat_model().await?;
        self.embedding_model().await?;
        Ok(())
    }

    async fn chat_model(&self) -> Result<Arc<ChatModel>, LlmError> {
        static LOADED: Loaded<ChatModel> = Loaded::const_new(BTreeMap::new());
        self.chat.get_or_try_init(|| shared(&LOADED, &self.chat_path, ChatModel::load)).await.cloned()
    }

    async fn embedding_model(&self) -> Result<Arc<EmbeddingModel>, LlmError> {
        static LOADED: Loaded<EmbeddingModel> = Loaded::const_new(BTreeMap::new());
        self.embedding
            .get_or_try_init(|| shared(&LOADED, &self.embedding_path, EmbeddingModel::load))
            .await
            .cloned()
    }

    /// The chat model and the plan for `request`, or why the request cannot run.
    async fn prepare(&self, request: &ChatRequest) -> Result<(Arc<ChatModel>, Plan), LlmError> {
        self.check_model(&request.model, &self.settings.chat_model, "a chat")?;
        let model = self.chat_model().await?;
        let context = self.settings.context_tokens;
        let default_max = self.settings.default_max_tokens;
        let planned = Arc::clone(&model);
        let request = request.clone();
        let plan = blocking(move || Plan::new(&planned, &request, context, default_max)).await?;
        Ok((model, plan))
    }

    fn check_model(&self, requested: &str, served: &str, call: &str) -> Result<(), LlmError> {
        if model_names_match(requested, served) {
            return Ok(());
        }
        let right = if served == self.settings.chat_model { "chat" } else { "embedding" };
        Err(LlmError::BadRequest {
            reason: format!("`{requested}` cannot answer {call}; the local {right} model is `{served}`"),
        })
    }
}

impl LlmProvider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        let size = |path: &PathBuf| std::fs::metadata(path).ok().map(|metadata| metadata.len());
        let models = vec![
            ModelInfo {
                name: self.settings.chat_model.clone(),
                size_bytes: size(&self.chat_path),
                family: Some("llama".to_owned()),
            },
            ModelInfo {
                name: self.settings.embedding_model.clone(),
                size_bytes: size(&self.embedding_path.join("model.safetensors")),
                family: Some("bert".to_owned()),
            },
        ];
        futures_util::future::ready(Ok(models)).boxed()
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        async move {
            let (model, plan) = self.prepare(request).await?;
            // Set when this future is dropped (a timeout, a caller gone), which ends the
            // generation at its next token.
            let abandoned = CancelOnDrop::default();
            let flag = Arc::clone(&abandoned.0);
            let (text, finish) = blocking(move || {
                let mut text = String::new();
                let finish = plan.run(&model, &|| flag.load(Ordering::Relaxed), &mut |piece| {
                    text.push_str(&piece);
                    true
                })?;
                Ok((text, finish))
            })
            .await?;
            Ok(ChatResponse {
                message: ChatMessage::assistant(text),
                model: request.model.clone(),
                usage: finish.usage,
                finish_reason: finish.reason.to_owned(),
            })
        }
        .boxed()
    }

    fn chat_stream<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatStream, LlmError>> {
        async move {
            let (model, plan) = self.prepare(request).await?;
            let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
            tokio::task::spawn_blocking(move || {
                let outcome = plan.run(&model, &|| sender.is_closed(), &mut |piece| {
                    sender.blocking_send(Ok(ChatChunk::Delta(piece))).is_ok()
                });
                let last = outcome.map(|finish| ChatChunk::Done {
                    usage: finish.usage,
                    finish_reason: finish.reason.to_owned(),
                });
                // The receiver may be gone already; nobody is left to tell.
                let _ = sender.blocking_send(last);
            });
            let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|item| (item, receiver))
            });
            Ok(stream.boxed())
        }
        .boxed()
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        inputs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        async move {
            self.check_model(model, &self.settings.embedding_model, "embeddings")?;
            let embedder = self.embedding_model().await?;
            let inputs = inputs.to_vec();
            blocking(move || embedder.embed(&inputs)).await
        }
        .boxed()
    }
}

/// Models this process has loaded, by path: the roles of one process (`sutazai up` runs the
/// gateway, the vector service and the agent workers together) share one copy of each model.
type Loaded<Model> = Mutex<BTreeMap<PathBuf, Weak<Model>>>;

/// The model at `path`, loaded by `load` on the blocking pool unless this process holds it
/// already; concurrent first uses wait for one load.
async fn shared<Model: Send + Sync + 'static>(
    loaded: &'static Loaded<Model>,
    path: &Path,
    load: fn(&Path) -> Result<Model, LlmError>,
) -> Result<Arc<Model>, LlmError> {
    let mut models = loaded.lock().await;
    if let Some(model) = models.get(path).and_then(Weak::upgrade) {
        return Ok(model);
    }
    let owned = path.to_owned();
    let model = Arc::new(blocking(move || load(&owned)).await?);
    models.insert(path.to_owned(), Arc::downgrade(&model));
    Ok(model)
}

/// Runs `work` on the blocking pool.
async fn blocking<Output: Send + 'static>(
    work: impl FnOnce() -> Result<Output, LlmError> + Send + 'static,
) -> Result<Output, LlmError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| LlmError::internal(format!("local inference task failed: {error}")))?
}

/// A flag raised when dropped.
#[derive(Debug, Default)]
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
