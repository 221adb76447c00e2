//! `GET /api/tags` and `GET /api/version`: the installed models, described with plausible
//! values derived from their names, and the version the fake claims.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::FAKE_OLLAMA_VERSION;
use super::hashing::{fnv1a_64, splitmix64};
use super::state::{FakeModel, Shared};
use super::wire::{json_response, ollama_timestamp};

pub(super) async fn version() -> Response {
    json_response(StatusCode::OK, &json!({ "version": FAKE_OLLAMA_VERSION }))
}

pub(super) async fn list_models(State(shared): State<Arc<Shared>>) -> Response {
    let script = shared.lock();
    // Ollama lists the most recently modified model first.
    let mut entries = Vec::with_capacity(script.models.len());
    for model in script.models.iter().rev() {
        entries.push(model.to_tags_entry());
    }
    json_response(StatusCode::OK, &json!({ "models": entries }))
}

impl FakeModel {
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

/// A stable 64-hex-digit digest shaped like Ollama's sha256 manifest digests.
fn digest_of(name: &str) -> String {
    let mut state = fnv1a_64(name.as_bytes());
    let mut digest = String::with_capacity(64);
    for _ in 0..4 {
        digest.push_str(&format!("{:016x}", splitmix64(&mut state)));
    }
    digest
}
