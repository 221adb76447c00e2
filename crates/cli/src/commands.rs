//! The commands that need configuration: load and validate it, start telemetry, then act.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use sutazai_kit::health::{HealthRegistry, PostgresCheck, RedisCheck};
use sutazai_kit::shutdown::Shutdown;

use crate::config::SutazaiConfig;
use crate::roles;

/// Exit status for a configuration that cannot start the process.
const EXIT_CONFIG: u8 = 2;

/// What to do once configured.
#[derive(Debug)]
pub(crate) enum Action {
    Up,
    Serve(String),
    Migrate,
}

/// Loads the configuration (exit 2 naming the key when invalid) and runs `action`.
pub(crate) fn run(action: Action, config_file: Option<&Path>) -> ExitCode {
    let env = std::env::vars().collect();
    let config = match crate::config::load(config_file, env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sutazai: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sutazai: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let otlp_endpoint = std::env::var(sutazai_kit::telemetry::OTLP_ENDPOINT_ENV).ok();
        let telemetry = sutazai_kit::telemetry::init(&config.telemetry, "sutazai", otlp_endpoint.as_deref())
            .context("start telemetry")?;
        let result = act(action, &config).await;
        telemetry.shutdown();
        result
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sutazai: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn act(action: Action, config: &SutazaiConfig) -> anyhow::Result<ExitCode> {
    match action {
        Action::Serve(name) => {
            // Roles register in `roles::BUILT_ROLES` as their crates land; none has yet.
            eprintln!("sutazai: unknown role `{name}`; built roles: {}", roles::names());
            Ok(ExitCode::from(EXIT_CONFIG))
        }
        Action::Migrate => {
            check_dependencies(config).await?;
            tracing::info!(roles = %roles::names(), "no role migrations to apply");
            Ok(ExitCode::SUCCESS)
        }
        Action::Up => {
            check_dependencies(config).await?;
            tracing::warn!(roles = %roles::names(), "no service roles are built into this binary yet; dependencies are reachable");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Connects to Postgres, Redis and RabbitMQ and runs their readiness checks once, so `up`
/// fails fast with the dependency named instead of starting half a platform.
async fn check_dependencies(config: &SutazaiConfig) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let connect_deadline = Duration::from_secs(10);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(connect_deadline)
        .connect_lazy_with(sutazai_kit::postgres::connect_options(&config.postgres, "public")?);
    let redis = tokio::time::timeout(connect_deadline, sutazai_kit::redis::connect(&config.redis))
        .await
        .context("redis did not answer")?
        .context("connect to redis")?;
    let amqp = tokio::time::timeout(
        connect_deadline,
        sutazai_messaging::AmqpClient::connect(config.amqp.clone(), shutdown.token()),
    )
    .await
    .context("rabbitmq did not answer")?
    .context("connect to rabbitmq")?;

    let mut registry = HealthRegistry::new(shutdown.token());
    registry.register("postgres", PostgresCheck(pool));
    registry.register("redis", RedisCheck(redis));
    registry.register("rabbitmq", sutazai_messaging::AmqpCheck(amqp.clone()));
    let started = Instant::now();
    let report = registry.readiness().await;
    amqp.close().await;
    for (name, result) in &report.checks {
        tracing::info!(dependency = %name, status = result.status, latency_ms = result.latency_ms, error = ?result.error, "dependency check");
    }
    if !report.is_ready() {
        anyhow::bail!("dependencies not ready: {}", report.failing.join(", "));
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "postgres, redis and rabbitmq are reachable"
    );
    Ok(())
}
