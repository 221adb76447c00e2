//! The gateway on the embedded models (no LLM server): SmolLM2 streams its answer as SSE frames,
//! the same seed giving the same text, and RAG over documents the vector service embedded with
//! MiniLM finds the passage that answers a question.

use serde_json::{Value, json};
use sutazai_llm::{LocalProvider, LocalSettings};

use crate::services::json_of;
use crate::{Options, Platform, platform_with};

/// The platform on the embedded models, loaded beforehand: a process loads each model once and
/// every role in it shares it, so the first request does not wait for the load (longer than the
/// tests' 5 s request timeout in an unoptimised build). The provider keeps them loaded.
async fn local_platform(services: bool) -> (Platform, LocalProvider) {
    let provider = LocalProvider::new(&LocalSettings::default()).unwrap();
    provider.preload().await.unwrap();
    (platform_with(Options { services, local_models: true, ..Options::default() }).await, provider)
}

/// The `delta` texts of an SSE answer and its `done` event's data.
fn sse_frames(body: &str) -> (Vec<String>, Value) {
    let mut deltas = Vec::new();
    let mut done = Value::Null;
    let mut event = "";
    for line in body.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event = name;
        } else if let Some(data) = line.strip_prefix("data: ") {
            let data: Value = serde_json::from_str(data).unwrap();
            match event {
                "done" => done = data,
                "" => deltas.push(data["delta"].as_str().unwrap().to_owned()),
                other => panic!("unexpected event {other}: {data}"),
            }
        } else if line.is_empty() {
            event = "";
        }
    }
    (deltas, done)
}

#[tokio::test(flavor = "multi_thread")]
async fn smollm2_streams_sse_frames_and_a_seed_repeats_the_text() {
    let (platform, _models) = local_platform(false).await;
    let token = platform.user("streamer").await;
    let models = json_of(platform.get("/api/v1/models", &token).await, 200).await;
    assert!(
        models.to_string().contains("smollm2:135m") && models.to_string().contains("all-minilm"),
        "{models}"
    );
    let request = json!({"message": "Write two sentences about the sea.", "seed": 42, "temperature": 0.7,
        "max_tokens": 24, "use_cache": false});
    let mut texts = Vec::new();
    for _ in 0..2 {
        let response = platform.post("/api/v1/chat/stream", &token, request.clone()).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let (deltas, done) = sse_frames(&response.text().await.unwrap());
        assert!(deltas.len() >= 8, "one frame per piece of text: {deltas:?}");
        assert!(done["usage"]["completion_tokens"].as_u64().unwrap() >= 8, "{done}");
        texts.push(deltas.concat());
    }
    assert_eq!(texts[0], texts[1], "same seed, same text");
    let whole = json_of(platform.post("/api/v1/chat", &token, request).await, 200).await;
    assert_eq!(whole["message"]["content"], texts[0].as_str());
}

const QUESTION: &str = "When does the swimming pool open on Sundays?";
const ANSWER_ID: &str = "doc-37";
const ANSWER: &str = "On Sundays the swimming pool opens at seven in the morning.";

/// 50 short documents on different everyday subjects; `ANSWER_ID` holds the answer.
fn documents() -> Vec<Value> {
    let subjects = [
        "The bakery on Main Street sells rye bread every Tuesday.",
        "Our team meeting moved to the blue conference room.",
        "The train to the airport leaves from platform four.",
        "Printer paper is kept in the cabinet next to the kitchen.",
        "The museum is closed for renovation until March.",
        "Parking permits are issued by the front desk.",
        "The cafeteria serves vegetarian lasagna on Fridays.",
        "Library books can be borrowed for three weeks.",
        "The gym offers yoga classes on Wednesday evenings.",
        "Visitors must sign in at the reception.",
    ];
    let places = ["north wing", "south wing", "east annex", "west tower", "old building"];
    (0..50)
        .map(|index| {
            let text = if index == 37 {
                ANSWER.to_owned()
            } else {
                format!("{} This applies to the {}.", subjects[index % subjects.len()], places[index / 10])
            };
            json!({"id": format!("doc-{index}"), "text": text})
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rag_over_fifty_documents_retrieves_the_one_that_answers() {
    let (platform, _models) = local_platform(true).await;
    let token = platform.user("librarian").await;
    let created = platform
        .post(
            "/api/v1/vectors/collections",
            &token,
            json!({"name": "facts", "dimension": 384, "metric": "cosine", "index": {"type": "flat"}}),
        )
        .await;
    json_of(created, 201).await;
    // Ten per call, as a client sending batches would.
    for batch in documents().chunks(10) {
        let upserted = platform
            .post("/api/v1/vectors/collections/facts/documents", &token, json!({"documents": batch}))
            .await;
        assert_eq!(json_of(upserted, 200).await, json!({"upserted": 10}));
    }

    let chat = json!({"message": QUESTION, "rag": {"collection": "facts", "top_k": 3}, "max_tokens": 8,
        "temperature": 0, "use_cache": false});
    let answer = json_of(platform.post("/api/v1/chat", &token, chat).await, 200).await;
    let passages = answer["passages"].as_array().unwrap();
    assert_eq!(passages.len(), 3, "{answer}");
    assert_eq!(passages[0]["id"], ANSWER_ID, "the answering document ranks first: {passages:?}");
    assert_eq!(passages[0]["text"], ANSWER);
    assert!(passages[0]["score"].as_f64().unwrap() > passages[1]["score"].as_f64().unwrap());
    assert!(!answer["message"]["content"].as_str().unwrap().trim().is_empty(), "{answer}");
}
