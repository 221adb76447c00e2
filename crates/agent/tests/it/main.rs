//! The agent worker against real RabbitMQ (and, for memory and leases, the real auth, vector and
//! arbitrator services on real Postgres and Redis), with the fake Ollama as the only double. Each
//! test starts its own worker under its own broker name prefix and drives it as the coordinator
//! would: it publishes `Assigned` and `Cancelled` to the tasks exchange and watches everything the
//! worker publishes on a queue of its own bound to `task.#` and `agent.#`.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod failures;
mod leases;
mod lifecycle;
mod memory;
mod observer;
mod profiles;
mod reconnect;
mod services;
mod withdrawal;

pub(crate) use observer::{Forward, Observer, Seen};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lapin::options::BasicGetOptions;
use serde_json::Value;
use sutazai_agent::{AgentConfig, AgentSettings, Application, RunningAgent};
use sutazai_kit::config::{ConnectionUrl, Secret};
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::{LlmSettings, ProviderKind};
use sutazai_messaging::client::AmqpClient;
use sutazai_messaging::consumer::Consumer;
use sutazai_messaging::pipeline::{agent_tasks_queue, coordinator_topology};
use sutazai_messaging::publisher::{OutgoingMessage, Publisher};
use sutazai_messaging::topology::{QueueSpec, Topology};
use sutazai_testkit::fake_ollama::FakeOllama;
use sutazai_testkit::{TestAmqp, http_settings};
use sutazai_types::messages::{
    AGENTS_EXCHANGE, TASKS_EXCHANGE, TaskAssigned, TaskCancelled, TaskMessage, agent_queue,
};
use sutazai_types::{AgentId, TaskId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The chat model the fake serves.
pub(crate) const MODEL: &str = "smollm2:135m";
/// How long a test waits for something that should happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);
/// The system prompt of the test coder, to find in what the fake received.
pub(crate) const CODER_PERSONA: &str = "You are CODER-PERSONA, a careful engineer.";

/// The profiles tests choose from.
const PROFILES_YAML: &str = r#"
profiles:
  - name: noop
    kind: noop
    capabilities: [noop, bench]
    concurrency: 4
    timeout_s: 5
  - name: typed-noop
    kind: noop
    task_types: [bench]
  - name: coder
    kind: coder
    capabilities: [coder]
    model: ollama/smollm2:135m
    system_prompt: "You are CODER-PERSONA, a careful engineer."
    concurrency: 2
    timeout_s: 30
    temperature: 0.1
    max_tokens: 256
  - name: hasty-coder
    kind: coder
    system_prompt: "You are quick."
    timeout_s: 1
  - name: reviewer
    kind: reviewer
    system_prompt: "You are REVIEWER-PERSONA."
  - name: summarizer
    kind: summarizer
    system_prompt: "You are SUMMARIZER-PERSONA."
  - name: shell
    kind: shell
    system_prompt: "You are SHELL-PERSONA."
  - name: planner
    kind: planner
    system_prompt: "You are PLANNER-PERSONA."
  - name: memory-chat
    kind: memory-chat
    tools: [vector_memory]
    system_prompt: "You are MEMORY-PERSONA."
  - name: leased
    kind: summarizer
    model: ollama/smollm2:135m
    system_prompt: "You are LEASED-PERSONA."
    concurrency: 3
"#;

/// LLM settings for a provider at `base_url`: short timeouts, no retries, four local slots.
pub(crate) fn llm_settings(base_url: &str) -> LlmSettings {
    LlmSettings {
        provider: ProviderKind::Ollama,
        base_url: ConnectionUrl::new(base_url),
        api_key: None,
        default_model: MODEL.into(),
        request_timeout_ms: 10_000,
        connect_timeout_ms: 500,
        max_retries: 0,
        retry_base_delay_ms: 50,
        retry_max_delay_ms: 200,
        model_list_ttl_s: 60,
        cache_ttl_s: 600,
        max_concurrent_requests: 4,
        local: sutazai_llm::LocalSettings::default(),
    }
}

/// A port nothing listens on.
pub(crate) fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

/// The services and credentials a worker reaches beyond RabbitMQ and the LLM.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reach {
    pub(crate) arbitrator_url: String,
    pub(crate) vector_url: String,
    pub(crate) auth_url: String,
    pub(crate) client_secret: Option<String>,
}

/// How a test's worker is set up.
pub(crate) struct Options {
    pub(crate) profiles: Vec<&'static str>,
    /// The LLM's URL; `None` for the worker's own fake Ollama.
    pub(crate) llm_url: Option<String>,
    pub(crate) drain_timeout_ms: u64,
    pub(crate) reach: Reach,
    pub(crate) memory_recall: u32,
    /// A fake Ollama the test set up itself (services share it); `None` for a fresh one.
    pub(crate) ollama: Option<FakeOllama>,
    /// Where the worker (only) reaches RabbitMQ, e.g. through a cuttable proxy.
    pub(crate) amqp_url: Option<String>,
}

impl Options {
    pub(crate) fn profiles(profiles: &[&'static str]) -> Self {
        Self {
            profiles: profiles.to_vec(),
            llm_url: None,
            drain_timeout_ms: 10_000,
            reach: Reach::default(),
            memory_recall: 4,
            ollama: None,
            amqp_url: None,
        }
    }
}

/// A running worker and the test's view of the broker.
pub(crate) struct TestWorker {
    pub(crate) agents: Vec<RunningAgent>,
    pub(crate) address: SocketAddr,
    pub(crate) ollama: FakeOllama,
    pub(crate) observer: Arc<Observer>,
    pub(crate) amqp: AmqpClient,
    publisher: Publisher,
    shutdown: Shutdown,
    running: Option<JoinHandle<std::io::Result<()>>>,
    observer_stop: CancellationToken,
    topology: Topology,
    _profiles_file: tempfile::NamedTempFile,
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.shutdown.trigger();
        self.observer_stop.cancel();
    }
}

pub(crate) async fn spawn(profiles: &[&'static str]) -> TestWorker {
    spawn_with(Options::profiles(profiles)).await
}

pub(crate) async fn spawn_with(mut options: Options) -> TestWorker {
    sutazai_testkit::init_tracing();
    let ollama = match options.ollama.take() {
        Some(ollama) => ollama,
        None => FakeOllama::start().await,
    };
    ollama.add_model(MODEL);
    let profiles_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(profiles_file.path(), PROFILES_YAML).unwrap();
    let amqp_prefix = TestAmqp::new();
    let llm_url = options.llm_url.clone().unwrap_or_else(|| ollama.base_url());
    let mut worker_amqp = amqp_prefix.settings();
    if let Some(url) = &options.amqp_url {
        worker_amqp.url = ConnectionUrl::new(url.clone());
    }
    let config = AgentConfig {
        agent: AgentSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            profiles_file: profiles_file.path().display().to_string(),
            profiles: options.profiles.iter().map(|name| (*name).to_owned()).collect(),
            heartbeat_interval_ms: 200,
            drain_timeout_ms: options.drain_timeout_ms,
            arbitrator_url: options.reach.arbitrator_url.clone(),
            vector_url: options.reach.vector_url.clone(),
            auth_url: options.reach.auth_url.clone(),
            client_id: services::CLIENT_ID.to_owned(),
            client_secret: options.reach.client_secret.clone().map(Secret::new),
            memory_dimension: 384,
            memory_recall: options.memory_recall,
        },
        http: http_settings(),
        amqp: worker_amqp,
        llm: llm_settings(&llm_url),
    };
    let shutdown = Shutdown::new();
    let application = Application::build(config, &shutdown).await.unwrap();
    let agents = application.agents().to_vec();
    let address = application.address();

    let amqp = AmqpClient::connect(amqp_prefix.settings(), CancellationToken::new()).await.unwrap();
    let observer_queue =
        QueueSpec::new("test.observer").bind(TASKS_EXCHANGE, "task.#").bind(AGENTS_EXCHANGE, "agent.#");
    let mut topology = Topology::default().queue(observer_queue.clone());
    topology.declare(&amqp).await.unwrap();
    // For the clean-up: the pipeline's shared queues and each agent's own.
    let shared = coordinator_topology();
    topology.exchanges = shared.exchanges;
    topology.queues.extend(shared.queues);
    topology.queues.extend(agents.iter().map(|agent| agent_tasks_queue(agent.id)));
    let (sender, receiver) = mpsc::unbounded_channel();
    let observer_stop = CancellationToken::new();
    // One delivery at a time keeps the arrival order.
    let observing = Consumer::new(amqp.clone(), observer_queue, Forward(sender)).with_prefetch(1);
    tokio::spawn(observing.run(observer_stop.clone()));
    let observer = Arc::new(Observer::new(receiver));

    let running = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestWorker {
        agents,
        address,
        ollama,
        observer,
        publisher: Publisher::new(amqp.clone()),
        amqp,
        shutdown,
        running: Some(running),
        observer_stop,
        topology,
        _profiles_file: profiles_file,
    }
}

impl TestWorker {
    /// The agent running `profile`.
    pub(crate) fn agent(&self, profile: &str) -> AgentId {
        self.agents.iter().find(|agent| agent.profile == profile).unwrap().id
    }

    /// Publishes an assignment of a new task to the agent of `profile`, as the coordinator does.
    pub(crate) async fn assign(&self, profile: &str, payload: Value) -> TaskAssigned {
        self.assign_task(profile, TaskId::new(), 1, "owner-1", payload).await
    }

    /// Publishes an assignment with every field chosen.
    pub(crate) async fn assign_task(
        &self,
        profile: &str,
        task_id: TaskId,
        attempt: u32,
        owner: &str,
        payload: Value,
    ) -> TaskAssigned {
        let assigned = TaskAssigned {
            task_id,
            attempt,
            agent_id: self.agent(profile),
            task_type: profile.to_owned(),
            payload,
            owner: owner.to_owned(),
            deadline: Utc::now() + chrono::Duration::seconds(60),
            reason: String::new(),
        };
        self.publish_assignment(&assigned).await;
        assigned
    }

    /// Publishes `assigned` as is.
    pub(crate) async fn publish_assignment(&self, assigned: &TaskAssigned) {
        let message = TaskMessage::Assigned(assigned.clone());
        let outgoing = OutgoingMessage::json(TASKS_EXCHANGE, assigned.routing_key(), &message).unwrap();
        self.publisher.publish(outgoing).await.unwrap();
    }

    /// Publishes a withdrawal of `task_id`, as the orchestrator does.
    pub(crate) async fn cancel(&self, task_id: TaskId) {
        let message =
            TaskMessage::Cancelled(TaskCancelled { task_id, reason: "cancelled by the test".into() });
        let outgoing = OutgoingMessage::json(TASKS_EXCHANGE, message.routing_key(), &message).unwrap();
        self.publisher.publish(outgoing).await.unwrap();
    }

    /// The bodies of the chat requests the fake received.
    pub(crate) fn chats(&self) -> Vec<Value> {
        self.ollama
            .requests()
            .into_iter()
            .filter(|request| request.path == "/api/chat")
            .map(|request| request.body)
            .collect()
    }

    /// Starts the shutdown and waits until the worker has drained and stopped.
    pub(crate) async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(PATIENCE, running).await.unwrap().unwrap().unwrap();
        }
    }

    /// Takes one message off the queue of the agent of `profile`, if it holds one.
    pub(crate) async fn take_from_queue(&self, profile: &str) -> Option<(TaskMessage, bool)> {
        let channel = self.amqp.channel().await.unwrap();
        let queue = self.amqp.name(&agent_queue(self.agent(profile)));
        let message = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap()?;
        let body: TaskMessage = serde_json::from_slice(&message.delivery.data).unwrap();
        Some((body, message.delivery.redelivered))
    }

    /// Stops the worker and deletes everything it and the test declared.
    pub(crate) async fn finish(mut self) {
        self.stop().await;
        self.observer_stop.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.topology.delete(&self.amqp).await.unwrap();
        self.amqp.close().await;
    }
}

/// The text of every message of a chat request.
pub(crate) fn chat_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| {
            format!("{}: {}", message["role"].as_str().unwrap(), message["content"].as_str().unwrap())
        })
        .collect::<Vec<_>>()
        .join("\n")
}
