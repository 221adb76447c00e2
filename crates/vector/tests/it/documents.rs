//! Documents: texts embedded through the LLM provider (the fake Ollama's deterministic
//! embeddings) and stored with the text in the payload; text queries embedded the same way.

use serde_json::json;
use sutazai_proto::json::{to_proto_struct, to_proto_value};
use sutazai_proto::v1 as pb;
use sutazai_testkit::fake_ollama::{DEFAULT_EMBEDDING_DIMENSION, FakeOllama, StatusCode, fake_embedding};
use tonic::Code;

use crate::{TestVector, assert_status, hit_ids, num, object, payload_json, spawn_with, text};

fn document(id: pb::PointId, text: &str, payload: Option<serde_json::Value>) -> pb::Document {
    pb::Document {
        id: Some(id),
        text: text.to_owned(),
        payload: payload.map(|value| to_proto_struct(&object(value))),
    }
}

async fn upsert_documents(
    service: &mut TestVector,
    collection: &str,
    documents: Vec<pb::Document>,
) -> Result<u64, tonic::Status> {
    let request =
        service.request(pb::UpsertDocumentsRequest { collection: collection.to_owned(), documents });
    service.client.upsert_documents(request).await.map(|response| response.into_inner().upserted)
}

async fn start() -> (FakeOllama, TestVector) {
    let ollama = FakeOllama::start().await;
    ollama.add_model("all-minilm");
    let service = spawn_with(&ollama.base_url(), |_| {}).await;
    (ollama, service)
}

#[tokio::test]
async fn documents_are_embedded_stored_and_queried() {
    let (ollama, mut service) = start().await;
    let dimension = u32::try_from(DEFAULT_EMBEDDING_DIMENSION).unwrap();
    service.create("notes", dimension, pb::DistanceMetric::Cosine, None).await;
    let documents = vec![
        document(num(1), "The quick brown fox jumps over the lazy dog", None),
        document(text("b"), "Rust services store vectors durably", Some(json!({"lang": "en"}))),
        document(
            num(3),
            "A recipe for bread and butter",
            Some(json!({"text": "kept as given", "lang": "de"})),
        ),
        document(num(4), "Foxes are quick and brown", Some(json!({"lang": "en"}))),
        document(num(5), "Write-ahead logs make writes durable", None),
        document(num(6), "Bread needs flour water and salt", None),
    ];
    assert_eq!(upsert_documents(&mut service, "notes", documents).await.unwrap(), 6);
    // Batches of embedding_batch_size (4) texts per call.
    let embeds: Vec<_> =
        ollama.requests().into_iter().filter(|request| request.path == "/api/embed").collect();
    assert_eq!(embeds.len(), 2);
    assert_eq!(embeds[0].body["model"], "all-minilm");
    assert_eq!(embeds[1].body["input"].as_array().unwrap().len(), 2);

    let first = service.get("notes", num(1)).await.unwrap();
    assert_eq!(
        first.vector,
        fake_embedding("The quick brown fox jumps over the lazy dog", DEFAULT_EMBEDDING_DIMENSION)
    );
    assert_eq!(
        payload_json(first.payload.as_ref()),
        json!({"text": "The quick brown fox jumps over the lazy dog"})
    );
    let second = service.get("notes", text("b")).await.unwrap();
    assert_eq!(
        payload_json(second.payload.as_ref()),
        json!({"lang": "en", "text": "Rust services store vectors durably"})
    );
    let third = service.get("notes", num(3)).await.unwrap();
    assert_eq!(payload_json(third.payload.as_ref()), json!({"text": "kept as given", "lang": "de"}));

    let request = service.request(pb::QueryDocumentsRequest {
        collection: "notes".to_owned(),
        text: "quick brown".to_owned(),
        k: 2,
        filter: None,
        with_payload: true,
    });
    let hits = service.client.query_documents(request).await.unwrap().into_inner().hits;
    assert_eq!(hit_ids(&hits), [num(4), num(1)], "the texts sharing the query's words rank first");
    assert!(hits[0].score > hits[1].score);
    assert_eq!(payload_json(hits[0].payload.as_ref())["text"], "Foxes are quick and brown");

    let english = pb::Filter {
        must: vec![pb::Condition {
            key: "lang".to_owned(),
            condition: Some(pb::condition::Condition::Match(to_proto_value(&json!("en")))),
        }],
        ..pb::Filter::default()
    };
    let request = service.request(pb::QueryDocumentsRequest {
        collection: "notes".to_owned(),
        text: "bread".to_owned(),
        k: 10,
        filter: Some(english),
        with_payload: false,
    });
    let hits = service.client.query_documents(request).await.unwrap().into_inner().hits;
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|hit| hit.payload.is_none()));
    let mut ids = hit_ids(&hits);
    ids.sort_by_key(|id| format!("{id:?}"));
    assert_eq!(ids, [num(4), text("b")]);
}

#[tokio::test]
async fn bad_documents_and_model_trouble_are_reported() {
    let (ollama, mut service) = start().await;
    service.create("small", 8, pb::DistanceMetric::Cosine, None).await;
    service.create("notes", 384, pb::DistanceMetric::Cosine, None).await;

    let status =
        upsert_documents(&mut service, "small", vec![document(num(1), "hello", None)]).await.unwrap_err();
    assert_status(
        &status,
        Code::InvalidArgument,
        "collection: the embedding model `all-minilm` returns 384-dimensional vectors, the collection has dimension 8",
    );
    ollama.clear_requests();
    let status = upsert_documents(
        &mut service,
        "notes",
        vec![document(num(1), "hello", None), document(num(2), " \n", None)],
    )
    .await
    .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "documents[1].text: must not be empty");
    let status = upsert_documents(&mut service, "notes", vec![]).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "documents: must hold 1 to 10000 documents");
    let status =
        upsert_documents(&mut service, "missing", vec![document(num(1), "hello", None)]).await.unwrap_err();
    assert_status(&status, Code::NotFound, "collection `missing` not found");
    let request = service.request(pb::QueryDocumentsRequest {
        collection: "notes".to_owned(),
        text: "x".to_owned(),
        k: 0,
        filter: None,
        with_payload: false,
    });
    assert_status(
        &service.client.query_documents(request).await.unwrap_err(),
        Code::InvalidArgument,
        "k: must be between 1 and 10000",
    );
    assert!(
        ollama.requests().iter().all(|request| request.path != "/api/embed"),
        "nothing was embedded for refused requests"
    );

    ollama.fail_next(1, StatusCode::SERVICE_UNAVAILABLE);
    let status =
        upsert_documents(&mut service, "notes", vec![document(num(1), "hello", None)]).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    ollama.remove_model("all-minilm");
    let status =
        upsert_documents(&mut service, "notes", vec![document(num(1), "hello", None)]).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "unknown model `all-minilm`");
    assert_eq!(service.collection("notes").await.unwrap().point_count, 0);
}
