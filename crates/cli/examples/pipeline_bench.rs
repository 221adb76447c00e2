//! `make bench-pipeline`, our side: the orchestrator, the coordinator and one `noop` agent worker
//! run in this process, as `sutazai up` runs them, against the real Postgres and RabbitMQ. Every
//! task takes the whole durable path: gRPC SubmitTask → task row + outbox in one transaction →
//! confirmed persistent `task.ready` → coordinator (pending row, assignment + outbox in one
//! transaction) → confirmed `task.assigned` → the agent publishes confirmed `task.started` and
//! `task.succeeded`, then acks → the orchestrator applies each outcome in a transaction.
//!
//! Two phases, printed as one JSON line each (bench/pipeline.sh compares them with Celery's):
//! - burst: BENCH_TASKS tasks from BENCH_SUBMITTERS concurrent gRPC callers; tasks/s = tasks /
//!   (last finished_at − first created_at), p50/p99 of finished_at − created_at;
//! - paced: BENCH_RATE tasks/s for BENCH_PACED_S seconds; p50/p99 at that load.
//!
//! Both times come from the orchestrator's own rows (one clock, the database's). With
//! BENCH_KEEP_DB set, the run's database is kept (its name is printed) for looking at the events,
//! outbox and inbox timestamps afterwards.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;
use sutazai_agent::{AgentConfig, AgentSettings};
use sutazai_coordinator::{CoordinatorConfig, CoordinatorSettings, StrategyKind};
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::{LlmSettings, ProviderKind};
use sutazai_orchestrator::{OrchestratorConfig, OrchestratorSettings};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::orchestrator_service_client::OrchestratorServiceClient;
use sutazai_testkit::{TestAmqp, TestDatabase, TestIssuer, TestRedis, http_settings};
use tonic::transport::Channel;
use uuid::Uuid;

const PROFILES: &str = "profiles:\n  - name: noop\n    kind: noop\n    capabilities: [noop]\n    concurrency: 64\n    timeout_s: 60\n";

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tasks: usize = env_number("BENCH_TASKS", 5000);
    let rate: f64 = env_number("BENCH_RATE", 500.0);
    let paced_s: f64 = env_number("BENCH_PACED_S", 5.0);
    let submitters: usize = env_number("BENCH_SUBMITTERS", 16);

    let database = TestDatabase::create().await;
    // The production defaults of `sutazai up` (postgres.max_connections, amqp.prefetch), not the
    // tests' small pools.
    let postgres = sutazai_kit::config::PostgresSettings { max_connections: 20, ..database.settings() };
    let amqp = TestAmqp::new();
    let amqp_settings = sutazai_kit::config::AmqpSettings { prefetch: 10, ..amqp.settings() };
    let redis = TestRedis::new();
    let issuer = TestIssuer::start().await;
    let shutdown = Shutdown::new();
    let orchestrator = sutazai_orchestrator::Application::build(
        OrchestratorConfig {
            orchestrator: OrchestratorSettings {
                listen: any_port(),
                auth_url: issuer.auth_url(),
                default_max_retries: 3,
                max_retries_limit: 20,
                default_timeout_s: 3600,
                max_timeout_s: 86_400,
                retry_initial_ms: 1000,
                retry_multiplier: 2.0,
                retry_max_ms: 60_000,
                retry_jitter: 0.2,
                max_payload_bytes: 262_144,
                max_workflow_steps: 200,
                sweep_interval_ms: 2000,
                outbox_batch_size: 200,
            },
            http: http_settings(),
            postgres: postgres.clone(),
            redis: redis.settings(),
            amqp: amqp_settings.clone(),
            token: issuer.verifier_settings(),
        },
        &shutdown,
    )
    .await
    .context("start the orchestrator")?;
    let orchestrator_address = orchestrator.address();
    let coordinator = sutazai_coordinator::Application::build(
        CoordinatorConfig {
            coordinator: CoordinatorSettings {
                listen: any_port(),
                auth_url: issuer.auth_url(),
                strategy: StrategyKind::CapabilityMatch,
                owner_fairness: true,
                max_active_per_owner: 0,
                assignment_lease_s: 30,
                offline_after_ms: 15_000,
                pending_capacity: 1_000_000,
                prefetch: 256,
                forget_offline_agents_after_s: 86_400,
            },
            http: http_settings(),
            postgres: postgres.clone(),
            redis: redis.settings(),
            amqp: amqp_settings.clone(),
            token: issuer.verifier_settings(),
        },
        &shutdown,
    )
    .await
    .context("start the coordinator")?;
    let profiles_file = std::env::temp_dir().join(format!("sutazai-bench-profiles-{}.yaml", Uuid::now_v7()));
    std::fs::write(&profiles_file, PROFILES)?;
    let agent = sutazai_agent::Application::build(
        AgentConfig {
            agent: AgentSettings {
                listen: any_port(),
                profiles_file: profiles_file.display().to_string(),
                profiles: vec!["noop".to_owned()],
                heartbeat_interval_ms: 5000,
                drain_timeout_ms: 10_000,
                arbitrator_url: String::new(),
                vector_url: String::new(),
                auth_url: String::new(),
                client_id: "bench".to_owned(),
                client_secret: None,
                memory_dimension: 384,
                memory_recall: 4,
            },
            http: http_settings(),
            amqp: amqp_settings.clone(),
            llm: LlmSettings {
                provider: ProviderKind::Ollama,
                base_url: sutazai_kit::config::ConnectionUrl::new("http://127.0.0.1:9"),
                api_key: None,
                default_model: "unused".into(),
                request_timeout_ms: 1000,
                connect_timeout_ms: 500,
                max_retries: 0,
                retry_base_delay_ms: 50,
                retry_max_delay_ms: 200,
                model_list_ttl_s: 60,
                cache_ttl_s: 600,
                max_concurrent_requests: 1,
                local: sutazai_llm::LocalSettings::default(),
            },
        },
        &shutdown,
    )
    .await
    .context("start the noop agent")?;
    let _ = std::fs::remove_file(&profiles_file);
    let mut roles = tokio::task::JoinSet::new();
    roles.spawn(orchestrator.run_until_stopped(shutdown.clone()));
    roles.spawn(coordinator.run_until_stopped(shutdown.clone()));
    roles.spawn(agent.run_until_stopped(shutdown.clone()));

    let channel = Channel::from_shared(format!("http://{orchestrator_address}"))?.connect().await?;
    let token: Arc<str> = issuer.user_token("bench-user", &["tasks:read", "tasks:write"]).into();
    let pool = PgPool::connect(database.url()).await?;
    let client = Submitter { rpc: OrchestratorServiceClient::new(channel), token };

    // Warm-up: the agent registered and the path is live once one task round-trips.
    let warm = client.submit(0).await?;
    wait_finished(&pool, &[warm], Duration::from_secs(60)).await?;

    let started = Instant::now();
    let ids = client.submit_many(tasks, submitters, None).await?;
    let submit_s = started.elapsed().as_secs_f64();
    wait_finished(&pool, &ids, Duration::from_secs(600)).await?;
    let burst = measure(&pool, &ids).await?;
    println!(
        "{}",
        serde_json::json!({"phase": "burst", "system": "sutazai", "tasks": tasks, "seconds": burst.span_s,
            "tasks_per_s": tasks as f64 / burst.span_s, "p50_ms": burst.p50_ms, "p99_ms": burst.p99_ms,
            "submit_s": submit_s})
    );

    let paced_count = (rate * paced_s).round() as usize;
    let started = Instant::now();
    let ids = client.submit_many(paced_count, submitters, Some(rate)).await?;
    let achieved = paced_count as f64 / started.elapsed().as_secs_f64();
    wait_finished(&pool, &ids, Duration::from_secs(600)).await?;
    let paced = measure(&pool, &ids).await?;
    println!(
        "{}",
        serde_json::json!({"phase": "paced", "system": "sutazai", "tasks": paced_count, "target_rate": rate,
            "achieved_rate": achieved, "p50_ms": paced.p50_ms, "p99_ms": paced.p99_ms})
    );

    shutdown.trigger();
    let _ = shutdown.wait_for_tasks(Duration::from_secs(30)).await;
    while roles.join_next().await.is_some() {}
    pool.close().await;
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        eprintln!("kept database {}", database.url());
    } else {
        database.drop_database().await;
    }
    Ok(())
}

#[derive(Clone)]
struct Submitter {
    rpc: OrchestratorServiceClient<Channel>,
    token: Arc<str>,
}

impl Submitter {
    async fn submit(&self, index: usize) -> anyhow::Result<Uuid> {
        let mut request = tonic::Request::new(pb::SubmitTaskRequest {
            task_type: "noop".to_owned(),
            payload: Some(sutazai_proto::json::to_proto_value(&serde_json::json!({ "n": index }))),
            priority: 5,
            capabilities: vec!["noop".to_owned()],
            max_retries: None,
            timeout_s: None,
            idempotency_key: String::new(),
            owner: "bench-user".to_owned(),
        });
        request.metadata_mut().insert("authorization", format!("Bearer {}", self.token).parse()?);
        let task = self.rpc.clone().submit_task(request).await?.into_inner().task.context("no task")?;
        Ok(task.id.parse()?)
    }

    /// `count` submissions from `submitters` callers; with a rate, submission i waits for its slot.
    async fn submit_many(
        &self,
        count: usize,
        submitters: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<Vec<Uuid>> {
        let start = Instant::now();
        let mut callers = tokio::task::JoinSet::new();
        for caller in 0..submitters {
            let submitter = self.clone();
            callers.spawn(async move {
                let mut ids = Vec::new();
                for index in (caller..count).step_by(submitters) {
                    if let Some(rate) = rate {
                        tokio::time::sleep_until(
                            (start + Duration::from_secs_f64(index as f64 / rate)).into(),
                        )
                        .await;
                    }
                    ids.push(submitter.submit(index).await?);
                }
                anyhow::Ok(ids)
            });
        }
        let mut ids = Vec::with_capacity(count);
        while let Some(joined) = callers.join_next().await {
            ids.extend(joined??);
        }
        Ok(ids)
    }
}

async fn wait_finished(pool: &PgPool, ids: &[Uuid], patience: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        let (finished, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status IN ('failed', 'cancelled'))
             FROM orchestrator.tasks WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_one(pool)
        .await?;
        anyhow::ensure!(failed == 0, "{failed} tasks failed");
        if usize::try_from(finished)? == ids.len() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {finished} of {} tasks succeeded in time",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Figures {
    span_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn measure(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<Figures> {
    let latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM finished_at - created_at) * 1000)::float8 FROM orchestrator.tasks
         WHERE id = ANY($1) ORDER BY 1",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let span_s: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(finished_at) - min(created_at))::float8 FROM orchestrator.tasks WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(pool)
    .await?;
    let at = |fraction: f64| latencies[((latencies.len() - 1) as f64 * fraction).round() as usize];
    Ok(Figures { span_s, p50_ms: at(0.5), p99_ms: at(0.99) })
}
