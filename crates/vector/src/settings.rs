//! `[vector]`: the vector service's settings. Every key is documented in `vector.default.toml`
//! beside this crate's manifest.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use sutazai_kit::config::{ConfigIssues, Validate, key};

/// The `[vector]` section with its defaults and the meaning of each key, for a binary's embedded
/// defaults file.
pub const VECTOR_DEFAULTS_TOML: &str = include_str!("../vector.default.toml");

/// A snapshot smaller than this would be rewritten after nearly every write.
const MIN_SNAPSHOT_LOG_BYTES: u64 = 64 * 1024;
/// Requests below this could not carry one point of the largest dimension.
const MIN_MESSAGE_BYTES: usize = 1024 * 1024;

/// Settings of the vector role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorSettings {
    /// Where the role listens (HTTP and gRPC).
    pub listen: SocketAddr,
    /// The auth service; its JWKS verifies tokens.
    pub auth_url: String,
    /// The directory holding one directory per collection.
    pub data_dir: PathBuf,
    /// Log growth since the last snapshot that triggers a new snapshot.
    pub snapshot_log_bytes: u64,
    /// Points (or documents) one write request may carry.
    pub max_batch_points: usize,
    /// Query vectors one search may carry.
    pub max_search_queries: usize,
    /// Largest gRPC request decoded.
    pub max_message_bytes: usize,
    /// The model documents are embedded with.
    pub embedding_model: String,
    /// Texts per embedding call.
    pub embedding_batch_size: usize,
}

impl Validate for VectorSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            issues.push(key(prefix, "auth_url"), "must be an http:// or https:// URL");
        }
        if self.data_dir.as_os_str().is_empty() {
            issues.push(key(prefix, "data_dir"), "must not be empty");
        }
        if self.snapshot_log_bytes < MIN_SNAPSHOT_LOG_BYTES {
            issues.push(
                key(prefix, "snapshot_log_bytes"),
                format!("must be at least {MIN_SNAPSHOT_LOG_BYTES}"),
            );
        }
        if self.max_batch_points == 0 {
            issues.push(key(prefix, "max_batch_points"), "must be greater than 0");
        }
        if self.max_search_queries == 0 {
            issues.push(key(prefix, "max_search_queries"), "must be greater than 0");
        }
        if self.max_message_bytes < MIN_MESSAGE_BYTES {
            issues.push(key(prefix, "max_message_bytes"), format!("must be at least {MIN_MESSAGE_BYTES}"));
        }
        if self.embedding_model.trim().is_empty() {
            issues.push(key(prefix, "embedding_model"), "must not be empty");
        }
        if self.embedding_batch_size == 0 {
            issues.push(key(prefix, "embedding_batch_size"), "must be greater than 0");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Defaults {
        vector: VectorSettings,
    }

    impl Validate for Defaults {
        fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
            self.vector.validate(&key(prefix, "vector"), issues);
        }
    }

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let defaults: Defaults = toml_like(VECTOR_DEFAULTS_TOML);
        assert_eq!(defaults.vector.listen.port(), 10103);
        assert_eq!(defaults.vector.embedding_model, "all-minilm");
        let mut issues = ConfigIssues::default();
        defaults.vector.validate("vector", &mut issues);
        assert!(issues.into_result().is_ok());
    }

    #[test]
    fn each_issue_names_its_key() {
        let mut settings: Defaults = toml_like(VECTOR_DEFAULTS_TOML);
        settings.vector.auth_url = "ftp://x".to_owned();
        settings.vector.max_batch_points = 0;
        settings.vector.snapshot_log_bytes = 10;
        let mut issues = ConfigIssues::default();
        settings.vector.validate("vector", &mut issues);
        let message = issues.into_result().unwrap_err().to_string();
        for name in ["vector.auth_url", "vector.max_batch_points", "vector.snapshot_log_bytes"] {
            assert!(message.contains(name), "{name} in {message}");
        }
    }

    /// Loads the embedded defaults through the kit's loader, as the binary does.
    fn toml_like<T: serde::de::DeserializeOwned + Validate>(text: &str) -> T {
        sutazai_kit::config::load(sutazai_kit::config::ConfigSources {
            defaults_toml: text,
            file: None,
            env: std::collections::HashMap::new(),
            list_keys: &[],
        })
        .unwrap()
    }
}
