//! One request's trace end to end (issue 8): a `POST /api/v1/tasks` at the gateway, carrying the
//! caller's `traceparent`, yields one trace in which every hop is the child of the one before —
//! gateway HTTP span → orchestrator `SubmitTask` → (outbox, AMQP) coordinator's delivery of the
//! ready task → (dispatcher, outbox, AMQP) agent's delivery of the assignment → the agent's run
//! → (AMQP) the orchestrator's delivery of the outcome. Spans are exported over OTLP/gRPC to a
//! receiver in this test.
//!
//! The pipeline's roles run in this process (the shared harness), so they share one tracer
//! provider and one `service.name`. A span is attributed to a role by what only that role
//! serves: the gateway's HTTP route, the orchestrator's gRPC service, the coordinator's and the
//! agent's queues (the queue names are the pipeline's topology), and the agent's `agent.task` span
//! by its module. The subscriber is global, so this relies on nextest's process per test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use sutazai_kit::shutdown::Shutdown;
use sutazai_messaging::pipeline;
use sutazai_testkit::wait_for;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::gateway::start_gateway;
use super::{PATIENCE, Pipeline};

/// The caller's trace: the test is the root of the request's trace.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// Every span exported to the receiver, with its resource's `service.name`.
#[derive(Debug, Clone, Default)]
struct OtlpReceiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for OtlpReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let attributes = resource_spans.resource.map(|resource| resource.attributes).unwrap_or_default();
            let service = string_attribute(&attributes, "service.name").unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push((service.clone(), span));
                }
            }
        }
        self.spans.lock().unwrap().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl OtlpReceiver {
    /// Serves `TraceService/Export` on a free loopback port; returns the receiver and its URL.
    async fn start() -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Self::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        (receiver, endpoint)
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }
}

/// Installs the global subscriber exporting every info span to `endpoint` (before the pipeline
/// starts, so the harness's own subscriber is not installed), flushing every 100 ms.
fn export_spans_to(endpoint: &str) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry::trace::TracerProvider as _;

    let exporter =
        opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build().unwrap();
    let batching = opentelemetry_sdk::trace::BatchConfigBuilder::default()
        .with_scheduled_delay(Duration::from_millis(100))
        .build();
    let processor =
        opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).with_batch_config(batching).build();
    let resource =
        opentelemetry_sdk::Resource::builder().with_service_name("sutazai-pipeline-trace-test").build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("sutazai-pipeline-trace-test"))
        .with_location(true)
        .with_filter(EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .expect("a subscriber was installed before: run this test in a process of its own (nextest)");
    provider
}

fn string_attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    let value = attributes.iter().find(|attribute| attribute.key == key)?.value.as_ref()?.value.as_ref()?;
    match value {
        AnyValue::StringValue(text) => Some(text.clone()),
        AnyValue::IntValue(number) => Some(number.to_string()),
        _ => None,
    }
}

fn attribute(span: &Span, key: &str) -> String {
    string_attribute(&span.attributes, key).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A span as the assertions read it.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

impl Seen {
    fn of(span: &Span) -> Self {
        let mut attributes = HashMap::new();
        for key in [
            "http.method",
            "rpc.service",
            "rpc.method",
            "queue",
            "routing_key",
            "task_id",
            "code.module.name",
        ] {
            attributes.insert(key.to_owned(), attribute(span, key));
        }
        Self {
            name: span.name.clone(),
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: hex(&span.parent_span_id),
            attributes,
        }
    }

    fn is(&self, name: &str, wanted: &[(&str, &str)]) -> bool {
        self.name == name && wanted.iter().all(|(key, value)| self.attributes[*key] == *value)
    }
}

/// The one span matching `name` and `wanted`, among `spans`; fails naming what was seen.
#[track_caller]
fn only<'a>(spans: &'a [Seen], name: &str, wanted: &[(&str, &str)]) -> &'a Seen {
    let matching: Vec<&Seen> = spans.iter().filter(|span| span.is(name, wanted)).collect();
    assert_eq!(matching.len(), 1, "one {name} span with {wanted:?} in {spans:#?}");
    matching[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_request_is_one_trace_from_the_gateway_through_both_amqp_hops_to_the_agent() {
    let (receiver, endpoint) = OtlpReceiver::start().await;
    let provider = export_spans_to(&endpoint);
    let mut pipeline = Pipeline::start().await;
    let agents = pipeline.worker(&["summarizer"]).await;
    let agent_id = agents.agent("summarizer");
    pipeline.wait_online(1).await;
    pipeline.ollama.script_reply("A fox jumped.");
    let shutdown = Shutdown::new();
    let gateway = start_gateway(&pipeline, &shutdown).await;
    let client = reqwest::Client::new();
    let token = pipeline.user("tracy");

    let submitted = client
        .post(format!("{gateway}/api/v1/tasks"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .json(&json!({"type": "summarize", "payload": {"text": "The quick brown fox."}, "capabilities": ["summarizer"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 202);
    let submitted: serde_json::Value = submitted.json().await.unwrap();
    let task_id = submitted["id"].as_str().unwrap().to_owned();
    let task = pipeline.wait_status(&task_id, sutazai_proto::v1::TaskStatus::Succeeded).await;
    assert_eq!(task.assigned_agent, agent_id.to_string());

    let coordinator_queue = pipeline::coordinator_tasks_queue().name;
    let agent_queue = pipeline::agent_tasks_queue(agent_id).name;
    let results_queue = pipeline::orchestrator_results_queue().name;
    let succeeded_key = "task.succeeded.v1";
    // The last hop ends last: once the orchestrator's delivery of the outcome is exported, every
    // span of the request has ended (exports are batched every 100 ms).
    wait_for("the spans of the request to be exported", PATIENCE, || async {
        receiver.spans().iter().any(|(_, span)| {
            Seen::of(span).is("amqp.consume", &[("queue", &results_queue), ("routing_key", succeeded_key)])
        })
    })
    .await;
    let exported: Vec<Seen> = receiver.spans().iter().map(|(_, span)| Seen::of(span)).collect();

    // Each hop, attributed to its role by what only that role serves.
    let gateway_span = only(&exported, "http.request", &[("http.method", "POST")]);
    let submit = only(
        &exported,
        "grpc.request",
        &[("rpc.service", "sutazai.v1.OrchestratorService"), ("rpc.method", "SubmitTask")],
    );
    let coordinator_ready =
        only(&exported, "amqp.consume", &[("queue", &coordinator_queue), ("routing_key", "task.ready.v1")]);
    let assigned_key = format!("task.assigned.v1.{agent_id}");
    let agent_delivery =
        only(&exported, "amqp.consume", &[("queue", &agent_queue), ("routing_key", &assigned_key)]);
    let agent_run = only(&exported, "agent.task", &[("task_id", &task_id)]);
    assert!(agent_run.attributes["code.module.name"].starts_with("sutazai_agent::"), "{agent_run:?}");
    let outcome =
        only(&exported, "amqp.consume", &[("queue", &results_queue), ("routing_key", succeeded_key)]);

    // One trace: the caller's.
    for span in [gateway_span, submit, coordinator_ready, agent_delivery, agent_run, outcome] {
        assert_eq!(span.trace_id, TRACE_ID, "{span:#?}");
    }
    // Each hop is the child of the one before, across both AMQP hops (parent span ids, no links).
    assert_eq!(gateway_span.parent_span_id, CALLER_SPAN_ID, "{gateway_span:#?}");
    assert_eq!(submit.parent_span_id, gateway_span.span_id, "gateway → orchestrator: {submit:#?}");
    assert_eq!(
        coordinator_ready.parent_span_id, submit.span_id,
        "orchestrator → outbox → AMQP → coordinator: {coordinator_ready:#?}"
    );
    assert_eq!(
        agent_delivery.parent_span_id, coordinator_ready.span_id,
        "coordinator → dispatcher → outbox → AMQP → agent: {agent_delivery:#?}"
    );
    assert_eq!(agent_run.parent_span_id, agent_delivery.span_id, "{agent_run:#?}");
    assert_eq!(outcome.parent_span_id, agent_run.span_id, "agent → AMQP → orchestrator: {outcome:#?}");

    // Every delivery of this task's messages, at every consumer, is in that trace too: the
    // test's only task, so every delivery on a task queue is one of its messages.
    for span in &exported {
        let queue = &span.attributes["queue"];
        if span.name == "amqp.consume" && [&coordinator_queue, &agent_queue, &results_queue].contains(&queue)
        {
            assert_eq!(span.trace_id, TRACE_ID, "a delivery outside the request's trace: {span:#?}");
        }
    }

    shutdown.trigger();
    assert!(shutdown.wait_for_tasks(Duration::from_secs(10)).await, "the gateway did not stop");
    pipeline.finish().await;
    tokio::task::spawn_blocking(move || provider.shutdown()).await.unwrap().unwrap();
}
