//! compose/docker-compose.yml: the profiles, a healthcheck everywhere, the SutazAI services
//! hardened and on their real ports, no secret committed, the docker socket only behind the
//! opt-in override.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use super::{
    Compose, compose_default, host_and_port, names_a_secret, read_text, read_yaml, repo_path, roles, strings,
    text,
};

const HARDWARE_DOCKER_OVERRIDE: &str = "compose/docker-compose.hardware-docker.yml";
const ENV_EXAMPLE: &str = "compose/.env.example";
const SHARED_IMAGE: &str = "${SUTAZAI_IMAGE:-sutazai:local}";

/// The profiles the issue asks for and the services each one starts (`full` starts all).
fn expected_profiles() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    BTreeMap::from([
        ("core", BTreeSet::from(["postgres", "redis", "rabbitmq", "kong", "gateway", "auth"])),
        ("agents", BTreeSet::from(["orchestrator", "coordinator", "arbitrator", "agent", "ollama"])),
        ("vector", BTreeSet::from(["vector"])),
        ("hardware", BTreeSet::from(["hardware"])),
        ("monitoring", BTreeSet::from(["prometheus", "grafana", "otel-collector", "jaeger"])),
    ])
}

/// `${VAR}`, `${VAR:?message}`, `${VAR:-default}`… and nothing around it.
fn is_variable_reference(value: &str) -> bool {
    value.starts_with("${") && value.ends_with('}') && value.matches("${").count() == 1
}

/// Every `${NAME…}` a text refers to.
fn referenced_variables(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (index, _) in text.match_indices("${") {
        let name: String = text[index + 2..]
            .chars()
            .take_while(|character| character.is_ascii_alphanumeric() || *character == '_')
            .collect();
        names.insert(name);
    }
    names
}

fn volumes_of(service: &Value, name: &str) -> Vec<String> {
    if service["volumes"].is_null() {
        Vec::new()
    } else {
        strings(&service["volumes"], &format!("{name}.volumes"))
    }
}

#[test]
fn compose_profiles_start_the_documented_services() {
    let compose = Compose::load();
    let mut actual: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in compose.service_names() {
        let profiles = compose.profiles(&name);
        assert!(profiles.contains(&"full".to_owned()), "{name} is not in the full profile: {profiles:?}");
        for profile in profiles.iter().filter(|profile| *profile != "full") {
            actual.entry(profile.clone()).or_default().insert(name.clone());
        }
        assert_eq!(profiles.len(), 2, "{name}: one profile plus full, got {profiles:?}");
    }
    let expected: BTreeMap<String, BTreeSet<String>> = expected_profiles()
        .into_iter()
        .map(|(profile, services)| (profile.to_owned(), services.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn every_compose_service_has_a_healthcheck_and_resource_limits() {
    let compose = Compose::load();
    for name in compose.service_names() {
        let service = compose.service(&name);
        let healthcheck = &service["healthcheck"];
        assert_ne!(healthcheck["disable"], true, "{name}: healthcheck disabled");
        let test = strings(&healthcheck["test"], &format!("{name}.healthcheck.test"));
        assert!(test.len() >= 2, "{name}: healthcheck {test:?}");
        assert!(test[0] == "CMD" || test[0] == "CMD-SHELL", "{name}: healthcheck {test:?}");
        for timing in ["interval", "timeout", "retries"] {
            assert!(!healthcheck[timing].is_null(), "{name}: healthcheck without {timing}");
        }
        let limits = &service["deploy"]["resources"]["limits"];
        assert!(limits["cpus"].is_string(), "{name}: no cpu limit (deploy.resources.limits.cpus)");
        assert!(limits["memory"].is_string(), "{name}: no memory limit (deploy.resources.limits.memory)");
    }
}

#[test]
fn sutazai_services_run_the_one_image_non_root_read_only_with_the_cli_healthcheck() {
    let compose = Compose::load();
    let dockerfile = read_text("deploy/Dockerfile");
    let image_user = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("the Dockerfile sets a USER")
        .trim()
        .to_owned();
    for (role, port) in roles() {
        let service = compose.service(&role);
        assert_eq!(service["image"], SHARED_IMAGE, "{role}: the one sutazai image");
        assert_eq!(service["build"]["dockerfile"], "deploy/Dockerfile", "{role}");
        assert_eq!(strings(&service["command"], "command"), ["serve", role.as_str()]);
        assert_eq!(
            strings(&service["healthcheck"]["test"], "healthcheck"),
            ["CMD", "/usr/local/bin/sutazai", "healthcheck", &format!("http://127.0.0.1:{port}/livez")],
            "{role}: the container healthcheck is `sutazai healthcheck URL` on the role's /livez"
        );
        let user = text(&service["user"], "user");
        assert_eq!(user, image_user, "{role}: the image's user");
        let (uid, gid) = user.split_once(':').unwrap_or((user, user));
        assert!(uid.parse::<u32>().is_ok_and(|uid| uid != 0), "{role}: user {user} must be a non-root uid");
        assert!(gid.parse::<u32>().is_ok(), "{role}: group {user} must be numeric");
        assert_eq!(service["read_only"], true, "{role}: read-only root filesystem");
        assert!(strings(&service["tmpfs"], "tmpfs").contains(&"/tmp".to_owned()), "{role}: tmpfs /tmp");
        assert_eq!(strings(&service["cap_drop"], "cap_drop"), ["ALL"], "{role}");
        assert!(
            strings(&service["security_opt"], "security_opt").contains(&"no-new-privileges:true".to_owned()),
            "{role}"
        );
        let environment = compose.environment(&role);
        let otlp = compose_default(&environment["OTEL_EXPORTER_OTLP_ENDPOINT"]).to_owned();
        let (collector, collector_port) = host_and_port(&otlp);
        assert_eq!((collector.as_str(), collector_port), ("otel-collector", 4317), "{role}: OTLP/gRPC");
        compose.service(&collector);
    }
}

#[test]
fn compose_role_ports_are_the_binary_defaults_and_the_readme_table() {
    let compose = Compose::load();
    let readme = read_text("README.md");
    let after_heading = readme.split("\n## Ports").nth(1).expect("README has a Ports section");
    let ports_section = after_heading.split("\n## ").next().unwrap();
    let mut readme_ports: BTreeMap<String, u16> = BTreeMap::new();
    for line in ports_section.lines().filter(|line| line.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let first_word = cells[1].split_whitespace().next().unwrap_or_default();
        if let Ok(port) = cells[2].split_whitespace().next().unwrap_or_default().parse::<u16>() {
            readme_ports.insert(first_word.to_owned(), port);
        }
    }
    for (role, port) in roles() {
        assert_eq!(compose.listen_port(&role), port, "{role}: compose listens on another port");
        assert_eq!(readme_ports.get(&role), Some(&port), "{role}: README's port table says otherwise");
    }
    assert_eq!(readme_ports.get("kong"), Some(&10005), "README: the kong proxy port");
}

#[test]
fn only_the_kong_proxy_is_published_on_every_interface() {
    let compose = Compose::load();
    for name in compose.service_names() {
        let service = compose.service(&name);
        if service["ports"].is_null() {
            continue;
        }
        for published in strings(&service["ports"], &format!("{name}.ports")) {
            if name == "kong" && published == "10005:10005" {
                continue;
            }
            assert!(published.starts_with("127.0.0.1:"), "{name} publishes {published} beyond loopback");
        }
    }
}

#[test]
fn the_docker_socket_is_mounted_only_by_the_opt_in_hardware_override() {
    let main_file = read_text(super::Compose::FILE);
    assert!(!main_file.contains("docker.sock"), "docker-compose.yml must not mount the docker socket");
    let compose = Compose::load();
    assert_eq!(compose.environment("hardware")["SUTAZAI__HARDWARE__DOCKER_ENABLED"], "false");

    let override_file = read_yaml(HARDWARE_DOCKER_OVERRIDE);
    let services = override_file["services"].as_mapping().expect("override services");
    let names: Vec<&str> = services.keys().map(|name| text(name, "service")).collect();
    assert_eq!(names, ["hardware"], "the override changes the hardware service only");
    let hardware = &override_file["services"]["hardware"];
    assert_eq!(
        volumes_of(hardware, "hardware"),
        ["/var/run/docker.sock:/var/run/docker.sock"],
        "the override adds the socket and nothing else"
    );
    assert_eq!(hardware["environment"]["SUTAZAI__HARDWARE__DOCKER_ENABLED"], "true");
    // Docker's socket is root-owned with its own group; the non-root user joins that group only.
    assert_eq!(strings(&hardware["group_add"], "group_add").len(), 1);
}

#[test]
fn compose_commits_no_secret() {
    let compose = Compose::load();
    for name in compose.service_names() {
        for (variable, value) in compose.environment(&name) {
            if names_a_secret(&variable) {
                assert!(
                    is_variable_reference(&value),
                    "{name}: {variable} must come from compose/.env, not {value}"
                );
            }
            // Connection URLs take their passwords from variables too.
            if let Some((_, rest)) = value.split_once("://")
                && let Some((userinfo, _)) = rest.split_once('@')
                && let Some((_, password)) = userinfo.split_once(':')
            {
                assert!(is_variable_reference(password), "{name}: {variable} holds a literal password");
            }
        }
        let service = compose.service(&name);
        if let Some(command) = service["command"].as_sequence() {
            let arguments: Vec<&str> = command.iter().map(|argument| text(argument, "command")).collect();
            for pair in arguments.windows(2) {
                if pair[0] == "--requirepass" {
                    assert!(is_variable_reference(pair[1]), "{name}: literal password on the command line");
                }
            }
        }
    }
}

#[test]
fn env_example_lists_every_variable_and_holds_no_secret() {
    let example = read_text(ENV_EXAMPLE);
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    for line in example.lines() {
        let assignment = line.trim().trim_start_matches('#').trim();
        let Some((name, value)) = assignment.split_once('=') else { continue };
        if name
            .chars()
            .all(|character| character.is_ascii_uppercase() || character.is_ascii_digit() || character == '_')
            && !name.is_empty()
        {
            listed.insert(name.to_owned(), value.to_owned());
        }
    }
    let mut referenced = referenced_variables(&read_text(super::Compose::FILE));
    referenced.extend(referenced_variables(&read_text(HARDWARE_DOCKER_OVERRIDE)));
    for variable in &referenced {
        assert!(listed.contains_key(variable), "{ENV_EXAMPLE} does not document {variable}");
    }
    for (variable, value) in &listed {
        assert!(
            referenced.contains(variable),
            "{ENV_EXAMPLE} documents {variable}, which compose never reads"
        );
        if names_a_secret(variable) {
            assert_eq!(value, "", "{ENV_EXAMPLE}: {variable} must be left empty, not {value}");
        }
        // Nothing that looks generated: a long run of hex or base64 characters.
        let longest_token = value
            .split(|character: char| {
                !(character.is_ascii_alphanumeric() || character == '+' || character == '/')
            })
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(longest_token < 24, "{ENV_EXAMPLE}: {variable}={value} looks like a real secret");
    }
    for required_secret in ["SUTAZAI_MASTER_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD"]
    {
        assert_eq!(listed.get(required_secret).map(String::as_str), Some(""), "{required_secret}");
    }
    let gitignore = read_text(".gitignore");
    assert!(
        gitignore.lines().any(|line| line == ".env" || line == "compose/.env"),
        "compose/.env is ignored"
    );
}

#[test]
fn compose_dependencies_exist_and_start_with_their_dependents() {
    let compose = Compose::load();
    let names = compose.service_names();
    for name in &names {
        let Some(depends_on) = compose.service(name)["depends_on"].as_mapping() else { continue };
        let own_profiles: BTreeSet<String> = compose.profiles(name).into_iter().collect();
        for (dependency, condition) in depends_on {
            let dependency = text(dependency, "depends_on");
            assert!(names.contains(&dependency.to_owned()), "{name} depends on unknown service {dependency}");
            assert_eq!(
                condition["condition"], "service_healthy",
                "{name} waits for {dependency} to be healthy"
            );
            // `core` is always started; anything else must share every profile of the dependent.
            let dependency_profiles: BTreeSet<String> = compose.profiles(dependency).into_iter().collect();
            assert!(
                dependency_profiles.contains("core") || own_profiles.is_subset(&dependency_profiles),
                "{name} ({own_profiles:?}) depends on {dependency} ({dependency_profiles:?}), which may not run"
            );
        }
    }
}

#[test]
fn compose_mounts_exist_and_named_volumes_are_declared() {
    let compose = Compose::load();
    let declared: Vec<String> = compose.document["volumes"]
        .as_mapping()
        .expect("top-level volumes")
        .keys()
        .map(|name| text(name, "volume").to_owned())
        .collect();
    for name in compose.service_names() {
        for volume in volumes_of(compose.service(&name), &name) {
            let source = volume.split(':').next().unwrap();
            if let Some(relative) = source.strip_prefix("../") {
                assert!(repo_path(relative).exists(), "{name} mounts {source}, which does not exist");
            } else if !source.starts_with('/') {
                assert!(declared.contains(&source.to_owned()), "{name} uses undeclared volume {source}");
            }
        }
        if let Some(build) = compose.service(&name)["build"].as_mapping() {
            // Contexts are relative to compose/: `..` is the repository root.
            let context = text(build.get("context").expect("build context"), "context");
            let context_in_repo = match context {
                ".." => String::new(),
                other => format!("{}/", other.strip_prefix("../").expect("a context inside the repository")),
            };
            let dockerfile = build.get("dockerfile").map_or("Dockerfile", |file| text(file, "dockerfile"));
            let path = format!("{context_in_repo}{dockerfile}");
            assert!(repo_path(&path).exists(), "{name}: no {path}");
        }
    }
}
