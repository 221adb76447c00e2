//! `sutazai chat`: the real binary against the real auth service, vector service and gateway (in
//! this process, on real Postgres and Redis), with the fake Ollama as the model.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sutazai_auth::{AuthConfig, AuthSettings, SigningAlgorithm};
use sutazai_gateway::{GatewayConfig, GatewaySettings};
use sutazai_kit::auth::VerifierSettings;
use sutazai_kit::breaker::BreakerSettings;
use sutazai_kit::config::Secret;
use sutazai_kit::ratelimit::RateLimitSettings;
use sutazai_kit::shutdown::Shutdown;
use sutazai_testkit::fake_ollama::{DEFAULT_EMBEDDING_DIMENSION, FakeOllama, ScriptedReply};
use sutazai_testkit::{TestDatabase, TestRedis, http_settings};
use sutazai_vector::{VectorConfig, VectorSettings};

use crate::MASTER_KEY;
use crate::pipeline::{MODEL, closed_port_url, llm_settings, loopback};

const PASSWORD: &str = "correct horse battery staple";
const EMBEDDING_MODEL: &str = "all-minilm";
const QUESTION: &str = "What colour is the office door?";
const DOOR: &str = "The office door is painted teal.";

/// Auth, vector and gateway running with the fake Ollama; a user `reader` and a collection
/// `handbook` of two documents.
struct ChatPlatform {
    gateway: String,
    auth: String,
    ollama: FakeOllama,
    token: String,
    shutdown: Shutdown,
    _database: TestDatabase,
    _data_dir: tempfile::TempDir,
}

impl Drop for ChatPlatform {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl ChatPlatform {
    async fn start() -> Self {
        sutazai_testkit::init_tracing();
        let database = TestDatabase::create().await;
        let redis = TestRedis::new();
        let shutdown = Shutdown::new();
        let data_dir = tempfile::tempdir().unwrap();
        let ollama = FakeOllama::start().await;
        ollama.add_model(MODEL);
        ollama.add_model(EMBEDDING_MODEL);
        let issuer = "http://auth.chat.test".to_owned();
        let token_settings = VerifierSettings::new(issuer.clone(), "sutazai");

        let auth = sutazai_auth::Application::build(
            AuthConfig {
                auth: AuthSettings {
                    listen: loopback(),
                    issuer,
                    audience: "sutazai".into(),
                    signing_algorithm: SigningAlgorithm::Eddsa,
                    access_token_ttl_s: 900,
                    refresh_token_ttl_s: 3600,
                    refresh_grace_s: 10,
                    lockout_max_failures: 5,
                    lockout_window_s: 900,
                    lockout_duration_s: 900,
                    login_attempts_per_ip_per_minute: 10_000,
                    login_attempts_per_account_per_minute: 10_000,
                },
                http: http_settings(),
                postgres: database.settings(),
                redis: redis.settings(),
                master_key: Some(Secret::new(MASTER_KEY)),
            },
            &shutdown,
        )
        .await
        .unwrap();
        let auth_url = format!("http://{}", auth.address());
        tokio::spawn(auth.run_until_stopped(shutdown.clone()));

        let vector = sutazai_vector::Application::build(
            VectorConfig {
                vector: VectorSettings {
                    listen: loopback(),
                    auth_url: auth_url.clone(),
                    data_dir: data_dir.path().to_owned(),
                    snapshot_log_bytes: 64 << 20,
                    max_batch_points: 10_000,
                    max_search_queries: 1_000,
                    max_message_bytes: 64 << 20,
                    embedding_model: EMBEDDING_MODEL.into(),
                    embedding_batch_size: 64,
                },
                http: http_settings(),
                redis: redis.settings(),
                token: token_settings.clone(),
                llm: llm_settings(&ollama.base_url()),
            },
            &shutdown,
        )
        .await
        .unwrap();
        let vector_url = format!("http://{}", vector.address());
        tokio::spawn(vector.run_until_stopped(shutdown.clone()));

        let gateway = sutazai_gateway::Application::build(
            GatewayConfig {
                gateway: GatewaySettings {
                    listen: loopback(),
                    auth_url: auth_url.clone(),
                    orchestrator_url: closed_port_url(),
                    coordinator_url: closed_port_url(),
                    vector_url,
                    hardware_url: closed_port_url(),
                    arbitrator_url: closed_port_url(),
                    downstream_timeout_ms: 5_000,
                    health_check_timeout_ms: 1_000,
                },
                http: http_settings(),
                postgres: database.settings(),
                redis: redis.settings(),
                llm: llm_settings(&ollama.base_url()),
                rate_limit: RateLimitSettings {
                    default_per_minute: 10_000,
                    chat_per_minute: 10_000,
                    ..RateLimitSettings::default()
                },
                breakers: BreakerSettings::default(),
                token: token_settings,
            },
            &shutdown,
        )
        .await
        .unwrap();
        let gateway_url = format!("http://{}", gateway.address());
        tokio::spawn(gateway.run_until_stopped(shutdown.clone()));

        let client = reqwest::Client::new();
        let registered = client
            .post(format!("{auth_url}/api/v1/auth/register"))
            .json(&json!({"username": "reader", "email": "reader@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 201);
        let login: Value = client
            .post(format!("{auth_url}/api/v1/auth/login"))
            .json(&json!({"username_or_email": "reader", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().unwrap().to_owned();
        let created = client
            .post(format!("{gateway_url}/api/v1/vectors/collections"))
            .bearer_auth(&token)
            .json(&json!({"name": "handbook", "dimension": DEFAULT_EMBEDDING_DIMENSION, "metric": "cosine"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let documents = json!({"documents": [
            {"id": "door", "text": DOOR},
            {"id": 2, "text": "Lunch is served at noon in the cafeteria."},
        ]});
        let upserted = client
            .post(format!("{gateway_url}/api/v1/vectors/collections/handbook/documents"))
            .bearer_auth(&token)
            .json(&documents)
            .send()
            .await
            .unwrap();
        assert_eq!(upserted.status(), 200);

        Self {
            gateway: gateway_url,
            auth: auth_url,
            ollama,
            token,
            shutdown,
            _database: database,
            _data_dir: data_dir,
        }
    }

    /// `sutazai chat` with a clean environment and `args` after the question.
    fn command(&self, question: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sutazai"));
        command
            .args(["chat", question, "--url", &self.gateway, "--auth-url", &self.auth])
            .args(args)
            .env_clear()
            .env("NO_COLOR", "1");
        command
    }

    /// The body of the last chat the fake Ollama received.
    fn last_chat(&self) -> Value {
        let chat = self.ollama.requests().into_iter().rfind(|request| request.path == "/api/chat");
        chat.expect("the model was called").body
    }
}

async fn output_of(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// Multi-threaded: the binary is waited on while the services in this process answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_the_answer_to_stdout_as_it_is_generated() {
    let platform = ChatPlatform::start().await;
    let reply = "The door of the office is teal [1].";
    platform.ollama.script_reply(reply);
    // Seven chunks, 250 ms apart: the first words are on stdout long before the answer ends.
    platform.ollama.set_chunk_delay(Duration::from_millis(250));
    let mut command = platform.command(
        QUESTION,
        &["--rag-collection", "handbook", "--rag-top-k", "1", "--seed", "11", "--system", "Be brief."],
    );
    command.env("SUTAZAI_USERNAME", "reader").env("SUTAZAI_PASSWORD", PASSWORD);
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (first_bytes, still_running, child) = tokio::task::spawn_blocking(move || {
        let mut buffer = [0_u8; 64];
        let read = stdout.read(&mut buffer).unwrap();
        let still_running = child.try_wait().unwrap().is_none();
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        let mut first = buffer[..read].to_vec();
        first.extend(rest);
        (first, still_running, child)
    })
    .await
    .unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(still_running, "the first token was printed before the answer was complete");
    assert_eq!(text(&first_bytes), format!("{reply}\n"));
    // The passage used, retrieved with the question, is listed on stderr.
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("passages:\n  [1] door  score "), "{stderr}");
    assert_eq!(stderr.lines().count(), 2, "{stderr}");

    let chat = platform.last_chat();
    assert_eq!(chat["options"]["seed"], 11);
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": format!("Use the following passages to answer. Cite them by [n].\n[1] (id door) {DOOR}")},
            {"role": "user", "content": QUESTION},
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_answer_exits_one_with_the_problem() {
    let platform = ChatPlatform::start().await;
    // A token from SUTAZAI_TOKEN; no rag, so nothing is listed on stderr but the error.
    platform
        .ollama
        .script_reply(ScriptedReply::text("half an answer").with_stream_error_after(1, "runner crashed"));
    let mut command = platform.command(QUESTION, &[]);
    command.env("SUTAZAI_TOKEN", &platform.token);
    let output = output_of(command).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "half", "the tokens before the failure were printed");
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("sutazai: ") && stderr.contains("runner crashed"), "{stderr}");

    // Refused before streaming: the problem's detail and status.
    let mut command = platform.command(QUESTION, &["--rag-collection", "nope"]);
    command.env("SUTAZAI_TOKEN", &platform.token);
    let output = output_of(command).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "sutazai: rag.collection: collection `nope` not found (404 Not Found)\n"
    );
    assert!(output.stdout.is_empty());

    let wrong_password =
        platform.command(QUESTION, &["--username", "reader", "--password", "wrong password!"]);
    let output = output_of(wrong_password).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with("sutazai: logging in as `reader`: "),
        "{}",
        text(&output.stderr)
    );

    let output = output_of(platform.command(QUESTION, &[])).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "sutazai: give --token (or SUTAZAI_TOKEN), or --username and --password\n"
    );
}
