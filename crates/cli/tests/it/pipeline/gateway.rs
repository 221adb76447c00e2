//! The REST path of a task: a user's `POST /api/v1/tasks` at the gateway reaches the pipeline
//! through the orchestrator's gRPC API, and `GET /api/v1/tasks/{id}` shows it succeed; cancelling
//! it afterwards is 409.

use std::time::Duration;

use serde_json::{Value, json};
use sutazai_gateway::{GatewayConfig, GatewaySettings};
use sutazai_kit::breaker::BreakerSettings;
use sutazai_kit::ratelimit::RateLimitSettings;
use sutazai_kit::shutdown::Shutdown;
use sutazai_testkit::http_settings;

use super::{PATIENCE, Pipeline, closed_port_url, llm_settings, loopback};

/// The gateway in front of the pipeline; returns its base URL.
pub(crate) async fn start_gateway(pipeline: &Pipeline, shutdown: &Shutdown) -> String {
    let config = GatewayConfig {
        gateway: GatewaySettings {
            listen: loopback(),
            auth_url: pipeline.issuer.auth_url(),
            orchestrator_url: format!("http://{}", pipeline.orchestrator_address),
            coordinator_url: format!("http://{}", pipeline.coordinator_address()),
            vector_url: closed_port_url(),
            hardware_url: closed_port_url(),
            arbitrator_url: closed_port_url(),
            downstream_timeout_ms: 2_000,
            health_check_timeout_ms: 1_000,
        },
        http: http_settings(),
        postgres: pipeline.database.settings(),
        redis: pipeline.redis.settings(),
        llm: llm_settings(&pipeline.ollama.base_url()),
        rate_limit: RateLimitSettings { default_per_minute: 10_000, ..RateLimitSettings::default() },
        breakers: BreakerSettings::default(),
        token: pipeline.issuer.verifier_settings(),
    };
    let gateway = sutazai_gateway::Application::build(config, shutdown).await.unwrap();
    let url = format!("http://{}", gateway.address());
    tokio::spawn(gateway.run_until_stopped(shutdown.clone()));
    url
}

async fn body_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_task_submitted_at_the_gateway_succeeds_and_cannot_be_cancelled_after() {
    let mut pipeline = Pipeline::start().await;
    let agents = pipeline.worker(&["noop"]).await;
    let shutdown = Shutdown::new();
    let gateway = start_gateway(&pipeline, &shutdown).await;
    let client = reqwest::Client::new();
    let token = pipeline.user("rita");

    let submitted = client
        .post(format!("{gateway}/api/v1/tasks"))
        .bearer_auth(&token)
        .header("idempotency-key", "rest-path-1")
        .json(&json!({"type": "noop", "payload": {"words": 3}, "priority": 7, "capabilities": ["noop"]}))
        .send()
        .await
        .unwrap();
    let submitted = body_of(submitted, 202).await;
    assert_eq!(submitted["status"], "queued");
    let task_url = format!("{gateway}/api/v1/tasks/{}", submitted["id"].as_str().unwrap());

    sutazai_testkit::wait_for("the task to succeed at the gateway", PATIENCE, || async {
        let response = client.get(&task_url).bearer_auth(&token).send().await.unwrap();
        body_of(response, 200).await["status"] == "succeeded"
    })
    .await;
    let task = body_of(client.get(&task_url).bearer_auth(&token).send().await.unwrap(), 200).await;
    assert_eq!(task["type"], "noop");
    assert_eq!(task["priority"], 7);
    assert_eq!(task["attempt"], 1);
    assert_eq!(task["assigned_agent"], agents.agent("noop").to_string());
    assert_eq!(task["result"], json!({"output": {"words": 3}}));
    assert_eq!(task["error"], Value::Null);
    for field in ["created_at", "started_at", "finished_at"] {
        assert!(task[field].is_string(), "{field} in {task}");
    }

    let events =
        body_of(client.get(format!("{task_url}/events")).bearer_auth(&token).send().await.unwrap(), 200)
            .await;
    let statuses: Vec<&str> =
        events["items"].as_array().unwrap().iter().map(|event| event["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["queued", "assigned", "running", "succeeded"]);

    let cancel = client.post(format!("{task_url}/cancel")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(cancel.headers()["content-type"], "application/problem+json");
    let problem = body_of(cancel, 409).await;
    assert_eq!(problem["code"], "conflict");

    // Another user does not see it.
    let stranger = pipeline.user("sam");
    let hidden = client.get(&task_url).bearer_auth(&stranger).send().await.unwrap();
    assert_eq!(hidden.status(), 404);

    shutdown.trigger();
    assert!(shutdown.wait_for_tasks(Duration::from_secs(10)).await, "the gateway did not stop");
    pipeline.finish().await;
}
