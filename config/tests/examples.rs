//! The shipped example configurations are valid, and say what they claim.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hafront_config::{CheckKind, Config, ParseOptions, Policy, RelayMode, Role, parse, parse_with};

fn example_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Parses an example with every check but the files': the secret and key
/// files it names exist only on the machines it is written for.
fn example(name: &str) -> Config {
    let path = example_path(name);
    let text = std::fs::read_to_string(&path).expect("read example");
    parse_with(&text, name, ParseOptions { check_files: false })
        .unwrap_or_else(|errors| panic!("{name} is invalid:\n{errors}"))
}

#[test]
fn every_example_is_listed_here() {
    let mut names: Vec<String> = std::fs::read_dir(example_path(""))
        .expect("list examples")
        .map(|entry| {
            entry
                .expect("example entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "encrypted-link.yaml",
            "mysql-failover.yaml",
            "mysql-pair.yaml",
            "single-node.yaml",
            "two-node-front.yaml"
        ]
    );
}

#[test]
fn examples_fail_only_on_files_absent_from_this_machine() {
    for name in [
        "encrypted-link.yaml",
        "mysql-failover.yaml",
        "mysql-pair.yaml",
        "single-node.yaml",
        "two-node-front.yaml",
    ] {
        let text = std::fs::read_to_string(example_path(name)).expect("read example");
        let errors = parse(&text, name).expect_err("the example secrets are not installed here");
        for error in &errors {
            // Secrets under /etc/hafront and scripts under /usr/local/lib/hafront
            // belong to a real deployment, not to this machine.
            let absent_secret = error.message.starts_with("cannot use /etc/hafront/");
            let absent_script = error.message.starts_with("/usr/local/lib/hafront/");
            assert!(
                (absent_secret || absent_script) && error.message.contains("No such file"),
                "{name}: unexpected error {error}"
            );
        }
    }
}

#[test]
fn single_node_writes_to_the_primary_and_reads_from_both() {
    let config = example("single-node.yaml");
    assert!(config.vrrp.instances.is_empty());
    let write = &config.relays["mysql-write"];
    assert_eq!(
        (write.policy, write.role),
        (Policy::First, Some(Role::Primary))
    );
    let read = &config.relays["mysql-read"];
    assert_eq!((read.policy, read.role), (Policy::RoundRobin, None));
    assert_eq!(read.pool, write.pool);
    assert_eq!(config.pools[&read.pool].servers.len(), 2);
    assert!(matches!(
        config.checks[&config.pools[&write.pool].check].kind,
        CheckKind::Mysql(ref mysql) if mysql.role
    ));
    assert!(matches!(
        config.checks[&config.pools[&config.relays["redis"].pool].check].kind,
        CheckKind::Redis(_)
    ));
}

#[test]
fn two_node_front_shares_a_vip_by_vrrp_v3() {
    let config = example("two-node-front.yaml");
    let instance = &config.vrrp.instances["front"];
    assert_eq!(instance.version, 3);
    assert_eq!(instance.advert_interval, Duration::from_millis(100));
    let vip = instance.virtual_addresses[0].addr();
    for relay in config.relays.values() {
        assert!(
            relay.listen.iter().all(|address| address.ip() == vip),
            "{relay:?}"
        );
    }
}

#[test]
fn mysql_pair_tracks_its_server_and_fails_over_co_located() {
    let config = example("mysql-pair.yaml");
    let instance = &config.vrrp.instances["mysql"];
    assert_eq!(instance.track[0].server.as_deref(), Some("db/db-a"));
    assert_eq!(instance.track[0].weight, None, "a dead server means FAULT");
    assert!(
        !instance.preempt,
        "the old primary must not take the VIP back"
    );
    assert!(config.relays.is_empty());
    assert!(
        config.notify.is_empty(),
        "no promotion script: failover is built in"
    );
    let failover = config.pools["db"]
        .failover
        .as_ref()
        .expect("failover block");
    assert_eq!(
        (failover.vrrp.as_deref(), failover.local.as_deref()),
        (Some("mysql"), Some("db-a"))
    );
    let email = config.alerts.email.as_ref().expect("mail alerts");
    assert_eq!(email.to.len(), 2);
}

#[test]
fn mysql_failover_runs_on_the_front_holding_the_vip() {
    let config = example("mysql-failover.yaml");
    let pool = &config.pools["mysql"];
    let failover = pool.failover.as_ref().expect("failover block");
    assert_eq!(failover.vrrp.as_deref(), Some("front"));
    assert_eq!(failover.local, None);
    assert_eq!(pool.servers.len(), 3);
    let write = &config.relays["mysql-write"];
    assert_eq!(
        (write.pool.as_str(), write.role),
        ("mysql", Some(Role::Primary))
    );
    assert!(matches!(
        config.checks[&pool.check].kind,
        CheckKind::Mysql(ref mysql) if mysql.role
    ));
}

#[test]
fn encrypted_link_encrypts_towards_the_other_datacenter() {
    let config = example("encrypted-link.yaml");
    let relay = &config.relays["replication"];
    let RelayMode::SpipedEncrypt(spiped) = &relay.mode else {
        panic!("expected spiped_encrypt, got {:?}", relay.mode);
    };
    assert_eq!(
        spiped.key_file,
        Path::new("/etc/hafront/keys/replication.key")
    );
    assert!(relay.listen[0].ip().is_loopback());
}
