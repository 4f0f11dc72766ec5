//! The Grafana dashboard (`dist/grafana/hafront-dashboard.json`) queries only what a live
//! daemon publishes: every metric named in a query is a family of a real `/metrics` scrape,
//! and every label a selector names is one of that family's labels.

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

/// The `hafront_*` metric names in `query`, each with the label names its selector uses.
fn selectors(query: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("hafront_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let (name, after) = tail.split_at(end);
        let mut labels = Vec::new();
        if let Some(inside) = after.strip_prefix('{') {
            let inside = &inside[..inside.find('}').expect("a closed selector")];
            for matcher in inside.split(',') {
                let label = matcher
                    .split(['=', '!'])
                    .next()
                    .expect("a label name")
                    .trim();
                labels.push(label.to_owned());
            }
        }
        found.push((name.to_owned(), labels));
        rest = after;
    }
    found
}

/// The families of a scrape (`# TYPE` lines) with the label names their samples carry.
fn families(scrape: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut families: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in scrape.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let name = typed.split_whitespace().next().expect("a family name");
            families.entry(name.to_owned()).or_default();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).expect("a sample");
            let labels = families
                .get_mut(&line[..name_end])
                .unwrap_or_else(|| panic!("a sample before its # TYPE line: {line}"));
            if let Some(inside) = line[name_end..].strip_prefix('{') {
                for pair in inside.split("\",") {
                    labels.insert(pair.split('=').next().expect("a label").to_owned());
                }
            }
        }
    }
    families
}

#[test]
fn every_metric_the_dashboard_queries_is_in_a_live_scrape() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "hafront");
    let queries = queries(&dashboard);
    let used: Vec<(String, Vec<String>)> = queries.iter().flat_map(|q| selectors(q)).collect();
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
    let published = families(&live);
    for (name, labels) in &used {
        let family_labels = published
            .get(name)
            .unwrap_or_else(|| panic!("the dashboard queries {name}, not in a scrape:\n{live}"));
        if family_labels.is_empty() {
            continue; // no sample here (no VRRP instance, no failover yet): labels unknown
        }
        for label in labels {
            assert!(
                TARGET_LABELS.contains(&label.as_str()) || family_labels.contains(label),
                "the dashboard selects {name} by {label:?}; its labels are {family_labels:?}"
            );
        }
    }
    eprintln!(
        "{} metrics queried, all in a scrape of {} families",
        names.len(),
        published.len()
    );
    daemon.stop(Duration::from_secs(10));
}

#[test]
fn selectors_and_families_are_read_as_prometheus_writes_them() {
    assert_eq!(
        selectors("rate(hafront_a_total{instance=~\"$node\", state!=\"x\"}[5m]) / hafront_b"),
        [
            (
                "hafront_a_total".to_owned(),
                vec!["instance".to_owned(), "state".to_owned()]
            ),
            ("hafront_b".to_owned(), vec![]),
        ]
    );
    let scraped = families(
        "# HELP hafront_a A.\n# TYPE hafront_a gauge\nhafront_a{pool=\"p,q\",server=\"s\"} 1\n\
         # HELP hafront_b B.\n# TYPE hafront_b counter\n",
    );
    assert_eq!(
        scraped["hafront_a"],
        BTreeSet::from(["pool".to_owned(), "server".to_owned()])
    );
    assert!(scraped["hafront_b"].is_empty());
}
