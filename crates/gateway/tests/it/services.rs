//! The gateway in front of the real vector, hardware and arbitrator services: a user who logged
//! in at the real auth service calls the REST API, the gateway forwards the user's token over
//! gRPC, and each service verifies it against the auth service's JWKS on its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sutazai_arbitrator::settings::NamedCapacities;
use sutazai_arbitrator::{ArbitratorConfig, ArbitratorSettings};
use sutazai_hardware::{HardwareConfig, HardwareSettings};
use sutazai_kit::auth::VerifierSettings;
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::LlmSettings;
use sutazai_testkit::{TestDatabase, TestRedis, http_settings};
use sutazai_vector::{VectorConfig, VectorSettings};

use crate::{EMBEDDING_MODEL, MODEL, Options, Platform, platform_with, problem};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The three services, running against the platform's auth service.
pub(crate) struct Services {
    pub(crate) vector_url: String,
    pub(crate) hardware_url: String,
    pub(crate) arbitrator_url: String,
    /// The one directory the hardware service may touch.
    pub(crate) hardware_root: PathBuf,
    _directories: tempfile::TempDir,
}

/// Starts the services; `auth_url` and `issuer` are the platform's auth service, `llm` the
/// provider the vector service embeds documents with (the fake Ollama or the embedded models).
pub(crate) async fn start_services(
    auth_url: &str,
    issuer: &str,
    database: &TestDatabase,
    redis: &TestRedis,
    llm: LlmSettings,
    shutdown: &Shutdown,
) -> Services {
    let directories = tempfile::tempdir().unwrap();
    let token = VerifierSettings::new(issuer, "sutazai");
    let vector = sutazai_vector::Application::build(
        VectorConfig {
            vector: VectorSettings {
                listen: loopback(),
                auth_url: auth_url.to_owned(),
                data_dir: directories.path().join("vector"),
                snapshot_log_bytes: 64 << 20,
                max_batch_points: 10_000,
                max_search_queries: 1_000,
                max_message_bytes: 64 << 20,
                embedding_model: EMBEDDING_MODEL.into(),
                embedding_batch_size: 64,
            },
            http: http_settings(),
            redis: redis.settings(),
            token: token.clone(),
            llm,
        },
        shutdown,
    )
    .await
    .unwrap();
    let vector_url = format!("http://{}", vector.address());
    tokio::spawn(vector.run_until_stopped(shutdown.clone()));

    let hardware_root = directories.path().join("files");
    std::fs::create_dir_all(&hardware_root).unwrap();
    let hardware_root = hardware_root.canonicalize().unwrap();
    let hardware = sutazai_hardware::Application::build(
        HardwareConfig {
            hardware: HardwareSettings {
                listen: loopback(),
                auth_url: auth_url.to_owned(),
                allowed_roots: vec![hardware_root.clone()],
                quarantine_dir: directories.path().join("quarantine"),
                quarantine_ttl_s: 3_600,
                scan_max_files: 100_000,
                scan_max_duration_ms: 10_000,
                docker_enabled: false,
            },
            http: http_settings(),
            redis: redis.settings(),
            token: token.clone(),
        },
        shutdown,
    )
    .await
    .unwrap();
    let hardware_url = format!("http://{}", hardware.address());
    tokio::spawn(hardware.run_until_stopped(shutdown.clone()));

    let arbitrator = sutazai_arbitrator::Application::build(
        ArbitratorConfig {
            arbitrator: ArbitratorSettings {
                listen: loopback(),
                auth_url: auth_url.to_owned(),
                cpu_millicores: 8_000,
                memory_bytes: 8 << 30,
                gpus: 0,
                // One generation at a time, like an Ollama with NUM_PARALLEL=1.
                llm_slots: NamedCapacities::new(vec![(format!("ollama/{MODEL}"), 1)]),
                custom: NamedCapacities::default(),
                default_max_allocation_percent: 100.0,
                default_max_per_holder_percent: 100.0,
                default_oversubscription_ratio: 1.0,
                default_preemption_enabled: true,
                sweep_interval_ms: 200,
                max_ttl_s: 86_400,
                max_wait_ms: 60_000,
            },
            http: http_settings(),
            postgres: database.settings(),
            redis: redis.settings(),
            token,
        },
        shutdown,
    )
    .await
    .unwrap();
    let arbitrator_url = format!("http://{}", arbitrator.address());
    tokio::spawn(arbitrator.run_until_stopped(shutdown.clone()));
    Services { vector_url, hardware_url, arbitrator_url, hardware_root, _directories: directories }
}

pub(crate) async fn with_services() -> Platform {
    platform_with(Options { services: true, ..Options::default() }).await
}

pub(crate) async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn vectors_round_trip_through_the_gateway_with_the_users_token() {
    let platform = with_services().await;
    let token = platform.user("vera").await;
    let created = platform
        .post(
            "/api/v1/vectors/collections",
            &token,
            json!({"name": "notes", "dimension": 3, "metric": "l2", "index": {"type": "flat"}}),
        )
        .await;
    let created = json_of(created, 201).await;
    assert_eq!(created["name"], "notes");
    assert_eq!(created["dimension"], 3);

    let duplicate = platform
        .post("/api/v1/vectors/collections", &token, json!({"name": "notes", "dimension": 3, "metric": "l2"}))
        .await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(problem(duplicate).await["code"], "conflict");

    let points = json!({"points": [
        {"id": 1, "vector": [0.0, 0.0, 0.0], "payload": {"tag": "a"}},
        {"id": "two", "vector": [1.0, 0.0, 0.0], "payload": {"tag": "b"}},
        {"id": 3, "vector": [5.0, 5.0, 5.0], "payload": {"tag": "a"}}
    ]});
    let upserted = platform.put("/api/v1/vectors/collections/notes/points", &token, points).await;
    assert_eq!(json_of(upserted, 200).await, json!({"upserted": 3}));

    let search = platform
        .post(
            "/api/v1/vectors/collections/notes/search",
            &token,
            json!({"vector": [0.9, 0.0, 0.0], "k": 2, "with_payload": true}),
        )
        .await;
    let search = json_of(search, 200).await;
    let hits = search["results"][0].as_array().unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["id"], "two");
    assert_eq!(hits[1]["id"], 1);
    assert_eq!(hits[0]["payload"]["tag"], "b");

    let filtered = platform
        .post(
            "/api/v1/vectors/collections/notes/search",
            &token,
            json!({"vector": [0.9, 0.0, 0.0], "k": 2, "filter": {"must": [{"key": "tag", "match": "a"}]}}),
        )
        .await;
    let filtered = json_of(filtered, 200).await;
    let ids: Vec<&Value> = filtered["results"][0].as_array().unwrap().iter().map(|hit| &hit["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(3)]);

    let wrong_dimension = platform
        .put(
            "/api/v1/vectors/collections/notes/points",
            &token,
            json!({"points": [{"id": 9, "vector": [1.0, 2.0]}]}),
        )
        .await;
    assert_eq!(wrong_dimension.status(), 422);

    let unknown = platform.get("/api/v1/vectors/collections/missing", &token).await;
    assert_eq!(unknown.status(), 404);

    // Deleting needs an admin: collections have no owner yet.
    let deleted_by_user = platform.delete("/api/v1/vectors/collections/notes", &token).await;
    assert_eq!(deleted_by_user.status(), 403);
    let admin = platform.admin("root").await;
    let deleted = platform.delete("/api/v1/vectors/collections/notes", &admin).await;
    assert_eq!(deleted.status(), 204);
}

#[tokio::test]
async fn hardware_refuses_paths_outside_its_roots_and_dry_runs_by_default() {
    let platform = with_services().await;
    let services = platform.services.as_ref().unwrap();
    let root = services.hardware_root.clone();
    std::fs::write(root.join("a.log"), b"log line\n".repeat(100)).unwrap();
    std::fs::write(root.join("b.bin"), b"binary").unwrap();
    let token = platform.user("hal").await;
    let admin = platform.admin("sysop").await;

    // The admin passes the gateway; the hardware service itself refuses the path.
    let outside = platform.get("/api/v1/hardware/storage?path=/etc", &admin).await;
    assert_eq!(outside.status(), 403);
    let storage = platform.get(&format!("/api/v1/hardware/storage?path={}", root.display()), &admin).await;
    let storage = json_of(storage, 200).await;
    assert!(storage.to_string().contains("\"log\""), "{storage}");
    let metrics = json_of(platform.get("/api/v1/hardware/metrics", &token).await, 200).await;
    assert!(!metrics["cpu"]["cores"].as_array().unwrap().is_empty(), "{metrics}");

    let user_optimize = platform
        .post(
            "/api/v1/hardware/optimize/logs",
            &token,
            json!({"path": root.display().to_string(), "days_old": 0}),
        )
        .await;
    assert_eq!(user_optimize.status(), 403);
    let dry_run = platform
        .post(
            "/api/v1/hardware/optimize/logs",
            &admin,
            json!({"path": root.display().to_string(), "days_old": 0}),
        )
        .await;
    let dry_run = json_of(dry_run, 200).await;
    assert_eq!(dry_run["dry_run"], true, "{dry_run}");
    assert!(root.join("a.log").exists(), "a dry run changed nothing");
    assert!(!root.join("a.log.gz").exists());

    let real = platform
        .post(
            "/api/v1/hardware/optimize/logs",
            &admin,
            json!({"path": root.display().to_string(), "days_old": 0, "dry_run": false}),
        )
        .await;
    json_of(real, 200).await;
    assert!(root.join("a.log.gz").exists());
    assert!(!root.join("a.log").exists());
    assert!(root.join("b.bin").exists());
}

#[tokio::test]
async fn leases_are_granted_and_denied_through_the_gateway() {
    let platform = with_services().await;
    let token = platform.user("lena").await;
    let granted = platform
        .post("/api/v1/resources/leases", &token, json!({"resource": "cpu", "amount": 6000, "ttl_s": 60}))
        .await;
    let granted = json_of(granted, 201).await;
    let lease_id = granted["id"].as_str().unwrap().to_owned();
    assert_eq!(granted["amount"], 6000);

    let denied = platform
        .post("/api/v1/resources/leases", &token, json!({"resource": "cpu", "amount": 3000, "ttl_s": 60}))
        .await;
    assert_eq!(denied.status(), 409);
    let denied = problem(denied).await;
    assert_eq!(denied["code"], "conflict");

    let pools = json_of(platform.get("/api/v1/resources", &token).await, 200).await;
    assert!(pools.to_string().contains("6000"), "{pools}");

    let released = platform.delete(&format!("/api/v1/resources/leases/{lease_id}"), &token).await;
    assert_eq!(released.status(), 204);
    let again = platform.delete(&format!("/api/v1/resources/leases/{lease_id}"), &token).await;
    assert_eq!(again.status(), 404);
}

/// With one `llm_slots` slot for the model, concurrent chats reach the LLM one at a time: the
/// gateway holds an arbitrator lease around each call (its own semaphore alone allows 4).
#[tokio::test]
async fn chats_hold_an_arbitrator_inference_slot() {
    let platform = with_services().await;
    let token = platform.user("chatty").await;
    // The model list is fetched (and cached) first, so only chats are slow and counted.
    assert_eq!(platform.get("/api/v1/models", &token).await.status(), 200);
    platform.ollama.set_latency(Duration::from_millis(150));
    let mut calls = Vec::new();
    for index in 0..4 {
        let client = platform.client.clone();
        let url = platform.url("/api/v1/chat");
        let token = token.clone();
        calls.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"message": format!("question {index}"), "use_cache": false}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(platform.ollama.max_concurrent_requests(), 1);
    let pools = json_of(platform.get("/api/v1/resources", &token).await, 200).await;
    let slots = pools.to_string();
    assert!(slots.contains(&format!("llm_slots:ollama/{MODEL}")), "{slots}");
}
