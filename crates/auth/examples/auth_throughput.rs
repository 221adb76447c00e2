//! `make bench-auth`: throughput of the auth service's hot paths on this machine, against the
//! real Postgres and Redis: client-credential token issues, refresh-token rotations (each one a
//! Postgres transaction: lock, mark used, insert successor) and kit token verifications (signature
//! plus the Redis revocation check). Each figure is the median of 5 runs of 3 s with 16 concurrent
//! callers, printed as `name value` lines; divide by the core count for per-core figures (the
//! servers share the same cores).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sutazai_auth::{
    Application, AuthConfig, AuthService, AuthSettings, LoginRequest, RequestContext, SigningAlgorithm,
};
use sutazai_kit::auth::{RevocationKeys, TokenVerifier, VerifierSettings};
use sutazai_kit::config::Secret;
use sutazai_kit::shutdown::Shutdown;
use sutazai_testkit::{TestDatabase, TestRedis, http_settings};

const CONCURRENCY: usize = 16;
const RUNS: usize = 5;
const RUN_TIME: Duration = Duration::from_secs(3);

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `operation` from `CONCURRENCY` tasks for `RUN_TIME`; returns operations per second.
async fn measure<F, Fut>(operation: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let operation = Arc::new(operation);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let (operation, stop, count) = (Arc::clone(&operation), Arc::clone(&stop), Arc::clone(&count));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                operation(worker).await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(RUN_TIME).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn runs<F, Fut>(operation: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        rates.push(measure(operation.clone()).await);
    }
    median(rates)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let mut postgres = database.settings();
    postgres.max_connections = 20;
    let config = AuthConfig {
        auth: AuthSettings {
            listen: "127.0.0.1:0".parse()?,
            issuer: "http://bench".into(),
            audience: "bench".into(),
            signing_algorithm: SigningAlgorithm::Eddsa,
            access_token_ttl_s: 900,
            refresh_token_ttl_s: 86_400,
            refresh_grace_s: 10,
            lockout_max_failures: 5,
            lockout_window_s: 900,
            lockout_duration_s: 900,
            login_attempts_per_ip_per_minute: 1_000_000,
            login_attempts_per_account_per_minute: 1_000_000,
        },
        http: http_settings(),
        postgres,
        redis: redis.settings(),
        master_key: Some(Secret::new("bench-master-key-0123456789abcdefghijkl")),
    };
    let shutdown = Shutdown::new();
    let application = Application::build(config.clone(), &shutdown).await?;
    let service: AuthService = application.service().clone();
    let context = RequestContext::default();

    let account =
        service.create_service_account("bench-client", vec!["tasks:write".into()], &context).await?;
    let secret = account.client_secret.clone();
    let issuing = service.clone();
    let issues = runs(move |_| {
        let (service, secret) = (issuing.clone(), secret.clone());
        async move {
            let _ =
                service.client_credentials("bench-client", &secret, None, &RequestContext::default()).await;
        }
    })
    .await;

    // One session per caller; each caller rotates its own chain.
    let mut chains = Vec::new();
    for worker in 0..CONCURRENCY {
        let username = format!("bench{worker}");
        let password = "bench passphrase long enough".to_owned();
        service
            .register(
                sutazai_auth::NewUser {
                    username: username.clone(),
                    email: format!("{username}@example.com"),
                    password: password.clone(),
                    roles: Vec::new(),
                },
                &context,
            )
            .await?;
        let pair = service
            .login(LoginRequest { username_or_email: username, password, totp: None }, &context)
            .await?;
        chains.push(tokio::sync::Mutex::new(pair));
    }
    let chains = Arc::new(chains);
    let refreshing = service.clone();
    let refreshes = runs(move |worker| {
        let (service, chains) = (refreshing.clone(), Arc::clone(&chains));
        async move {
            let mut pair = chains[worker].lock().await;
            if let Ok(next) = service.refresh(&pair.refresh_token, &RequestContext::default()).await {
                *pair = next;
            }
        }
    })
    .await;

    let token = service.client_credentials("bench-client", &account.client_secret, None, &context).await?.0;
    let redis_connection = sutazai_kit::redis::connect(&config.redis).await?;
    let verifier = Arc::new(TokenVerifier::new(
        VerifierSettings::new("http://bench", "bench"),
        service.keys().key_source(),
        Some(redis_connection),
        RevocationKeys::new(&config.redis),
    ));
    let verifies = runs(move |_| {
        let (verifier, token) = (Arc::clone(&verifier), token.clone());
        async move {
            let _ = verifier.verify(&token).await;
        }
    })
    .await;

    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1) as f64;
    println!("cores {cores}");
    println!("client_credential_issues_per_s {issues:.0}");
    println!("client_credential_issues_per_s_per_core {:.0}", issues / cores);
    println!("refreshes_per_s {refreshes:.0}");
    println!("refreshes_per_s_per_core {:.0}", refreshes / cores);
    println!("verifies_per_s {verifies:.0}");
    println!("verifies_per_s_per_core {:.0}", verifies / cores);
    shutdown.trigger();
    database.drop_database().await;
    Ok(())
}
