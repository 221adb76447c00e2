//! `make bench-llm`, our side: the embedded models through [`LlmClient`] exactly as a service
//! uses them (inference slots, blocking pool, streaming), printed as one JSON object.
//!
//! - Generation: the ChatML prompt of `bench/llm/prompt.txt` (one user turn, the model's
//!   default system prompt), greedy, `BENCH_LLM_TOKENS` (128) tokens at most, `BENCH_LLM_RUNS`
//!   (5) runs after one warm-up. Prompt processing = prompt tokens / time to the first streamed
//!   token; generation = further tokens / time from the first to the last token. Medians.
//! - Embeddings: the sentences of `BENCH_LLM_SENTENCES` (one per line, written by
//!   bench/llm.sh) embedded in one call per run; sentences per second, median of the runs.
//!
//! Threads: candle uses every core unless `RAYON_NUM_THREADS` says otherwise; bench/llm.sh sets
//! it and the peers' thread counts to the same value.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use sutazai_llm::{
    ChatChunk, ChatMessage, ChatRequest, LlmClient, LlmSettings, LocalProvider, LocalSettings, ProviderKind,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let runs = env_number("BENCH_LLM_RUNS", 5);
    let max_tokens = u32::try_from(env_number("BENCH_LLM_TOKENS", 128))?;
    let prompt = std::fs::read_to_string("bench/llm/prompt.txt")?;
    let sentences_file =
        std::env::var("BENCH_LLM_SENTENCES").unwrap_or_else(|_| "bench/llm/sentences.txt".into());
    let sentences: Vec<String> =
        std::fs::read_to_string(sentences_file)?.lines().map(str::to_owned).collect();

    let settings = local_settings();
    let provider = LocalProvider::new(&settings.local)?;
    let started = Instant::now();
    provider.preload().await?;
    let load_s = started.elapsed().as_secs_f64();
    let client = LlmClient::new(Arc::new(provider), &settings);

    let request = ChatRequest {
        temperature: Some(0.0),
        seed: Some(42),
        max_tokens: Some(max_tokens),
        ..ChatRequest::new(settings.local.chat_model.clone(), vec![ChatMessage::user(prompt.trim())])
    };
    let mut prompt_rates = Vec::new();
    let mut generation_rates = Vec::new();
    let mut generated = 0;
    let mut prompt_tokens = 0;
    let mut answer = String::new();
    for run in 0..=runs {
        let started = Instant::now();
        let mut stream = client.chat_stream(request.clone()).await?;
        let mut first = None;
        let mut done = None;
        let mut text = String::new();
        while let Some(item) = stream.next().await {
            match item? {
                ChatChunk::Delta(piece) => {
                    first.get_or_insert_with(Instant::now);
                    text.push_str(&piece);
                }
                ChatChunk::Done { usage, .. } => done = Some((usage, Instant::now())),
            }
        }
        let (usage, finished) = done.ok_or("the stream ended without Done")?;
        let first = first.ok_or("no token was generated")?;
        if run == 0 {
            continue;
        }
        prompt_tokens = usage.prompt_tokens;
        answer = text.chars().take(80).collect();
        generated = usage.completion_tokens;
        prompt_rates.push(f64::from(usage.prompt_tokens) / (first - started).as_secs_f64());
        generation_rates
            .push(f64::from(usage.completion_tokens.saturating_sub(1)) / (finished - first).as_secs_f64());
    }

    let mut embedding_rates = Vec::new();
    client.embed(&settings.local.embedding_model, sentences[..32.min(sentences.len())].to_vec()).await?;
    for _ in 0..runs {
        let started = Instant::now();
        let vectors = client.embed(&settings.local.embedding_model, sentences.clone()).await?;
        embedding_rates.push(vectors.len() as f64 / started.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({
            "engine": "sutazai local (candle)",
            "load_s": load_s,
            "prompt_tokens": prompt_tokens,
            "generated_tokens": generated,
            "prompt_tokens_per_s": median(prompt_rates),
            "generation_tokens_per_s": median(generation_rates),
            "answer_start": answer,
            "sentences": sentences.len(),
            "embeddings_per_s": median(embedding_rates),
        })
    );
    Ok(())
}

/// The embedded models with one inference slot, as a service on this machine runs them.
fn local_settings() -> LlmSettings {
    LlmSettings {
        provider: ProviderKind::Local,
        base_url: sutazai_kit::config::ConnectionUrl::new("http://127.0.0.1:9"),
        api_key: None,
        default_model: LocalSettings::default().chat_model,
        request_timeout_ms: 600_000,
        connect_timeout_ms: 1_000,
        max_retries: 0,
        retry_base_delay_ms: 100,
        retry_max_delay_ms: 100,
        model_list_ttl_s: 60,
        cache_ttl_s: 60,
        max_concurrent_requests: 1,
        local: LocalSettings::default(),
    }
}
