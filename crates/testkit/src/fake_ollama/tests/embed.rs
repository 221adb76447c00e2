//! `/api/embed`, `/api/embeddings` and the vectors of `fake_embedding`.

use axum::http::StatusCode;
use serde_json::json;

use super::{post_json, started_with_model};
use crate::fake_ollama::{DEFAULT_EMBEDDING_DIMENSION, fake_embedding};

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
    let legacy = post_json(&fake, "/api/embeddings", json!({"model": "all-minilm", "prompt": "hello"})).await;

    assert_eq!(truncated.json()["embeddings"][0].as_array().expect("vector").len(), 8);
    assert_eq!(empty.json(), json!({"model": "all-minilm", "embeddings": []}));
    assert_eq!(legacy.json()["embedding"].as_array().expect("vector").len(), DEFAULT_EMBEDDING_DIMENSION);
}

#[test]
fn embeddings_of_texts_sharing_words_are_closer() {
    let cosine = |left: &[f32], right: &[f32]| -> f32 { left.iter().zip(right).map(|(a, b)| a * b).sum() };
    let query = fake_embedding("why is the sky blue", 256);
    let related = fake_embedding("the sky is blue because of scattering", 256);
    let unrelated = fake_embedding("rust borrow checker lifetimes", 256);

    assert!(cosine(&query, &related) > cosine(&query, &unrelated) + 0.2);
    assert_ne!(fake_embedding("blue sky", 16), fake_embedding("sky blue", 16));
    assert_eq!(fake_embedding("", 16).len(), 16);
}
