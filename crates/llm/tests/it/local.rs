//! The embedded models, loaded from the real files `make models` fetches (SmolLM2-135M-Instruct
//! Q4_1 GGUF, all-MiniLM-L6-v2 safetensors), through the same client every service uses; and
//! the `auto` choice between a reachable server and the embedded models.

use std::sync::Arc;

use futures_util::StreamExt;
use sutazai_kit::config::ConnectionUrl;
use sutazai_llm::{
    CachePolicy, ChatChunk, ChatMessage, ChatRequest, LlmClient, LlmError, LlmSettings, LocalProvider,
    LocalSettings, ProviderKind,
};
use tokio::sync::OnceCell;

use crate::{Protocol, fake_with_models, settings};

const CHAT: &str = "smollm2:135m";
const EMBEDDING: &str = "all-minilm";

/// Settings for the embedded models; the request timeout is generous because tests build
/// candle without full optimisation.
fn local_settings() -> LlmSettings {
    LlmSettings {
        provider: ProviderKind::Local,
        default_model: CHAT.to_owned(),
        request_timeout_ms: 300_000,
        max_retries: 0,
        ..settings(Protocol::Ollama, "http://127.0.0.1:9")
    }
}

/// One client for the whole test binary run: loading the models once keeps the tests quick.
async fn client() -> &'static LlmClient {
    static CLIENT: OnceCell<LlmClient> = OnceCell::const_new();
    CLIENT
        .get_or_init(|| async {
            let settings = local_settings();
            let provider = LocalProvider::new(&settings.local).unwrap();
            LlmClient::new(Arc::new(provider), &settings)
        })
        .await
}

fn cosine(left: &[f32], right: &[f32]) -> f32 {
    let dot: f32 = left.iter().zip(right).map(|(a, b)| a * b).sum();
    let norm = |vector: &[f32]| vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    dot / (norm(left) * norm(right))
}

#[tokio::test(flavor = "multi_thread")]
async fn minilm_gives_the_published_similarities() {
    let sentences: Vec<String> =
        ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."]
            .map(str::to_owned)
            .to_vec();
    let vectors = client().await.embed(EMBEDDING, sentences).await.unwrap();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|vector| vector.len() == 384));
    let norm: f32 = vectors[0].iter().map(|value| value * value).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "embeddings are unit length, got {norm}");
    let related = cosine(&vectors[0], &vectors[1]);
    let unrelated = [cosine(&vectors[0], &vectors[2]), cosine(&vectors[1], &vectors[2])];
    assert!(related > 0.7, "eating food ~ eating bread: {related}");
    assert!(unrelated.iter().all(|&similarity| similarity < 0.2), "movie is unrelated: {unrelated:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_embeds_exactly_as_one_by_one() {
    let texts: Vec<String> = (0..40)
        .map(|index| format!("sentence number {index} {}", "with more words ".repeat(index % 7)))
        .collect();
    let client = client().await;
    let batch = client.embed(EMBEDDING, texts.clone()).await.unwrap();
    for (text, batched) in texts.into_iter().zip(&batch).step_by(3) {
        let single = client.embed(EMBEDDING, vec![text]).await.unwrap().remove(0);
        let largest = single.iter().zip(batched).map(|(a, b)| (a - b).abs()).fold(0.0_f32, f32::max);
        assert!(largest <= 1e-5, "batched and single embeddings differ by {largest}");
    }
}

fn question(seed: u64) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.7),
        seed: Some(seed),
        max_tokens: Some(24),
        ..ChatRequest::new(CHAT, vec![ChatMessage::user("Write two sentences about the sea.")])
    }
}

fn greedy(text: &str) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(16),
        ..ChatRequest::new(CHAT, vec![ChatMessage::user(text)])
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smollm2_answers_deterministically_for_a_seed() {
    let client = client().await;
    let first = client.chat(question(42), CachePolicy::Bypass).await.unwrap().response;
    let again = client.chat(question(42), CachePolicy::Bypass).await.unwrap().response;
    assert!(first.usage.completion_tokens >= 8, "{first:?}");
    assert!(first.usage.prompt_tokens > 10, "the ChatML prompt is counted: {first:?}");
    assert!(!first.message.content.trim().is_empty());
    assert_eq!(first.message.content, again.message.content, "same seed, same text");
    assert_eq!(first.model, CHAT);
    let other_seed = client.chat(question(43), CachePolicy::Bypass).await.unwrap().response;
    assert_ne!(first.message.content, other_seed.message.content, "another seed samples another answer");
}

/// llama.cpp (llama-cpp-python 0.3.36, the same GGUF) tokenizes this conversation, with the
/// model's default system prompt, into 37 tokens and answers it greedily with exactly this text
/// (the 135M model is no geographer): the same tokenizer, template and arithmetic.
#[tokio::test(flavor = "multi_thread")]
async fn greedy_decoding_matches_llama_cpp() {
    let answer = client()
        .await
        .chat(greedy("What is the capital of France?"), CachePolicy::Bypass)
        .await
        .unwrap()
        .response;
    assert_eq!(answer.usage.prompt_tokens, 37);
    assert_eq!(answer.message.content, "L'Étoile, la Marseillaise, la femme,");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_yields_the_same_text_as_a_whole_answer() {
    let client = client().await;
    let whole = client.chat(question(7), CachePolicy::Bypass).await.unwrap().response;
    let mut stream = client.chat_stream(question(7)).await.unwrap();
    let mut deltas = Vec::new();
    let mut done = None;
    while let Some(item) = stream.next().await {
        match item.unwrap() {
            ChatChunk::Delta(text) => deltas.push(text),
            ChatChunk::Done { usage, finish_reason } => done = Some((usage, finish_reason)),
        }
    }
    assert!(deltas.len() >= 4, "tokens arrive one piece at a time: {deltas:?}");
    assert_eq!(deltas.concat(), whole.message.content);
    let (usage, reason) = done.unwrap();
    assert_eq!(usage, whole.usage);
    assert_eq!(reason, whole.finish_reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_tokens_and_stop_strings_end_the_answer() {
    let client = client().await;
    let long = ChatRequest { max_tokens: Some(5), ..question(3) };
    let answer = client.chat(long, CachePolicy::Bypass).await.unwrap().response;
    assert_eq!(answer.usage.completion_tokens, 5);
    assert_eq!(answer.finish_reason, "length");

    let free = greedy("Write two sentences about the sea.");
    let text = client.chat(free.clone(), CachePolicy::Bypass).await.unwrap().response.message.content;
    let stop = text.split_whitespace().nth(2).unwrap().to_owned();
    let stopped = ChatRequest { stop: vec![stop.clone()], ..free };
    let answer = client.chat(stopped, CachePolicy::Bypass).await.unwrap().response;
    assert_eq!(answer.finish_reason, "stop");
    assert!(!answer.message.content.contains(&stop), "{:?} still holds {stop:?}", answer.message.content);
    assert!(text.starts_with(&answer.message.content), "{text:?} / {:?}", answer.message.content);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_models_and_oversized_prompts_are_refused() {
    let client = client().await;
    let models: Vec<String> =
        client.list_models().await.unwrap().into_iter().map(|model| model.name).collect();
    assert_eq!(models, [CHAT, EMBEDDING]);
    let error = client.embed(CHAT, vec!["x".to_owned()]).await.unwrap_err();
    assert!(matches!(error, LlmError::BadRequest { .. }), "{error:?}");
    let error =
        client.chat(ChatRequest::new(EMBEDDING, vec![ChatMessage::user("x")]), CachePolicy::Bypass).await;
    assert!(matches!(error, Err(LlmError::BadRequest { .. })), "{error:?}");
    let huge = ChatRequest::new(CHAT, vec![ChatMessage::user("word ".repeat(5_000))]);
    let error = client.chat(huge, CachePolicy::Bypass).await.unwrap_err();
    assert!(matches!(&error, LlmError::BadRequest { reason } if reason.contains("tokens")), "{error:?}");
}

#[tokio::test]
async fn auto_uses_a_reachable_server_and_otherwise_the_embedded_models() {
    let fake = fake_with_models().await;
    let mut settings = local_settings();
    settings.provider = ProviderKind::Auto;
    settings.base_url = ConnectionUrl::new(fake.base_url());
    assert_eq!(LlmClient::connect(&settings).await.unwrap().provider_name(), "ollama");
    settings.base_url = ConnectionUrl::new(format!("{}/v1", fake.base_url()));
    assert_eq!(LlmClient::connect(&settings).await.unwrap().provider_name(), "openai");
    // Nothing listens on the discard port.
    settings.base_url = ConnectionUrl::new("http://127.0.0.1:9");
    assert_eq!(LlmClient::connect(&settings).await.unwrap().provider_name(), "local");
}

#[tokio::test]
async fn a_missing_model_file_is_a_startup_error_naming_it() {
    let directory = tempfile::tempdir().unwrap();
    let mut settings = local_settings();
    settings.local =
        LocalSettings { models_dir: directory.path().display().to_string(), ..LocalSettings::default() };
    let error = LlmClient::connect(&settings).await.unwrap_err().to_string();
    assert!(error.contains(&directory.path().display().to_string()), "{error}");
    assert!(error.contains("make models"), "{error}");
}
