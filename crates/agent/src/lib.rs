//! `sutazai-agent`: the agent worker (role `agent`). One process runs several profiles from a
//! YAML file — `coder`, `reviewer`, `summarizer`, `shell`, `planner`, `memory-chat`, `noop` —
//! each as an agent of its own: a fresh id, its queue `agent.<id>`, a registration and
//! heartbeats for the coordinator. Assignments are worked through `sutazai-llm` (holding an
//! arbitrator lease per LLM call when the arbitrator is configured), and each outcome is
//! published with broker confirms before the assignment is acknowledged. `/livez`, `/readyz` and
//! `/metrics` are served on `agent.listen`.
//!
//! Layout: [`profiles`] reads and checks the YAML; `work` is what each kind does with a task
//! (no messaging); `runtime` is the agents' life over RabbitMQ; `clients` reach the auth, vector
//! and arbitrator services with the worker's service token.

mod clients;
mod health;
pub mod profiles;
mod runtime;
pub mod settings;
mod work;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sutazai_kit::config::{AmqpSettings, HttpSettings};
use sutazai_kit::health::HealthRegistry;
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::{LlmClient, LlmSettings};
use sutazai_messaging::client::{AmqpCheck, AmqpClient, AmqpError};
use tokio::net::TcpListener;

pub use runtime::RunningAgent;
pub use settings::{AGENT_DEFAULTS_TOML, AgentSettings};

use crate::clients::memory::MemoryStore;
use crate::clients::token::ServiceToken;
use crate::profiles::{Profile, Tool};
use crate::runtime::{Timings, Worker};
use crate::work::Tools;

/// Everything the agent role needs from the configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `[agent]`.
    pub agent: AgentSettings,
    /// `[http]` (the health and metrics listener).
    pub http: HttpSettings,
    /// `[amqp]`.
    pub amqp: AmqpSettings,
    /// `[llm]`.
    pub llm: LlmSettings,
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configured value is not usable (the message names the key, the profile and the field).
    #[error("configuration: {0}")]
    Config(String),
    /// RabbitMQ could not be reached or the topology not declared.
    #[error("rabbitmq: {0}")]
    Amqp(#[from] AmqpError),
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] sutazai_kit::server::BindError),
}

/// The running agent worker.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
    amqp: AmqpClient,
    worker: Worker,
    agents: Vec<RunningAgent>,
}

impl Application {
    /// Reads the profiles, connects to RabbitMQ, declares every agent's queue and binds the
    /// listener. The agents register when [`Application::run_until_stopped`] starts them.
    pub async fn build(config: AgentConfig, shutdown: &Shutdown) -> Result<Self, StartupError> {
        let settings = &config.agent;
        let profiles = settings.load_profiles().map_err(|error| StartupError::Config(error.to_string()))?;
        settings
            .check_requirements("agent", &profiles)
            .map_err(|error| StartupError::Config(error.to_string()))?;
        let token = service_token(settings, &profiles)?;
        let llm = Arc::new(llm_client(&config.llm, settings, token.clone()).await?);
        check_providers(&profiles, llm.provider_name())?;
        let memory = match &token {
            Some(token) if profiles.iter().any(|profile| profile.has_tool(Tool::VectorMemory)) => Some(
                MemoryStore::new(settings.vector_url.trim(), Arc::clone(token), settings.memory_dimension)
                    .map_err(|error| StartupError::Config(format!("agent.vector_url: {error}")))?,
            ),
            _ => None,
        };
        let uses_llm = profiles.iter().any(|profile| profile.kind.uses_llm());
        let tools = Tools { llm: Arc::clone(&llm), memory, memory_recall: settings.memory_recall };
        let amqp = AmqpClient::connect(config.amqp.clone(), shutdown.token()).await?;
        let timings = Timings {
            heartbeat_interval: settings.heartbeat_interval(),
            drain_timeout: settings.drain_timeout(),
        };
        let worker = Worker::declare(profiles, &tools, &amqp, timings).await?;
        let agents = worker.agents();

        let mut health = HealthRegistry::new(shutdown.token());
        health.register("rabbitmq", AmqpCheck(amqp.clone()));
        if uses_llm {
            health.register("llm", health::LlmCheck(llm));
        }
        let router = sutazai_kit::server::service_router(axum::Router::new(), health, &config.http);
        let listener = sutazai_kit::server::bind(settings.listen).await?;
        Ok(Self { listener, router, grace: config.http.shutdown_grace(), amqp, worker, agents })
    }

    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The agents this worker runs, one per profile.
    pub fn agents(&self) -> &[RunningAgent] {
        &self.agents
    }

    /// Registers the agents and works until shutdown; then each agent announces it is draining,
    /// takes no new assignment and finishes its running tasks within `agent.drain_timeout_ms`
    /// before the broker connection closes.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let server = tokio::spawn(sutazai_kit::server::serve(
            self.listener,
            self.router,
            shutdown.token(),
            self.grace,
        ));
        self.worker.run(shutdown.token()).await;
        self.amqp.close().await;
        match server.await {
            Ok(outcome) => outcome,
            Err(error) => Err(std::io::Error::other(error)),
        }
    }
}

/// The service token, when something needs one (checked by `check_requirements`).
fn service_token(
    settings: &AgentSettings,
    profiles: &[Profile],
) -> Result<Option<Arc<ServiceToken>>, StartupError> {
    let needed =
        settings.uses_arbitrator() || profiles.iter().any(|profile| profile.has_tool(Tool::VectorMemory));
    let Some(secret) = settings.client_secret.clone().filter(|_| needed) else { return Ok(None) };
    let token = ServiceToken::new(settings.auth_url.trim(), settings.client_id.trim(), secret)
        .map_err(|error| StartupError::Config(format!("agent.auth_url: {error}")))?;
    Ok(Some(Arc::new(token)))
}

/// The LLM client, taking its inference slots from the arbitrator when one is configured.
async fn llm_client(
    llm: &LlmSettings,
    settings: &AgentSettings,
    token: Option<Arc<ServiceToken>>,
) -> Result<LlmClient, StartupError> {
    let client =
        LlmClient::connect(llm).await.map_err(|error| StartupError::Config(format!("llm: {error}")))?;
    let Some(token) = token.filter(|_| settings.uses_arbitrator()) else { return Ok(client) };
    let slots = clients::leases::arbitrated_slots(
        settings.arbitrator_url.trim(),
        token,
        llm.max_concurrent_requests,
        llm.request_timeout(),
    )
    .map_err(|error| StartupError::Config(format!("agent.arbitrator_url: {error}")))?;
    Ok(client.with_inference_slots(Arc::new(slots)))
}

/// A profile's model may name its provider; it must be the one `[llm]` talks to.
fn check_providers(profiles: &[Profile], provider: &str) -> Result<(), StartupError> {
    let mut problems = Vec::new();
    for profile in profiles {
        if let Some(named) = &profile.model.provider
            && named != provider
        {
            problems.push(format!(
                "profile `{}`: `model` `{}` names the provider {named}, but [llm] provider is {provider}",
                profile.name, profile.model
            ));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(StartupError::Config(problems.join("; "))) }
}
