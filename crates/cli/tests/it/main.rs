//! The `sutazai` binary as an operator and a container runtime use it.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

use std::process::Output;

use axum::Router;
use sutazai_kit::health::{HealthCheck, HealthRegistry};
use sutazai_testkit::{TestServer, http_settings};
use tokio_util::sync::CancellationToken;

const MASTER_KEY: &str = "9a0c5e1f7b3d2c4e6f8a0b1c2d3e4f5a";

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

#[test]
fn up_checks_every_dependency() {
    let database = "postgres://postgres@127.0.0.1:5432/postgres";
    let output = sutazai(
        &["up"],
        &[
            ("SUTAZAI__SECURITY__MASTER_KEY", MASTER_KEY),
            ("SUTAZAI__POSTGRES__URL", database),
            ("NO_COLOR", "1"),
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    for dependency in ["postgres", "redis", "rabbitmq"] {
        assert!(text.contains(&format!("dependency={dependency} status=\"ok\"")), "{dependency} in {text}");
    }
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
