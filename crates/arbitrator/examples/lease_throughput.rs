//! `make bench-arbitrator`: acquire+release pairs per second through the arbitrator on this
//! machine, against the real Postgres and Redis (a fresh database and key prefix). Each figure is
//! the median of 5 runs of 3 s with 64 concurrent callers (`LEASE_BENCH_CONCURRENCY` changes
//! that), printed as `name value` lines:
//!
//! - `grpc_pairs_per_s`: the whole path a client sees — gRPC over loopback, bearer-token
//!   verification (signature and the Redis revocation check), the Lua decision, the journal's
//!   group-committed Postgres write;
//! - `service_pairs_per_s`: the same use cases called in-process (no gRPC, no token);
//! - `live_view_pairs_per_s`: only the two Lua scripts (no journal);
//! - `grpc_journal_records_per_commit` and `grpc_journal_commit_ms`: how many journal records one
//!   Postgres commit carried during the gRPC runs, and how long it took on average.
//!
//! The differences say where the time goes. The servers share the machine's cores with the load
//! generator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sutazai_arbitrator::domain::lease::{Caller, LeaseId, LeaseRequest};
use sutazai_arbitrator::domain::policy::Limits;
use sutazai_arbitrator::domain::resource::ResourceKey;
use sutazai_arbitrator::service::AcquireInput;
use sutazai_arbitrator::settings::NamedCapacities;
use sutazai_arbitrator::store::live::ReleaseOutcome;
use sutazai_arbitrator::{Application, ArbitratorConfig, ArbitratorSettings};
use sutazai_kit::shutdown::Shutdown;
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::arbitrator_service_client::ArbitratorServiceClient;
use sutazai_testkit::{TestDatabase, TestIssuer, TestRedis, http_settings};
use tonic::transport::Channel;

/// Concurrent callers, unless `LEASE_BENCH_CONCURRENCY` says otherwise.
const DEFAULT_CONCURRENCY: usize = 64;
const CHANNELS: usize = 4;
const RUNS: usize = 5;
const RUN_TIME: Duration = Duration::from_secs(3);
/// Large enough that no request is ever denied: the benchmark measures grants, not denials.
const POOL_CAPACITY: u64 = 1_000_000;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `pair` from `CONCURRENCY` tasks for `RUN_TIME`; returns completed pairs per second.
fn concurrency() -> usize {
    std::env::var("LEASE_BENCH_CONCURRENCY")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_CONCURRENCY)
}

/// `(batches, records, seconds spent committing)` the journal has written so far, from the
/// process's metrics.
fn journal_totals() -> (f64, f64, f64) {
    let rendered = sutazai_kit::metrics::prometheus().render();
    let value = |name: &str| {
        rendered
            .lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse::<f64>().ok()))
            .unwrap_or(0.0)
    };
    (
        value("arbitrator_journal_batch_records_count"),
        value("arbitrator_journal_batch_records_sum"),
        value("arbitrator_journal_commit_duration_seconds_sum"),
    )
}

async fn measure<F, Fut>(pair: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let pair = Arc::new(pair);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency() {
        let (pair, stop, count, failures) =
            (Arc::clone(&pair), Arc::clone(&stop), Arc::clone(&count), Arc::clone(&failures));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if pair(worker).await {
                    count.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(RUN_TIME).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("warning: {failed} pairs failed");
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn runs<F, Fut>(pair: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        rates.push(measure(pair.clone()).await);
    }
    median(rates)
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let issuer = TestIssuer::start().await;
    let config = ArbitratorConfig {
        arbitrator: ArbitratorSettings {
            listen: "127.0.0.1:0".parse()?,
            auth_url: issuer.auth_url(),
            cpu_millicores: 0,
            memory_bytes: 0,
            gpus: 0,
            llm_slots: NamedCapacities::default(),
            custom: NamedCapacities::new(vec![("bench".to_owned(), POOL_CAPACITY)]),
            default_max_allocation_percent: 100.0,
            default_max_per_holder_percent: 100.0,
            default_oversubscription_ratio: 1.0,
            default_preemption_enabled: true,
            sweep_interval_ms: 1000,
            max_ttl_s: 3600,
            max_wait_ms: 0,
        },
        http: http_settings(),
        postgres: database.settings(),
        redis: redis.settings(),
        token: issuer.verifier_settings(),
    };
    let shutdown = Shutdown::new();
    let application = Application::build(config, &shutdown).await?;
    let address = application.address();
    let service = application.service().clone();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));

    let token = Arc::new(issuer.service_token("bench", &[]));
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        let channel = Channel::from_shared(format!("http://{address}"))?.connect().await?;
        clients.push(ArbitratorServiceClient::new(channel));
    }
    let clients = Arc::new(clients);
    let resource = pb::ResourceRef { kind: pb::ResourceKind::Custom.into(), name: "bench".to_owned() };
    let journal_before = journal_totals();
    let grpc = runs(move |worker| {
        let (clients, token, resource) = (Arc::clone(&clients), Arc::clone(&token), resource.clone());
        async move {
            let mut client = clients[worker % CHANNELS].clone();
            let holder = format!("bench-{worker}");
            let request = pb::AcquireLeaseRequest {
                resource: Some(resource),
                amount: 1,
                ttl_s: 60,
                priority: 0,
                holder: holder.clone(),
                wait_timeout_ms: 0,
            };
            let Ok(response) = client.acquire_lease(authed(request, &token)).await else { return false };
            let Some(lease) = response.into_inner().lease else { return false };
            let release = pb::ReleaseLeaseRequest { lease_id: lease.id, holder };
            client.release_lease(authed(release, &token)).await.is_ok()
        }
    })
    .await;

    let journal_after = journal_totals();
    let bench = ResourceKey::parse("custom:bench")?;
    let caller = Arc::new(Caller { subject: "bench".to_owned(), is_admin: false, is_service: true });
    let in_process = service.clone();
    let direct_resource = bench.clone();
    let direct = runs(move |worker| {
        let (service, caller, resource) = (in_process.clone(), Arc::clone(&caller), direct_resource.clone());
        async move {
            let holder = format!("bench-{worker}");
            let input = AcquireInput {
                resource,
                amount: 1,
                ttl_s: 60,
                priority: 0,
                holder: holder.clone(),
                wait_timeout_ms: 0,
            };
            let Ok(grant) = service.acquire(&caller, input).await else { return false };
            service.release(&caller, grant.lease.id, &holder).await.is_ok()
        }
    })
    .await;

    let live = service.live().clone();
    let limits = Limits { total: POOL_CAPACITY, per_holder: POOL_CAPACITY, preemption_enabled: true };
    let live_view = runs(move |worker| {
        let (live, resource) = (live.clone(), bench.clone());
        async move {
            let id = LeaseId::generate();
            let holder = format!("bench-{worker}");
            let request = LeaseRequest { resource, amount: 1, ttl_s: 60, priority: 0, holder };
            if live.acquire(id, &request, limits, None).await.is_err() {
                return false;
            }
            matches!(live.release(id, None).await, Ok(ReleaseOutcome::Released(_)))
        }
    })
    .await;

    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1) as f64;
    println!("cores {cores}");
    println!("concurrency {}", concurrency());
    println!("grpc_pairs_per_s {grpc:.0}");
    println!("service_pairs_per_s {direct:.0}");
    println!("live_view_pairs_per_s {live_view:.0}");
    let batches = journal_after.0 - journal_before.0;
    if batches > 0.0 {
        println!("grpc_journal_records_per_commit {:.1}", (journal_after.1 - journal_before.1) / batches);
        println!("grpc_journal_commit_ms {:.2}", (journal_after.2 - journal_before.2) * 1000.0 / batches);
    }
    shutdown.trigger();
    let _ = server.await;
    drop(service);
    database.drop_database().await;
    Ok(())
}
