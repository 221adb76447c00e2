//! The `docker` cleanup, talking to the Docker Engine API over its Unix socket (HTTP/1.1 with
//! hyper). It runs only when `hardware.docker_enabled` is true and the socket exists; otherwise
//! the cleanup reports one skipped action saying why. It removes only stopped containers
//! (exited, created, dead) and dangling images that carry the requested label — never a running
//! container, never a tagged image.
//!
//! This host has no Docker engine, so the tests cover the skip paths only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::UnixStream;

use crate::domain::optimize::{ActionKind, ActionOutcome, CleanupAction, Step, StepTarget};

/// Where the Docker engine listens.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The API version asked for (Docker 20.10 and later serve it).
const API_VERSION: &str = "v1.41";
/// Longest wait for one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the Docker API could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Connecting or talking to the socket failed.
    #[error("docker socket: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP exchange failed.
    #[error("docker api: {0}")]
    Http(String),
    /// The engine answered an unexpected status.
    #[error("docker api answered {0}")]
    Status(u16),
    /// The call took longer than its deadline.
    #[error("docker api timed out")]
    Timeout,
}

/// A client of the engine's socket.
#[derive(Debug, Clone)]
pub struct DockerClient {
    socket: PathBuf,
}

#[derive(Debug, Deserialize)]
struct ContainerSummary {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "State", default)]
    state: String,
}

#[derive(Debug, Deserialize)]
struct ImageSummary {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Size", default)]
    size: i64,
}

impl DockerClient {
    /// A client of the socket at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self { socket: socket.into() }
    }

    async fn call(&self, method: http::Method, path_and_query: &str) -> Result<(u16, Bytes), DockerError> {
        let exchange = async {
            let stream = UnixStream::connect(&self.socket).await?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|error| DockerError::Http(error.to_string()))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "docker connection closed with an error");
                }
            });
            let request = http::Request::builder()
                .method(method)
                .uri(format!("/{API_VERSION}{path_and_query}"))
                .header(http::header::HOST, "docker")
                .body(Empty::<Bytes>::new())
                .map_err(|error| DockerError::Http(error.to_string()))?;
            let response =
                sender.send_request(request).await.map_err(|error| DockerError::Http(error.to_string()))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| DockerError::Http(error.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange).await.map_err(|_| DockerError::Timeout)?
    }

    async fn list<T: for<'de> Deserialize<'de>>(&self, path_and_query: &str) -> Result<Vec<T>, DockerError> {
        let (status, body) = self.call(http::Method::GET, path_and_query).await?;
        if status != 200 {
            return Err(DockerError::Status(status));
        }
        serde_json::from_slice(&body).map_err(|error| DockerError::Http(error.to_string()))
    }
}

/// The query string `filters=<json>` for a label plus one more filter.
fn filters_query(label: &str, extra_name: &str, extra_values: &[&str]) -> String {
    let filters = serde_json::json!({ "label": [label], extra_name: extra_values });
    format!("filters={}", percent_encode(&filters.to_string()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// An id the engine issued: hex, optionally `sha256:`-prefixed. Checked before it goes into a
/// URL path.
fn is_engine_id(id: &str) -> bool {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    (12..=64).contains(&hex.len()) && hex.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Why the docker cleanup does not run here, if it does not.
pub fn docker_refusal(enabled: bool, socket: &Path) -> Option<String> {
    if !enabled {
        return Some("skipped: the docker cleanup is disabled (hardware.docker_enabled = false)".to_owned());
    }
    if !socket.exists() {
        return Some(format!("skipped: no Docker socket at {}", socket.display()));
    }
    None
}

/// The single action reported when the cleanup cannot run.
pub fn refused_action(socket: &Path, reason: String, outcome: ActionOutcome) -> CleanupAction {
    CleanupAction {
        kind: ActionKind::RemoveContainer,
        target: socket.display().to_string(),
        outcome,
        reclaimed_bytes: 0,
        detail: reason,
        quarantine_id: None,
    }
}

/// Plans the removal of the stopped containers and dangling images carrying `label`.
pub async fn plan_docker(client: &DockerClient, label: &str) -> Result<Vec<Step>, DockerError> {
    let containers: Vec<ContainerSummary> = client
        .list(&format!(
            "/containers/json?all=1&{}",
            filters_query(label, "status", &["exited", "created", "dead"])
        ))
        .await?;
    let images: Vec<ImageSummary> =
        client.list(&format!("/images/json?{}", filters_query(label, "dangling", &["true"]))).await?;
    let mut steps = Vec::new();
    for container in containers.into_iter().filter(|container| is_engine_id(&container.id)) {
        steps.push(Step {
            kind: ActionKind::RemoveContainer,
            reclaim_estimate: 0,
            detail: format!("{} container {} labelled {label}", container.state, container.names.join(",")),
            blocked: None,
            target: StepTarget::Docker(container.id),
        });
    }
    for image in images.into_iter().filter(|image| is_engine_id(&image.id)) {
        steps.push(Step {
            kind: ActionKind::RemoveImage,
            reclaim_estimate: u64::try_from(image.size).unwrap_or(0),
            detail: format!("dangling image labelled {label}"),
            blocked: None,
            target: StepTarget::Docker(image.id),
        });
    }
    Ok(steps)
}

/// Executes docker steps in order.
pub async fn execute_docker(client: &DockerClient, steps: &[Step]) -> Vec<CleanupAction> {
    let mut actions = Vec::with_capacity(steps.len());
    for step in steps {
        let StepTarget::Docker(id) = &step.target else { continue };
        let path = match step.kind {
            ActionKind::RemoveImage => format!("/images/{id}"),
            _ => format!("/containers/{id}"),
        };
        let (outcome, reclaimed, detail) = match client.call(http::Method::DELETE, &path).await {
            Ok((200 | 204, _)) => (ActionOutcome::Performed, step.reclaim_estimate, step.detail.clone()),
            Ok((404, _)) => (ActionOutcome::Skipped, 0, "gone since it was planned".to_owned()),
            Ok((409, _)) => (ActionOutcome::Skipped, 0, "in use since it was planned".to_owned()),
            Ok((status, _)) => (ActionOutcome::Failed, 0, format!("docker api answered {status}")),
            Err(error) => (ActionOutcome::Failed, 0, error.to_string()),
        };
        actions.push(CleanupAction {
            kind: step.kind,
            target: id.clone(),
            outcome,
            reclaimed_bytes: reclaimed,
            detail,
            quarantine_id: None,
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_ids() {
        let query = filters_query("a=b", "dangling", &["true"]);
        let encoded = query.strip_prefix("filters=").unwrap_or_default();
        assert!(encoded.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-._~%".contains(&byte)));
        let decoded: Vec<u8> = {
            let bytes = encoded.as_bytes();
            let mut decoded = Vec::new();
            let mut index = 0;
            while index < bytes.len() {
                if bytes[index] == b'%' {
                    let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or_default();
                    decoded.push(u8::from_str_radix(hex, 16).unwrap_or_default());
                    index += 3;
                } else {
                    decoded.push(bytes[index]);
                    index += 1;
                }
            }
            decoded
        };
        let filters: serde_json::Value = serde_json::from_slice(&decoded).unwrap_or_default();
        assert_eq!(filters, serde_json::json!({"label": ["a=b"], "dangling": ["true"]}));
        assert!(is_engine_id("sha256:0123456789abcdef"));
        assert!(!is_engine_id("../../containers"));
        assert!(docker_refusal(false, Path::new("/")).unwrap().contains("docker_enabled = false"));
        assert!(docker_refusal(true, Path::new("/no/such.sock")).unwrap().contains("no Docker socket"));
        assert_eq!(docker_refusal(true, Path::new("/")), None);
    }
}
