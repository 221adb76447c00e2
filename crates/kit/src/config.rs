//! Configuration loading: embedded defaults, then an optional file, then `SUTAZAI__SECTION__KEY`
//! environment variables; deserialized into typed sections and validated once at start.
//!
//! Every settings struct denies unknown fields, so a misspelt key stops the service instead of
//! being silently ignored. Validation collects every problem, each naming its key.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Prefix of the environment variables that override configuration.
pub const ENV_PREFIX: &str = "SUTAZAI";
/// Separator between the prefix, the section and the key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// Where configuration comes from, in increasing precedence.
#[derive(Debug, Default)]
pub struct ConfigSources<'a> {
    /// The embedded defaults (TOML), documenting every key.
    pub defaults_toml: &'a str,
    /// An optional operator file (TOML).
    pub file: Option<&'a Path>,
    /// Environment variables; only those starting with `SUTAZAI__` are read. Passed in rather than
    /// read here so tests can load configuration without touching the process environment.
    pub env: HashMap<String, String>,
    /// Keys (`section.key`) whose environment value is a comma-separated list.
    pub list_keys: &'a [&'a str],
}

/// A configuration that cannot start a service.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or parsed, or a value has the wrong type or an unknown key.
    #[error("invalid configuration: {0}")]
    Load(String),
    /// One or more values broke a rule.
    #[error("invalid configuration: {}", format_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

/// One broken rule, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The full key, `section.key`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

fn format_issues(issues: &[ConfigIssue]) -> String {
    let parts: Vec<String> =
        issues.iter().map(|issue| format!("`{}`: {}", issue.key, issue.message)).collect();
    parts.join("; ")
}

/// Collects validation problems so that all of them are reported at once.
#[derive(Debug, Default)]
pub struct ConfigIssues {
    issues: Vec<ConfigIssue>,
}

impl ConfigIssues {
    /// Records that `key` breaks a rule.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue { key: key.into(), message: message.into() });
    }

    /// `Ok` when nothing was recorded.
    pub fn into_result(self) -> Result<(), ConfigError> {
        if self.issues.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(self.issues)) }
    }
}

/// A configuration (or one section of it) that can check its own values.
pub trait Validate {
    /// Records every broken rule; `prefix` is the section's key (`http`), empty at the top level.
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues);
}

/// Joins a section prefix and a key into the full key name.
pub fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

/// Loads, deserializes and validates a configuration.
pub fn load<T>(sources: ConfigSources<'_>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(sources.defaults_toml, config::FileFormat::Toml));
    if let Some(path) = sources.file {
        builder =
            builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
    }
    let env_map: config::Map<String, String> = sources
        .env
        .into_iter()
        .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
        .collect();
    let mut environment = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator(ENV_SEPARATOR)
        .separator(ENV_SEPARATOR)
        .try_parsing(true)
        .source(Some(env_map));
    // The config crate splits every value once a list separator is set and no list keys are
    // named; only set it when some keys are lists.
    if !sources.list_keys.is_empty() {
        environment = environment.list_separator(",");
        for list_key in sources.list_keys {
            environment = environment.with_list_parse_key(list_key);
        }
    }
    let merged =
        builder.add_source(environment).build().map_err(|error| ConfigError::Load(error.to_string()))?;
    let typed: T = merged.try_deserialize().map_err(|error| ConfigError::Load(error.to_string()))?;
    let mut issues = ConfigIssues::default();
    typed.validate("", &mut issues);
    issues.into_result()?;
    Ok(typed)
}

/// A secret value: at least 32 bytes, not a well-known placeholder, never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

/// Placeholder strings that appear in sample files and tutorials; a service refuses them.
const KNOWN_DEFAULT_SECRETS: [&str; 10] = [
    "changeme",
    "change-me",
    "secret",
    "your-secret-key",
    "your-secret-key-here",
    "supersecret",
    "sutazai",
    "default",
    "password",
    "please-change-this-secret-key-in-production",
];

/// The smallest accepted secret length in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

impl Secret {
    /// Wraps a value (validation happens through [`Secret::check`]).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Records why this secret is unacceptable, if it is.
    pub fn check(&self, key: String, issues: &mut ConfigIssues) {
        let lowered = self.0.trim().to_ascii_lowercase();
        let is_placeholder = KNOWN_DEFAULT_SECRETS.iter().any(|known| lowered.contains(known))
            || lowered.chars().all(|character| character == lowered.chars().next().unwrap_or(' '));
        if self.0.len() < MIN_SECRET_BYTES {
            issues.push(key, format!("secret is shorter than {MIN_SECRET_BYTES} bytes"));
        } else if is_placeholder {
            issues.push(key, "secret is a known default or placeholder value; generate a random one");
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

/// A connection URL whose password is hidden when printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    /// Wraps a URL.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The full URL, credentials included, for the connect call only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, safe for logs.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else { return "***".to_owned() };
        let Some((userinfo, host)) = rest.rsplit_once('@') else { return self.0.clone() };
        match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{userinfo}@{host}"),
        }
    }

    fn check(&self, key: String, schemes: &[&str], issues: &mut ConfigIssues) {
        let scheme = self.0.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(scheme) if schemes.contains(&scheme) => {}
            _ => issues.push(key, format!("must be a URL with scheme {}", schemes.join(" or "))),
        }
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.redacted())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for development.
    Text,
    /// One JSON object per line, for production log shipping.
    Json,
}

/// `[telemetry]`: logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter directive such as `info` or `info,sutazai_kit=debug`.
    pub log_level: String,
}

impl Validate for TelemetrySettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            issues.push(key(prefix, "log_level"), "not a valid tracing filter directive");
        }
    }
}

/// `[http]`: the HTTP edge shared by every service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Browser origins allowed by CORS (`https://app.example.com`); `*` is refused.
    pub cors_allowed_origins: Vec<String>,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Time a request may take before the service answers 504.
    pub request_timeout_ms: u64,
    /// Time in-flight requests get to finish after shutdown starts.
    pub shutdown_grace_ms: u64,
    /// Peers whose `X-Forwarded-For` is believed (Kong, a load balancer). Empty: the socket peer
    /// is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl HttpSettings {
    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The shutdown grace period as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

impl Validate for HttpSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        let origins_key = key(prefix, "cors_allowed_origins");
        for origin in &self.cors_allowed_origins {
            if let Err(reason) = check_origin(origin) {
                issues.push(origins_key.clone(), format!("`{origin}`: {reason}"));
            }
        }
        if self.body_limit_bytes == 0 {
            issues.push(key(prefix, "body_limit_bytes"), "must be greater than 0");
        }
        if self.request_timeout_ms == 0 {
            issues.push(key(prefix, "request_timeout_ms"), "must be greater than 0");
        }
    }
}

/// Accepts `scheme://host[:port]` with no path, and refuses wildcards.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin.contains('*') {
        return Err("wildcard origins are refused; list each origin");
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err("an origin is scheme://host[:port]");
    };
    if scheme != "http" && scheme != "https" {
        return Err("scheme must be http or https");
    }
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err("an origin has a host and optional port, no path or credentials");
    }
    Ok(())
}

/// `[postgres]`: the shared Postgres server; each service uses its own schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgres://user:password@host:port/database`.
    pub url: ConnectionUrl,
    /// Pool size per service.
    pub max_connections: u32,
    /// Time to wait for a pooled connection.
    pub acquire_timeout_ms: u64,
}

impl Validate for PostgresSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        self.url.check(key(prefix, "url"), &["postgres", "postgresql"], issues);
        if self.max_connections == 0 {
            issues.push(key(prefix, "max_connections"), "must be greater than 0");
        }
    }
}

/// `[redis]`: short-lived shared state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db` or `rediss://` for TLS.
    pub url: ConnectionUrl,
    /// Prepended to every key, so several deployments (or tests) can share one server.
    pub key_prefix: String,
    /// Time a command may take before it fails.
    pub command_timeout_ms: u64,
}

impl Validate for RedisSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        self.url.check(key(prefix, "url"), &["redis", "rediss"], issues);
        if self.command_timeout_ms == 0 {
            issues.push(key(prefix, "command_timeout_ms"), "must be greater than 0");
        }
    }
}

/// `[amqp]`: the RabbitMQ broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost` or `amqps://`.
    pub url: ConnectionUrl,
    /// Prepended to every exchange and queue name, so tests can share one broker.
    pub name_prefix: String,
    /// Unacknowledged deliveries a consumer holds at once.
    pub prefetch: u16,
    /// First reconnect delay; doubled per failure up to `reconnect_max_ms`.
    pub reconnect_initial_ms: u64,
    /// Longest reconnect delay.
    pub reconnect_max_ms: u64,
}

impl Validate for AmqpSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        self.url.check(key(prefix, "url"), &["amqp", "amqps"], issues);
        if self.prefetch == 0 {
            issues.push(key(prefix, "prefetch"), "must be greater than 0");
        }
        if self.reconnect_initial_ms == 0 || self.reconnect_max_ms < self.reconnect_initial_ms {
            issues
                .push(key(prefix, "reconnect_max_ms"), "needs 0 < reconnect_initial_ms <= reconnect_max_ms");
        }
    }
}

/// `[security]`: platform secrets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// The key that encrypts secrets at rest (such as the auth service's signing keys). No
    /// default: every deployment generates its own (`make up` writes one to `.sutazai/`).
    pub master_key: Option<Secret>,
}

impl SecuritySettings {
    /// The master key; validation guarantees it is present in a loaded configuration.
    pub fn master_key(&self) -> Option<&Secret> {
        self.master_key.as_ref()
    }
}

impl Validate for SecuritySettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        match &self.master_key {
            Some(master_key) => master_key.check(key(prefix, "master_key"), issues),
            None => issues.push(
                key(prefix, "master_key"),
                "required: set it to at least 32 random bytes (e.g. `openssl rand -hex 32`)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        http: HttpSettings,
        #[serde(default)]
        security: SecuritySettings,
    }

    impl Validate for Sample {
        fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
            self.http.validate(&key(prefix, "http"), issues);
            self.security.validate(&key(prefix, "security"), issues);
        }
    }

    const DEFAULTS: &str = r#"
        [http]
        cors_allowed_origins = ["http://localhost:3000"]
        body_limit_bytes = 1048576
        request_timeout_ms = 30000
        shutdown_grace_ms = 10000
        [security]
        master_key = "Zq8nXv2LrT5wYb7Kd1Hs4Pm9Ce6Fa3Jg0Ux"
    "#;

    fn load_with(env: &[(&str, &str)]) -> Result<Sample, ConfigError> {
        load(ConfigSources {
            defaults_toml: DEFAULTS,
            file: None,
            env: env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
            list_keys: &["http.cors_allowed_origins"],
        })
    }

    #[test]
    fn defaults_load() {
        let sample = load_with(&[]).unwrap();
        assert_eq!(sample.http.body_limit_bytes, 1_048_576);
    }

    #[test]
    fn env_overrides_and_lists() {
        let sample = load_with(&[
            ("SUTAZAI__HTTP__BODY_LIMIT_BYTES", "2048"),
            ("SUTAZAI__HTTP__CORS_ALLOWED_ORIGINS", "https://a.example,https://b.example:8443"),
            ("OTHER__HTTP__BODY_LIMIT_BYTES", "1"),
        ])
        .unwrap();
        assert_eq!(sample.http.body_limit_bytes, 2048);
        assert_eq!(sample.http.cors_allowed_origins, ["https://a.example", "https://b.example:8443"]);
    }

    #[test]
    fn wildcard_origin_is_refused_naming_the_key() {
        let error = load_with(&[("SUTAZAI__HTTP__CORS_ALLOWED_ORIGINS", "*")]).unwrap_err().to_string();
        assert!(error.contains("`http.cors_allowed_origins`"), "{error}");
        assert!(error.contains("wildcard"), "{error}");
    }

    #[test]
    fn short_secret_is_refused_naming_the_key() {
        let error = load_with(&[("SUTAZAI__SECURITY__MASTER_KEY", "tooshort")]).unwrap_err().to_string();
        assert!(error.contains("`security.master_key`"), "{error}");
        assert!(error.contains("shorter than 32 bytes"), "{error}");
        assert!(!error.contains("tooshort"), "the secret itself must not be printed: {error}");
    }

    #[test]
    fn placeholder_secret_is_refused() {
        let error = load_with(&[("SUTAZAI__SECURITY__MASTER_KEY", "your-secret-key-here-please-change-it")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("known default"), "{error}");
    }

    #[test]
    fn missing_secret_is_refused_naming_the_key() {
        let defaults = DEFAULTS.split("[security]").next().unwrap();
        let error = load::<Sample>(ConfigSources { defaults_toml: defaults, ..ConfigSources::default() })
            .unwrap_err()
            .to_string();
        assert!(error.contains("`security.master_key`: required"), "{error}");
    }

    #[test]
    fn unknown_key_is_refused_naming_the_key() {
        let error = load_with(&[("SUTAZAI__HTTP__BODY_LIMIT", "10")]).unwrap_err().to_string();
        assert!(error.contains("body_limit"), "{error}");
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn strings_load_when_no_key_is_a_list() {
        let sample: Sample = load(ConfigSources {
            defaults_toml: DEFAULTS,
            env: [("SUTAZAI__SECURITY__MASTER_KEY".to_owned(), "a,b".repeat(12))].into_iter().collect(),
            ..ConfigSources::default()
        })
        .unwrap();
        assert_eq!(sample.security.master_key.unwrap().expose(), "a,b".repeat(12));
    }

    #[test]
    fn wrong_type_names_the_key() {
        let error = load_with(&[("SUTAZAI__HTTP__REQUEST_TIMEOUT_MS", "soon")]).unwrap_err().to_string();
        assert!(error.contains("request_timeout_ms"), "{error}");
    }

    #[test]
    fn secrets_and_passwords_are_redacted_in_debug() {
        let url = ConnectionUrl::new("postgres://app:hunter2@db:5432/sutazai");
        assert_eq!(format!("{url:?}"), "postgres://app:***@db:5432/sutazai");
        assert_eq!(format!("{:?}", Secret::new("x".repeat(40))), "Secret(***)");
    }

    #[test]
    fn origin_rules() {
        assert!(check_origin("https://app.example.com").is_ok());
        assert!(check_origin("http://localhost:3000").is_ok());
        assert!(check_origin("https://*.example.com").is_err());
        assert!(check_origin("ftp://example.com").is_err());
        assert!(check_origin("https://example.com/path").is_err());
    }
}
