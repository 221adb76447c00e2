//! The coordinator against real Postgres, RabbitMQ and Redis. Each test starts its own
//! coordinator (its own database, broker name prefix, key prefix and token issuer), plays the
//! orchestrator by publishing `Ready` and `Cancelled` messages, and plays agents by publishing
//! their registrations and heartbeats and consuming their `agent.<id>` queues.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod grpc;
mod idle;
mod liveness;
mod ordering;
mod queue;
mod restart;
mod store_failures;
mod strategies;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use sutazai_coordinator::domain::strategy::StrategyKind;
use sutazai_coordinator::{Application, CoordinatorConfig, CoordinatorSettings};
use sutazai_kit::shutdown::Shutdown;
use sutazai_messaging::{AmqpClient, OutgoingMessage, Publisher, Topology, pipeline};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::coordinator_service_client::CoordinatorServiceClient;
use sutazai_testkit::{TestAmqp, TestDatabase, TestIssuer, TestRedis, http_settings};
use sutazai_types::messages::{
    AGENTS_EXCHANGE, AgentHeartbeat, AgentMessage, AgentRegistered, TASKS_EXCHANGE, TaskAssigned,
    TaskCancelled, TaskMessage, TaskReady, TaskStarted, TaskSucceeded,
};
use sutazai_types::{AgentId, Priority, TaskId};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// How long a test waits for a message that should come.
pub(crate) const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a test agent heartbeats.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// Settings with short timings: an agent is offline after 400 ms of silence.
pub(crate) fn settings() -> CoordinatorSettings {
    CoordinatorSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        auth_url: String::new(),
        strategy: StrategyKind::CapabilityMatch,
        owner_fairness: true,
        max_active_per_owner: 0,
        assignment_lease_s: 30,
        offline_after_ms: 400,
        pending_capacity: 1000,
        prefetch: 64,
        forget_offline_agents_after_s: 86_400,
    }
}

/// The servers, broker connection and token issuer of one test (shared by restarts).
pub(crate) struct Backing {
    pub(crate) database: TestDatabase,
    amqp: TestAmqp,
    redis: TestRedis,
    pub(crate) issuer: TestIssuer,
    client: AmqpClient,
    publisher: Arc<Publisher>,
    agent_queues: std::sync::Mutex<Vec<AgentId>>,
}

impl Backing {
    pub(crate) async fn new() -> Self {
        sutazai_testkit::init_tracing();
        let amqp = TestAmqp::new();
        let client = AmqpClient::connect(amqp.settings(), CancellationToken::new()).await.unwrap();
        // Declared up front so what the test publishes before the coordinator starts is kept.
        pipeline::coordinator_topology().declare(&client).await.unwrap();
        Self {
            database: TestDatabase::create().await,
            redis: TestRedis::new(),
            issuer: TestIssuer::start().await,
            publisher: Arc::new(Publisher::new(client.clone())),
            client,
            amqp,
            agent_queues: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn config(&self, mut settings: CoordinatorSettings) -> CoordinatorConfig {
        settings.auth_url = self.issuer.auth_url();
        CoordinatorConfig {
            coordinator: settings,
            http: http_settings(),
            postgres: self.database.settings(),
            redis: self.redis.settings(),
            amqp: self.amqp.settings(),
            token: self.issuer.verifier_settings(),
        }
    }

    /// Publishes a task message the way the orchestrator or an agent does.
    pub(crate) async fn publish_task(&self, message: &TaskMessage) {
        let outgoing = OutgoingMessage::json(TASKS_EXCHANGE, message.routing_key(), message).unwrap();
        self.publisher.publish(outgoing).await.unwrap();
    }

    /// Publishes a Ready with the task's priority as the message priority.
    pub(crate) async fn ready(&self, ready: &TaskReady) {
        let message = TaskMessage::Ready(ready.clone());
        let outgoing = OutgoingMessage::json(TASKS_EXCHANGE, message.routing_key(), &message)
            .unwrap()
            .with_priority(ready.priority.value());
        self.publisher.publish(outgoing).await.unwrap();
    }

    pub(crate) async fn cancel(&self, task_id: TaskId) {
        self.publish_task(&TaskMessage::Cancelled(TaskCancelled { task_id, reason: "cancelled".to_owned() }))
            .await;
    }

    async fn publish_agent(&self, message: &AgentMessage) {
        let outgoing = OutgoingMessage::json(AGENTS_EXCHANGE, message.routing_key(), message).unwrap();
        self.publisher.publish(outgoing).await.unwrap();
    }

    /// What reaches `orchestrator.results` from now on.
    pub(crate) async fn results(&self) -> Messages {
        Messages::consume(&self.client, pipeline::ORCHESTRATOR_RESULTS_QUEUE).await
    }

    pub(crate) fn service_token(&self) -> String {
        self.issuer.service_token("orchestrator", &[])
    }

    /// Deletes the broker objects and the database of the test.
    pub(crate) async fn cleanup(self) {
        let mut topology = pipeline::coordinator_topology();
        for agent_id in self.agent_queues.lock().unwrap().iter() {
            topology = topology.queue(pipeline::agent_tasks_queue(*agent_id));
        }
        let _ = topology.delete(&self.client).await;
        self.client.close().await;
        self.database.drop_database().await;
    }
}

/// A task of `owner` at `priority` needing `capabilities`, ready now.
pub(crate) fn task(priority: u8, owner: &str, capabilities: &[&str]) -> TaskReady {
    let now = Utc::now();
    TaskReady {
        task_id: TaskId::new(),
        task_type: "noop".to_owned(),
        priority: Priority::try_from(priority).unwrap(),
        capabilities: capabilities.iter().map(|name| (*name).to_owned()).collect(),
        owner: owner.to_owned(),
        attempt: 1,
        payload: serde_json::json!({"priority": priority}),
        deadline: now + chrono::Duration::hours(1),
        enqueued_at: now,
    }
}

/// A running coordinator.
pub(crate) struct TestCoordinator {
    pub(crate) rpc: CoordinatorServiceClient<Channel>,
    shutdown: Shutdown,
}

impl Drop for TestCoordinator {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl TestCoordinator {
    pub(crate) async fn start(backing: &Backing, settings: CoordinatorSettings) -> Self {
        let shutdown = Shutdown::new();
        let application = Application::build(backing.config(settings), &shutdown).await.unwrap();
        let address = application.address();
        tokio::spawn(application.run_until_stopped(shutdown.clone()));
        let rpc = CoordinatorServiceClient::connect(format!("http://{address}")).await.unwrap();
        Self { rpc, shutdown }
    }

    /// Shuts down and waits for the consumers, the dispatcher and the relay to finish.
    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        assert!(
            self.shutdown.wait_for_tasks(Duration::from_secs(10)).await,
            "coordinator tasks did not stop"
        );
    }

    pub(crate) async fn pending_stats(&self, token: &str) -> pb::GetPendingStatsResponse {
        let request = authed(pb::GetPendingStatsRequest {}, token);
        self.rpc.clone().get_pending_stats(request).await.unwrap().into_inner()
    }

    /// Waits until `pending` tasks are pending (the Ready messages were consumed and stored).
    pub(crate) async fn wait_pending(&self, token: &str, pending: u64) {
        sutazai_testkit::wait_for(&format!("{pending} pending tasks"), ARRIVAL_TIMEOUT, || async {
            self.pending_stats(token).await.pending == pending
        })
        .await;
    }

    pub(crate) async fn agents(&self, token: &str, request: pb::ListAgentsRequest) -> pb::ListAgentsResponse {
        self.rpc.clone().list_agents(authed(request, token)).await.unwrap().into_inner()
    }

    /// Waits until `count` agents are online.
    pub(crate) async fn wait_online(&self, token: &str, count: usize) {
        sutazai_testkit::wait_for(&format!("{count} online agents"), ARRIVAL_TIMEOUT, || async {
            let request =
                pb::ListAgentsRequest { status: pb::AgentStatus::Online.into(), ..Default::default() };
            self.agents(token, request).await.agents.len() == count
        })
        .await;
    }

    pub(crate) async fn set_strategy(
        &self,
        token: &str,
        strategy: pb::DispatchStrategy,
    ) -> Result<pb::DispatchStrategy, tonic::Status> {
        let request = pb::SetStrategyRequest { strategy: Some(strategy), updated_by: String::new() };
        let response = self.rpc.clone().set_strategy(authed(request, token)).await?;
        Ok(response.into_inner().strategy.unwrap())
    }
}

/// `message` with `Authorization: Bearer <token>`.
pub(crate) fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Task messages consumed from one queue.
pub(crate) struct Messages {
    deliveries: lapin::Consumer,
    _channel: lapin::Channel,
}

impl Messages {
    async fn consume(client: &AmqpClient, queue: &str) -> Self {
        let channel = client.channel().await.unwrap();
        let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let deliveries = channel
            .basic_consume(client.name(queue).into(), "".into(), options, FieldTable::default())
            .await
            .unwrap();
        Self { deliveries, _channel: channel }
    }

    /// The next message, if one arrives within `timeout`.
    pub(crate) async fn next_within(&mut self, timeout: Duration) -> Option<TaskMessage> {
        let delivery = tokio::time::timeout(timeout, self.deliveries.next()).await.ok()??.unwrap();
        Some(serde_json::from_slice(&delivery.data).unwrap())
    }

    /// The next message `pick` accepts, skipping the others; panics after [`ARRIVAL_TIMEOUT`].
    pub(crate) async fn expect<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(TaskMessage) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + ARRIVAL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(message) = self.next_within(left).await else {
                panic!("no {what} within {ARRIVAL_TIMEOUT:?}");
            };
            if let Some(found) = pick(message) {
                return found;
            }
        }
    }
}

/// An agent worker played by the test: it registers, heartbeats every 100 ms until silenced,
/// and reads its assignments from its own queue.
pub(crate) struct FakeAgent {
    pub(crate) id: AgentId,
    queue: Messages,
    publisher: Arc<Publisher>,
    heartbeats: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.go_silent();
    }
}

impl FakeAgent {
    pub(crate) async fn start(backing: &Backing, name: &str, capabilities: &[&str], slots: u32) -> Self {
        let id = AgentId::new();
        backing.agent_queues.lock().unwrap().push(id);
        Topology::default().queue(pipeline::agent_tasks_queue(id)).declare(&backing.client).await.unwrap();
        let queue = Messages::consume(&backing.client, &sutazai_types::messages::agent_queue(id)).await;
        let registered = AgentMessage::Registered(AgentRegistered {
            agent_id: id,
            name: name.to_owned(),
            capabilities: capabilities.iter().map(|name| (*name).to_owned()).collect(),
            slots,
            version: "test".to_owned(),
        });
        backing.publish_agent(&registered).await;
        let publisher = Arc::clone(&backing.publisher);
        let beating = Arc::clone(&publisher);
        let heartbeats = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT_INTERVAL).await;
                let heartbeat = AgentMessage::Heartbeat(AgentHeartbeat {
                    agent_id: id,
                    running: 0,
                    slots,
                    sent_at: Utc::now(),
                });
                let outgoing =
                    OutgoingMessage::json(AGENTS_EXCHANGE, heartbeat.routing_key(), &heartbeat).unwrap();
                // A failed heartbeat is a missed heartbeat, as for a real agent.
                let _ = beating.publish(outgoing).await;
            }
        });
        Self { id, queue, publisher, heartbeats: Some(heartbeats) }
    }

    /// Stops heartbeating, like an agent whose connection dropped.
    pub(crate) fn go_silent(&mut self) {
        if let Some(heartbeats) = self.heartbeats.take() {
            heartbeats.abort();
        }
    }

    /// The next assignment, skipping withdrawals; panics after [`ARRIVAL_TIMEOUT`].
    pub(crate) async fn expect_assignment(&mut self) -> TaskAssigned {
        self.queue
            .expect("assignment", |message| match message {
                TaskMessage::Assigned(assigned) => Some(assigned),
                _ => None,
            })
            .await
    }

    /// Asserts no assignment arrives within `within`.
    pub(crate) async fn expect_no_assignment(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.queue.next_within(left).await {
                None => return,
                Some(TaskMessage::Assigned(assigned)) => panic!("unexpected assignment {assigned:?}"),
                Some(_) => {}
            }
        }
    }

    async fn publish(&self, message: TaskMessage) {
        let outgoing = OutgoingMessage::json(TASKS_EXCHANGE, message.routing_key(), &message).unwrap();
        self.publisher.publish(outgoing).await.unwrap();
    }

    pub(crate) async fn started(&self, assigned: &TaskAssigned) {
        let started = TaskStarted {
            task_id: assigned.task_id,
            attempt: assigned.attempt,
            agent_id: self.id,
            started_at: Utc::now(),
        };
        self.publish(TaskMessage::Started(started)).await;
    }

    pub(crate) async fn succeeded(&self, assigned: &TaskAssigned) {
        let succeeded = TaskSucceeded {
            task_id: assigned.task_id,
            attempt: assigned.attempt,
            agent_id: self.id,
            result: serde_json::json!({"output": "done"}),
            finished_at: Utc::now(),
        };
        self.publish(TaskMessage::Succeeded(succeeded)).await;
    }
}
