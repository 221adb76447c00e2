//! `sutazai serve vector` killed with SIGKILL while several clients stream upserts: after a
//! restart on the same data directory, every upsert that was acknowledged is there, with its
//! vector and payload. Acknowledged means fsynced, so no acknowledged write may be lost.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sutazai_proto::json::{from_proto_struct, to_proto_struct};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::vector_service_client::VectorServiceClient;
use sutazai_testkit::{TestIssuer, TestRedis, wait_for};
use tonic::transport::Channel;

use crate::{MASTER_KEY, free_port};

const CLIENTS: u64 = 4;
const POINTS_PER_UPSERT: u64 = 8;
const DIMENSION: usize = 16;
/// Acknowledged points after which the process is killed (or after the deadline below).
const KILL_AFTER_ACKNOWLEDGED: usize = 2_000;
const KILL_DEADLINE: Duration = Duration::from_secs(20);

/// A `sutazai serve vector` process with its logs in a file.
pub(crate) struct VectorProcess {
    pub(crate) child: Child,
    pub(crate) address: String,
    pub(crate) log: PathBuf,
}

impl VectorProcess {
    /// Starts the binary on a free port over `data_dir`, verifying tokens of `issuer`, and waits
    /// until it is ready.
    pub(crate) async fn start(issuer: &TestIssuer, redis: &TestRedis, data_dir: &Path, log: PathBuf) -> Self {
        let address = format!("127.0.0.1:{}", free_port());
        // Logs go to a file: a pipe nobody reads would block the process once full.
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = serve_vector(issuer, redis, data_dir, &address)
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        let ready_url = format!("http://{address}/readyz");
        let mut process = Self { child, address, log };
        wait_for("the vector role to be ready", Duration::from_secs(60), || async {
            reqwest::get(&ready_url).await.is_ok_and(|response| response.status() == 200)
        })
        .await;
        assert!(process.child.try_wait().unwrap().is_none(), "exited early: {}", process.logs());
        process
    }

    /// A client of the process.
    pub(crate) async fn client(&self) -> VectorServiceClient<Channel> {
        VectorServiceClient::connect(format!("http://{}", self.address)).await.unwrap()
    }

    /// Everything the process logged so far.
    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for VectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sutazai serve vector` on `address` over `data_dir`, configured by environment only.
pub(crate) fn serve_vector(
    issuer: &TestIssuer,
    redis: &TestRedis,
    data_dir: &Path,
    address: &str,
) -> Command {
    let verifier = issuer.verifier_settings();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sutazai"));
    command
        .args(["serve", "vector"])
        .env_clear()
        .env("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY)
        .env("SUTAZAI__REDIS__URL", sutazai_testkit::redis_url())
        .env("SUTAZAI__REDIS__KEY_PREFIX", &redis.key_prefix)
        .env("SUTAZAI__AUTH__ISSUER", &verifier.issuer)
        .env("SUTAZAI__AUTH__AUDIENCE", &verifier.audience)
        .env("SUTAZAI__VECTOR__LISTEN", address)
        .env("SUTAZAI__VECTOR__AUTH_URL", issuer.auth_url())
        .env("SUTAZAI__VECTOR__DATA_DIR", data_dir)
        // No LLM server here: documents are embedded by the embedded MiniLM model.
        .env("SUTAZAI__LLM__BASE_URL", "http://127.0.0.1:9")
        .env("SUTAZAI__LLM__LOCAL__MODELS_DIR", sutazai_llm::LocalSettings::default().models_dir())
        .env("NO_COLOR", "1");
    command
}

/// `message` with a bearer token.
pub(crate) fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// The vector every test point with `id` gets, so a read-back can be checked exactly.
fn vector_of(id: u64) -> Vec<f32> {
    (0..DIMENSION).map(|component| ((id * 31 + component as u64) % 1000) as f32 / 7.0).collect()
}

fn numeric(id: u64) -> pb::PointId {
    pb::PointId { kind: Some(pb::point_id::Kind::Num(id)) }
}

/// Streams upserts until one fails; records what was sent and what was acknowledged.
async fn stream_upserts(
    mut client: VectorServiceClient<Channel>,
    token: String,
    writer: u64,
    sent: Arc<Mutex<BTreeSet<u64>>>,
    acknowledged: Arc<Mutex<BTreeSet<u64>>>,
) {
    for batch in 0_u64.. {
        let ids: Vec<u64> = (0..POINTS_PER_UPSERT)
            .map(|offset| writer * 1_000_000 + batch * POINTS_PER_UPSERT + offset)
            .collect();
        let points = ids
            .iter()
            .map(|id| pb::Point {
                id: Some(numeric(*id)),
                vector: vector_of(*id),
                payload: Some(to_proto_struct(
                    json!({"writer": writer, "batch": batch}).as_object().unwrap(),
                )),
            })
            .collect();
        sent.lock().unwrap().extend(&ids);
        let request = authorized(pb::UpsertRequest { collection: "crash".to_owned(), points }, &token);
        match client.upsert(request).await {
            Ok(response) => {
                assert_eq!(response.into_inner().upserted, POINTS_PER_UPSERT);
                acknowledged.lock().unwrap().extend(&ids);
            }
            // The process is gone: nothing after this can be acknowledged.
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_upserts_survive_sigkill() {
    let issuer = TestIssuer::start().await;
    let redis = TestRedis::new();
    let data_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let token = issuer.service_token("crash-test", &["vectors:write", "vectors:read"]);
    let mut first =
        VectorProcess::start(&issuer, &redis, data_dir.path(), logs.path().join("first.log")).await;
    let mut client = first.client().await;
    let create = pb::CreateCollectionRequest {
        name: "crash".to_owned(),
        dimension: DIMENSION as u32,
        metric: pb::DistanceMetric::L2.into(),
        index: None,
    };
    client.create_collection(authorized(create, &token)).await.unwrap();

    let sent = Arc::new(Mutex::new(BTreeSet::new()));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..CLIENTS {
        // One connection per writer, as separate clients would have.
        let client = first.client().await;
        writers.spawn(stream_upserts(
            client,
            token.clone(),
            writer,
            Arc::clone(&sent),
            Arc::clone(&acknowledged),
        ));
    }
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < KILL_AFTER_ACKNOWLEDGED && started.elapsed() < KILL_DEADLINE {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SIGKILL: no shutdown, no flush; only what reached the disk counts.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    while let Some(joined) = writers.join_next().await {
        joined.unwrap();
    }
    let acknowledged: BTreeSet<u64> = acknowledged.lock().unwrap().clone();
    let sent: BTreeSet<u64> = sent.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 100,
        "too few writes before the kill: {}\n{}",
        acknowledged.len(),
        first.logs()
    );
    assert!(sent.len() > acknowledged.len(), "the kill came while writes were in flight");

    let second = VectorProcess::start(&issuer, &redis, data_dir.path(), logs.path().join("second.log")).await;
    let mut client = second.client().await;
    let request = authorized(pb::GetCollectionRequest { name: "crash".to_owned() }, &token);
    let collection = client.get_collection(request).await.unwrap().into_inner().collection.unwrap();
    let count = usize::try_from(collection.point_count).unwrap();
    assert!(
        (acknowledged.len()..=sent.len()).contains(&count),
        "{count} points after the restart; {} acknowledged, {} sent",
        acknowledged.len(),
        sent.len()
    );
    for id in &acknowledged {
        let request = authorized(
            pb::GetPointRequest { collection: "crash".to_owned(), id: Some(numeric(*id)) },
            &token,
        );
        let point = match client.get_point(request).await {
            Ok(response) => response.into_inner().point.unwrap(),
            Err(status) => panic!("acknowledged point {id} is missing: {status:?}\n{}", second.logs()),
        };
        assert_eq!(point.vector, vector_of(*id), "{id}");
        let payload = from_proto_struct(point.payload.as_ref().unwrap());
        assert_eq!(payload["writer"], json!(id / 1_000_000), "{id}");
    }
    // A second process is kept off the data directory while this one holds it.
    let intruder = serve_vector(&issuer, &redis, data_dir.path(), &format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let intruder_log = String::from_utf8_lossy(&intruder.stderr);
    assert_eq!(intruder.status.code(), Some(1), "{intruder_log}");
    assert!(intruder_log.contains("another process is using this data directory"), "{intruder_log}");
    // Writes go on after the replay.
    let points = vec![pb::Point { id: Some(numeric(42)), vector: vector_of(42), payload: None }];
    let request = authorized(pb::UpsertRequest { collection: "crash".to_owned(), points }, &token);
    assert_eq!(client.upsert(request).await.unwrap().into_inner().upserted, 1);
    eprintln!(
        "killed after {} acknowledged of {} sent; {count} points after the restart",
        acknowledged.len(),
        sent.len()
    );
}
