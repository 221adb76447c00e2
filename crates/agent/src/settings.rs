//! `[agent]`: where the worker listens, which profiles it runs, its timings, and the services it
//! reaches with its own service account. Every key is documented in `agent.default.toml`.
//!
//! Validation also reads the profiles file, so `sutazai` refuses to start a worker whose profiles
//! are broken, naming the profile and the field.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use sutazai_kit::config::{ConfigError, ConfigIssues, Secret, Validate, key};

use crate::profiles::{Profile, ProfileError, ProfileSet, Tool};

/// The `[agent]` section with its defaults and the meaning of each key.
pub const AGENT_DEFAULTS_TOML: &str = include_str!("../agent.default.toml");

/// Longest heartbeat interval: the coordinator marks an agent offline after 15 s of silence.
const MAX_HEARTBEAT_INTERVAL_MS: u64 = 60_000;
/// Longest drain a worker may ask for.
const MAX_DRAIN_TIMEOUT_MS: u64 = 600_000;
/// Most past exchanges memory-chat recalls into one prompt.
const MAX_MEMORY_RECALL: u32 = 50;

/// Settings of the agent worker role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Where `/livez`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// The profiles file; empty for the built-in one.
    pub profiles_file: String,
    /// The profiles to run; empty for every profile except the noop kind.
    #[serde(deserialize_with = "profile_names")]
    pub profiles: Vec<String>,
    /// How often each agent sends a heartbeat.
    pub heartbeat_interval_ms: u64,
    /// How long running tasks may finish after shutdown starts.
    pub drain_timeout_ms: u64,
    /// The arbitrator's gRPC URL; empty: no leases, the local slots bound LLM calls.
    pub arbitrator_url: String,
    /// The vector service's gRPC URL (memory-chat's memory); empty when no profile needs it.
    pub vector_url: String,
    /// The auth service, where the worker's service token comes from.
    pub auth_url: String,
    /// The worker's service account.
    pub client_id: String,
    /// The service account's secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Dimension of the vector service's embedding model (memory collections are created with it).
    pub memory_dimension: u32,
    /// Past exchanges memory-chat recalls per message.
    pub memory_recall: u32,
}

/// `profiles = ["coder", "reviewer"]` in a file, or `SUTAZAI__AGENT__PROFILES=coder,reviewer`
/// from the environment (one string, split here, whether or not the key is a list key).
fn profile_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Text(String),
    }
    let names = match Names::deserialize(deserializer)? {
        Names::List(list) => list,
        Names::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(names.into_iter().map(|name| name.trim().to_owned()).filter(|name| !name.is_empty()).collect())
}

/// Why the profiles to run could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum ProfilesLoadError {
    /// The profiles file could not be read.
    #[error("read the profiles file {path}: {source}")]
    Read {
        /// The configured path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid profiles file.
    #[error("profiles file {path}: {source}")]
    Invalid {
        /// The configured path (`built-in` for the embedded file).
        path: String,
        /// Every problem.
        #[source]
        source: ProfileError,
    },
    /// `agent.profiles` names profiles the file does not have.
    #[error("agent.profiles: {0}")]
    Selection(ProfileError),
}

impl AgentSettings {
    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// The drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// Whether the worker leases inference slots from the arbitrator.
    pub fn uses_arbitrator(&self) -> bool {
        !self.arbitrator_url.trim().is_empty()
    }

    /// Whether the vector service's URL is set (memory-chat needs it).
    pub fn uses_vector(&self) -> bool {
        !self.vector_url.trim().is_empty()
    }

    /// Reads the profiles file (or the built-in one) and picks the profiles to run.
    pub fn load_profiles(&self) -> Result<Vec<Profile>, ProfilesLoadError> {
        let set = if self.profiles_file.trim().is_empty() {
            ProfileSet::builtin()
                .map_err(|source| ProfilesLoadError::Invalid { path: "built-in".to_owned(), source })?
        } else {
            let path = self.profiles_file.trim().to_owned();
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ProfilesLoadError::Read { path: path.clone(), source })?;
            ProfileSet::parse(&text).map_err(|source| ProfilesLoadError::Invalid { path, source })?
        };
        set.select(&self.profiles).map_err(ProfilesLoadError::Selection)
    }
}

fn check_url(issues: &mut ConfigIssues, prefix: &str, name: &str, url: &str) {
    if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
        issues.push(key(prefix, name), "must be empty or an http:// or https:// URL");
    }
}

impl Validate for AgentSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if !(100..=MAX_HEARTBEAT_INTERVAL_MS).contains(&self.heartbeat_interval_ms) {
            issues.push(
                key(prefix, "heartbeat_interval_ms"),
                format!("must be between 100 and {MAX_HEARTBEAT_INTERVAL_MS}"),
            );
        }
        if self.drain_timeout_ms > MAX_DRAIN_TIMEOUT_MS {
            issues.push(key(prefix, "drain_timeout_ms"), format!("must be at most {MAX_DRAIN_TIMEOUT_MS}"));
        }
        check_url(issues, prefix, "arbitrator_url", self.arbitrator_url.trim());
        check_url(issues, prefix, "vector_url", self.vector_url.trim());
        check_url(issues, prefix, "auth_url", self.auth_url.trim());
        if self.memory_dimension == 0 || self.memory_dimension > 65_536 {
            issues.push(key(prefix, "memory_dimension"), "must be between 1 and 65536");
        }
        if !(1..=MAX_MEMORY_RECALL).contains(&self.memory_recall) {
            issues.push(key(prefix, "memory_recall"), format!("must be between 1 and {MAX_MEMORY_RECALL}"));
        }
        if let Some(secret) = &self.client_secret {
            secret.check(key(prefix, "client_secret"), issues);
        }
        match self.load_profiles() {
            Ok(_) => {}
            Err(ProfilesLoadError::Selection(error)) => {
                issues.push(key(prefix, "profiles"), error.to_string())
            }
            Err(error) => issues.push(key(prefix, "profiles_file"), error.to_string()),
        }
    }
}

impl AgentSettings {
    /// What running `profiles` needs beyond the section's own rules (checked when the worker
    /// starts, since other roles share the configuration and need none of it): memory-chat needs
    /// the vector service, and the arbitrator and the vector service need a complete service
    /// account. `prefix` is the section's key (`agent`).
    pub fn check_requirements(&self, prefix: &str, profiles: &[Profile]) -> Result<(), ConfigError> {
        let mut issues = ConfigIssues::default();
        let memory_profile = profiles.iter().find(|profile| profile.has_tool(Tool::VectorMemory));
        if let Some(profile) = memory_profile
            && !self.uses_vector()
        {
            issues.push(
                key(prefix, "vector_url"),
                format!(
                    "profile `{}` uses the vector_memory tool; set the vector service's URL",
                    profile.name
                ),
            );
        }
        if self.uses_arbitrator() || memory_profile.is_some() {
            let reason = "required for the service token the arbitrator and the vector service want";
            if self.auth_url.trim().is_empty() {
                issues.push(key(prefix, "auth_url"), reason);
            }
            if self.client_id.trim().is_empty() {
                issues.push(key(prefix, "client_id"), reason);
            }
            if self.client_secret.is_none() {
                issues.push(key(prefix, "client_secret"), reason);
            }
        }
        issues.into_result()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sutazai_kit::config::{ConfigSources, load};

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        agent: AgentSettings,
    }

    impl Validate for Sample {
        fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
            self.agent.validate(&key(prefix, "agent"), issues);
        }
    }

    fn load_with(env: &[(&str, &str)]) -> Result<AgentSettings, String> {
        let env: HashMap<String, String> =
            env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        load::<Sample>(ConfigSources { defaults_toml: AGENT_DEFAULTS_TOML, file: None, env, list_keys: &[] })
            .map(|sample| sample.agent)
            .map_err(|error| error.to_string())
    }

    const SECRET: &str = "cs_0123456789abcdefghijklmnopqrstuvwxyzABCD";

    #[test]
    fn the_documented_defaults_load_and_validate() {
        let settings = load_with(&[]).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:8595".parse().unwrap());
        assert_eq!(settings.heartbeat_interval(), Duration::from_secs(5));
        assert!(settings.profiles.is_empty());
        let profiles = settings.load_profiles().unwrap();
        let names: Vec<&str> = profiles.iter().map(|profile| profile.name.as_str()).collect();
        assert_eq!(names, ["coder", "reviewer", "summarizer", "shell", "planner", "memory-chat"]);
        // Memory-chat reaches the vector service with the worker's service account, whose secret
        // has no default.
        let error = settings.check_requirements("agent", &profiles).unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid configuration: `agent.client_secret`: required for the service token the arbitrator and the vector service want"
        );
        let settings = load_with(&[("SUTAZAI__AGENT__CLIENT_SECRET", SECRET)]).unwrap();
        settings.check_requirements("agent", &profiles).unwrap();
    }

    #[test]
    fn a_noop_worker_needs_no_other_service() {
        let settings = load_with(&[
            ("SUTAZAI__AGENT__PROFILES", "noop"),
            ("SUTAZAI__AGENT__ARBITRATOR_URL", ""),
            ("SUTAZAI__AGENT__VECTOR_URL", ""),
            ("SUTAZAI__AGENT__AUTH_URL", ""),
        ])
        .unwrap();
        let profiles = settings.load_profiles().unwrap();
        assert_eq!(profiles.len(), 1);
        settings.check_requirements("agent", &profiles).unwrap();
    }

    #[test]
    fn profiles_come_from_the_environment_as_a_comma_list() {
        let settings = load_with(&[("SUTAZAI__AGENT__PROFILES", "noop, coder")]).unwrap();
        assert_eq!(settings.profiles, ["noop", "coder"]);
        // `sutazai up` runs the arbitrator beside the workers, so they lease LLM slots from it.
        assert!(settings.uses_arbitrator());
    }

    #[test]
    fn bad_values_name_their_keys() {
        let error = load_with(&[
            ("SUTAZAI__AGENT__PROFILES", "noop,ghost"),
            ("SUTAZAI__AGENT__HEARTBEAT_INTERVAL_MS", "0"),
            ("SUTAZAI__AGENT__ARBITRATOR_URL", "arbitrator:8588"),
            ("SUTAZAI__AGENT__MEMORY_RECALL", "0"),
        ])
        .unwrap_err();
        for expected in [
            "`agent.profiles`: unknown profile `ghost`; the file defines coder, reviewer",
            "`agent.heartbeat_interval_ms`: must be between 100 and 60000",
            "`agent.arbitrator_url`: must be empty or an http:// or https:// URL",
            "`agent.memory_recall`",
        ] {
            assert!(error.contains(expected), "missing `{expected}` in {error}");
        }
        let error =
            load_with(&[("SUTAZAI__AGENT__PROFILES_FILE", "/nonexistent/profiles.yaml")]).unwrap_err();
        assert!(
            error.contains("`agent.profiles_file`: read the profiles file /nonexistent/profiles.yaml"),
            "{error}"
        );
        let error = load_with(&[("SUTAZAI__AGENT__PROFILE", "noop")]).unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn the_arbitrator_needs_the_service_account() {
        let settings = load_with(&[
            ("SUTAZAI__AGENT__PROFILES", "noop"),
            ("SUTAZAI__AGENT__ARBITRATOR_URL", "http://127.0.0.1:8588"),
            ("SUTAZAI__AGENT__CLIENT_ID", ""),
        ])
        .unwrap();
        let error = settings.check_requirements("agent", &settings.load_profiles().unwrap()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("`agent.client_id`: required"), "{text}");
        assert!(text.contains("`agent.client_secret`: required"), "{text}");
    }

    #[test]
    fn a_placeholder_secret_is_refused() {
        let error = load_with(&[("SUTAZAI__AGENT__CLIENT_SECRET", "changeme")]).unwrap_err();
        assert!(error.contains("`agent.client_secret`: secret is shorter than 32 bytes"), "{error}");
    }
}
