//! The commands that need configuration: load and validate it, start telemetry, then act.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use sutazai_kit::health::{HealthRegistry, PostgresCheck, RedisCheck};
use sutazai_kit::shutdown::Shutdown;

use crate::config::SutazaiConfig;
use crate::roles::{Role, RunningRole};

/// Exit status for a configuration that cannot start the process.
const EXIT_CONFIG: u8 = 2;

/// What to do once configured.
#[derive(Debug)]
pub(crate) enum Action {
    Up,
    Serve(Role),
    Migrate,
    AuthRotateKeys,
    AuthCreateAdmin { username: String, email: String },
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
        // Spans of `serve ROLE` carry the role in their service name (`sutazai-gateway`), so a
        // trace across processes shows which role did what; `up` runs every role as `sutazai`.
        let service_name = match &action {
            Action::Serve(role) => format!("sutazai-{}", role.name()),
            _ => "sutazai".to_owned(),
        };
        let telemetry =
            sutazai_kit::telemetry::init(&config.telemetry, &service_name, otlp_endpoint.as_deref())
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
        Action::Up => {
            check_dependencies(config).await?;
            bootstrap_agent_account(config).await?;
            run_roles(&Role::ALL, config).await
        }
        Action::Serve(role) => run_roles(&[role], config).await,
        Action::Migrate => {
            for role in Role::ALL {
                role.migrate(config).await?;
                tracing::info!(role = role.name(), "migrations applied");
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::AuthRotateKeys => {
            let kid = crate::admin::rotate_keys(config).await?;
            println!("new signing key {kid}; running auth services serve it within a minute");
            Ok(ExitCode::SUCCESS)
        }
        Action::AuthCreateAdmin { username, email } => {
            crate::admin::create_admin(config, username, email).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Scopes of the agent workers' service account: memory-chat reads and writes its memory in the
/// vector service (the arbitrator grants LLM-slot leases to any service token).
const AGENT_SCOPES: [&str; 2] = ["vectors:read", "vectors:write"];

/// `sutazai up` runs the auth service and the agent workers together, so it gives the workers
/// their service account (`agent.client_id` with `agent.client_secret`, which `make up` generates)
/// instead of leaving an operator to create it first. Without a secret configured nothing is
/// created, and the agent role says which key is missing.
async fn bootstrap_agent_account(config: &SutazaiConfig) -> anyhow::Result<()> {
    let Some(secret) = config.agent.client_secret.as_ref() else {
        return Ok(());
    };
    let scopes: Vec<String> = AGENT_SCOPES.iter().map(|scope| (*scope).to_owned()).collect();
    sutazai_auth::ensure_service_account(&config.postgres, &config.agent.client_id, secret.expose(), &scopes)
        .await
        .context("create the agent workers' service account")?;
    tracing::info!(client_id = %config.agent.client_id, "agent service account ready");
    Ok(())
}

/// Starts `roles`, runs until SIGTERM/SIGINT or until one stops on its own, then shuts all down.
async fn run_roles(roles: &[Role], config: &SutazaiConfig) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals().context("install signal handlers")?;
    let mut running: Vec<RunningRole> = Vec::new();
    for role in roles {
        match role.start(config, &shutdown).await {
            Ok(started) => running.push(started),
            Err(error) => {
                shutdown.trigger();
                stop_all(running, &shutdown, config).await;
                return Err(error);
            }
        }
    }
    let token = shutdown.token();
    let mut early_exit = None;
    {
        let any_finished = futures_util::future::select_all(running.iter_mut().map(|role| &mut role.task));
        tokio::select! {
            // Biased: when a role ends because shutdown began, that is the signal, not a failure.
            biased;
            () = token.cancelled() => {}
            (outcome, index, _) = any_finished => early_exit = Some((index, outcome)),
        }
    }
    shutdown.trigger();
    // A finished task must not be awaited again, so it leaves the list before the others stop.
    let early_exit = early_exit.map(|(index, outcome)| (running.remove(index).role, outcome));
    stop_all(running, &shutdown, config).await;
    match early_exit {
        Some((role, outcome)) => anyhow::bail!("role {} stopped unexpectedly: {outcome:?}", role.name()),
        None => Ok(ExitCode::SUCCESS),
    }
}

async fn stop_all(running: Vec<RunningRole>, shutdown: &Shutdown, config: &SutazaiConfig) {
    let grace = config.http.shutdown_grace() + Duration::from_secs(1);
    for role in running {
        match tokio::time::timeout(grace, role.task).await {
            Ok(Ok(Ok(()))) => tracing::info!(role = role.role.name(), "role stopped"),
            Ok(outcome) => tracing::error!(role = role.role.name(), ?outcome, "role stopped with an error"),
            Err(_) => tracing::warn!(role = role.role.name(), "role did not stop within the grace period"),
        }
    }
    if !shutdown.wait_for_tasks(grace).await {
        tracing::warn!("background tasks still running after the grace period");
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
