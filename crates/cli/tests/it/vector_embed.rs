//! `sutazai vector import --embed`: a JSONL file of documents sent in batches to the vector
//! service (in this process, embedding with the fake Ollama), which embeds and stores them so that
//! `QueryDocuments` finds them.

use std::process::Output;

use serde_json::json;
use sutazai_kit::shutdown::Shutdown;
use sutazai_proto::json::from_proto_struct;
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::vector_service_client::VectorServiceClient;
use sutazai_testkit::fake_ollama::{DEFAULT_EMBEDDING_DIMENSION, FakeOllama};
use sutazai_testkit::{TestIssuer, TestRedis, http_settings};
use sutazai_vector::{VectorConfig, VectorSettings};

use crate::pipeline::{llm_settings, loopback};
use crate::vector_crash::authorized;

const EMBEDDING_MODEL: &str = "all-minilm";
const DOCUMENTS: usize = 10;

/// Runs the binary with `args` and a clean environment.
async fn import(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sutazai")).args(&args).env_clear().output().unwrap()
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn document_text(index: usize) -> String {
    format!("Document number {index} is about topic {} and nothing else.", index * 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_embedded_in_batches_and_found_by_their_text() {
    let issuer = TestIssuer::start().await;
    let redis = TestRedis::new();
    let shutdown = Shutdown::new();
    let directory = tempfile::tempdir().unwrap();
    let ollama = FakeOllama::start().await;
    ollama.add_model(EMBEDDING_MODEL);
    let vector = sutazai_vector::Application::build(
        VectorConfig {
            vector: VectorSettings {
                listen: loopback(),
                auth_url: issuer.auth_url(),
                data_dir: directory.path().join("vector"),
                snapshot_log_bytes: 64 << 20,
                max_batch_points: 10_000,
                max_search_queries: 1_000,
                max_message_bytes: 64 << 20,
                embedding_model: EMBEDDING_MODEL.into(),
                embedding_batch_size: 64,
            },
            http: http_settings(),
            redis: redis.settings(),
            token: issuer.verifier_settings(),
            llm: llm_settings(&ollama.base_url()),
        },
        &shutdown,
    )
    .await
    .unwrap();
    let url = format!("http://{}", vector.address());
    tokio::spawn(vector.run_until_stopped(shutdown.clone()));
    let token = issuer.service_token("importer", &["vectors:write", "vectors:read"]);

    let file = directory.path().join("docs.jsonl");
    let mut lines = String::new();
    for index in 0..DOCUMENTS {
        let line =
            json!({"id": format!("doc-{index}"), "text": document_text(index), "payload": {"n": index}});
        lines.push_str(&format!("{line}\n"));
    }
    std::fs::write(&file, lines).unwrap();
    let args: Vec<String> = [
        "vector",
        "import",
        file.to_str().unwrap(),
        "--embed",
        "--collection",
        "notes",
        "--url",
        &url,
        "--token",
        &token,
        "--create-dimension",
        &DEFAULT_EMBEDDING_DIMENSION.to_string(),
        "--batch",
        "4",
    ]
    .map(str::to_owned)
    .to_vec();
    ollama.clear_requests();
    let output = import(args.clone()).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("imported 10 documents into `notes` in "),
        "{}",
        text(&output)
    );
    // Three requests of at most 4 documents, each embedded by the service in one call.
    let embeds: Vec<usize> = ollama
        .requests()
        .into_iter()
        .filter(|request| request.path == "/api/embed")
        .map(|request| request.body["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(embeds, [4, 4, 2]);

    let mut client = VectorServiceClient::connect(url.clone()).await.unwrap();
    let request = authorized(pb::GetCollectionRequest { name: "notes".to_owned() }, &token);
    let collection = client.get_collection(request).await.unwrap().into_inner().collection.unwrap();
    assert_eq!(collection.point_count, 10);
    assert_eq!(collection.metric(), pb::DistanceMetric::Cosine, "--embed creates a cosine collection");

    // The exact text of a document finds that document first, with its text and payload.
    let query = authorized(
        pb::QueryDocumentsRequest {
            collection: "notes".to_owned(),
            text: document_text(6),
            k: 3,
            filter: None,
            with_payload: true,
        },
        &token,
    );
    let hits = client.query_documents(query).await.unwrap().into_inner().hits;
    assert_eq!(hits.len(), 3);
    let best = &hits[0];
    assert_eq!(best.id, Some(pb::PointId { kind: Some(pb::point_id::Kind::Str("doc-6".to_owned())) }));
    assert!((best.score - 1.0).abs() < 1e-5, "{}", best.score);
    assert_eq!(
        serde_json::Value::Object(from_proto_struct(best.payload.as_ref().unwrap())),
        json!({"n": 6, "text": document_text(6)})
    );

    // Documents come only from JSONL, and every line must be one.
    let fvecs = directory.path().join("vectors.fvecs");
    std::fs::write(&fvecs, []).unwrap();
    let mut wrong_format = args.clone();
    wrong_format[2] = fvecs.to_str().unwrap().to_owned();
    let output = import(wrong_format).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("--embed reads documents from a JSONL file"), "{}", text(&output));
    let bad = directory.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": 1, \"text\": \"fine\"}\n{\"id\": 2, \"vector\": [1.0]}\n").unwrap();
    let mut bad_line = args;
    bad_line[2] = bad.to_str().unwrap().to_owned();
    let output = import(bad_line).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("line 2: unknown field `vector` (expected id, text, payload)"),
        "{}",
        text(&output)
    );
    shutdown.trigger();
}
