//! Process shutdown: one `CancellationToken` that every long-running part watches, and one
//! `TaskTracker` that holds the background tasks the process must wait for before exiting.
//!
//! The first SIGTERM or SIGINT starts a graceful shutdown; a second one exits at once, for the
//! operator whose drain is stuck.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The exit status used when a second signal aborts a graceful shutdown.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Shutdown handle shared by a process's services.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh handle, not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token that fires when shutdown starts.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The tracker background tasks are spawned on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Starts shutdown.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Waits for tracked tasks to finish, at most `grace`. Returns false if some were still running.
    pub async fn wait_for_tasks(&self, grace: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await.is_ok()
    }

    /// Listens for SIGTERM and SIGINT: the first triggers shutdown, the second exits the process.
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let token = self.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
                _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
            }
            token.cancel();
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            tracing::warn!("second signal received, exiting without waiting");
            std::process::exit(FORCED_EXIT_CODE);
        });
        Ok(())
    }
}
