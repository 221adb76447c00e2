//! deploy/prometheus, deploy/grafana and deploy/otel-collector: Prometheus scrapes every role where
//! compose runs it, and every alert and dashboard query names only metrics (and labels, and exact
//! label values) the crates really export, so no panel stays empty and no alert silently never
//! fires because of a typo or an invented metric.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_norway::Value;

use super::{Compose, compose_default, host_and_port, read_yaml, repo_path, roles, strings, text};

const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
const ALERTS: &str = "deploy/prometheus/alerts.yml";
const DASHBOARDS: &str = "deploy/grafana/dashboards";
const DASHBOARD_PROVIDER: &str = "deploy/grafana/provisioning/dashboards/sutazai.yml";
const DATASOURCES: &str = "deploy/grafana/provisioning/datasources/prometheus.yml";
const COLLECTOR_CONFIG: &str = "deploy/otel-collector/config.yaml";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric as the code records it: its kind and its label names (`None` when some call site
/// passes labels the scan cannot read, such as a prepared array).
#[derive(Debug)]
struct CodeMetric {
    kind: MetricKind,
    labels: Option<BTreeSet<String>>,
}

/// Every source file of the crates that ship in the binary (the test kit does not).
fn source_files() -> Vec<std::path::PathBuf> {
    fn walk(directory: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo_path("crates")).unwrap() {
        let crate_directory = entry.unwrap().path();
        if crate_directory.ends_with("testkit") || !crate_directory.join("src").is_dir() {
            continue;
        }
        walk(&crate_directory.join("src"), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    files
}

fn is_identifier_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_'
}

/// The text of a macro's arguments after the opening parenthesis, up to its closing one.
fn macro_arguments(source: &str) -> &str {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (index, character) in source.char_indices() {
        if in_string {
            match character {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => return &source[..index],
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    panic!("unclosed metrics macro: {}", &source[..source.len().min(200)])
}

/// The label names of one call (`"key" => value` pairs), or `None` when labels are passed in a
/// form this scan does not read.
fn call_labels(arguments_after_name: &str) -> Option<BTreeSet<String>> {
    let rest = arguments_after_name.trim().trim_start_matches(',').trim();
    if rest.is_empty() {
        return Some(BTreeSet::new());
    }
    if !rest.contains("=>") {
        return None;
    }
    let mut labels = BTreeSet::new();
    for (index, _) in rest.match_indices("=>") {
        let before = rest[..index].trim_end();
        let key = before.strip_suffix('"')?;
        let start = key.rfind('"')?;
        labels.insert(key[start + 1..].to_owned());
    }
    Some(labels)
}

/// Every metric recorded through the `metrics` macros in the crates, by name.
fn code_metrics() -> BTreeMap<String, CodeMetric> {
    let mut metrics: BTreeMap<String, CodeMetric> = BTreeMap::new();
    for file in source_files() {
        let source = std::fs::read_to_string(&file).unwrap();
        for (macro_name, kind) in [
            ("counter!(", MetricKind::Counter),
            ("gauge!(", MetricKind::Gauge),
            ("histogram!(", MetricKind::Histogram),
        ] {
            for (index, _) in source.match_indices(macro_name) {
                // `describe_counter!(` and the like are not recordings.
                if source[..index].chars().next_back().is_some_and(is_identifier_character) {
                    continue;
                }
                let arguments = macro_arguments(&source[index + macro_name.len()..]);
                let Some(after_quote) = arguments.trim_start().strip_prefix('"') else {
                    panic!("{}: a metric whose name is not a literal: {arguments}", file.display())
                };
                let (name, after_name) = after_quote.split_once('"').unwrap();
                let labels = call_labels(after_name);
                let metric = metrics
                    .entry(name.to_owned())
                    .or_insert(CodeMetric { kind, labels: Some(BTreeSet::new()) });
                assert_eq!(metric.kind, kind, "{name} is recorded as two kinds");
                metric.labels = match (metric.labels.take(), labels) {
                    (Some(mut known), Some(more)) => {
                        known.extend(more);
                        Some(known)
                    }
                    _ => None,
                };
            }
        }
    }
    for expected in ["http_requests_total", "http_request_duration_seconds", "coordinator_agents"] {
        assert!(metrics.contains_key(expected), "the scan missed {expected}: {:?}", metrics.keys());
    }
    metrics
}

/// Every source file's text, to find label values as string literals.
fn all_source_text() -> String {
    source_files().into_iter().map(|file| std::fs::read_to_string(file).unwrap()).collect()
}

/// One series selector of a query: the metric name and its label matchers.
#[derive(Debug, Default)]
struct Selector {
    metric: String,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
}

/// What a PromQL expression names: its selectors and the labels it groups or matches on.
#[derive(Debug, Default)]
struct QueryNames {
    selectors: Vec<Selector>,
    grouping: BTreeSet<String>,
}

const PROMQL_KEYWORDS: [&str; 10] =
    ["and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN", "atan2"];
/// Aggregations, which may be followed by `by (...)` before their parenthesis.
const PROMQL_AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const PROMQL_GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

fn skip_string(characters: &[char], start: usize) -> usize {
    let quote = characters[start];
    let mut index = start + 1;
    while index < characters.len() && characters[index] != quote {
        if characters[index] == '\\' {
            index += 1;
        }
        index += 1;
    }
    index + 1
}

fn read_string(characters: &[char], start: usize) -> (String, usize) {
    let end = skip_string(characters, start);
    (characters[start + 1..end - 1].iter().collect(), end)
}

fn skip_until(characters: &[char], start: usize, closing: char) -> usize {
    let mut index = start;
    while index < characters.len() && characters[index] != closing {
        index += 1;
    }
    index + 1
}

fn read_identifier(characters: &[char], start: usize) -> (String, usize) {
    let mut end = start;
    while end < characters.len() && (is_identifier_character(characters[end]) || characters[end] == ':') {
        end += 1;
    }
    (characters[start..end].iter().collect(), end)
}

fn skip_whitespace(characters: &[char], start: usize) -> usize {
    let mut index = start;
    while index < characters.len() && characters[index].is_whitespace() {
        index += 1;
    }
    index
}

/// Reads the names a PromQL (or Grafana-templated PromQL) expression uses.
fn scan_promql(expression: &str) -> QueryNames {
    let characters: Vec<char> = expression.chars().collect();
    let mut names = QueryNames::default();
    let mut previous_selector: Option<usize> = None;
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        if character.is_whitespace() {
            index += 1;
        } else if matches!(character, '"' | '\'' | '`') {
            index = skip_string(&characters, index);
            previous_selector = None;
        } else if character == '$' {
            // A Grafana variable: $name or ${name}.
            index += 1;
            index = if characters.get(index) == Some(&'{') {
                skip_until(&characters, index, '}')
            } else {
                read_identifier(&characters, index).1
            };
            previous_selector = None;
        } else if character == '[' {
            // A range or subquery: durations only.
            index = skip_until(&characters, index, ']');
            previous_selector = None;
        } else if character == '{' {
            let selector =
                previous_selector.unwrap_or_else(|| panic!("a selector without a metric name: {expression}"));
            index += 1;
            loop {
                index = skip_whitespace(&characters, index);
                if characters[index] == '}' {
                    index += 1;
                    break;
                }
                if characters[index] == ',' {
                    index += 1;
                    continue;
                }
                let (label, after_label) = read_identifier(&characters, index);
                assert!(!label.is_empty(), "cannot read the label matchers of {expression}");
                let operator_start = skip_whitespace(&characters, after_label);
                let mut operator_end = operator_start;
                while matches!(characters[operator_end], '=' | '!' | '~') {
                    operator_end += 1;
                }
                let operator: String = characters[operator_start..operator_end].iter().collect();
                let value_start = skip_whitespace(&characters, operator_end);
                let (value, after_value) = read_string(&characters, value_start);
                names.selectors[selector].matchers.push((label, operator, value));
                index = after_value;
            }
            previous_selector = None;
        } else if character.is_ascii_digit() || character == '.' {
            while index < characters.len()
                && (characters[index].is_ascii_alphanumeric() || characters[index] == '.')
            {
                index += 1;
            }
            previous_selector = None;
        } else if character.is_ascii_alphabetic() || character == '_' || character == ':' {
            let (identifier, after) = read_identifier(&characters, index);
            let next = skip_whitespace(&characters, after);
            index = after;
            previous_selector = None;
            if PROMQL_GROUPING.contains(&identifier.as_str()) {
                if characters.get(next) == Some(&'(') {
                    let close = skip_until(&characters, next, ')');
                    let list: String = characters[next + 1..close - 1].iter().collect();
                    names.grouping.extend(
                        list.split(',').map(str::trim).filter(|label| !label.is_empty()).map(str::to_owned),
                    );
                    index = close;
                }
            } else if PROMQL_KEYWORDS.contains(&identifier.as_str())
                || PROMQL_AGGREGATIONS.contains(&identifier.as_str())
                || characters.get(next) == Some(&'(')
            {
                // An operator keyword, or a function or aggregation.
            } else {
                names.selectors.push(Selector { metric: identifier, matchers: Vec::new() });
                previous_selector = Some(names.selectors.len() - 1);
            }
        } else {
            index += 1;
            previous_selector = None;
        }
    }
    names
}

/// The label names a selector of `series` may use, or `None` when the code's labels are unknown.
/// An error when no such series is exported.
fn series_labels(
    series: &str,
    metrics: &BTreeMap<String, CodeMetric>,
) -> Result<Option<BTreeSet<String>>, String> {
    let scrape_labels = ["job", "instance"].map(str::to_owned);
    if series == "up" {
        return Ok(Some(BTreeSet::from(scrape_labels)));
    }
    let with_scrape_labels = |code_labels: &Option<BTreeSet<String>>, extra: Option<&str>| {
        code_labels.clone().map(|mut labels| {
            labels.extend(scrape_labels.iter().cloned());
            labels.extend(extra.map(str::to_owned));
            labels
        })
    };
    // metrics-exporter-prometheus renders a histogram with buckets when its name ends in
    // _seconds (the kit configures buckets for that suffix), otherwise as a summary.
    if let Some(metric) = metrics.get(series) {
        return match metric.kind {
            MetricKind::Histogram if series.ends_with("_seconds") => {
                Err(format!("{series} is a histogram: query {series}_bucket, _sum or _count"))
            }
            MetricKind::Histogram => Ok(with_scrape_labels(&metric.labels, Some("quantile"))),
            MetricKind::Counter | MetricKind::Gauge => Ok(with_scrape_labels(&metric.labels, None)),
        };
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        let Some(base) = series.strip_suffix(suffix) else { continue };
        let Some(metric) = metrics.get(base).filter(|metric| metric.kind == MetricKind::Histogram) else {
            continue;
        };
        if suffix == "_bucket" && !base.ends_with("_seconds") {
            return Err(format!("{base} is rendered as a summary: it has no _bucket series"));
        }
        return Ok(with_scrape_labels(&metric.labels, (suffix == "_bucket").then_some("le")));
    }
    Err(format!("{series} is not a metric the code exports"))
}

/// Every problem with the names `expression` uses; empty when it is sound.
fn query_problems(expression: &str, metrics: &BTreeMap<String, CodeMetric>, sources: &str) -> Vec<String> {
    let names = scan_promql(expression);
    let mut problems = Vec::new();
    if names.selectors.is_empty() {
        problems.push(format!("`{expression}` names no metric"));
    }
    let mut groupable: Option<BTreeSet<String>> = Some(BTreeSet::new());
    for selector in &names.selectors {
        match series_labels(&selector.metric, metrics) {
            Err(problem) => problems.push(problem),
            Ok(None) => groupable = None,
            Ok(Some(labels)) => {
                for (label, operator, value) in &selector.matchers {
                    if !labels.contains(label) {
                        problems
                            .push(format!("{} has no label {label} (it has {labels:?})", selector.metric));
                    }
                    // An exact value must be one the code writes (a typo never matches).
                    let templated = value.contains('$');
                    if operator == "="
                        && !templated
                        && label != "job"
                        && !sources.contains(&format!("\"{value}\""))
                    {
                        problems.push(format!(
                            "{}{{{label}=\"{value}\"}}: the code never writes that value",
                            selector.metric
                        ));
                    }
                }
                if let Some(known) = groupable.as_mut() {
                    known.extend(labels);
                }
            }
        }
    }
    if let Some(allowed) = groupable {
        for label in &names.grouping {
            if !allowed.contains(label) {
                problems.push(format!("`{expression}` groups by {label}, which none of its metrics has"));
            }
        }
    }
    problems
}

fn scrape_jobs() -> BTreeMap<String, Value> {
    let config = read_yaml(PROMETHEUS_CONFIG);
    let mut jobs = BTreeMap::new();
    for job in config["scrape_configs"].as_sequence().expect("scrape_configs") {
        let name = text(&job["job_name"], "job_name").to_owned();
        assert!(jobs.insert(name.clone(), job.clone()).is_none(), "job {name} twice");
    }
    jobs
}

/// (host, port) of every target of a job, from static or DNS service discovery.
fn job_targets(job: &Value) -> Vec<(String, u16)> {
    let mut targets = Vec::new();
    for config in job["static_configs"].as_sequence().into_iter().flatten() {
        for target in strings(&config["targets"], "targets") {
            targets.push(host_and_port(&format!("http://{target}")));
        }
    }
    for config in job["dns_sd_configs"].as_sequence().into_iter().flatten() {
        let port = u16::try_from(config["port"].as_u64().expect("dns_sd port")).unwrap();
        for name in strings(&config["names"], "names") {
            targets.push((name, port));
        }
    }
    targets
}

#[test]
fn prometheus_scrapes_every_role_where_compose_runs_it() {
    let compose = Compose::load();
    let jobs = scrape_jobs();
    for (role, port) in roles() {
        let job = jobs.get(&role).unwrap_or_else(|| panic!("no scrape job for {role}"));
        assert!(job["metrics_path"].is_null() || job["metrics_path"] == "/metrics", "{role}: /metrics");
        assert_eq!(job_targets(job), [(role.clone(), port)], "{role}: its compose service on its port");
        assert_eq!(compose.listen_port(&role), port);
    }
    let kong_status = compose.environment("kong")["KONG_STATUS_LISTEN"].clone();
    let kong_port: u16 = kong_status.rsplit_once(':').unwrap().1.parse().unwrap();
    assert_eq!(job_targets(&jobs["kong"]), [("kong".to_owned(), kong_port)], "kong's status listener");

    // The configuration and the rules are mounted where the configuration says.
    let config = read_yaml(PROMETHEUS_CONFIG);
    let prometheus = compose.service("prometheus");
    let volumes = strings(&prometheus["volumes"], "prometheus volumes");
    let rule_files = strings(&config["rule_files"], "rule_files");
    assert_eq!(rule_files.len(), 1);
    assert!(volumes.contains(&format!("../{ALERTS}:{}:ro", rule_files[0])), "{volumes:?}");
    let config_flag = strings(&prometheus["command"], "command")
        .into_iter()
        .find_map(|argument| argument.strip_prefix("--config.file=").map(str::to_owned))
        .expect("--config.file");
    assert!(volumes.contains(&format!("../{PROMETHEUS_CONFIG}:{config_flag}:ro")), "{volumes:?}");
}

#[test]
fn alerts_cover_the_issue_and_use_only_exported_metrics() {
    let metrics = code_metrics();
    let sources = all_source_text();
    let alerts = read_yaml(ALERTS);
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    for group in alerts["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = text(&rule["alert"], "alert").to_owned();
            assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
            assert!(rule["annotations"]["summary"].is_string(), "{name}: summary");
            for problem in query_problems(text(&rule["expr"], "expr"), &metrics, &sources) {
                problems.push(format!("{name}: {problem}"));
            }
            assert!(names.insert(name.clone()), "alert {name} twice");
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The issue's list: error rate, latency, DLQ growth, agent offline, breaker open, disk.
    for required in [
        "SutazaiHighErrorRate",
        "SutazaiHighLatencyP99",
        "SutazaiMessagesDeadLettered",
        "SutazaiAgentOffline",
        "SutazaiCircuitBreakerOpen",
        "SutazaiDiskIoPressure",
    ] {
        assert!(names.contains(required), "no {required} alert: {names:?}");
    }
}

#[test]
fn the_query_check_refuses_invented_names() {
    let metrics = code_metrics();
    let sources = all_source_text();
    let sound =
        "sum by (job, le) (rate(http_request_duration_seconds_bucket{job=~\"$job\"}[$__rate_interval]))";
    assert_eq!(query_problems(sound, &metrics, &sources), Vec::<String>::new());
    for invented in [
        "rate(http_requests_count[5m])",
        "http_request_duration_seconds",
        "coordinator_agents{state=\"online\"}",
        "coordinator_agents{status=\"onlin\"}",
        "sum by (tenant) (rate(http_requests_total[5m]))",
        "vector_wal_group_commit_writes_bucket",
    ] {
        assert!(!query_problems(invented, &metrics, &sources).is_empty(), "accepted {invented}");
    }
}

#[test]
fn dashboards_are_provisioned_and_use_only_exported_metrics() {
    let metrics = code_metrics();
    let sources = all_source_text();
    let compose = Compose::load();
    let grafana_volumes = strings(&compose.service("grafana")["volumes"], "grafana volumes");
    let provider = read_yaml(DASHBOARD_PROVIDER);
    let provider_path = text(&provider["providers"][0]["options"]["path"], "provider path");
    assert!(grafana_volumes.contains(&format!("../{DASHBOARDS}:{provider_path}:ro")), "{grafana_volumes:?}");
    let provisioning_mount = grafana_volumes
        .iter()
        .find(|volume| volume.starts_with("../deploy/grafana/provisioning:"))
        .expect("the provisioning directory is mounted");
    assert!(provisioning_mount.contains(":/etc/grafana/provisioning"), "{provisioning_mount}");
    let datasources = read_yaml(DATASOURCES);
    let (host, port) = host_and_port(text(&datasources["datasources"][0]["url"], "datasource url"));
    assert_eq!(host, "prometheus");
    assert!(
        strings(&compose.service("prometheus")["ports"], "ports")
            .contains(&format!("127.0.0.1:{port}:{port}"))
    );

    let mut uids = BTreeMap::new();
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(repo_path(DASHBOARDS)).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        let uid = dashboard["uid"].as_str().unwrap_or_else(|| panic!("{file}: uid")).to_owned();
        let variables = dashboard["templating"]["list"].as_array().expect("templating");
        assert!(
            variables
                .iter()
                .any(|variable| variable["name"] == "datasource" && variable["type"] == "datasource"),
            "{file}: a data source variable"
        );
        for variable in variables.iter().filter(|variable| variable["type"] == "query") {
            let query = variable["query"]["query"].as_str().or(variable["query"].as_str()).expect("query");
            let inner =
                query.strip_prefix("label_values(").and_then(|rest| rest.strip_suffix(')')).expect(query);
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let label_check = format!("sum by ({}) ({selector})", label.trim());
            problems.extend(
                query_problems(&label_check, &metrics, &sources)
                    .into_iter()
                    .map(|problem| format!("{file}: {problem}")),
            );
        }
        let mut used = BTreeSet::new();
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{file}: no panels");
        for panel in panels {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{file}: {}", panel["title"]);
            let targets = panel["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: {} has no targets", panel["title"]));
            for target in targets {
                let expression = target["expr"].as_str().expect("expr");
                used.extend(scan_promql(expression).selectors.into_iter().map(|selector| selector.metric));
                for problem in query_problems(expression, &metrics, &sources) {
                    problems.push(format!("{file} / {}: {problem}", panel["title"]));
                }
            }
        }
        assert!(uids.insert(uid, used).is_none(), "{file}: uid used twice");
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The three dashboards the issue asks for, each about what it says.
    let uses = |uid: &str, prefix: &str| uids[uid].iter().any(|metric| metric.starts_with(prefix));
    assert!(
        uses("sutazai-red", "http_requests_total") && uses("sutazai-red", "http_request_duration_seconds")
    );
    for prefix in ["orchestrator_", "coordinator_", "agent_", "amqp_"] {
        assert!(uses("sutazai-pipeline", prefix), "the pipeline dashboard shows {prefix}*");
    }
    assert!(uses("sutazai-vector", "vector_search") && uses("sutazai-vector", "vector_points"));
}

#[test]
fn the_collector_receives_what_the_services_send_and_forwards_to_jaeger() {
    let compose = Compose::load();
    let collector = read_yaml(COLLECTOR_CONFIG);
    let receiving =
        text(&collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"], "otlp grpc endpoint");
    let (_, receiving_port) = host_and_port(&format!("http://{receiving}"));
    for (role, _) in roles() {
        let endpoint = compose_default(&compose.environment(&role)["OTEL_EXPORTER_OTLP_ENDPOINT"]).to_owned();
        assert_eq!(host_and_port(&endpoint), ("otel-collector".to_owned(), receiving_port), "{role}");
    }
    let exporter = text(&collector["exporters"]["otlp/jaeger"]["endpoint"], "jaeger endpoint");
    let (jaeger, _) = host_and_port(&format!("http://{exporter}"));
    compose.service(&jaeger);
    assert_eq!(compose.environment("jaeger")["COLLECTOR_OTLP_ENABLED"], "true");
    let pipeline = &collector["service"]["pipelines"]["traces"];
    assert_eq!(strings(&pipeline["receivers"], "receivers"), ["otlp"]);
    assert_eq!(strings(&pipeline["exporters"], "exporters"), ["otlp/jaeger"]);
    // The container healthcheck asks the health_check extension where it listens.
    let health = text(&collector["extensions"]["health_check"]["endpoint"], "health_check endpoint");
    let (_, health_port) = host_and_port(&format!("http://{health}"));
    let check = strings(&compose.service("otel-collector")["healthcheck"]["test"], "healthcheck");
    assert!(check.contains(&format!("http://127.0.0.1:{health_port}/")), "{check:?}");
    assert!(strings(&collector["service"]["extensions"], "extensions").contains(&"health_check".to_owned()));
    let volumes = strings(&compose.service("otel-collector")["volumes"], "collector volumes");
    assert!(volumes.contains(&format!("../{COLLECTOR_CONFIG}:/etc/otelcol/config.yaml:ro")), "{volumes:?}");
}
