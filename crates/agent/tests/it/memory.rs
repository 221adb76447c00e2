//! memory-chat against the real vector service (embedding with the fake Ollama) and the real auth
//! service issuing the worker's token: an exchange is remembered in the owner's collection and
//! recalled by similarity into a later prompt, and never into another owner's.

use serde_json::json;
use sutazai_testkit::fake_ollama::{DEFAULT_EMBEDDING_DIMENSION, FakeOllama, fake_embedding};

use crate::services::{self, Wanted};
use crate::{Options, spawn_with};

#[tokio::test]
async fn a_later_message_recalls_the_most_similar_earlier_exchange() {
    let ollama = FakeOllama::start().await;
    ollama.add_model("all-minilm");
    let services = services::start(Wanted { vector: true, arbitrator: false }, &ollama.base_url()).await;
    let worker = spawn_with(Options {
        reach: services.reach.clone(),
        memory_recall: 1,
        ollama: Some(ollama),
        ..Options::profiles(&["memory-chat"])
    })
    .await;
    let owner = uuid::Uuid::now_v7().to_string();
    let chat = |message: &str| json!({"message": message, "conversation_id": "c-1"});

    // The first message finds no memory (the collection is created) and is remembered.
    let first = worker
        .assign_task(
            "memory-chat",
            sutazai_types::TaskId::new(),
            1,
            &owner,
            chat("My favourite colour is teal."),
        )
        .await;
    let first = worker.observer.result(first.task_id).await["output"].clone();
    assert_eq!(first["reply"], "My favourite colour is teal.", "the fake echoes the message");
    assert_eq!(first["recalled"], json!([]));
    let colour_id = first["remembered"].as_str().unwrap().to_owned();

    let second = worker
        .assign_task("memory-chat", sutazai_types::TaskId::new(), 1, &owner, chat("My dog is called Rex."))
        .await;
    let second = worker.observer.result(second.task_id).await["output"].clone();
    let dog_id = second["remembered"].as_str().unwrap().to_owned();

    // Of the two exchanges, the one about the colour is the most similar.
    let third = worker
        .assign_task(
            "memory-chat",
            sutazai_types::TaskId::new(),
            1,
            &owner,
            chat("What is my favourite colour?"),
        )
        .await;
    let result = worker.observer.result(third.task_id).await;
    let recalled = result["output"]["recalled"].as_array().unwrap();
    assert_eq!(recalled.len(), 1, "{recalled:?}");
    assert_eq!(recalled[0]["id"], colour_id.as_str());
    assert_ne!(colour_id, dog_id);
    // The score is the cosine similarity the vector service computed between the message and
    // the stored exchange, both embedded by the fake's deterministic model.
    let expected = cosine(
        &fake_embedding("What is my favourite colour?", DEFAULT_EMBEDDING_DIMENSION),
        &fake_embedding(
            "user: My favourite colour is teal.\nassistant: My favourite colour is teal.",
            DEFAULT_EMBEDDING_DIMENSION,
        ),
    );
    let score = recalled[0]["score"].as_f64().unwrap();
    assert!((score - f64::from(expected)).abs() < 1e-4, "score {score}, expected {expected}");
    let system = result["prompt"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("You are MEMORY-PERSONA."), "{system}");
    assert!(
        system.contains("1. user: My favourite colour is teal.\n   assistant: My favourite colour is teal."),
        "{system}"
    );
    assert!(!system.contains("Rex"), "{system}");
    let last_chat = worker.chats().pop().unwrap();
    assert_eq!(last_chat["messages"][0]["content"], system, "the stored prompt is what the model got");
    assert_eq!(last_chat["messages"][1]["content"], "What is my favourite colour?");

    // Another owner's memory is another collection.
    let stranger = worker
        .assign_task(
            "memory-chat",
            sutazai_types::TaskId::new(),
            1,
            "someone-else",
            chat("What is my favourite colour?"),
        )
        .await;
    let stranger = worker.observer.result(stranger.task_id).await["output"].clone();
    assert_eq!(stranger["recalled"], json!([]));
    worker.finish().await;
    services.finish().await;
}

/// Cosine similarity of two vectors.
fn cosine(left: &[f32], right: &[f32]) -> f32 {
    let dot: f32 = left.iter().zip(right).map(|(a, b)| a * b).sum();
    let norm = |vector: &[f32]| vector.iter().map(|component| component * component).sum::<f32>().sqrt();
    dot / (norm(left) * norm(right))
}
