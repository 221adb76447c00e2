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
}

/// A started role: its name, address and serving task.
pub(crate) struct RunningRole {
    pub(crate) role: Role,
    pub(crate) task: JoinHandle<std::io::Result<()>>,
}

impl Role {
    /// Every built role, in start order.
    pub(crate) const ALL: [Role; 2] = [Role::Auth, Role::Gateway];

    /// The role's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Gateway => "gateway",
        }
    }

    /// The port in the default configuration.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Self::Auth => 10054,
            Self::Gateway => 10010,
        }
    }

    /// Creates the role's schema and applies its migrations.
    pub(crate) async fn migrate(self, config: &SutazaiConfig) -> anyhow::Result<()> {
        match self {
            Self::Auth => sutazai_auth::migrate(&config.postgres).await.context("migrate auth")?,
            Self::Gateway => sutazai_gateway::migrate(&config.postgres).await.context("migrate gateway")?,
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
