//! The deployment files (kong/kong.yml, compose/, deploy/) checked against the code they deploy:
//! the paths the gateway and auth really serve, the roles and ports the binary really has, the
//! metric names the crates really export. No Docker engine or cluster runs here, so these tests
//! read the files (and render the Helm chart with a real `helm`) and compare.

mod compose;
mod helm;
mod kong;
mod monitoring;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_norway::Value;

/// A file of the repository.
fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn read_text(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|error| panic!("read {relative}: {error}"))
}

/// A YAML file with its `<<` merge keys applied, as Compose applies them.
fn read_yaml(relative: &str) -> Value {
    let mut value: Value = serde_norway::from_str(&read_text(relative))
        .unwrap_or_else(|error| panic!("parse {relative}: {error}"));
    value.apply_merge().unwrap_or_else(|error| panic!("merge keys of {relative}: {error}"));
    value
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    let Some(items) = value.as_sequence() else { panic!("{what} is not a list: {value:?}") };
    items.iter().map(|item| text(item, what).to_owned()).collect()
}

/// Every role the binary runs with its default port, as `sutazai roles` prints them.
fn roles() -> Vec<(String, u16)> {
    static ROLES: OnceLock<Vec<(String, u16)>> = OnceLock::new();
    ROLES
        .get_or_init(|| {
            let output = crate::sutazai(&["roles"], &[]);
            assert_eq!(output.status.code(), Some(0), "{}", crate::stderr(&output));
            let listing = String::from_utf8(output.stdout).unwrap();
            let roles: Vec<(String, u16)> = listing
                .lines()
                .map(|line| {
                    let (name, port) = line.split_once(' ').unwrap();
                    (name.to_owned(), port.trim().parse().unwrap())
                })
                .collect();
            assert_eq!(roles.len(), 8, "{listing}");
            roles
        })
        .clone()
}

fn role_port(role: &str) -> u16 {
    roles().into_iter().find(|(name, _)| name == role).unwrap_or_else(|| panic!("no role {role}")).1
}

/// compose/docker-compose.yml.
struct Compose {
    document: Value,
}

impl Compose {
    const FILE: &'static str = "compose/docker-compose.yml";

    fn load() -> Self {
        Self { document: read_yaml(Self::FILE) }
    }

    fn service_names(&self) -> Vec<String> {
        let services = self.document["services"].as_mapping().expect("services");
        services.keys().map(|name| text(name, "service name").to_owned()).collect()
    }

    fn service(&self, name: &str) -> &Value {
        let service = &self.document["services"][name];
        assert!(service.is_mapping(), "compose has no service `{name}`");
        service
    }

    /// The service's environment, from either the mapping or the `KEY=value` list form.
    fn environment(&self, name: &str) -> BTreeMap<String, String> {
        let environment = &self.service(name)["environment"];
        let mut variables = BTreeMap::new();
        if let Some(mapping) = environment.as_mapping() {
            for (key, raw_value) in mapping {
                let value = match raw_value {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    other => panic!("{name}: environment value {other:?} is not a scalar"),
                };
                variables.insert(text(key, "environment key").to_owned(), value);
            }
        } else if let Some(list) = environment.as_sequence() {
            for item in list {
                let (key, value) = text(item, "environment item").split_once('=').unwrap();
                variables.insert(key.to_owned(), value.to_owned());
            }
        }
        variables
    }

    /// The port a SutazAI role listens on in its container (`SUTAZAI__<ROLE>__LISTEN`).
    fn listen_port(&self, role: &str) -> u16 {
        let key = format!("SUTAZAI__{}__LISTEN", role.to_ascii_uppercase());
        let environment = self.environment(role);
        let listen = environment.get(&key).unwrap_or_else(|| panic!("{role}: no {key}"));
        let port = listen
            .strip_prefix("0.0.0.0:")
            .unwrap_or_else(|| panic!("{role}: {key}={listen} must listen on 0.0.0.0 inside its container"));
        port.parse().unwrap_or_else(|_| panic!("{role}: {key}={listen}"))
    }

    fn profiles(&self, name: &str) -> Vec<String> {
        strings(&self.service(name)["profiles"], &format!("{name}.profiles"))
    }
}

/// The default of a Compose `${VAR-default}` / `${VAR:-default}` reference, or the text itself.
fn compose_default(value: &str) -> &str {
    let Some(inner) = value.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')) else { return value };
    match inner.split_once(":-").or_else(|| inner.split_once('-')) {
        Some((_, default)) => default,
        None => panic!("{value} has no default"),
    }
}

/// A variable name that holds a secret: its last `_` segment says so (`MASTER_KEY`,
/// `CLIENT_SECRET`, `POSTGRES_PASSWORD`, `RABBITMQ_DEFAULT_PASS`, `REDISCLI_AUTH`), while
/// `KEY_PREFIX` or `AUTH_URL` do not.
fn names_a_secret(variable: &str) -> bool {
    let last = variable.rsplit('_').next().unwrap_or_default();
    ["SECRET", "KEY", "PASSWORD", "PASS", "TOKEN", "AUTH"].contains(&last)
}

/// `http://host:port[/...]` → (host, port).
fn host_and_port(url: &str) -> (String, u16) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("{url} is not http://"));
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap_or_else(|| panic!("{url} names no port"));
    (host.to_owned(), port.parse().unwrap_or_else(|_| panic!("{url}: bad port")))
}
