//! The Grafana dashboard (`dist/grafana/hafront-dashboard.json`) queries only what a live
//! daemon publishes: every metric named in a query is a family of a real `/metrics` scrape.
//! The labels and values its selectors use are checked against that scrape and, for the
//! families a test daemon cannot fill (VRRP without an interface, failover without a
//! failover), against the same daemon's status with a VRRP instance and a failover added,
//! rendered by the daemon's own exposition code.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::{HafrontRun, closed_address, free_port, scrape};

const DASHBOARD: &str = include_str!("../dist/grafana/hafront-dashboard.json");

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Every PromQL expression of the dashboard: panel queries, annotations and variables.
fn queries(dashboard: &Value) -> Vec<String> {
    fn collect(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "query" | "definition", Value::String(query)) => {
                            found.push(query.clone())
                        }
                        _ => collect(value, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    collect(dashboard, &mut found);
    found
}

/// A label matcher of a selector: label, operator, value.
type Matcher = (String, String, String);

/// The `hafront_*` metric names in `query`, each with the matchers of its selector.
fn selectors(query: &str) -> Vec<(String, Vec<Matcher>)> {
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("hafront_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let (name, after) = tail.split_at(end);
        let mut matchers = Vec::new();
        if let Some(inside) = after.strip_prefix('{') {
            let inside = &inside[..inside.find('}').expect("a closed selector")];
            for matcher in inside.split(',') {
                let operator_at = matcher.find(['=', '!']).expect("an operator");
                let (label, rest) = matcher.split_at(operator_at);
                let value_at = rest.find('"').expect("a quoted value");
                let (operator, value) = rest.split_at(value_at);
                matchers.push((
                    label.trim().to_owned(),
                    operator.trim().to_owned(),
                    value.trim_matches('"').to_owned(),
                ));
            }
        }
        found.push((name.to_owned(), matchers));
        rest = after;
    }
    found
}

/// A family of a scrape: how many samples, and their label names with the values seen.
#[derive(Debug, Default, PartialEq)]
struct Family {
    samples: usize,
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// The families of a scrape (`# TYPE` lines) and their samples.
fn families(scrape: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in scrape.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let name = typed.split_whitespace().next().expect("a family name");
            families.entry(name.to_owned()).or_default();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).expect("a sample");
            let family = families
                .get_mut(&line[..name_end])
                .unwrap_or_else(|| panic!("a sample before its # TYPE line: {line}"));
            family.samples += 1;
            let mut rest = &line[name_end..];
            // Pairs `name="value"`, values with `\"` escapes, up to the closing brace.
            while let Some(pair) = rest.strip_prefix(['{', ',']) {
                let (label, quoted) = pair.split_once("=\"").expect("label=\"value\"");
                let mut value = String::new();
                let mut characters = quoted.char_indices();
                let end = loop {
                    match characters.next().expect("a closing quote") {
                        (_, '\\') => value.extend(characters.next().map(|(_, c)| c)),
                        (at, '"') => break at,
                        (_, c) => value.push(c),
                    }
                };
                family
                    .labels
                    .entry(label.to_owned())
                    .or_default()
                    .insert(value);
                rest = &quoted[end + 1..];
            }
        }
    }
    families
}

/// Checks the selectors in `used` against the families of `published`: every metric is
/// published; where a family has samples, every label is one of theirs (or one Prometheus
/// adds) and every `=` value one they carry. With `need_samples`, every family must have them.
fn check_against(
    used: &[(String, Vec<Matcher>)],
    published: &BTreeMap<String, Family>,
    need_samples: bool,
    what: &str,
) {
    for (name, matchers) in used {
        let family = published
            .get(name)
            .unwrap_or_else(|| panic!("the dashboard queries {name}, not in {what}"));
        let labels = &family.labels;
        if family.samples == 0 {
            assert!(!need_samples, "no sample of {name} in {what}");
            continue; // no sample here: labels unknown
        }
        for (label, operator, value) in matchers {
            if TARGET_LABELS.contains(&label.as_str()) {
                continue;
            }
            let values = labels.get(label).unwrap_or_else(|| {
                panic!(
                    "the dashboard selects {name} by {label:?}; its labels in {what}: {labels:?}"
                )
            });
            if operator == "=" {
                assert!(
                    values.contains(value),
                    "the dashboard selects {name}{{{label}=\"{value}\"}}; {what} has {values:?}"
                );
            }
        }
    }
}

#[test]
fn every_metric_the_dashboard_queries_is_in_a_live_scrape() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "hafront");
    let queries = queries(&dashboard);
    let used: Vec<(String, Vec<Matcher>)> = queries.iter().flat_map(|q| selectors(q)).collect();
    let names: BTreeSet<&str> = used.iter().map(|(name, _)| name.as_str()).collect();
    // What the dashboard is for: VRRP state per node, servers up/down and role, relay
    // connections and refusals, the alert queue and failover events.
    for topic in [
        "hafront_vrrp_state",
        "hafront_server_up",
        "hafront_server_primary",
        "hafront_relay_connections",
        "hafront_relay_refused_total",
        "hafront_alerts_queued_mails",
        "hafront_failover_steps_total",
    ] {
        assert!(names.contains(topic), "the dashboard does not show {topic}");
    }
    // Every panel reads the dashboard's Prometheus variable.
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        }
    }

    // A live daemon: a pool with a server (down: nothing listens), a relay, metrics.
    let dir = tempfile::tempdir().expect("temp dir");
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let relay = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = dir.path().join("hafront.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  node: dashboard-test\n  state_dir: {state}\n  control_socket: {socket}\n  metrics: {metrics}\n\
             checks:\n  tcp: {{ kind: tcp, interval: 200ms, timeout: 100ms }}\n\
             pools:\n  db:\n    check: tcp\n    servers: [{{ name: db-a, address: {server} }}]\n\
             relays:\n  front: {{ listen: [{relay}], pool: db }}\n",
            state = dir.path().join("state").display(),
            socket = dir.path().join("control.sock").display(),
            server = closed_address(),
        ),
    )
    .expect("write the config");
    let daemon = HafrontRun::spawn(&config, dir.path().join("daemon.log"), &[]);
    let mut live = String::new();
    for _ in 0..250 {
        if std::net::TcpStream::connect(metrics).is_ok() {
            live = scrape(metrics);
            // Wait for the first probe, so the server families carry their labels.
            if live.contains("hafront_server_check_ok{") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        live.contains("hafront_server_check_ok{"),
        "no probe within 5 s; last scrape:\n{live}\nlog:\n{}",
        daemon.log()
    );
    check_against(&used, &families(&live), false, "a live scrape");

    // The same daemon's status with what it cannot have here: a VRRP instance, a pool
    // that failed over and a direct-routing relay (it needs root and an interface).
    let socket = dir.path().join("control.sock");
    let mut status = match hafront::control::request(&socket, &hafront::control::Request::Status) {
        Ok(hafront::control::Response::Status(status)) => status,
        other => panic!("no status from the daemon: {other:?}"),
    };
    status.vrrp.push(hafront::control::InstanceStatus {
        name: "front".to_owned(),
        state: hafront::control::InstanceState::Master,
        priority: 150,
        effective_priority: 150,
        master: None,
        since: std::time::SystemTime::now(),
        adverts_sent: 10,
        adverts_received: 0,
        dropped: BTreeMap::from([("bad_ttl".to_owned(), 1)]),
    });
    status.replication.insert(
        "db".to_owned(),
        hafront_failover::Topology {
            primary: Some("db-a".to_owned()),
            blocked_until: Some(1),
            servers: vec![hafront_failover::ServerReplication {
                name: "db-a".to_owned(),
                lag_seconds: Some(0),
                ..Default::default()
            }],
            steps: BTreeMap::from([("promoted".to_owned(), 1)]),
            ..Default::default()
        },
    );
    status.direct.push(hafront::control::DirectRelayStatus {
        name: "mysql-dr".to_owned(),
        pool: "db".to_owned(),
        interface: "eth0".to_owned(),
        hook: "xdp_generic".to_owned(),
        listen: vec!["10.0.0.100:3306".parse().expect("address")],
        attached: true,
        problem: None,
        servers: vec![hafront::control::DirectServerStatus {
            name: "db-a".to_owned(),
            address: "10.0.0.11".parse().expect("address"),
            local: false,
            forwarding: true,
            packets: 10,
            bytes: 1000,
            flows: 1,
        }],
    });
    let rendered = hafront::metrics::render(&status);
    check_against(&used, &families(&rendered), true, "the rendered status");
    eprintln!("{} metrics queried, all published", names.len());
    daemon.stop(Duration::from_secs(10));
}

#[test]
fn selectors_and_families_are_read_as_prometheus_writes_them() {
    let matcher = |label: &str, operator: &str, value: &str| {
        (label.to_owned(), operator.to_owned(), value.to_owned())
    };
    assert_eq!(
        selectors("rate(hafront_a_total{instance=~\"$node\", state!=\"x\"}[5m]) / hafront_b"),
        [
            (
                "hafront_a_total".to_owned(),
                vec![
                    matcher("instance", "=~", "$node"),
                    matcher("state", "!=", "x")
                ]
            ),
            ("hafront_b".to_owned(), vec![]),
        ]
    );
    let scraped = families(
        "# HELP hafront_a A.\n# TYPE hafront_a gauge\nhafront_a{pool=\"p,\\\"q\",server=\"s\"} 1\n\
         # HELP hafront_b B.\n# TYPE hafront_b counter\n",
    );
    assert_eq!(
        scraped["hafront_a"],
        Family {
            samples: 1,
            labels: BTreeMap::from([
                ("pool".to_owned(), BTreeSet::from(["p,\"q".to_owned()])),
                ("server".to_owned(), BTreeSet::from(["s".to_owned()])),
            ])
        }
    );
    assert_eq!(scraped["hafront_b"], Family::default());
}
