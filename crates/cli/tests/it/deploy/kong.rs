//! kong/kong.yml: routes only what the gateway and auth serve, to the compose services that serve
//! it, with plugin settings Kong 3.x accepts, and nothing internal exposed.

use std::collections::BTreeSet;

use serde_norway::Value;

use super::{Compose, compose_default, host_and_port, read_text, read_yaml, role_port, strings, text};

const FILE: &str = "kong/kong.yml";

/// Plugins bundled with Kong Gateway 3.x OSS (kong/constants.lua); a name outside this set would
/// make the DB-less config fail to load.
const KONG_3_BUNDLED_PLUGINS: [&str; 38] = [
    "jwt",
    "acl",
    "correlation-id",
    "cors",
    "oauth2",
    "tcp-log",
    "udp-log",
    "file-log",
    "http-log",
    "key-auth",
    "hmac-auth",
    "basic-auth",
    "ip-restriction",
    "request-transformer",
    "response-transformer",
    "request-size-limiting",
    "rate-limiting",
    "response-ratelimiting",
    "syslog",
    "loggly",
    "datadog",
    "ldap-auth",
    "statsd",
    "bot-detection",
    "aws-lambda",
    "request-termination",
    "prometheus",
    "proxy-cache",
    "session",
    "acme",
    "grpc-gateway",
    "grpc-web",
    "pre-function",
    "post-function",
    "azure-functions",
    "zipkin",
    "opentelemetry",
    "redirect",
];

/// The `config` fields each plugin we use accepts in Kong 3.x (the plugins' schema.lua; the
/// deprecated flat `redis_*` fields of rate-limiting are left out on purpose).
fn accepted_config_fields(plugin: &str) -> &'static [&'static str] {
    match plugin {
        "correlation-id" => &["header_name", "generator", "echo_downstream"],
        "request-size-limiting" => &["allowed_payload_size", "size_unit", "require_content_length"],
        "rate-limiting" => &[
            "second",
            "minute",
            "hour",
            "day",
            "month",
            "year",
            "limit_by",
            "header_name",
            "path",
            "policy",
            "fault_tolerant",
            "redis",
            "hide_client_headers",
            "error_code",
            "error_message",
            "sync_rate",
        ],
        "cors" => &[
            "origins",
            "headers",
            "exposed_headers",
            "methods",
            "max_age",
            "credentials",
            "private_network",
            "preflight_continue",
            "allow_origin_absent",
        ],
        "prometheus" => &[
            "per_consumer",
            "status_code_metrics",
            "ai_metrics",
            "latency_metrics",
            "bandwidth_metrics",
            "upstream_health_metrics",
        ],
        other => panic!("no accepted field list for plugin {other}: add it from Kong's schema"),
    }
}

/// The fields of rate-limiting's `config.redis` record in Kong 3.x.
const RATE_LIMITING_REDIS_FIELDS: [&str; 9] =
    ["host", "port", "timeout", "username", "password", "database", "ssl", "ssl_verify", "server_name"];

/// Paths the services serve for operators only; no route may lead to them.
const INTERNAL_PATHS: [&str; 5] = ["/metrics", "/livez", "/readyz", "/openapi.json", "/docs"];

/// host:port pairs that must never be an upstream (the original system routed these publicly).
const FORBIDDEN_UPSTREAMS: [(&str, u16); 4] =
    [("ollama", 11434), ("rabbitmq", 15672), ("prometheus", 9090), ("grafana", 3000)];

struct Route {
    service: String,
    name: String,
    paths: Vec<String>,
    strip_path: Option<bool>,
}

struct KongConfig {
    document: Value,
}

impl KongConfig {
    fn load() -> Self {
        Self { document: read_yaml(FILE) }
    }

    fn services(&self) -> &[Value] {
        self.document["services"].as_sequence().expect("kong.yml: services")
    }

    /// Each service's name and upstream URL.
    fn upstreams(&self) -> Vec<(String, String)> {
        let mut upstreams = Vec::new();
        for service in self.services() {
            let name = text(&service["name"], "service name").to_owned();
            assert!(service["host"].is_null(), "{name}: give the upstream as `url`, not host/port");
            upstreams.push((name, text(&service["url"], "service url").to_owned()));
        }
        upstreams
    }

    fn routes(&self) -> Vec<Route> {
        let mut routes = Vec::new();
        for service in self.services() {
            let service_name = text(&service["name"], "service name");
            for route in service["routes"].as_sequence().into_iter().flatten() {
                routes.push(Route {
                    service: service_name.to_owned(),
                    name: text(&route["name"], "route name").to_owned(),
                    paths: strings(&route["paths"], "route paths"),
                    strip_path: route["strip_path"].as_bool(),
                });
            }
        }
        assert!(self.document["routes"].is_null(), "routes belong under their service");
        routes
    }

    /// Every plugin entry with where it applies (`global`, or the route's name).
    fn plugins(&self) -> Vec<(String, &Value)> {
        let mut plugins = Vec::new();
        for plugin in self.document["plugins"].as_sequence().into_iter().flatten() {
            plugins.push(("global".to_owned(), plugin));
        }
        for service in self.services() {
            for plugin in service["plugins"].as_sequence().into_iter().flatten() {
                plugins.push((format!("service {}", text(&service["name"], "name")), plugin));
            }
            for route in service["routes"].as_sequence().into_iter().flatten() {
                for plugin in route["plugins"].as_sequence().into_iter().flatten() {
                    plugins.push((format!("route {}", text(&route["name"], "name")), plugin));
                }
            }
        }
        plugins
    }

    fn global_plugin(&self, name: &str) -> &Value {
        let found =
            self.plugins().into_iter().find(|(scope, plugin)| scope == "global" && plugin["name"] == name);
        &found.unwrap_or_else(|| panic!("no global {name} plugin")).1["config"]
    }
}

/// What each upstream service serves: the gateway's OpenAPI document (as served at
/// /openapi.json) and the auth service's route table. Paths are templates (`{id}`).
fn served_paths(service: &str) -> Vec<String> {
    match service {
        "gateway" => {
            let document = sutazai_gateway::openapi_document();
            let paths: Vec<String> = document.paths.paths.keys().cloned().collect();
            assert!(paths.contains(&"/api/v1/tasks".to_owned()), "the document lists the API: {paths:?}");
            paths
        }
        "auth" => sutazai_auth::http_route_paths().into_iter().map(str::to_owned).collect(),
        other => panic!("kong routes to `{other}`, which is not a SutazAI service with a public API"),
    }
}

/// The route Kong picks for `path`: the longest matching prefix path.
fn routed_service<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
    let mut best: Option<(&Route, usize)> = None;
    for route in routes {
        for prefix in &route.paths {
            if path.starts_with(prefix.as_str()) && best.is_none_or(|(_, length)| prefix.len() > length) {
                best = Some((route, prefix.len()));
            }
        }
    }
    best.map(|(route, _)| route)
}

#[test]
fn kong_config_is_declarative_format_3() {
    let kong = KongConfig::load();
    assert_eq!(kong.document["_format_version"], "3.0");
    let services: BTreeSet<String> = kong.upstreams().into_iter().map(|(name, _)| name).collect();
    assert_eq!(services, BTreeSet::from(["auth".to_owned(), "gateway".to_owned()]));
}

#[test]
fn every_kong_route_leads_to_a_path_its_service_serves() {
    let kong = KongConfig::load();
    let routes = kong.routes();
    let mut all_paths = BTreeSet::new();
    for route in &routes {
        // Kong strips the matched prefix by default; the services serve the full path.
        assert_eq!(route.strip_path, Some(false), "route {} must set strip_path: false", route.name);
        let served = served_paths(&route.service);
        for path in &route.paths {
            assert!(
                path.starts_with('/') && !path.starts_with('~'),
                "{}: plain prefix paths only",
                route.name
            );
            assert!(
                served.iter().any(|served_path| served_path.starts_with(path.as_str())),
                "route {} path {path} matches nothing {} serves: {served:?}",
                route.name,
                route.service
            );
            all_paths.insert(path.clone());
        }
    }
    // The routes the issue asks for: the API, the auth API, the JWKS and the public health check.
    for required in ["/api/v1", "/api/v1/auth/", "/.well-known/jwks.json", "/health"] {
        assert!(all_paths.contains(required), "no route for {required}: {all_paths:?}");
    }
}

#[test]
fn every_served_public_path_reaches_its_own_service_through_kong() {
    let routes = KongConfig::load().routes();
    for service in ["gateway", "auth"] {
        for path in served_paths(service) {
            let route = routed_service(&routes, &path)
                .unwrap_or_else(|| panic!("{service} serves {path} but no kong route leads there"));
            assert_eq!(
                route.service, service,
                "{path} is served by {service} but kong sends it to {}",
                route.service
            );
        }
    }
}

#[test]
fn kong_upstreams_are_compose_services_on_their_ports() {
    let compose = Compose::load();
    let names = compose.service_names();
    for (service, url) in KongConfig::load().upstreams() {
        let (host, port) = host_and_port(&url);
        assert!(!FORBIDDEN_UPSTREAMS.contains(&(host.as_str(), port)), "{url} must never be routed");
        assert!(names.contains(&host), "{service}: upstream host {host} is not a compose service");
        assert_eq!(
            port,
            compose.listen_port(&host),
            "{service}: {url} is not where {host} listens in compose"
        );
        assert_eq!(port, role_port(&host), "{service}: {url} is not the {host} role's port");
    }
}

#[test]
fn no_kong_route_exposes_internal_endpoints() {
    let routes = KongConfig::load().routes();
    for internal in INTERNAL_PATHS {
        if let Some(route) = routed_service(&routes, internal) {
            panic!("{internal} is reachable through kong route {}", route.name);
        }
    }
    for route in &routes {
        for path in &route.paths {
            for forbidden in ["/metrics", "/ollama", "/api/tags", "/api/generate", "/rabbitmq", "/prometheus"]
            {
                assert!(!path.starts_with(forbidden), "route {} exposes {path}", route.name);
            }
        }
    }
}

#[test]
fn kong_plugins_are_bundled_with_fields_kong_3_accepts() {
    let kong = KongConfig::load();
    let mut global_names = BTreeSet::new();
    for (scope, plugin) in kong.plugins() {
        let name = text(&plugin["name"], "plugin name");
        assert!(KONG_3_BUNDLED_PLUGINS.contains(&name), "{scope}: {name} is not bundled with kong 3.x");
        let accepted = accepted_config_fields(name);
        let config = plugin["config"].as_mapping().unwrap_or_else(|| panic!("{scope}: {name} has no config"));
        for key in config.keys() {
            let field = text(key, "config field");
            assert!(accepted.contains(&field), "{scope}: {name} has no config field `{field}` in kong 3.x");
        }
        if name == "rate-limiting" {
            let redis = config.get("redis").and_then(Value::as_mapping).expect("rate-limiting config.redis");
            for key in redis.keys() {
                let field = text(key, "redis field");
                assert!(RATE_LIMITING_REDIS_FIELDS.contains(&field), "{scope}: no config.redis.{field}");
            }
        }
        if scope == "global" {
            assert!(global_names.insert(name.to_owned()), "global {name} configured twice");
        }
    }
    for required in ["correlation-id", "request-size-limiting", "rate-limiting", "cors", "prometheus"] {
        assert!(global_names.contains(required), "no global {required} plugin: {global_names:?}");
    }
}

#[test]
fn kong_rate_limits_share_the_compose_redis_without_a_literal_password() {
    let kong = KongConfig::load();
    let compose = Compose::load();
    let kong_environment = compose.environment("kong");
    for (scope, plugin) in kong.plugins() {
        if plugin["name"] != "rate-limiting" {
            continue;
        }
        let config = &plugin["config"];
        assert_eq!(config["policy"], "redis", "{scope}: counters shared by every kong node");
        let host = text(&config["redis"]["host"], "redis.host");
        assert!(compose.service_names().contains(&host.to_owned()), "{scope}: redis host {host}");
        assert_eq!(config["redis"]["port"].as_u64(), Some(6379), "{scope}: the redis service's port");
        let password = text(&config["redis"]["password"], "redis.password");
        // Kong's env vault: {vault://env/some-name} reads SOME_NAME from kong's environment.
        let reference =
            password.strip_prefix("{vault://env/").and_then(|rest| rest.strip_suffix('}')).unwrap_or_else(
                || panic!("{scope}: the redis password must be a vault reference, not {password}"),
            );
        let variable = reference.to_ascii_uppercase().replace('-', "_");
        let value = kong_environment.get(&variable).unwrap_or_else(|| panic!("kong has no {variable}"));
        assert!(
            value.starts_with("${REDIS_PASSWORD"),
            "{variable} must come from the redis password: {value}"
        );
    }
}

#[test]
fn kong_cors_names_explicit_origins_equal_to_the_services() {
    let kong = KongConfig::load();
    let cors = kong.global_plugin("cors");
    let origins = strings(&cors["origins"], "cors origins");
    assert!(!origins.is_empty(), "an empty origin list allows every origin");
    for origin in &origins {
        assert_ne!(origin, "*");
        assert!(!origin.contains('*') && !origin.contains(".*"), "{origin} is a wildcard");
        let (scheme, rest) = origin.split_once("://").unwrap_or_else(|| panic!("{origin} is not an origin"));
        assert!(scheme == "http" || scheme == "https", "{origin}");
        assert!(!rest.is_empty() && !rest.contains('/'), "{origin} must be scheme://host[:port]");
    }
    if cors["credentials"] == true {
        assert!(!origins.iter().any(|origin| origin == "*"), "credentials with origin *");
    }
    let compose = Compose::load();
    let service_origins = compose.environment("gateway")["SUTAZAI__HTTP__CORS_ALLOWED_ORIGINS"].clone();
    assert_eq!(origins.join(","), service_origins, "kong and the services must allow the same origins");
}

#[test]
fn kong_request_size_limit_is_the_services_body_limit() {
    let kong = KongConfig::load();
    let limit = kong.global_plugin("request-size-limiting");
    assert_eq!(limit["size_unit"], "bytes");
    let defaults = read_text("crates/cli/config.default.toml");
    let body_limit_bytes: u64 = defaults
        .lines()
        .find_map(|line| line.strip_prefix("body_limit_bytes = "))
        .expect("http.body_limit_bytes in config.default.toml")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(limit["allowed_payload_size"].as_u64(), Some(body_limit_bytes));
}

#[test]
fn kong_admin_api_listens_on_loopback_and_only_the_proxy_is_published() {
    let compose = Compose::load();
    let environment = compose.environment("kong");
    assert_eq!(environment["KONG_DATABASE"], "off");
    let admin_listen = &environment["KONG_ADMIN_LISTEN"];
    for address in admin_listen.split(',') {
        assert!(address.trim().starts_with("127.0.0.1:"), "admin API on {address}");
    }
    assert_eq!(environment["KONG_ADMIN_GUI_LISTEN"], "off", "kong manager must not listen");
    assert_eq!(environment["KONG_PROXY_LISTEN"], "0.0.0.0:10005");
    let kong = compose.service("kong");
    assert_eq!(strings(&kong["ports"], "kong ports"), ["10005:10005"], "only the proxy is published");
    // The declarative file compose mounts is this one.
    let declarative = &environment["KONG_DECLARATIVE_CONFIG"];
    let volumes = strings(&kong["volumes"], "kong volumes");
    assert!(volumes.contains(&format!("../kong/kong.yml:{declarative}:ro")), "{volumes:?}");
    // The trusted proxy address the services believe is kong's fixed address.
    let kong_ip = compose_default(text(&kong["networks"]["sutazai"]["ipv4_address"], "kong ipv4_address"));
    let trusted = compose.environment("gateway")["SUTAZAI__HTTP__TRUSTED_PROXIES"].clone();
    assert_eq!(compose_default(&trusted), kong_ip);
}
