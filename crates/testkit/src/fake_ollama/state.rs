//! The state a test scripts and the server reads: installed models, queued replies and
//! failures, delays, the embedding dimension and the recorded requests, behind one lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::DEFAULT_EMBEDDING_DIMENSION;
use super::scripting::{RecordedRequest, ScriptedFailure, ScriptedReply};
use super::wire::OllamaError;

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) script: Mutex<Script>,
    pub(super) shutdown: CancellationToken,
    /// Requests being handled now (until the handler returns its response head).
    pub(super) in_flight: AtomicUsize,
    /// The most requests ever handled at once.
    pub(super) max_in_flight: AtomicUsize,
}

/// Counts one request as in flight until dropped.
pub(super) struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    pub(super) fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub(super) fn new() -> Self {
        Self {
            script: Mutex::new(Script::default()),
            shutdown: CancellationToken::new(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    /// A panicking test thread must not turn every later request into a second panic, so a
    /// poisoned lock is used as is: the script holds plain data with no invariant to break.
    pub(super) fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps for `duration`; false when the server shut down first.
    pub(super) async fn sleep(&self, duration: Duration) -> bool {
        if duration.is_zero() {
            return true;
        }
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }
}

#[derive(Debug)]
pub(super) struct Script {
    pub(super) models: Vec<FakeModel>,
    pub(super) replies: VecDeque<ScriptedReply>,
    pub(super) failures: VecDeque<ScriptedFailure>,
    pub(super) latency: Duration,
    pub(super) chunk_delay: Duration,
    pub(super) embedding_dimension: usize,
    pub(super) requests: Vec<RecordedRequest>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            replies: VecDeque::new(),
            failures: VecDeque::new(),
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            embedding_dimension: DEFAULT_EMBEDDING_DIMENSION,
            requests: Vec::new(),
        }
    }
}

impl Script {
    /// Installs `name` (canonicalized) unless a model of that name is installed already.
    pub(super) fn add_model(&mut self, name: &str) {
        if self.find_model(name).is_none() {
            self.models.push(FakeModel::new(canonical_model_name(name)));
        }
    }

    pub(super) fn remove_model(&mut self, name: &str) {
        let canonical_name = canonical_model_name(name);
        self.models.retain(|model| !model.has_canonical_name(&canonical_name));
    }

    /// Ollama's answer for a request naming no model or one that is not installed.
    pub(super) fn check_model_installed(&self, requested_name: &str) -> Result<(), OllamaError> {
        if requested_name.trim().is_empty() {
            return Err(OllamaError::model_required());
        }
        if self.find_model(requested_name).is_none() {
            return Err(OllamaError::model_not_found(requested_name));
        }
        Ok(())
    }

    fn find_model(&self, requested_name: &str) -> Option<&FakeModel> {
        let canonical_name = canonical_model_name(requested_name);
        self.models.iter().find(|model| model.has_canonical_name(&canonical_name))
    }
}

#[derive(Debug, Clone)]
pub(super) struct FakeModel {
    pub(super) name: String,
    pub(super) modified_at: DateTime<Utc>,
}

impl FakeModel {
    fn new(name: String) -> Self {
        Self { name, modified_at: Utc::now() }
    }

    /// Ollama matches model names ignoring ASCII case.
    fn has_canonical_name(&self, canonical_name: &str) -> bool {
        self.name.eq_ignore_ascii_case(canonical_name)
    }
}

pub(super) fn canonical_model_name(name: &str) -> String {
    let name = name.trim();
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    if last_segment.contains(':') { name.to_owned() } else { format!("{name}:latest") }
}
