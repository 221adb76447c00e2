//! The `sutazai` binary as an operator and a container runtime use it.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod chat;
mod deploy;
mod pipeline;
mod vector_crash;
mod vector_embed;
mod vector_import;

use std::process::Output;

use axum::Router;
use sutazai_kit::health::{HealthCheck, HealthRegistry};
use sutazai_testkit::{TestDatabase, TestRedis, TestServer, http_settings, wait_for};
use tokio_util::sync::CancellationToken;

const MASTER_KEY: &str = "9a0c5e1f7b3d2c4e6f8a0b1c2d3e4f5a";
/// The agent workers' service-account secret `sutazai up` creates the account with.
const AGENT_SECRET: &str = "4f1d8e2a9b7c6d5e3f2a1b0c9d8e7f6a";

/// Runs the binary with a clean environment plus `env`.
fn sutazai(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sutazai"));
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct AlwaysDown;

impl HealthCheck for AlwaysDown {
    fn check(&self) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("down".to_owned()) })
    }
}

// Multi-threaded: the binary runs synchronously while the server under test answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_zero_for_a_live_service_and_one_otherwise() {
    let mut health = HealthRegistry::new(CancellationToken::new());
    health.register("dependency", AlwaysDown);
    let server =
        TestServer::spawn(sutazai_kit::server::service_router(Router::new(), health, &http_settings())).await;

    let live = sutazai(&["healthcheck", &server.url("/livez")], &[]);
    assert_eq!(live.status.code(), Some(0), "{}", stderr(&live));

    let unready = sutazai(&["healthcheck", &server.url("/readyz")], &[]);
    assert_eq!(unready.status.code(), Some(1));
    assert!(stderr(&unready).contains("503"), "{}", stderr(&unready));

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dead = sutazai(&["healthcheck", &format!("http://127.0.0.1:{closed_port}/livez")], &[]);
    assert_eq!(dead.status.code(), Some(1));
    assert!(stderr(&dead).starts_with("unhealthy:"), "{}", stderr(&dead));
}

#[test]
fn wildcard_cors_origin_refuses_to_start() {
    let output = sutazai(
        &["up"],
        &[("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY), ("SUTAZAI__HTTP__CORS_ALLOWED_ORIGINS", "*")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("`http.cors_allowed_origins`"), "{}", stderr(&output));
}

#[test]
fn short_secret_refuses_to_start_without_printing_it() {
    let output = sutazai(&["up"], &[("SUTAZAI__SECURITY__MASTER_KEY", "hunter2hunter2")]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("`security.master_key`: secret is shorter than 32 bytes"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn missing_secret_refuses_to_start() {
    let output = sutazai(&["migrate"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("`security.master_key`: required"), "{}", stderr(&output));
}

#[test]
fn unknown_key_refuses_to_start_naming_it() {
    let output = sutazai(
        &["up"],
        &[("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY), ("SUTAZAI__REDIS__PASSWORD_FILE", "/x")],
    );
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("unknown field `password_file`") && text.contains("for key `redis`"), "{text}");
}

#[test]
fn unknown_key_in_a_config_file_is_refused() {
    let directory = std::env::temp_dir().join(format!("sutazai-cli-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let file = directory.join("bad.toml");
    std::fs::write(&file, "[http]\nbody_limit = 10\n").unwrap();
    let output = sutazai(
        &["--config", file.to_str().unwrap(), "up"],
        &[("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY)],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown field `body_limit`"), "{}", stderr(&output));
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn version_prints_the_crate_version() {
    let output = sutazai(&["version"], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("sutazai {}", env!("CARGO_PKG_VERSION"))
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_every_role_until_sigterm() {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let gateway_listen = format!("127.0.0.1:{}", free_port());
    let hardware_listen = format!("127.0.0.1:{}", free_port());
    let arbitrator_listen = format!("127.0.0.1:{}", free_port());
    let vector_listen = format!("127.0.0.1:{}", free_port());
    let orchestrator_listen = format!("127.0.0.1:{}", free_port());
    let coordinator_listen = format!("127.0.0.1:{}", free_port());
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let amqp = sutazai_testkit::TestAmqp::new();
    let amqp_prefix = amqp.settings().name_prefix;
    let vector_data = tempfile::tempdir().unwrap();
    let hardware_data = std::env::temp_dir().join(format!("sutazai-cli-up-{}", std::process::id()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sutazai"))
        .arg("up")
        .env_clear()
        .env("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY)
        .env("SUTAZAI__POSTGRES__URL", database.url())
        .env("SUTAZAI__REDIS__KEY_PREFIX", &redis.key_prefix)
        .env("SUTAZAI__AUTH__LISTEN", &listen)
        .env("SUTAZAI__AUTH__ISSUER", format!("http://{listen}"))
        .env("SUTAZAI__GATEWAY__LISTEN", &gateway_listen)
        .env("SUTAZAI__GATEWAY__AUTH_URL", format!("http://{listen}"))
        .env("SUTAZAI__HARDWARE__LISTEN", &hardware_listen)
        .env("SUTAZAI__ARBITRATOR__LISTEN", &arbitrator_listen)
        .env("SUTAZAI__ARBITRATOR__AUTH_URL", format!("http://{listen}"))
        .env("SUTAZAI__HARDWARE__ALLOWED_ROOTS", &hardware_data)
        .env("SUTAZAI__HARDWARE__QUARANTINE_DIR", hardware_data.join("quarantine"))
        .env("SUTAZAI__VECTOR__LISTEN", &vector_listen)
        .env("SUTAZAI__VECTOR__AUTH_URL", format!("http://{listen}"))
        .env("SUTAZAI__VECTOR__DATA_DIR", vector_data.path())
        .env("SUTAZAI__AMQP__NAME_PREFIX", &amqp_prefix)
        .env("SUTAZAI__ORCHESTRATOR__LISTEN", &orchestrator_listen)
        .env("SUTAZAI__ORCHESTRATOR__AUTH_URL", format!("http://{listen}"))
        .env("SUTAZAI__COORDINATOR__LISTEN", &coordinator_listen)
        .env("SUTAZAI__COORDINATOR__AUTH_URL", format!("http://{listen}"))
        .env("SUTAZAI__AGENT__LISTEN", &agent_listen)
        .env("SUTAZAI__AGENT__AUTH_URL", format!("http://{listen}"))
        .env("SUTAZAI__AGENT__ARBITRATOR_URL", format!("http://{arbitrator_listen}"))
        .env("SUTAZAI__AGENT__VECTOR_URL", format!("http://{vector_listen}"))
        .env("SUTAZAI__AGENT__CLIENT_SECRET", AGENT_SECRET)
        // No LLM server listens here: `auto` falls back to the embedded models.
        .env("SUTAZAI__LLM__BASE_URL", "http://127.0.0.1:9")
        .env("SUTAZAI__LLM__LOCAL__MODELS_DIR", sutazai_llm::LocalSettings::default().models_dir())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for ready_url in [
        format!("http://{listen}/readyz"),
        format!("http://{gateway_listen}/readyz"),
        format!("http://{hardware_listen}/readyz"),
        format!("http://{arbitrator_listen}/readyz"),
        format!("http://{vector_listen}/readyz"),
        format!("http://{orchestrator_listen}/readyz"),
        format!("http://{coordinator_listen}/readyz"),
        // The workers' readiness includes the LLM: the embedded models.
        format!("http://{agent_listen}/readyz"),
    ] {
        wait_for("every role to be ready", std::time::Duration::from_secs(60), || async {
            reqwest::get(&ready_url).await.is_ok_and(|response| response.status() == 200)
        })
        .await;
    }
    let jwks: serde_json::Value =
        reqwest::get(format!("http://{listen}/.well-known/jwks.json")).await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let gateway_health: serde_json::Value =
        reqwest::get(format!("http://{gateway_listen}/health")).await.unwrap().json().await.unwrap();
    assert_eq!(gateway_health["status"], "ok");
    chat_answers_with_the_embedded_model(&format!("http://{listen}"), &format!("http://{gateway_listen}"))
        .await;

    let terminated =
        std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let output = tokio::task::spawn_blocking(move || {
        let _ = child.wait();
        child.wait_with_output()
    })
    .await
    .unwrap()
    .unwrap();
    let logs = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{logs}");
    for dependency in ["postgres", "redis", "rabbitmq"] {
        assert!(logs.contains(&format!("dependency={dependency} status=\"ok\"")), "{dependency} in {logs}");
    }
    assert!(logs.contains("role stopped role=\"auth\""), "graceful stop logged: {logs}");
    assert!(logs.contains("role stopped role=\"gateway\""), "graceful stop logged: {logs}");
    assert!(logs.contains("role stopped role=\"hardware\""), "graceful stop logged: {logs}");
    assert!(logs.contains("role stopped role=\"vector\""), "graceful stop logged: {logs}");
    for role in ["orchestrator", "coordinator", "agent"] {
        assert!(logs.contains(&format!("role stopped role=\"{role}\"")), "{role} stop logged: {logs}");
    }
    // `up` gave the workers their service account, with the configured secret.
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let scopes: Vec<String> =
        sqlx::query_scalar("SELECT scopes FROM auth.service_accounts WHERE client_id = 'agent-worker'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(scopes, ["vectors:read", "vectors:write"]);
    pool.close().await;
    let client =
        sutazai_messaging::AmqpClient::connect(amqp.settings(), CancellationToken::new()).await.unwrap();
    sutazai_messaging::pipeline::coordinator_topology().delete(&client).await.unwrap();
    client.close().await;
    let _ = std::fs::remove_dir_all(&hardware_data);
    database.drop_database().await;
}

/// With no LLM server, a new user's chat through the gateway is answered by the embedded
/// SmolLM2 model: 200 with generated text. Users register and log in at the auth service (Kong
/// routes `/api/v1/auth/` there).
async fn chat_answers_with_the_embedded_model(auth: &str, gateway: &str) {
    let http = reqwest::Client::new();
    let user = serde_json::json!({"username": "chatter", "email": "chatter@example.com", "password": "a long chat passphrase"});
    let registered = http.post(format!("{auth}/api/v1/auth/register")).json(&user).send().await.unwrap();
    assert_eq!(registered.status(), 201);
    let login = serde_json::json!({"username_or_email": "chatter", "password": "a long chat passphrase"});
    let tokens: serde_json::Value = http
        .post(format!("{auth}/api/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap_or_else(|| panic!("login: {tokens}"));
    let models: serde_json::Value = http
        .get(format!("{gateway}/api/v1/models"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(models.to_string().contains("smollm2:135m"), "{models}");
    let chat = serde_json::json!({"message": "Say hello.", "max_tokens": 12, "temperature": 0});
    let answer =
        http.post(format!("{gateway}/api/v1/chat")).bearer_auth(token).json(&chat).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert!(!answer["message"]["content"].as_str().unwrap().trim().is_empty(), "{answer}");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_admin_commands() {
    let database = TestDatabase::create().await;
    let env = [
        ("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY),
        ("SUTAZAI__POSTGRES__URL", database.url()),
        ("SUTAZAI_ADMIN_PASSWORD", "a long admin passphrase"),
        ("NO_COLOR", "1"),
    ];
    let created =
        sutazai(&["auth", "create-admin", "--username", "root", "--email", "root@example.com"], &env);
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    assert!(String::from_utf8_lossy(&created.stdout).contains("admin root ("));
    let rotated = sutazai(&["auth", "rotate-keys"], &env);
    assert_eq!(rotated.status.code(), Some(0), "{}", stderr(&rotated));
    assert!(String::from_utf8_lossy(&rotated.stdout).starts_with("new signing key "));
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let (keys, retired): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(retired_at) FROM auth.signing_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((keys, retired), (2, 1));
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT unnest(roles) FROM auth.users WHERE username = 'root'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(roles, ["user", "admin"]);
    pool.close().await;
    database.drop_database().await;
}

#[test]
fn serve_rejects_an_unknown_role() {
    let output = sutazai(&["serve", "kong"], &[("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("possible values: auth, gateway"), "{}", stderr(&output));
}

#[test]
fn up_fails_naming_an_unreachable_dependency() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = sutazai(
        &["up"],
        &[
            ("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY),
            ("SUTAZAI__POSTGRES__URL", &format!("postgres://postgres@127.0.0.1:{closed_port}/postgres")),
            ("SUTAZAI__POSTGRES__ACQUIRE_TIMEOUT_MS", "500"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("dependencies not ready: postgres"), "{}", stderr(&output));
}
