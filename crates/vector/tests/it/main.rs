//! The vector service over gRPC: each test starts its own service on 127.0.0.1:0 with its own
//! data directory, Redis prefix and token issuer (and a fake Ollama where documents are embedded),
//! and talks to it as the gateway does. Restart tests stop the service and start a new one on the
//! same data directory.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod collections;
mod documents;
mod durability;
mod filters;
mod points;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use sutazai_kit::config::{ConfigIssues, Validate, key};
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::LlmSettings;
use sutazai_proto::json::to_proto_struct;
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::vector_service_client::VectorServiceClient;
use sutazai_testkit::{TestIssuer, TestRedis, http_settings};
use sutazai_vector::{Application, VectorConfig, VectorSettings};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Largest message the test client reads (a search of many hits with vectors).
const CLIENT_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A running vector service and a client for it.
pub(crate) struct TestVector {
    pub(crate) client: VectorServiceClient<Channel>,
    pub(crate) address: SocketAddr,
    pub(crate) issuer: TestIssuer,
    pub(crate) data_dir: tempfile::TempDir,
    settings: VectorSettings,
    llm_base_url: String,
    redis: TestRedis,
    shutdown: Shutdown,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestVector {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

#[derive(Debug, serde::Deserialize)]
struct LlmSection {
    llm: LlmSettings,
}

impl Validate for LlmSection {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        self.llm.validate(&key(prefix, "llm"), issues);
    }
}

/// The LLM defaults pointed at `base_url`, loaded the way the binary loads them.
fn llm_settings(base_url: &str) -> LlmSettings {
    let env = HashMap::from([
        ("SUTAZAI__LLM__BASE_URL".to_owned(), base_url.to_owned()),
        ("SUTAZAI__LLM__MAX_RETRIES".to_owned(), "0".to_owned()),
    ]);
    let sources = sutazai_kit::config::ConfigSources {
        defaults_toml: sutazai_llm::LLM_DEFAULTS_TOML,
        file: None,
        env,
        list_keys: &[],
    };
    sutazai_kit::config::load::<LlmSection>(sources).unwrap().llm
}

fn settings(auth_url: String, data_dir: &Path) -> VectorSettings {
    VectorSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        auth_url,
        data_dir: data_dir.to_owned(),
        snapshot_log_bytes: 64 * 1024 * 1024,
        max_batch_points: 10_000,
        max_search_queries: 100,
        max_message_bytes: 64 * 1024 * 1024,
        embedding_model: "all-minilm".to_owned(),
        embedding_batch_size: 4,
    }
}

/// A closed port: documents are not used by the test, so the LLM is never reached.
pub(crate) const NO_LLM: &str = "http://127.0.0.1:9";

/// Starts a service with the default test settings.
pub(crate) async fn spawn() -> TestVector {
    spawn_with(NO_LLM, |_| {}).await
}

/// Starts a service embedding through `llm_base_url`, with `adjust` applied to its settings.
pub(crate) async fn spawn_with(llm_base_url: &str, adjust: impl FnOnce(&mut VectorSettings)) -> TestVector {
    sutazai_testkit::init_tracing();
    let issuer = TestIssuer::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut vector_settings = settings(issuer.auth_url(), data_dir.path());
    adjust(&mut vector_settings);
    let redis = TestRedis::new();
    let shutdown = Shutdown::new();
    let (address, server) = start(&issuer, &vector_settings, llm_base_url, &redis, &shutdown).await;
    TestVector {
        client: connect(address).await,
        address,
        issuer,
        data_dir,
        settings: vector_settings,
        llm_base_url: llm_base_url.to_owned(),
        redis,
        shutdown,
        server: Some(server),
    }
}

async fn start(
    issuer: &TestIssuer,
    settings: &VectorSettings,
    llm_base_url: &str,
    redis: &TestRedis,
    shutdown: &Shutdown,
) -> (SocketAddr, JoinHandle<std::io::Result<()>>) {
    let config = VectorConfig {
        vector: settings.clone(),
        http: http_settings(),
        redis: redis.settings(),
        token: issuer.verifier_settings(),
        llm: llm_settings(llm_base_url),
    };
    let application = Application::build(config, shutdown).await.unwrap();
    let address = application.address();
    (address, tokio::spawn(application.run_until_stopped(shutdown.clone())))
}

async fn connect(address: SocketAddr) -> VectorServiceClient<Channel> {
    VectorServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap()
        .max_decoding_message_size(CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(CLIENT_MESSAGE_BYTES)
}

impl TestVector {
    /// Stops the service (draining requests, finishing queued writes) and starts a new one on the
    /// same data directory, as a process restart would.
    pub(crate) async fn restart(mut self) -> Self {
        self.stop().await;
        let shutdown = Shutdown::new();
        let (address, server) =
            start(&self.issuer, &self.settings, &self.llm_base_url, &self.redis, &shutdown).await;
        self.shutdown = shutdown;
        self.server = Some(server);
        self.address = address;
        self.client = connect(address).await;
        self
    }

    /// Stops the service and waits until its writers are done and the data directory is free.
    pub(crate) async fn stop(&mut self) {
        // A fresh client: the old connection goes away with the old one.
        self.client = VectorServiceClient::new(Channel::from_static("http://127.0.0.1:9").connect_lazy());
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        assert!(self.shutdown.wait_for_tasks(Duration::from_secs(10)).await, "writers stopped");
    }

    /// A request carrying an ordinary user's token.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        with_token(message, &self.issuer.user_token("alice", &["vectors:read", "vectors:write"]))
    }

    /// A request carrying an admin's token.
    pub(crate) fn admin_request<T>(&self, message: T) -> tonic::Request<T> {
        with_token(message, &self.issuer.admin_token())
    }

    /// Creates a collection, asserting success.
    pub(crate) async fn create(
        &mut self,
        name: &str,
        dimension: u32,
        metric: pb::DistanceMetric,
        index: Option<pb::IndexConfig>,
    ) -> pb::Collection {
        let request = self.request(pb::CreateCollectionRequest {
            name: name.to_owned(),
            dimension,
            metric: metric.into(),
            index,
        });
        self.client.create_collection(request).await.unwrap().into_inner().collection.unwrap()
    }

    /// Upserts points, asserting success.
    pub(crate) async fn upsert(&mut self, collection: &str, points: Vec<pb::Point>) -> u64 {
        let request = self.request(pb::UpsertRequest { collection: collection.to_owned(), points });
        self.client.upsert(request).await.unwrap().into_inner().upserted
    }

    /// The point, or the status.
    pub(crate) async fn get(
        &mut self,
        collection: &str,
        id: pb::PointId,
    ) -> Result<pb::Point, tonic::Status> {
        let request = self.request(pb::GetPointRequest { collection: collection.to_owned(), id: Some(id) });
        self.client.get_point(request).await.map(|response| response.into_inner().point.unwrap())
    }

    /// The collection, or the status.
    pub(crate) async fn collection(&mut self, name: &str) -> Result<pb::Collection, tonic::Status> {
        let request = self.request(pb::GetCollectionRequest { name: name.to_owned() });
        self.client.get_collection(request).await.map(|response| response.into_inner().collection.unwrap())
    }

    /// One query's hits.
    pub(crate) async fn search(
        &mut self,
        request: pb::SearchRequest,
    ) -> Result<Vec<pb::ScoredPoint>, tonic::Status> {
        let request = self.request(request);
        let mut results = self.client.search(request).await?.into_inner().results;
        assert_eq!(results.len(), 1);
        Ok(results.remove(0).hits)
    }
}

/// `message` with `Authorization: Bearer <token>`.
pub(crate) fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A numeric point id.
pub(crate) fn num(number: u64) -> pb::PointId {
    pb::PointId { kind: Some(pb::point_id::Kind::Num(number)) }
}

/// A string point id.
pub(crate) fn text(id: &str) -> pb::PointId {
    pb::PointId { kind: Some(pb::point_id::Kind::Str(id.to_owned())) }
}

/// A point with an optional JSON payload.
pub(crate) fn point(id: pb::PointId, vector: Vec<f32>, payload: Option<Value>) -> pb::Point {
    pb::Point { id: Some(id), vector, payload: payload.map(|value| to_proto_struct(&object(value))) }
}

/// A JSON object.
pub(crate) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The payload of a point or hit as JSON.
pub(crate) fn payload_json(payload: Option<&prost_types::Struct>) -> Value {
    payload.map_or(Value::Null, |fields| Value::Object(sutazai_proto::json::from_proto_struct(fields)))
}

/// The ids of hits.
pub(crate) fn hit_ids(hits: &[pb::ScoredPoint]) -> Vec<pb::PointId> {
    hits.iter().map(|hit| hit.id.clone().unwrap()).collect()
}

/// A flat index.
pub(crate) fn flat() -> Option<pb::IndexConfig> {
    Some(pb::IndexConfig { kind: Some(pb::index_config::Kind::Flat(pb::FlatIndexConfig {})) })
}

/// Asserts `status` has `code` and a message starting with `prefix`.
pub(crate) fn assert_status(status: &tonic::Status, code: tonic::Code, prefix: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().starts_with(prefix), "`{}` does not start with `{prefix}`", status.message());
}

/// A search request over one query.
pub(crate) fn query(collection: &str, vector: Vec<f32>, k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: collection.to_owned(),
        queries: vec![pb::QueryVector { vector }],
        k,
        ..pb::SearchRequest::default()
    }
}
