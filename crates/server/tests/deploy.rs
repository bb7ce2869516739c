//! The shipped deployment (deploy/), checked as far as a machine without a container
//! engine can: the compose file gives every chat node what a clustered node needs,
//! takes every secret from the env file and defaults none, has a health check on
//! every service and starts the nodes only once their dependencies are healthy, and
//! the committed example env file cannot go live as it is. The test command also runs
//! `docker-compose config` on it (scripts/test).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chat_server::config::is_placeholder;
use yaml_rust2::{Yaml, YamlLoader};

/// What a chat node of a cluster behind the shipped nginx must be told (README,
/// "Configure"): the three shared services, the one signing key of every node, the
/// origin users open, the cookie flag for HTTPS, and that nginx's address is the
/// client's.
const REQUIRED: [&str; 8] = [
    "CHAT_DATABASE_URL",
    "CHAT_REDIS_URL",
    "CHAT_KAFKA_BROKERS",
    "CHAT_JWT_SECRET",
    "CHAT_ALLOWED_ORIGINS",
    "CHAT_COOKIE_SECURE",
    "CHAT_TRUST_FORWARDED_FOR",
    "CHAT_TRUSTED_PROXY_HOPS",
];

/// The services a node cannot work without, by their names in the compose file.
const DEPENDENCIES: [&str; 3] = ["postgres", "redis", "kafka"];

fn deploy_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn compose_text() -> String {
    deploy_file("docker-compose.yml")
}

fn compose() -> Yaml {
    YamlLoader::load_from_str(&compose_text())
        .expect("the compose file is YAML")
        .into_iter()
        .next()
        .expect("one document")
}

fn services(doc: &Yaml) -> BTreeMap<String, Yaml> {
    doc["services"]
        .as_hash()
        .expect("a services mapping")
        .iter()
        .map(|(name, service)| (name.as_str().expect("a name").to_owned(), service.clone()))
        .collect()
}

/// The services built from the chat image.
fn chat_nodes(doc: &Yaml) -> BTreeMap<String, Yaml> {
    services(doc)
        .into_iter()
        .filter(|(_, s)| s["build"]["dockerfile"].as_str() == Some("deploy/Dockerfile"))
        .collect()
}

fn environment(service: &Yaml) -> BTreeMap<String, String> {
    let Some(env) = service["environment"].as_hash() else {
        return BTreeMap::new();
    };
    env.iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                Yaml::Boolean(b) => b.to_string(),
                other => panic!("environment value {other:?}"),
            };
            (k.as_str().expect("a variable name").to_owned(), value)
        })
        .collect()
}

/// The compose file without its comments (the commented three-broker variant).
fn uncommented(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `${NAME…}` interpolation: the name and what follows it up to `}`.
fn interpolations(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').expect("an interpolation is closed");
        let inner = &after[..end];
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        found.push((inner[..name_len].to_owned(), inner[name_len..].to_owned()));
        rest = &after[end..];
    }
    found
}

fn is_secret(name: &str) -> bool {
    ["SECRET", "PASSWORD", "KEY", "TOKEN"]
        .iter()
        .any(|word| name.contains(word))
}

fn example_env() -> BTreeMap<String, String> {
    deploy_file(".env.example")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (k, v) = line.split_once('=').expect("KEY=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn every_chat_node_is_given_what_a_clustered_node_needs() {
    let doc = compose();
    let nodes = chat_nodes(&doc);
    assert!(
        nodes.len() >= 2,
        "a cluster of at least two nodes: {nodes:?}"
    );
    for (name, node) in &nodes {
        let env = environment(node);
        for variable in REQUIRED {
            let value = env.get(variable).map(String::as_str).unwrap_or_default();
            assert!(!value.trim().is_empty(), "{name} lacks {variable}");
        }
        assert_eq!(env["CHAT_TRUST_FORWARDED_FOR"], "true");
        assert!(env["CHAT_KAFKA_BROKERS"].contains("kafka"));
    }
    // Every node signs with the same key and talks to the same services.
    let first = environment(nodes.values().next().expect("a node"));
    for node in nodes.values() {
        let env = environment(node);
        for variable in ["CHAT_JWT_SECRET", "CHAT_DATABASE_URL", "CHAT_KAFKA_BROKERS"] {
            assert_eq!(
                env[variable], first[variable],
                "{variable} differs between nodes"
            );
        }
    }
}

#[test]
fn no_secret_has_a_default_or_a_value_in_the_compose_file() {
    let text = uncommented(&compose_text());
    let found = interpolations(&text);
    assert!(!found.is_empty());
    for (name, rest) in &found {
        assert!(
            rest.starts_with(":?"),
            "${{{name}{rest}}}: every variable from the env file is required (`:?`), none has a default"
        );
    }
    let doc = compose();
    for (service, definition) in services(&doc) {
        for (variable, value) in environment(&definition) {
            if is_secret(&variable) {
                assert!(
                    value.starts_with("${") && value.ends_with('}') && !value[2..].contains("${"),
                    "{service}: {variable} must come whole from the env file, not `{value}`"
                );
            }
        }
    }
    // The database password inside the URL comes from the env file too.
    for (name, node) in chat_nodes(&doc) {
        let url = &environment(&node)["CHAT_DATABASE_URL"];
        assert!(
            url.contains("${POSTGRES_PASSWORD:?"),
            "{name}: the database URL's password is not from the env file: {url}"
        );
    }
}

#[test]
fn every_service_has_a_health_check_and_the_nodes_wait_for_theirs() {
    let doc = compose();
    let all = services(&doc);
    for dependency in DEPENDENCIES {
        assert!(all.contains_key(dependency), "no `{dependency}` service");
    }
    for (name, service) in &all {
        let test = &service["healthcheck"]["test"];
        assert!(
            test.as_vec().is_some_and(|argv| argv.len() > 1),
            "{name} has no health check"
        );
        assert_eq!(
            service["restart"].as_str(),
            Some("unless-stopped"),
            "{name} has no restart policy"
        );
    }
    for (name, node) in chat_nodes(&doc) {
        for dependency in DEPENDENCIES {
            assert_eq!(
                node["depends_on"][dependency]["condition"].as_str(),
                Some("service_healthy"),
                "{name} starts before {dependency} is healthy"
            );
        }
        let probe: Vec<&str> = node["healthcheck"]["test"]
            .as_vec()
            .expect("a health check")
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert!(
            probe.iter().any(|arg| arg.ends_with("/readyz")),
            "{name}'s health check must be readiness (every dependency up): {probe:?}"
        );
    }
    // The proxy waits for the nodes.
    let lb = &all["lb"];
    for node in chat_nodes(&doc).keys() {
        assert_eq!(
            lb["depends_on"][node.as_str()]["condition"].as_str(),
            Some("service_healthy")
        );
    }
}

#[test]
fn what_the_services_keep_is_on_named_volumes() {
    let doc = compose();
    let declared: BTreeSet<&str> = doc["volumes"]
        .as_hash()
        .expect("named volumes")
        .keys()
        .filter_map(Yaml::as_str)
        .collect();
    let all = services(&doc);
    for (service, data_dir) in [
        ("postgres", "/var/lib/postgresql/data"),
        ("redis", "/data"),
        ("kafka", "/var/lib/kafka/data"),
    ] {
        let mounts: Vec<&str> = all[service]["volumes"]
            .as_vec()
            .expect("volumes")
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        let volume = mounts
            .iter()
            .find_map(|m| m.strip_suffix(&format!(":{data_dir}")))
            .unwrap_or_else(|| panic!("{service} keeps {data_dir} on no volume: {mounts:?}"));
        assert!(declared.contains(volume), "{volume} is not a named volume");
    }
    // Kafka writes where the volume is.
    assert_eq!(
        environment(&all["kafka"])["KAFKA_LOG_DIRS"],
        "/var/lib/kafka/data"
    );
}

#[test]
fn the_example_env_file_sets_every_variable_yet_cannot_go_live_as_it_is() {
    let example = example_env();
    for (name, _) in interpolations(&uncommented(&compose_text())) {
        assert!(
            example.contains_key(&name),
            "deploy/.env.example does not set {name}"
        );
    }
    for (name, value) in &example {
        if is_secret(name) {
            assert!(
                is_placeholder(value),
                "{name} in the example must be a placeholder, never a usable secret"
            );
        }
    }
    assert_eq!(example["CHAT_COOKIE_SECURE"], "true");
}

#[test]
fn nginx_and_the_nodes_agree_on_whose_address_counts() {
    let nginx = deploy_file("nginx.conf");
    // nginx appends the peer it saw, one hop: the node takes the rightmost entry.
    assert!(nginx.contains("X-Forwarded-For $proxy_add_x_forwarded_for"));
    // The nodes cannot count connections per client behind it, so nginx must.
    assert!(nginx.contains("limit_conn_zone $binary_remote_addr"));
    assert!(nginx.contains("limit_conn per_address"));
    assert!(nginx.contains("client_header_timeout") && nginx.contains("client_body_timeout"));
    for node in chat_nodes(&compose()).values() {
        assert_eq!(environment(node)["CHAT_TRUSTED_PROXY_HOPS"], "1");
    }
}
