//! `GET /v1/models` and `POST /v1/embeddings`: the installed models and the deterministic
//! embeddings of `/api/embed`, in the OpenAI shapes Ollama's compatibility layer sends.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::embed::{embed_inputs, embed_texts, embedding_dimension_for};
use super::openai_wire::{OpenAiError, openai_json_response, owned_by};
use super::state::Shared;
use super::wire::is_blank;

pub(super) async fn list_models(State(shared): State<Arc<Shared>>) -> Response {
    let script = shared.lock();
    let mut entries = Vec::with_capacity(script.models.len());
    for model in script.models.iter().rev() {
        entries.push(json!({
            "id": model.name,
            "object": "model",
            "created": model.modified_at.timestamp(),
            "owned_by": owned_by(&model.name),
        }));
    }
    // Go marshals the nil slice of an empty list as null.
    let data = if entries.is_empty() { Value::Null } else { Value::Array(entries) };
    openai_json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    #[serde(default)]
    input: Value,
    #[serde(default)]
    model: String,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    encoding_format: Option<String>,
}

pub(super) async fn embeddings(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    if is_blank(&body) {
        return Err(OpenAiError::bad_request("EOF"));
    }
    let request: EmbeddingsRequest =
        serde_json::from_slice(&body).map_err(|error| OpenAiError::bad_request(error.to_string()))?;
    let encoding_format = request.encoding_format.unwrap_or_default();
    let wants_base64 = encoding_format.eq_ignore_ascii_case("base64");
    if !encoding_format.is_empty() && !wants_base64 && !encoding_format.eq_ignore_ascii_case("float") {
        return Err(OpenAiError::bad_request(format!(
            "Invalid value for 'encoding_format' = {encoding_format}. Supported values: ['float', 'base64']."
        )));
    }
    let input = match request.input {
        Value::String(text) if text.is_empty() => json!([""]),
        Value::Null => return Err(OpenAiError::bad_request("invalid input")),
        Value::Array(items) if items.is_empty() => return Err(OpenAiError::bad_request("invalid input")),
        other => other,
    };
    let inputs = embed_inputs(&input)?;
    let dimension = embedding_dimension_for(&shared, &request.model)?;
    let (vectors, prompt_word_count) = embed_texts(&inputs, dimension, request.dimensions);
    let mut data = Vec::with_capacity(vectors.len());
    for (index, vector) in vectors.iter().enumerate() {
        let embedding =
            if wants_base64 { Value::String(little_endian_base64(vector)) } else { json!(vector) };
        data.push(json!({ "object": "embedding", "embedding": embedding, "index": index }));
    }
    let list = json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": { "prompt_tokens": prompt_word_count, "total_tokens": prompt_word_count },
    });
    Ok(openai_json_response(StatusCode::OK, &list))
}

/// The floats as little-endian bytes in standard base64, Ollama's `floatsToBase64`.
fn little_endian_base64(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|value| value.to_le_bytes()).collect();
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let padded = [group[0], group.get(1).copied().unwrap_or(0), group.get(2).copied().unwrap_or(0)];
        let bits = u32::from(padded[0]) << 16 | u32::from(padded[1]) << 8 | u32::from(padded[2]);
        for position in 0..4 {
            if position <= group.len() {
                encoded.push(char::from(ALPHABET[(bits >> (18 - 6 * position) & 0x3f) as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::little_endian_base64;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        // 1.0f32 is 00 00 80 3f little-endian.
        assert_eq!(little_endian_base64(&[1.0]), "AACAPw==");
        assert_eq!(little_endian_base64(&[1.0, -2.0]), "AACAPwAAAMA=");
        assert_eq!(little_endian_base64(&[]), "");
    }
}
