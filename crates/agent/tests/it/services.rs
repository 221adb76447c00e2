//! The real services a worker reaches with its service account: the auth service (which issues the
//! worker's token by client credentials), the vector service (memory) and the arbitrator
//! (inference-slot leases), each on its own port with the test's Postgres database and Redis
//! prefix.

use std::net::SocketAddr;

use sutazai_arbitrator::settings::NamedCapacities;
use sutazai_arbitrator::{ArbitratorConfig, ArbitratorSettings};
use sutazai_auth::{AuthConfig, AuthSettings, RequestContext, SigningAlgorithm};
use sutazai_kit::auth::VerifierSettings;
use sutazai_kit::config::Secret;
use sutazai_kit::shutdown::Shutdown;
use sutazai_testkit::{TestDatabase, TestRedis, http_settings};
use sutazai_vector::{VectorConfig, VectorSettings};

use crate::{MODEL, Reach, llm_settings};

/// The worker's service account.
pub(crate) const CLIENT_ID: &str = "agent-worker";
const ISSUER: &str = "http://auth.agent.test";
const AUDIENCE: &str = "sutazai";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Running services and how a worker reaches them.
pub(crate) struct Services {
    pub(crate) reach: Reach,
    pub(crate) database: TestDatabase,
    redis: TestRedis,
    shutdown: Shutdown,
    _directories: tempfile::TempDir,
}

impl Drop for Services {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Which services to start besides the auth service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    /// The vector service, embedding with the fake Ollama.
    pub(crate) vector: bool,
    /// The arbitrator, with one inference slot for the test model.
    pub(crate) arbitrator: bool,
}

/// Starts the auth service with the worker's service account (scopes `vectors:read` and
/// `vectors:write`), and the wanted services.
pub(crate) async fn start(wanted: Wanted, ollama_url: &str) -> Services {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let shutdown = Shutdown::new();
    let directories = tempfile::tempdir().unwrap();
    let auth = sutazai_auth::Application::build(
        AuthConfig {
            auth: AuthSettings {
                listen: loopback(),
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
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
            master_key: Some(Secret::new("agent-test-master-key-0123456789abcdefgh")),
        },
        &shutdown,
    )
    .await
    .unwrap();
    let auth_url = format!("http://{}", auth.address());
    let account = auth
        .service()
        .create_service_account(
            CLIENT_ID,
            vec!["vectors:read".to_owned(), "vectors:write".to_owned()],
            &RequestContext::default(),
        )
        .await
        .unwrap();
    tokio::spawn(auth.run_until_stopped(shutdown.clone()));
    let token = VerifierSettings::new(ISSUER, AUDIENCE);

    let mut reach =
        Reach { auth_url: auth_url.clone(), client_secret: Some(account.client_secret), ..Reach::default() };
    if wanted.vector {
        let vector = sutazai_vector::Application::build(
            VectorConfig {
                vector: VectorSettings {
                    listen: loopback(),
                    auth_url: auth_url.clone(),
                    data_dir: directories.path().join("vector"),
                    snapshot_log_bytes: 64 << 20,
                    max_batch_points: 10_000,
                    max_search_queries: 1_000,
                    max_message_bytes: 64 << 20,
                    embedding_model: "all-minilm".into(),
                    embedding_batch_size: 64,
                },
                http: http_settings(),
                redis: redis.settings(),
                token: token.clone(),
                llm: llm_settings(ollama_url),
            },
            &shutdown,
        )
        .await
        .unwrap();
        reach.vector_url = format!("http://{}", vector.address());
        tokio::spawn(vector.run_until_stopped(shutdown.clone()));
    }
    if wanted.arbitrator {
        let arbitrator = sutazai_arbitrator::Application::build(
            ArbitratorConfig {
                arbitrator: ArbitratorSettings {
                    listen: loopback(),
                    auth_url: auth_url.clone(),
                    cpu_millicores: 8_000,
                    memory_bytes: 8 << 30,
                    gpus: 0,
                    // One generation at a time, like an Ollama with NUM_PARALLEL=1.
                    llm_slots: NamedCapacities::new(vec![(format!("ollama/{MODEL}"), 1)]),
                    custom: NamedCapacities::default(),
                    default_max_allocation_percent: 100.0,
                    default_max_per_holder_percent: 100.0,
                    default_oversubscription_ratio: 1.0,
                    default_preemption_enabled: true,
                    sweep_interval_ms: 200,
                    max_ttl_s: 86_400,
                    max_wait_ms: 60_000,
                },
                http: http_settings(),
                postgres: database.settings(),
                redis: redis.settings(),
                token,
            },
            &shutdown,
        )
        .await
        .unwrap();
        reach.arbitrator_url = format!("http://{}", arbitrator.address());
        tokio::spawn(arbitrator.run_until_stopped(shutdown.clone()));
    }
    Services { reach, database, redis, shutdown, _directories: directories }
}

impl Services {
    /// Stops the services and removes their data.
    pub(crate) async fn finish(self) {
        self.shutdown.trigger();
        self.redis.cleanup().await;
    }
}
