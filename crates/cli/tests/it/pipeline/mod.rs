//! The task pipeline end to end (issue 5): the real orchestrator, coordinator and agent workers,
//! in this process, on one fresh database (each role in its own schema), one RabbitMQ name
//! prefix and one Redis key prefix, with the fake Ollama as the only double. A test submits work
//! over the orchestrator's gRPC API with user tokens from a test issuer and reads the outcome the
//! same way; it may also stop and rebuild the coordinator, cut an agent's broker connection, and
//! publish a message itself where an old agent would.
//!
//! Timings are short: agents heartbeat every 150 ms, the coordinator calls an agent offline after
//! 600 ms of silence, the orchestrator retries after 100 ms (×2, ±20 %).

mod cancel;
mod failures;
mod gateway;
mod ordering;
mod reassignment;
mod restart;
mod strategies;
mod submit;
mod timeouts;
mod trace;
mod workflows;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicGetOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use sqlx::PgPool;
use sutazai_agent::{AgentConfig, AgentSettings, RunningAgent};
use sutazai_coordinator::{CoordinatorConfig, CoordinatorSettings, StrategyKind};
use sutazai_kit::config::{AmqpSettings, ConnectionUrl};
use sutazai_kit::shutdown::Shutdown;
use sutazai_llm::{LlmSettings, ProviderKind};
use sutazai_messaging::{AmqpClient, OutgoingMessage, Publisher, QueueSpec, Topology, pipeline};
use sutazai_orchestrator::{OrchestratorConfig, OrchestratorSettings};
use sutazai_proto::json::{from_proto_value, to_proto_value};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::coordinator_service_client::CoordinatorServiceClient;
use sutazai_proto::v1::orchestrator_service_client::OrchestratorServiceClient;
use sutazai_testkit::fake_ollama::FakeOllama;
use sutazai_testkit::{TcpProxy, TestAmqp, TestDatabase, TestIssuer, TestRedis, http_settings, wait_for};
use sutazai_types::AgentId;
use sutazai_types::messages::{TASKS_EXCHANGE, TaskMessage, TaskStarted};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// How long a test waits for an asynchronous effect before failing (generous: the test machine
/// is shared, and a passing test never waits for it).
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);
/// The chat model the fake Ollama serves.
pub(crate) const MODEL: &str = "smollm2:135m";
/// The summarizer's system prompt, to find in the prompt stored with a task.
pub(crate) const SUMMARIZER_PERSONA: &str = "You are SUMMARIZER-PERSONA, faithful and brief.";

/// The profiles a test's workers choose from.
const PROFILES_YAML: &str = r#"
profiles:
  - name: noop
    kind: noop
    capabilities: [noop]
    concurrency: 1
    timeout_s: 10
  - name: wide-noop
    kind: noop
    capabilities: [noop]
    concurrency: 4
    timeout_s: 10
  - name: summarizer
    kind: summarizer
    capabilities: [summarizer]
    model: ollama/smollm2:135m
    system_prompt: "You are SUMMARIZER-PERSONA, faithful and brief."
    concurrency: 1
    timeout_s: 60
"#;

pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A URL nothing listens on.
pub(crate) fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

fn orchestrator_settings() -> OrchestratorSettings {
    OrchestratorSettings {
        listen: loopback(),
        auth_url: String::new(),
        default_max_retries: 3,
        max_retries_limit: 20,
        default_timeout_s: 3600,
        max_timeout_s: 86_400,
        retry_initial_ms: 100,
        retry_multiplier: 2.0,
        retry_max_ms: 60_000,
        retry_jitter: 0.2,
        max_payload_bytes: 64 * 1024,
        max_workflow_steps: 50,
        sweep_interval_ms: 500,
        outbox_batch_size: 100,
    }
}

fn coordinator_settings() -> CoordinatorSettings {
    CoordinatorSettings {
        listen: loopback(),
        auth_url: String::new(),
        strategy: StrategyKind::CapabilityMatch,
        owner_fairness: true,
        max_active_per_owner: 0,
        assignment_lease_s: 30,
        offline_after_ms: 600,
        pending_capacity: 1000,
        prefetch: 64,
        forget_offline_agents_after_s: 86_400,
    }
}

/// LLM settings for the fake at `base_url`: no client retries, so a failure is the agent's.
pub(crate) fn llm_settings(base_url: &str) -> LlmSettings {
    LlmSettings {
        provider: ProviderKind::Ollama,
        base_url: ConnectionUrl::new(base_url),
        api_key: None,
        default_model: MODEL.into(),
        request_timeout_ms: 30_000,
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

/// Every task message published on the tasks exchange while the test runs, in arrival order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    messages: Arc<Mutex<Vec<TaskMessage>>>,
}

impl Observed {
    async fn start(client: &AmqpClient, queue: &QueueSpec) -> Self {
        let observed = Self::default();
        let channel = client.channel().await.unwrap();
        let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let mut deliveries = channel
            .basic_consume(client.name(&queue.name).into(), "".into(), options, FieldTable::default())
            .await
            .unwrap();
        let messages = Arc::clone(&observed.messages);
        tokio::spawn(async move {
            let _channel = channel;
            while let Some(Ok(delivery)) = deliveries.next().await {
                if let Ok(message) = serde_json::from_slice::<TaskMessage>(&delivery.data) {
                    messages.lock().unwrap().push(message);
                }
            }
        });
        observed
    }

    /// Everything seen so far.
    pub(crate) fn all(&self) -> Vec<TaskMessage> {
        self.messages.lock().unwrap().clone()
    }

    /// The agents' `Started` reports so far, in the order they were published: the order in
    /// which attempts really began. (A task's `started_at` is when the orchestrator applied the
    /// report; it applies several reports at once, so it can order two quick tasks differently.)
    pub(crate) fn started(&self) -> Vec<TaskStarted> {
        let mut started = Vec::new();
        for message in self.messages.lock().unwrap().iter() {
            if let TaskMessage::Started(report) = message {
                started.push(report.clone());
            }
        }
        started
    }
}

/// How a test's agent worker is set up.
#[derive(Debug, Clone)]
pub(crate) struct WorkerOptions {
    pub(crate) profiles: Vec<&'static str>,
    /// The LLM's URL; `None` for the pipeline's fake Ollama.
    pub(crate) llm_url: Option<String>,
    /// Connect to RabbitMQ through a [`TcpProxy`] the test can cut.
    pub(crate) cuttable: bool,
}

impl WorkerOptions {
    pub(crate) fn profiles(profiles: &[&'static str]) -> Self {
        Self { profiles: profiles.to_vec(), llm_url: None, cuttable: false }
    }
}

/// A running agent worker: one agent per profile.
#[derive(Debug)]
struct Worker {
    shutdown: Shutdown,
    running: Option<JoinHandle<std::io::Result<()>>>,
    proxy: Option<TcpProxy>,
    cut_off: bool,
}

/// The agents of a worker a test started, to name them and to cut the worker off.
#[derive(Debug, Clone)]
pub(crate) struct Agents {
    worker: usize,
    pub(crate) agents: Vec<RunningAgent>,
}

impl Agents {
    /// The agent running `profile`.
    pub(crate) fn agent(&self, profile: &str) -> AgentId {
        self.agents.iter().find(|agent| agent.profile == profile).unwrap().id
    }
}

/// A running coordinator, stoppable on its own.
#[derive(Debug)]
struct RunningCoordinator {
    shutdown: Shutdown,
    address: SocketAddr,
    rpc: CoordinatorServiceClient<Channel>,
}

/// The orchestrator, the coordinator and the test's workers on shared backing servers.
pub(crate) struct Pipeline {
    pub(crate) rpc: OrchestratorServiceClient<Channel>,
    pub(crate) orchestrator_address: SocketAddr,
    pub(crate) issuer: TestIssuer,
    pub(crate) ollama: FakeOllama,
    pub(crate) observed: Observed,
    pub(crate) pool: PgPool,
    pub(crate) database: TestDatabase,
    pub(crate) redis: TestRedis,
    amqp: TestAmqp,
    client: AmqpClient,
    publisher: Publisher,
    orchestrator_shutdown: Shutdown,
    coordinator: Option<RunningCoordinator>,
    workers: Vec<Worker>,
    agent_ids: Vec<AgentId>,
    observer_queue: QueueSpec,
    profiles_file: tempfile::NamedTempFile,
}

impl Pipeline {
    /// The orchestrator and the coordinator, no agent yet.
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Pipeline::start`] with the orchestrator's settings adjusted.
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut OrchestratorSettings)) -> Self {
        sutazai_testkit::init_tracing();
        let database = TestDatabase::create().await;
        let amqp = TestAmqp::new();
        let redis = TestRedis::new();
        let issuer = TestIssuer::start().await;
        let ollama = FakeOllama::start().await;
        ollama.add_model(MODEL);
        let profiles_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(profiles_file.path(), PROFILES_YAML).unwrap();

        let mut settings = orchestrator_settings();
        settings.auth_url = issuer.auth_url();
        adjust(&mut settings);
        let config = OrchestratorConfig {
            orchestrator: settings,
            http: http_settings(),
            postgres: database.settings(),
            redis: redis.settings(),
            amqp: amqp.settings(),
            token: issuer.verifier_settings(),
        };
        let orchestrator_shutdown = Shutdown::new();
        let application =
            sutazai_orchestrator::Application::build(config, &orchestrator_shutdown).await.unwrap();
        let orchestrator_address = application.address();
        tokio::spawn(application.run_until_stopped(orchestrator_shutdown.clone()));

        let client = AmqpClient::connect(amqp.settings(), CancellationToken::new()).await.unwrap();
        let observer_queue = QueueSpec::new("test.pipeline-observer").bind(TASKS_EXCHANGE, "task.#");
        Topology::default().queue(observer_queue.clone()).declare(&client).await.unwrap();
        let observed = Observed::start(&client, &observer_queue).await;
        let rpc = OrchestratorServiceClient::connect(format!("http://{orchestrator_address}")).await.unwrap();
        let pool = PgPool::connect(database.url()).await.unwrap();
        let mut pipeline = Self {
            rpc,
            orchestrator_address,
            issuer,
            ollama,
            observed,
            pool,
            database,
            redis,
            publisher: Publisher::new(client.clone()),
            client,
            amqp,
            orchestrator_shutdown,
            coordinator: None,
            workers: Vec::new(),
            agent_ids: Vec::new(),
            observer_queue,
            profiles_file,
        };
        pipeline.start_coordinator().await;
        pipeline
    }

    /// Builds and runs a coordinator on the pipeline's database (restoring its stored state).
    pub(crate) async fn start_coordinator(&mut self) {
        assert!(self.coordinator.is_none(), "a coordinator is already running");
        let mut settings = coordinator_settings();
        settings.auth_url = self.issuer.auth_url();
        let config = CoordinatorConfig {
            coordinator: settings,
            http: http_settings(),
            postgres: self.database.settings(),
            redis: self.redis.settings(),
            amqp: self.amqp.settings(),
            token: self.issuer.verifier_settings(),
        };
        let shutdown = Shutdown::new();
        let application = sutazai_coordinator::Application::build(config, &shutdown).await.unwrap();
        let address = application.address();
        tokio::spawn(application.run_until_stopped(shutdown.clone()));
        let rpc = CoordinatorServiceClient::connect(format!("http://{address}")).await.unwrap();
        self.coordinator = Some(RunningCoordinator { shutdown, address, rpc });
    }

    /// Stops the coordinator and waits until its consumers, dispatcher and relay have finished.
    pub(crate) async fn stop_coordinator(&mut self) {
        let coordinator = self.coordinator.take().expect("no coordinator is running");
        coordinator.shutdown.trigger();
        assert!(
            coordinator.shutdown.wait_for_tasks(Duration::from_secs(10)).await,
            "coordinator tasks did not stop"
        );
    }

    /// The running coordinator's address.
    pub(crate) fn coordinator_address(&self) -> SocketAddr {
        self.coordinator.as_ref().expect("no coordinator is running").address
    }

    /// Starts an agent worker running `options.profiles`; its agents register at once.
    pub(crate) async fn start_worker(&mut self, options: WorkerOptions) -> Agents {
        let mut amqp_settings = self.amqp.settings();
        let proxy = if options.cuttable {
            let (proxy, url) = proxied(&sutazai_testkit::amqp_url()).await;
            amqp_settings = AmqpSettings { url: ConnectionUrl::new(url), ..amqp_settings };
            Some(proxy)
        } else {
            None
        };
        let llm_url = options.llm_url.clone().unwrap_or_else(|| self.ollama.base_url());
        let config = AgentConfig {
            agent: AgentSettings {
                listen: loopback(),
                profiles_file: self.profiles_file.path().display().to_string(),
                profiles: options.profiles.iter().map(|name| (*name).to_owned()).collect(),
                heartbeat_interval_ms: 150,
                drain_timeout_ms: 1_000,
                arbitrator_url: String::new(),
                vector_url: String::new(),
                auth_url: String::new(),
                client_id: "sutazai-agent".to_owned(),
                client_secret: None,
                memory_dimension: 384,
                memory_recall: 4,
            },
            http: http_settings(),
            amqp: amqp_settings,
            llm: llm_settings(&llm_url),
        };
        let shutdown = Shutdown::new();
        let application = sutazai_agent::Application::build(config, &shutdown).await.unwrap();
        let agents = application.agents().to_vec();
        self.agent_ids.extend(agents.iter().map(|agent| agent.id));
        let running = tokio::spawn(application.run_until_stopped(shutdown.clone()));
        self.workers.push(Worker { shutdown, running: Some(running), proxy, cut_off: false });
        Agents { worker: self.workers.len() - 1, agents }
    }

    /// Starts a worker running `profiles` with the pipeline's fake Ollama.
    pub(crate) async fn worker(&mut self, profiles: &[&'static str]) -> Agents {
        self.start_worker(WorkerOptions::profiles(profiles)).await
    }

    /// Drops every broker connection of a cuttable worker and refuses new ones: its agents fall
    /// silent mid-work, as when their host loses the network.
    pub(crate) async fn cut_off(&mut self, agents: &Agents) {
        let worker = &mut self.workers[agents.worker];
        worker.proxy.as_ref().expect("the worker was not started cuttable").set_down(true).await;
        worker.cut_off = true;
    }

    pub(crate) fn user(&self, subject: &str) -> String {
        self.issuer.user_token(subject, &["tasks:read", "tasks:write"])
    }

    pub(crate) fn admin(&self) -> String {
        self.issuer.admin_token()
    }

    /// Submits `request` with its owner's token; returns the stored task.
    pub(crate) async fn submit(&self, request: pb::SubmitTaskRequest) -> pb::Task {
        let token = self.user(&request.owner);
        self.rpc.clone().submit_task(authed(request, &token)).await.unwrap().into_inner().task.unwrap()
    }

    /// The task, read as admin.
    pub(crate) async fn task(&self, task_id: &str) -> pb::Task {
        let request = pb::GetTaskRequest { task_id: task_id.to_owned(), owner: String::new() };
        self.rpc.clone().get_task(authed(request, &self.admin())).await.unwrap().into_inner().task.unwrap()
    }

    /// Waits until the task satisfies `wanted`; returns it.
    pub(crate) async fn wait_task(
        &self,
        task_id: &str,
        what: &str,
        wanted: impl Fn(&pb::Task) -> bool,
    ) -> pb::Task {
        wait_for(what, PATIENCE, || async { wanted(&self.task(task_id).await) }).await;
        self.task(task_id).await
    }

    /// Waits until the task has `status`; returns it.
    pub(crate) async fn wait_status(&self, task_id: &str, status: pb::TaskStatus) -> pb::Task {
        self.wait_task(task_id, &format!("task {task_id} to be {status:?}"), |task| {
            task.status == i32::from(status)
        })
        .await
    }

    /// The task's transitions, oldest first.
    pub(crate) async fn events(&self, task_id: &str) -> Vec<pb::TaskEvent> {
        let request = pb::ListTaskEventsRequest {
            task_id: task_id.to_owned(),
            owner: String::new(),
            page: Some(pb::PageRequest { skip: 0, limit: 1000 }),
        };
        self.rpc.clone().list_task_events(authed(request, &self.admin())).await.unwrap().into_inner().events
    }

    /// Every task (as admin), newest first.
    pub(crate) async fn tasks(&self, status: pb::TaskStatus) -> Vec<pb::Task> {
        let request = pb::ListTasksRequest {
            owner: String::new(),
            status: status.into(),
            task_type: String::new(),
            page: Some(pb::PageRequest { skip: 0, limit: 1000 }),
        };
        self.rpc.clone().list_tasks(authed(request, &self.admin())).await.unwrap().into_inner().tasks
    }

    pub(crate) async fn cancel(
        &self,
        task_id: &str,
        owner: &str,
        reason: &str,
    ) -> Result<pb::Task, tonic::Status> {
        let request = pb::CancelTaskRequest {
            task_id: task_id.to_owned(),
            owner: owner.to_owned(),
            reason: reason.to_owned(),
        };
        let token = if owner.is_empty() { self.admin() } else { self.user(owner) };
        self.rpc
            .clone()
            .cancel_task(authed(request, &token))
            .await
            .map(|response| response.into_inner().task.unwrap())
    }

    pub(crate) async fn submit_workflow(
        &self,
        request: pb::SubmitWorkflowRequest,
    ) -> Result<pb::Workflow, tonic::Status> {
        let token = self.user(&request.owner);
        let response = self.rpc.clone().submit_workflow(authed(request, &token)).await?;
        Ok(response.into_inner().workflow.unwrap())
    }

    pub(crate) async fn workflow(&self, workflow_id: &str) -> pb::Workflow {
        let request = pb::GetWorkflowRequest { workflow_id: workflow_id.to_owned(), owner: String::new() };
        let response = self.rpc.clone().get_workflow(authed(request, &self.admin())).await.unwrap();
        response.into_inner().workflow.unwrap()
    }

    pub(crate) fn coordinator_rpc(&self) -> CoordinatorServiceClient<Channel> {
        self.coordinator.as_ref().expect("no coordinator is running").rpc.clone()
    }

    /// The coordinator's pending queue.
    pub(crate) async fn pending_stats(&self) -> pb::GetPendingStatsResponse {
        let request = authed(pb::GetPendingStatsRequest {}, &self.admin());
        self.coordinator_rpc().get_pending_stats(request).await.unwrap().into_inner()
    }

    /// Waits until the coordinator holds `pending` pending tasks.
    pub(crate) async fn wait_pending(&self, pending: u64) {
        wait_for(&format!("{pending} pending tasks at the coordinator"), PATIENCE, || async {
            self.pending_stats().await.pending == pending
        })
        .await;
    }

    /// Waits until the coordinator sees `count` agents online.
    pub(crate) async fn wait_online(&self, count: usize) {
        wait_for(&format!("{count} online agents"), PATIENCE, || async {
            let request =
                pb::ListAgentsRequest { status: pb::AgentStatus::Online.into(), ..Default::default() };
            let response = self
                .coordinator_rpc()
                .list_agents(authed(request, &self.admin()))
                .await
                .unwrap()
                .into_inner();
            response.agents.len() == count
        })
        .await;
    }

    /// Publishes `message` as the agent or coordinator that sends it would; returns its message id.
    pub(crate) async fn publish(&self, message: &TaskMessage) -> String {
        let message_id = uuid::Uuid::now_v7().to_string();
        let routing_key = match message {
            TaskMessage::Assigned(assigned) => assigned.routing_key(),
            other => other.routing_key().to_owned(),
        };
        let outgoing =
            OutgoingMessage::json(TASKS_EXCHANGE, routing_key, message).unwrap().with_message_id(&message_id);
        self.publisher.publish(outgoing).await.unwrap();
        message_id
    }

    /// Waits until the orchestrator has handled the message (its id is in its inbox).
    pub(crate) async fn wait_handled_by_orchestrator(&self, message_id: &str) {
        wait_for("the orchestrator to handle the message", PATIENCE, || async {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM orchestrator.inbox WHERE message_id = $1)",
            )
            .bind(message_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
        })
        .await;
    }

    /// Takes every message off `coordinator.tasks.dead`.
    pub(crate) async fn dead_letters(&self) -> Vec<TaskMessage> {
        let channel = self.client.channel().await.unwrap();
        let queue = self.client.name(&pipeline::coordinator_tasks_queue().dead_letter_queue());
        let mut messages = Vec::new();
        while let Some(message) =
            channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap()
        {
            messages.push(serde_json::from_slice(&message.delivery.data).unwrap());
        }
        let _ = channel.close(200, "done".into()).await;
        messages
    }

    /// Stops the workers (drained; a cut-off one is abandoned), the coordinator and the
    /// orchestrator, then deletes the test's queues, exchanges and database.
    pub(crate) async fn finish(mut self) {
        for worker in &self.workers {
            worker.shutdown.trigger();
        }
        for worker in &mut self.workers {
            let Some(running) = worker.running.take() else { continue };
            if worker.cut_off {
                running.abort();
                continue;
            }
            let stopped = tokio::time::timeout(Duration::from_secs(10), running).await;
            assert!(matches!(stopped, Ok(Ok(Ok(())))), "a worker did not stop cleanly: {stopped:?}");
        }
        if self.coordinator.is_some() {
            self.stop_coordinator().await;
        }
        self.orchestrator_shutdown.trigger();
        assert!(
            self.orchestrator_shutdown.wait_for_tasks(Duration::from_secs(10)).await,
            "orchestrator tasks did not stop"
        );
        // The coordinator's topology holds the orchestrator's queues too.
        let mut topology = pipeline::coordinator_topology().queue(self.observer_queue.clone());
        for agent_id in &self.agent_ids {
            topology = topology.queue(pipeline::agent_tasks_queue(*agent_id));
        }
        let _ = topology.delete(&self.client).await;
        self.client.close().await;
        self.pool.close().await;
        self.database.drop_database().await;
    }
}

/// A proxy to the broker of `url` and the URL that goes through it.
async fn proxied(url: &str) -> (TcpProxy, String) {
    let scheme_end = url.find("://").unwrap() + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &authority[host_start..];
    let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5672") };
    let upstream = tokio::net::lookup_host(host_port.as_str()).await.unwrap().next().unwrap();
    let proxy = TcpProxy::start(upstream).await;
    let through = format!(
        "{}{}{}{}",
        &url[..scheme_end],
        &authority[..host_start],
        proxy.address,
        &rest[authority_end..]
    );
    (proxy, through)
}

/// `message` with `Authorization: Bearer <token>`.
pub(crate) fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A submission of `owner` at `priority` needing `capabilities`.
pub(crate) fn task_request(
    owner: &str,
    task_type: &str,
    payload: Value,
    priority: u32,
    capabilities: &[&str],
) -> pb::SubmitTaskRequest {
    pb::SubmitTaskRequest {
        task_type: task_type.to_owned(),
        payload: Some(to_proto_value(&payload)),
        priority,
        capabilities: capabilities.iter().map(|name| (*name).to_owned()).collect(),
        max_retries: None,
        timeout_s: None,
        idempotency_key: String::new(),
        owner: owner.to_owned(),
    }
}

pub(crate) fn json_of(value: Option<&prost_types::Value>) -> Value {
    value.map(from_proto_value).unwrap_or(Value::Null)
}

/// A timestamp that must be set.
#[track_caller]
pub(crate) fn time_of(timestamp: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    let timestamp = timestamp.expect("the timestamp is set");
    DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).unwrap()).unwrap()
}

pub(crate) fn status_of(code: i32) -> pb::TaskStatus {
    pb::TaskStatus::try_from(code).unwrap()
}

/// The statuses a task's events entered, in order.
pub(crate) fn statuses(events: &[pb::TaskEvent]) -> Vec<pb::TaskStatus> {
    events.iter().map(|event| status_of(event.status)).collect()
}
