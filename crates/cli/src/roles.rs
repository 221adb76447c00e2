//! The service roles built into this binary. A role is a service library with
//! `Application::build` and `run_until_stopped`; `sutazai up` starts every role in one process and
//! `sutazai serve ROLE` starts one, through the same code. Roles are added here as their crates
//! land.

use anyhow::Context;
use sutazai_kit::shutdown::Shutdown;
use tokio::task::JoinHandle;

use crate::config::SutazaiConfig;

/// A role this binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Role {
    /// Users, tokens, JWKS, MFA (port 10054).
    Auth,
    /// The public REST API (port 10010).
    Gateway,
    /// Host metrics, storage analysis and safe cleanups (port 11110).
    Hardware,
    /// Leases of cpu, memory, gpu and LLM slots (port 8588).
    Arbitrator,
    /// Vector collections, search and documents (port 10103).
    Vector,
    /// Task and workflow state: submit, results, retries, cancel (port 8589).
    Orchestrator,
    /// Agent registry and task assignment (port 8551).
    Coordinator,
    /// Agent workers running the configured profiles (port 8595: health and metrics only).
    Agent,
}

/// A started role: its name, address and serving task.
pub(crate) struct RunningRole {
    pub(crate) role: Role,
    pub(crate) task: JoinHandle<std::io::Result<()>>,
}

impl Role {
    /// Every built role, in start order.
    pub(crate) const ALL: [Role; 8] = [
        Role::Auth,
        Role::Arbitrator,
        Role::Orchestrator,
        Role::Coordinator,
        Role::Gateway,
        Role::Hardware,
        Role::Vector,
        Role::Agent,
    ];

    /// The role's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Gateway => "gateway",
            Self::Hardware => "hardware",
            Self::Arbitrator => "arbitrator",
            Self::Vector => "vector",
            Self::Orchestrator => "orchestrator",
            Self::Coordinator => "coordinator",
            Self::Agent => "agent",
        }
    }

    /// The port in the default configuration.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Self::Auth => 10054,
            Self::Gateway => 10010,
            Self::Hardware => 11110,
            Self::Arbitrator => 8588,
            Self::Vector => 10103,
            Self::Orchestrator => 8589,
            Self::Coordinator => 8551,
            Self::Agent => 8595,
        }
    }

    /// Creates the role's schema and applies its migrations.
    pub(crate) async fn migrate(self, config: &SutazaiConfig) -> anyhow::Result<()> {
        match self {
            Self::Auth => sutazai_auth::migrate(&config.postgres).await.context("migrate auth")?,
            Self::Gateway => sutazai_gateway::migrate(&config.postgres).await.context("migrate gateway")?,
            // No schema: the hardware role keeps its quarantine in a directory.
            Self::Hardware => {}
            // No schema: the vector role keeps its collections in its data directory.
            Self::Vector => {}
            // No schema: agents keep no state of their own.
            Self::Agent => {}
            Self::Arbitrator => {
                sutazai_arbitrator::migrate(&config.postgres).await.context("migrate arbitrator")?
            }
            Self::Orchestrator => {
                sutazai_orchestrator::migrate(&config.postgres).await.context("migrate orchestrator")?
            }
            Self::Coordinator => {
                sutazai_coordinator::migrate(&config.postgres).await.context("migrate coordinator")?
            }
        }
        Ok(())
    }

    /// Builds and starts the role.
    pub(crate) async fn start(
        self,
        config: &SutazaiConfig,
        shutdown: &Shutdown,
    ) -> anyhow::Result<RunningRole> {
        // Every role library has the same shape: build (connect, migrate, bind), then serve.
        macro_rules! start {
            ($application:path, $config:expr) => {{
                let application = <$application>::build($config, shutdown)
                    .await
                    .with_context(|| format!("start {}", self.name()))?;
                tracing::info!(role = self.name(), address = %application.address(), "role started");
                tokio::spawn(application.run_until_stopped(shutdown.clone()))
            }};
        }
        let task = match self {
            Self::Auth => start!(sutazai_auth::Application, config.auth_config()),
            Self::Gateway => start!(sutazai_gateway::Application, config.gateway_config()),
            Self::Arbitrator => start!(sutazai_arbitrator::Application, config.arbitrator_config()),
            Self::Hardware => start!(sutazai_hardware::Application, config.hardware_config()),
            Self::Vector => start!(sutazai_vector::Application, config.vector_config()),
            Self::Orchestrator => start!(sutazai_orchestrator::Application, config.orchestrator_config()),
            Self::Coordinator => start!(sutazai_coordinator::Application, config.coordinator_config()),
            Self::Agent => start!(sutazai_agent::Application, config.agent_config()),
        };
        Ok(RunningRole { role: self, task })
    }
}

/// `sutazai roles`: each role and its default port.
pub(crate) fn print_roles() {
    for role in Role::ALL {
        println!("{:<14} {}", role.name(), role.default_port());
    }
}
