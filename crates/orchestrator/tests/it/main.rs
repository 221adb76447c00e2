//! The orchestrator against real Postgres, Redis and RabbitMQ. Each test starts its own service
//! with its own database, broker name prefix and token issuer, talks to it over gRPC with real
//! bearer tokens, plays the coordinator and the agents by publishing their messages, and reads what
//! the orchestrator publishes from the coordinator's queue.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod access;
mod cancel;
mod idempotency;
mod results;
mod retries;
mod submit;
mod timeouts;
mod watch;
mod workflows;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicGetOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use sqlx::PgPool;
use sutazai_kit::shutdown::Shutdown;
use sutazai_messaging::pipeline::{self, COORDINATOR_TASKS_QUEUE};
use sutazai_messaging::{AmqpClient, OutgoingMessage, Publisher};
use sutazai_orchestrator::{Application, Orchestrator, OrchestratorConfig, OrchestratorSettings};
use sutazai_proto::json::{from_proto_value, to_proto_value};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::orchestrator_service_client::OrchestratorServiceClient;
use sutazai_testkit::{TestAmqp, TestDatabase, TestIssuer, TestRedis, http_settings, wait_for};
use sutazai_types::messages::{
    TASKS_EXCHANGE, TaskAssigned, TaskCancelled, TaskFailed, TaskMessage, TaskReady, TaskStarted,
    TaskSucceeded, assigned_routing_key,
};
use sutazai_types::{AgentId, TaskId};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Settings with short timings: retries after 100 ms (×2, ±20 %), loops that look every 500 ms.
pub(crate) fn settings() -> OrchestratorSettings {
    OrchestratorSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        auth_url: String::new(),
        default_max_retries: 3,
        max_retries_limit: 20,
        default_timeout_s: 3600,
        max_timeout_s: 86_400,
        retry_initial_ms: 100,
        retry_multiplier: 2.0,
        retry_max_ms: 60_000,
        retry_jitter: 0.2,
        max_payload_bytes: 4096,
        max_workflow_steps: 50,
        sweep_interval_ms: 500,
        outbox_batch_size: 100,
    }
}

/// How long a test waits for an asynchronous effect before failing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

/// A message the orchestrator published, as the coordinator's queue received it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) at: Instant,
    pub(crate) message: TaskMessage,
    pub(crate) priority: Option<u8>,
}

/// Everything that arrives on a queue, kept for the test to search.
#[derive(Debug, Clone, Default)]
pub(crate) struct Collector {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    async fn start(client: &AmqpClient, queue: &str) -> Self {
        let collector = Self::default();
        let channel = client.channel().await.unwrap();
        let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let mut deliveries = channel
            .basic_consume(client.name(queue).into(), "".into(), options, FieldTable::default())
            .await
            .unwrap();
        let received = collector.received.clone();
        tokio::spawn(async move {
            let _channel = channel;
            while let Some(Ok(delivery)) = deliveries.next().await {
                let message: TaskMessage = serde_json::from_slice(&delivery.data).unwrap();
                let priority = *delivery.properties.priority();
                received.lock().unwrap().push(Received { at: Instant::now(), message, priority });
            }
        });
        collector
    }

    /// Everything received so far.
    pub(crate) fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits for the first message matching `wanted`.
    pub(crate) async fn wait(&self, what: &str, wanted: impl Fn(&TaskMessage) -> bool) -> Received {
        wait_for(what, PATIENCE, || async { self.all().iter().any(|received| wanted(&received.message)) })
            .await;
        self.all().into_iter().find(|received| wanted(&received.message)).unwrap()
    }

    /// Waits for the `Ready` of a task's attempt.
    pub(crate) async fn ready(&self, task_id: TaskId, attempt: u32) -> (TaskReady, Received) {
        let received = self
            .wait(&format!("ready of attempt {attempt}"), |message| {
                matches!(message, TaskMessage::Ready(ready) if ready.task_id == task_id && ready.attempt == attempt)
            })
            .await;
        let TaskMessage::Ready(ready) = received.message.clone() else { unreachable!() };
        (ready, received)
    }

    /// Waits for the `Cancelled` of a task.
    pub(crate) async fn cancelled(&self, task_id: TaskId) -> TaskCancelled {
        let received = self
            .wait("a cancelled message", |message| {
                matches!(message, TaskMessage::Cancelled(cancelled) if cancelled.task_id == task_id)
            })
            .await;
        let TaskMessage::Cancelled(cancelled) = received.message else { unreachable!() };
        cancelled
    }

    /// How many `Ready` messages a task got.
    pub(crate) fn ready_count(&self, task_id: TaskId) -> usize {
        self.all()
            .iter()
            .filter(
                |received| matches!(&received.message, TaskMessage::Ready(ready) if ready.task_id == task_id),
            )
            .count()
    }
}

/// A running orchestrator and the test's side of the broker and database.
pub(crate) struct TestOrchestrator {
    pub(crate) rpc: OrchestratorServiceClient<Channel>,
    pub(crate) issuer: TestIssuer,
    pub(crate) orchestrator: Orchestrator,
    /// What arrives on `coordinator.tasks`: ready tasks, withdrawals (and the outcomes tests publish).
    pub(crate) coordinator_tasks: Collector,
    pub(crate) pool: PgPool,
    client: AmqpClient,
    publisher: Publisher,
    database: TestDatabase,
    shutdown: Shutdown,
}

impl TestOrchestrator {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut OrchestratorSettings)) -> Self {
        sutazai_testkit::init_tracing();
        let database = TestDatabase::create().await;
        let amqp = TestAmqp::new();
        let issuer = TestIssuer::start().await;
        let mut orchestrator_settings = settings();
        orchestrator_settings.auth_url = issuer.auth_url();
        adjust(&mut orchestrator_settings);
        let config = OrchestratorConfig {
            orchestrator: orchestrator_settings,
            http: http_settings(),
            postgres: database.settings(),
            redis: TestRedis::new().settings(),
            amqp: amqp.settings(),
            token: issuer.verifier_settings(),
        };
        let shutdown = Shutdown::new();
        let application = Application::build(config, &shutdown).await.unwrap();
        let address = application.address();
        let orchestrator = application.orchestrator().clone();
        tokio::spawn(application.run_until_stopped(shutdown.clone()));
        let client = AmqpClient::connect(amqp.settings(), CancellationToken::new()).await.unwrap();
        let coordinator_tasks = Collector::start(&client, COORDINATOR_TASKS_QUEUE).await;
        let rpc = OrchestratorServiceClient::connect(format!("http://{address}")).await.unwrap();
        let pool = PgPool::connect(database.url()).await.unwrap();
        let publisher = Publisher::new(client.clone());
        Self { rpc, issuer, orchestrator, coordinator_tasks, pool, client, publisher, database, shutdown }
    }

    /// Stops the service, then removes the test's queues and database.
    pub(crate) async fn finish(self) {
        self.shutdown.trigger();
        assert!(
            self.shutdown.wait_for_tasks(Duration::from_secs(10)).await,
            "orchestrator tasks did not stop"
        );
        pipeline::orchestrator_topology().delete(&self.client).await.unwrap();
        self.client.close().await;
        self.pool.close().await;
        self.database.drop_database().await;
    }

    /// Each attempt of the task with how it ended, in attempt order.
    pub(crate) async fn attempt_outcomes(&self, task_id: TaskId) -> Vec<(i32, String)> {
        sqlx::query_as(
            "SELECT attempt, outcome FROM orchestrator.attempts WHERE task_id = $1 ORDER BY attempt",
        )
        .bind(task_id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    pub(crate) fn user(&self, subject: &str) -> String {
        self.issuer.user_token(subject, &["tasks:read", "tasks:write"])
    }

    pub(crate) fn admin(&self) -> String {
        self.issuer.admin_token()
    }

    /// Publishes a coordinator or agent message as they do; returns its message id.
    pub(crate) async fn publish(&self, message: TaskMessage) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.publish_with_id(message, &id).await;
        id
    }

    pub(crate) async fn publish_with_id(&self, message: TaskMessage, message_id: &str) {
        let routing_key = match &message {
            TaskMessage::Assigned(assigned) => assigned_routing_key(assigned.agent_id),
            other => other.routing_key().to_owned(),
        };
        let outgoing =
            OutgoingMessage::json(TASKS_EXCHANGE, routing_key, &message).unwrap().with_message_id(message_id);
        self.publisher.publish(outgoing).await.unwrap();
    }

    /// Waits until the orchestrator consumed the message (its id is in the inbox).
    pub(crate) async fn processed(&self, message_id: &str) {
        wait_for("the message to be handled", PATIENCE, || async {
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

    /// Publishes and waits until it was handled.
    pub(crate) async fn deliver(&self, message: TaskMessage) {
        let id = self.publish(message).await;
        self.processed(&id).await;
    }

    pub(crate) async fn submit(
        &self,
        token: &str,
        request: pb::SubmitTaskRequest,
    ) -> Result<pb::SubmitTaskResponse, tonic::Status> {
        self.rpc.clone().submit_task(authed(request, token)).await.map(tonic::Response::into_inner)
    }

    /// Submits a task for the token's subject; returns it.
    pub(crate) async fn submit_simple(&self, owner: &str, payload: Value) -> pb::Task {
        let request = task_request(owner, "summarize", payload);
        self.submit(&self.user(owner), request).await.unwrap().task.unwrap()
    }

    pub(crate) async fn get(
        &self,
        token: &str,
        task_id: &str,
        owner: &str,
    ) -> Result<pb::Task, tonic::Status> {
        let request = pb::GetTaskRequest { task_id: task_id.to_owned(), owner: owner.to_owned() };
        self.rpc
            .clone()
            .get_task(authed(request, token))
            .await
            .map(|response| response.into_inner().task.unwrap())
    }

    /// Waits until the task (read as admin) has `status`; returns it.
    pub(crate) async fn wait_status(&self, task_id: &str, status: pb::TaskStatus) -> pb::Task {
        let admin = self.admin();
        wait_for(&format!("task status {status:?}"), PATIENCE, || async {
            self.get(&admin, task_id, "").await.unwrap().status == i32::from(status)
        })
        .await;
        self.get(&admin, task_id, "").await.unwrap()
    }

    pub(crate) async fn cancel(
        &self,
        token: &str,
        task_id: &str,
        owner: &str,
        reason: &str,
    ) -> Result<pb::Task, tonic::Status> {
        let request = pb::CancelTaskRequest {
            task_id: task_id.to_owned(),
            owner: owner.to_owned(),
            reason: reason.to_owned(),
        };
        self.rpc
            .clone()
            .cancel_task(authed(request, token))
            .await
            .map(|response| response.into_inner().task.unwrap())
    }

    pub(crate) async fn events(&self, task_id: &str) -> Vec<pb::TaskEvent> {
        let request =
            pb::ListTaskEventsRequest { task_id: task_id.to_owned(), owner: String::new(), page: None };
        self.rpc.clone().list_task_events(authed(request, &self.admin())).await.unwrap().into_inner().events
    }

    pub(crate) async fn submit_workflow(
        &self,
        token: &str,
        request: pb::SubmitWorkflowRequest,
    ) -> Result<pb::Workflow, tonic::Status> {
        let response = self.rpc.clone().submit_workflow(authed(request, token)).await?;
        Ok(response.into_inner().workflow.unwrap())
    }

    pub(crate) async fn workflow(&self, workflow_id: &str) -> pb::Workflow {
        let request = pb::GetWorkflowRequest { workflow_id: workflow_id.to_owned(), owner: String::new() };
        self.rpc
            .clone()
            .get_workflow(authed(request, &self.admin()))
            .await
            .unwrap()
            .into_inner()
            .workflow
            .unwrap()
    }

    /// Waits until the workflow (read as admin) has `status`.
    pub(crate) async fn wait_workflow(&self, workflow_id: &str, status: pb::WorkflowStatus) -> pb::Workflow {
        wait_for(&format!("workflow status {status:?}"), PATIENCE, || async {
            self.workflow(workflow_id).await.status == i32::from(status)
        })
        .await;
        self.workflow(workflow_id).await
    }

    /// Messages in the coordinator's dead-letter queue.
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

    /// Plays the agent through a whole successful attempt (assigned, started, succeeded).
    pub(crate) async fn run_to_success(&self, task_id: TaskId, attempt: u32, result: Value) {
        let agent = AgentId::new();
        self.deliver(assigned(task_id, attempt, agent, "")).await;
        self.deliver(started(task_id, attempt, agent)).await;
        self.deliver(succeeded(task_id, attempt, agent, result)).await;
    }
}

/// `message` with `Authorization: Bearer <token>`.
pub(crate) fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub(crate) fn task_request(owner: &str, task_type: &str, payload: Value) -> pb::SubmitTaskRequest {
    pb::SubmitTaskRequest {
        task_type: task_type.to_owned(),
        payload: Some(to_proto_value(&payload)),
        priority: 5,
        capabilities: Vec::new(),
        max_retries: None,
        timeout_s: None,
        idempotency_key: String::new(),
        owner: owner.to_owned(),
    }
}

pub(crate) fn id_of(task: &pb::Task) -> TaskId {
    task.id.parse().unwrap()
}

pub(crate) fn json_of(value: Option<&prost_types::Value>) -> Value {
    value.map(from_proto_value).unwrap_or(Value::Null)
}

pub(crate) fn assigned(task_id: TaskId, attempt: u32, agent_id: AgentId, reason: &str) -> TaskMessage {
    TaskMessage::Assigned(TaskAssigned {
        task_id,
        attempt,
        agent_id,
        task_type: "summarize".to_owned(),
        payload: Value::Null,
        owner: "whoever".to_owned(),
        deadline: Utc::now() + chrono::Duration::hours(1),
        reason: reason.to_owned(),
    })
}

pub(crate) fn started(task_id: TaskId, attempt: u32, agent_id: AgentId) -> TaskMessage {
    TaskMessage::Started(TaskStarted { task_id, attempt, agent_id, started_at: Utc::now() })
}

pub(crate) fn succeeded(task_id: TaskId, attempt: u32, agent_id: AgentId, result: Value) -> TaskMessage {
    TaskMessage::Succeeded(TaskSucceeded { task_id, attempt, agent_id, result, finished_at: Utc::now() })
}

pub(crate) fn failed(
    task_id: TaskId,
    attempt: u32,
    agent_id: AgentId,
    error: &str,
    retryable: bool,
) -> TaskMessage {
    TaskMessage::Failed(TaskFailed {
        task_id,
        attempt,
        agent_id,
        error: error.to_owned(),
        retryable,
        finished_at: Utc::now(),
    })
}

/// Asserts a status's code and exact message.
#[track_caller]
pub(crate) fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    message: &str,
) {
    let status = result.unwrap_err();
    assert_eq!((status.code(), status.message()), (code, message), "{status:?}");
}

/// Collects dead letters until there are `count`.
pub(crate) async fn wait_for_dead_letters(
    app: &TestOrchestrator,
    collected: &mut Vec<TaskMessage>,
    count: usize,
) {
    let started = Instant::now();
    while collected.len() < count {
        collected.extend(app.dead_letters().await);
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting for {count} dead letters, got {collected:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until a workflow step has a task.
pub(crate) async fn wait_for_step(app: &TestOrchestrator, workflow_id: &str, step_id: &str) {
    wait_for(&format!("step {step_id} to start"), PATIENCE, || async {
        let workflow = app.workflow(workflow_id).await;
        workflow.steps.iter().any(|step| step.step_id == step_id && !step.task_id.is_empty())
    })
    .await;
}
