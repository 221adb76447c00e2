//! Running a service router on 127.0.0.1:0 for one test, and waiting for conditions.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// A router served on a free loopback port until the value is dropped.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub address: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Serves `router` with the kit's server (the same code path as production).
    pub async fn spawn(router: axum::Router) -> Self {
        let listener = sutazai_kit::server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|error| panic!("bind test listener: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("listener address: {error}"));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(sutazai_kit::server::serve(
            listener,
            router,
            shutdown.clone(),
            Duration::from_secs(1),
        ));
        Self { address, shutdown, task: Some(task) }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `condition` every 25 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
