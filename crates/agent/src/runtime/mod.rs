//! The worker runtime: one [`AgentInstance`] per running profile, each an agent of its own with
//! its own queue, sharing the worker's broker connection, publishers, LLM client and tools.

mod announce;
mod handler;
mod instance;
mod ledger;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use sutazai_messaging::client::{AmqpClient, AmqpError};
use tokio_util::sync::CancellationToken;

use self::announce::Publishers;
use self::handler::Agent;
use self::instance::AgentInstance;
use crate::profiles::Profile;
use crate::work::Tools;

/// A running agent: its id and profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningAgent {
    /// The agent's id (its queue is `agent.<id>`).
    pub id: sutazai_types::AgentId,
    /// The profile it runs.
    pub profile: String,
}

/// Timings of every agent of the worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub(crate) heartbeat_interval: Duration,
    pub(crate) drain_timeout: Duration,
}

/// The agents of one worker process.
#[derive(Debug)]
pub(crate) struct Worker {
    instances: Vec<AgentInstance>,
}

impl Worker {
    /// An agent for each of `profiles`, with its queue declared (so assignments published right
    /// after this returns are kept even before the agent registers).
    pub(crate) async fn declare(
        profiles: Vec<Profile>,
        tools: &Tools,
        amqp: &AmqpClient,
        timings: Timings,
    ) -> Result<Self, AmqpError> {
        let concurrent_tasks: usize =
            profiles.iter().map(|profile| usize::try_from(profile.concurrency).unwrap_or(1)).sum();
        let publishers = Arc::new(Publishers::new(amqp, concurrent_tasks));
        let mut instances = Vec::with_capacity(profiles.len());
        for profile in profiles {
            let agent = Agent::new(profile, tools.clone(), Arc::clone(&publishers));
            let instance =
                AgentInstance::new(agent, amqp.clone(), timings.heartbeat_interval, timings.drain_timeout);
            instance.declare().await?;
            instances.push(instance);
        }
        Ok(Self { instances })
    }

    /// The agents.
    pub(crate) fn agents(&self) -> Vec<RunningAgent> {
        self.instances
            .iter()
            .map(|instance| RunningAgent {
                id: instance.agent().id,
                profile: instance.agent().profile.name.clone(),
            })
            .collect()
    }

    /// Runs every agent until `stop` fires and each has drained.
    pub(crate) async fn run(self, stop: CancellationToken) {
        join_all(self.instances.into_iter().map(|instance| instance.run(stop.clone()))).await;
    }
}
