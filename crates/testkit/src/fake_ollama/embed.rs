//! `POST /api/embed` and the legacy `POST /api/embeddings`: input validation, the model check
//! and the deterministic vectors of [`fake_embedding`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::embedding::{fake_embedding, normalize_l2};
use super::routes::ReceivedAt;
use super::state::Shared;
use super::wire::{OllamaError, count_words, duration_nanos, insert_nonzero, json_response, parse_body};

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

pub(super) async fn embed(
    State(shared): State<Arc<Shared>>,
    Extension(ReceivedAt(received_at)): Extension<ReceivedAt>,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let request: EmbedRequest = parse_body(&body)?;
    // Ollama checks the input before the model, so a bad input wins over an unknown model.
    let inputs = embed_inputs(&request.input)?;
    let dimension = embedding_dimension_for(&shared, &request.model)?;
    if inputs.is_empty() {
        return Ok(json_response(StatusCode::OK, &json!({ "model": request.model, "embeddings": [] })));
    }
    let handler_started_at = Instant::now();
    let (embeddings, prompt_word_count) = embed_texts(&inputs, dimension, request.dimensions);
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

pub(super) async fn embeddings_legacy(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let request: LegacyEmbeddingsRequest = parse_body(&body)?;
    let dimension = embedding_dimension_for(&shared, &request.model)?;
    // An empty prompt only loads the model.
    let embedding: Vec<f64> = if request.prompt.is_empty() {
        Vec::new()
    } else {
        fake_embedding(&request.prompt, dimension).into_iter().map(f64::from).collect()
    };
    Ok(json_response(StatusCode::OK, &json!({ "embedding": embedding })))
}

/// The vectors of `inputs` and the number of words they hold; `requested_dimensions` below the
/// model's dimension truncates each vector and normalizes it again, as Ollama does.
pub(super) fn embed_texts(
    inputs: &[String],
    dimension: usize,
    requested_dimensions: Option<usize>,
) -> (Vec<Vec<f32>>, usize) {
    let mut embeddings = Vec::with_capacity(inputs.len());
    let mut prompt_word_count = 0;
    for input in inputs {
        prompt_word_count += count_words(input);
        let full_vector = fake_embedding(input, dimension);
        let vector = match requested_dimensions {
            Some(requested) if requested > 0 && requested < full_vector.len() => {
                let mut truncated = full_vector[..requested].to_vec();
                normalize_l2(&mut truncated);
                truncated
            }
            _ => full_vector,
        };
        embeddings.push(vector);
    }
    (embeddings, prompt_word_count)
}

/// The current embedding dimension, once `requested_model` is known to be installed; one lock
/// so a concurrent script change cannot slip between the two.
pub(super) fn embedding_dimension_for(shared: &Shared, requested_model: &str) -> Result<usize, OllamaError> {
    let script = shared.lock();
    script.check_model_installed(requested_model)?;
    Ok(script.embedding_dimension)
}

pub(super) fn embed_inputs(input: &Value) -> Result<Vec<String>, OllamaError> {
    match input {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) => {
            let mut inputs = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(text) = item else {
                    return Err(OllamaError::bad_request("invalid input type"));
                };
                inputs.push(text.clone());
            }
            Ok(inputs)
        }
        _ => Err(OllamaError::bad_request("invalid input type")),
    }
}
