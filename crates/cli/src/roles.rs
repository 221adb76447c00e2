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
}

/// A started role: its name, address and serving task.
pub(crate) struct RunningRole {
    pub(crate) role: Role,
    pub(crate) task: JoinHandle<std::io::Result<()>>,
}

impl Role {
    /// Every built role, in start order.
    pub(crate) const ALL: [Role; 5] =
        [Role::Auth, Role::Arbitrator, Role::Gateway, Role::Hardware, Role::Vector];

    /// The role's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Gateway => "gateway",
            Self::Hardware => "hardware",
            Self::Arbitrator => "arbitrator",
            Self::Vector => "vector",
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
            Self::Arbitrator => {
                sutazai_arbitrator::migrate(&config.postgres).await.context("migrate arbitrator")?
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
        let task = match self {
            Self::Auth => {
                let application = sutazai_auth::Application::build(config.auth_config(), shutdown)
                    .await
                    .context("start auth")?;
                tracing::info!(role = self.name(), address = %application.address(), "role started");
                tokio::spawn(application.run_until_stopped(shutdown.clone()))
            }
            Self::Gateway => {
                let application = sutazai_gateway::Application::build(config.gateway_config(), shutdown)
                    .await
                    .context("start gateway")?;
                tracing::info!(role = self.name(), address = %application.address(), "role started");
                tokio::spawn(application.run_until_stopped(shutdown.clone()))
            }
            Self::Arbitrator => {
                let application =
                    sutazai_arbitrator::Application::build(config.arbitrator_config(), shutdown)
                        .await
                        .context("start arbitrator")?;
                tracing::info!(role = self.name(), address = %application.address(), "role started");
                tokio::spawn(application.run_until_stopped(shutdown.clone()))
            }
            Self::Hardware => {
                let application = sutazai_hardware::Application::build(config.hardware_config(), shutdown)
                    .await
                    .context("start hardware")?;
                tracing::info!(role = self.name(), address = %application.address(), "role started");
                tokio::spawn(application.run_until_stopped(shutdown.clone()))
            }
            Self::Vector => {
                let application = sutazai_vector::Application::build(config.vector_config(), shutdown)
                    .await
                    .context("start vector")?;
                tracing::info!(role = self.name(), address = %application.address(), "role started");
                tokio::spawn(application.run_until_stopped(shutdown.clone()))
            }
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
