//! Chat with `rag`: the real vector service embeds documents with the fake Ollama's deterministic
//! model, the gateway retrieves the passages nearest to the question with the user's token, and
//! the fake records the prompt the model got. The question is the exact text of one document, so
//! that document is retrieved first (similarity 1) whatever the fake's embedding means; the rank of
//! the others is computed here from the same deterministic embedding.

use serde_json::{Value, json};
use sutazai_testkit::fake_ollama::{DEFAULT_EMBEDDING_DIMENSION, fake_embedding};

use crate::services::{json_of, with_services};
use crate::{Platform, problem};

const QUESTION: &str = "The office door is painted teal.";
const DOCUMENTS: [(&str, &str); 3] = [
    ("teal", QUESTION),
    ("lunch", "Lunch is served at noon in the cafeteria."),
    ("parking", "Visitors park behind building C, next to the bike racks."),
];

fn cosine(left: &[f32], right: &[f32]) -> f64 {
    let dot: f32 = left.iter().zip(right).map(|(a, b)| a * b).sum();
    let norm = |vector: &[f32]| vector.iter().map(|component| component * component).sum::<f32>().sqrt();
    f64::from(dot / (norm(left) * norm(right)))
}

/// The similarity the vector service gives `text` for the question.
fn similarity(text: &str) -> f64 {
    cosine(
        &fake_embedding(QUESTION, DEFAULT_EMBEDDING_DIMENSION),
        &fake_embedding(text, DEFAULT_EMBEDDING_DIMENSION),
    )
}

/// A user and a cosine collection `handbook` holding the documents, plus a point stored as a bare
/// vector (no text) exactly where the question lands, which must never become a passage.
async fn handbook(platform: &Platform) -> String {
    let token = platform.user("reader").await;
    let created = platform
        .post(
            "/api/v1/vectors/collections",
            &token,
            json!({"name": "handbook", "dimension": DEFAULT_EMBEDDING_DIMENSION, "metric": "cosine",
                "index": {"type": "flat"}}),
        )
        .await;
    json_of(created, 201).await;
    let documents: Vec<Value> = DOCUMENTS
        .iter()
        .map(|(id, text)| json!({"id": id, "text": text, "payload": {"source": "handbook"}}))
        .collect();
    let upserted = platform
        .post("/api/v1/vectors/collections/handbook/documents", &token, json!({"documents": documents}))
        .await;
    assert_eq!(json_of(upserted, 200).await, json!({"upserted": 3}));
    let bare =
        json!({"points": [{"id": 99, "vector": fake_embedding(QUESTION, DEFAULT_EMBEDDING_DIMENSION)}]});
    let upserted = platform.put("/api/v1/vectors/collections/handbook/points", &token, bare).await;
    assert_eq!(json_of(upserted, 200).await, json!({"upserted": 1}));
    token
}

/// The passages expected for `top_k` hits: the bare point takes one of the hits, the documents
/// follow by similarity.
fn expected_passages(top_k: usize) -> Vec<(&'static str, &'static str, f64)> {
    let mut ranked: Vec<(&str, &str, f64)> =
        DOCUMENTS.iter().map(|(id, text)| (*id, *text, similarity(text))).collect();
    ranked.sort_by(|left, right| right.2.total_cmp(&left.2));
    assert_eq!(ranked[0].0, "teal", "the question's own document is the nearest");
    ranked.truncate(top_k - 1);
    ranked
}

fn assert_passages(passages: &Value, expected: &[(&str, &str, f64)]) {
    let passages = passages.as_array().unwrap();
    assert_eq!(passages.len(), expected.len(), "{passages:?}");
    for (passage, (id, text, score)) in passages.iter().zip(expected) {
        assert_eq!(passage["id"], *id, "{passages:?}");
        assert_eq!(passage["text"], *text);
        let actual = passage["score"].as_f64().unwrap();
        assert!((actual - score).abs() < 1e-4, "{id}: score {actual}, expected {score}");
    }
}

/// The system message the passages must have become.
fn passages_message(expected: &[(&str, &str, f64)]) -> String {
    let mut message = "Use the following passages to answer. Cite them by [n].".to_owned();
    for (index, (id, text, _)) in expected.iter().enumerate() {
        message.push_str(&format!("\n[{}] (id {id}) {text}", index + 1));
    }
    message
}

/// The messages of the last chat the fake Ollama received.
fn last_prompt(platform: &Platform) -> Value {
    let chats: Vec<Value> = platform
        .ollama
        .requests()
        .into_iter()
        .filter(|request| request.path == "/api/chat")
        .map(|request| request.body)
        .collect();
    chats.last().expect("the model was called")["messages"].clone()
}

#[tokio::test]
async fn chat_with_rag_answers_from_the_retrieved_passages() {
    let platform = with_services().await;
    let token = handbook(&platform).await;
    let body = json!({
        "messages": [{"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": QUESTION}],
        "rag": {"collection": "handbook", "top_k": 3},
        "seed": 7,
    });
    let answer = json_of(platform.post("/api/v1/chat", &token, body).await, 200).await;
    let expected = expected_passages(3);
    assert_passages(&answer["passages"], &expected);
    assert_eq!(answer["message"]["content"], QUESTION, "the fake echoes the question");

    // The passages reached the model as a system message after the caller's own.
    let prompt = last_prompt(&platform);
    assert_eq!(
        prompt,
        json!([
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "system", "content": passages_message(&expected)},
            {"role": "user", "content": QUESTION},
        ])
    );
    let chat = platform.ollama.requests().into_iter().rfind(|request| request.path == "/api/chat").unwrap();
    assert_eq!(chat.body["options"]["seed"], 7);

    // The history keeps the caller's turns, not the retrieved passages.
    let conversation_id = answer["conversation_id"].as_str().unwrap();
    let conversation =
        json_of(platform.get(&format!("/api/v1/conversations/{conversation_id}"), &token).await, 200).await;
    let roles: Vec<&str> =
        conversation["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant"]);

    // min_score keeps the passages scoring at least that much: here only the exact match.
    let strict = json!({"message": QUESTION, "rag": {"collection": "handbook", "min_score": 0.99}, "use_cache": false});
    let answer = json_of(platform.post("/api/v1/chat", &token, strict).await, 200).await;
    assert_passages(&answer["passages"], &expected[..1]);

    // Without rag the answer has no passages and the prompt is the caller's.
    let plain = json_of(platform.post("/api/v1/chat", &token, json!({"message": "hello"})).await, 200).await;
    assert!(plain.get("passages").is_none(), "{plain}");
    assert_eq!(last_prompt(&platform), json!([{"role": "user", "content": "hello"}]));
}

#[tokio::test]
async fn rag_errors_name_the_field_and_call_no_model() {
    let platform = with_services().await;
    let token = handbook(&platform).await;
    let ask = |rag: Value| json!({"message": QUESTION, "rag": rag});

    let unknown = platform.post("/api/v1/chat", &token, ask(json!({"collection": "nope"}))).await;
    assert_eq!(unknown.status(), 404);
    let unknown = problem(unknown).await;
    assert_eq!(unknown["code"], "not_found");
    assert_eq!(unknown["detail"], "rag.collection: collection `nope` not found");

    for top_k in [0, 21] {
        let invalid = platform
            .post("/api/v1/chat", &token, ask(json!({"collection": "handbook", "top_k": top_k})))
            .await;
        assert_eq!(invalid.status(), 422);
        let invalid = problem(invalid).await;
        assert_eq!(invalid["field"], "rag.top_k");
        assert_eq!(invalid["detail"], "rag.top_k: must be between 1 and 20");
    }
    let negative =
        platform.post("/api/v1/chat", &token, ask(json!({"collection": "handbook", "top_k": -1}))).await;
    assert_eq!(negative.status(), 422);
    assert!(problem(negative).await["detail"].as_str().unwrap().contains("rag.top_k"));

    let bad_name = platform.post("/api/v1/chat", &token, ask(json!({"collection": "../etc"}))).await;
    assert_eq!(bad_name.status(), 422);
    assert_eq!(problem(bad_name).await["field"], "rag.collection");

    let distances = platform
        .post(
            "/api/v1/vectors/collections",
            &token,
            json!({"name": "distances", "dimension": DEFAULT_EMBEDDING_DIMENSION, "metric": "l2"}),
        )
        .await;
    json_of(distances, 201).await;
    let min_score_on_l2 = platform
        .post("/api/v1/chat", &token, ask(json!({"collection": "distances", "min_score": 0.5})))
        .await;
    assert_eq!(min_score_on_l2.status(), 422);
    assert_eq!(problem(min_score_on_l2).await["field"], "rag.min_score");

    let stream = platform.post("/api/v1/chat/stream", &token, ask(json!({"collection": "nope"}))).await;
    assert_eq!(stream.status(), 404, "known before streaming: an ordinary error response");
    assert_eq!(problem(stream).await["detail"], "rag.collection: collection `nope` not found");

    let chats = platform.ollama.requests().into_iter().filter(|request| request.path == "/api/chat").count();
    assert_eq!(chats, 0, "no refused request reached the model");
}

#[tokio::test]
async fn the_stream_sends_the_passages_first() {
    let platform = with_services().await;
    let token = handbook(&platform).await;
    let body = json!({"message": QUESTION, "rag": {"collection": "handbook", "top_k": 2}});
    let response = platform.post("/api/v1/chat/stream", &token, body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let mut events: Vec<(Option<String>, Value)> = Vec::new();
    let mut event_name = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event_name = Some(name.to_owned());
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((event_name.take(), serde_json::from_str(data).unwrap()));
        }
    }
    let (first_name, first) = &events[0];
    assert_eq!(first_name.as_deref(), Some("passages"), "{text}");
    let expected = expected_passages(2);
    assert_passages(&first["passages"], &expected);
    let deltas: String = events[1..events.len() - 1]
        .iter()
        .map(|(name, frame)| {
            assert_eq!(name, &None, "only deltas between passages and done: {text}");
            frame["delta"].as_str().unwrap()
        })
        .collect();
    assert_eq!(deltas, QUESTION);
    assert_eq!(events.last().unwrap().0.as_deref(), Some("done"));
    assert_eq!(last_prompt(&platform)[0]["content"], passages_message(&expected));
}

#[tokio::test]
async fn the_openapi_document_describes_rag() {
    let platform = crate::platform().await;
    let document: Value =
        platform.client.get(platform.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let schemas = &document["components"]["schemas"];
    let rag_property = &schemas["ChatBody"]["properties"]["rag"];
    assert!(rag_property.to_string().contains("\"#/components/schemas/RagOptions\""), "{rag_property}");
    let rag = &schemas["RagOptions"];
    assert_eq!(rag["required"], json!(["collection"]), "{rag}");
    for field in ["collection", "top_k", "min_score"] {
        assert!(rag["properties"][field].is_object(), "{field} in {rag}");
    }
    for field in ["id", "score", "text"] {
        assert!(schemas["Passage"]["properties"][field].is_object(), "{field} in {}", schemas["Passage"]);
    }
    assert!(schemas["ChatAnswer"]["properties"]["passages"].is_object(), "{}", schemas["ChatAnswer"]);
}

#[tokio::test]
async fn a_token_that_cannot_read_vectors_gets_no_passages() {
    let platform = with_services().await;
    handbook(&platform).await;
    let admin = platform.admin("root").await;
    let account = platform
        .client
        .post(format!("{}/api/v1/auth/service-accounts", platform.auth))
        .bearer_auth(&admin)
        .json(&json!({"client_id": "chat-only", "scopes": ["chat"]}))
        .send()
        .await
        .unwrap();
    let secret = json_of(account, 201).await["client_secret"].as_str().unwrap().to_owned();
    let form = [("grant_type", "client_credentials"), ("client_id", "chat-only"), ("client_secret", &secret)];
    let issued =
        platform.client.post(format!("{}/api/v1/auth/token", platform.auth)).form(&form).send().await;
    let chat_only = json_of(issued.unwrap(), 200).await["access_token"].as_str().unwrap().to_owned();

    let body = json!({"message": QUESTION, "rag": {"collection": "handbook"}});
    let refused = platform.post("/api/v1/chat", &chat_only, body.clone()).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(problem(refused).await["detail"], "requires the `vectors:read` scope");
    let refused = platform.post("/api/v1/chat/stream", &chat_only, body).await;
    assert_eq!(refused.status(), 403);
    let plain = platform.post("/api/v1/chat", &chat_only, json!({"message": QUESTION})).await;
    assert_eq!(plain.status(), 200, "the same token may chat without rag");
}
