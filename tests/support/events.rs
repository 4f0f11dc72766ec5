//! Configs and health events for the alert and notify tests: one pool
//! `mysql` of `db1` (127.0.0.1:3306) and `db2` (127.0.0.1:3307).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use hafront_config::{Alerts, Config, Global, Notify, Pool, Server, Vrrp};
use hafront_health::{HealthEvent, Status};

/// The loopback port of `db1` (3306) or any other server (3307).
fn mysql_port(server: &str) -> u16 {
    if server == "db1" { 3306 } else { 3307 }
}

/// A config with `global`, `alerts` and `notify`, and the pool `mysql`
/// (check `mysql`) of `db1` and `db2`.
pub fn mysql_pool_config(global: Global, alerts: Alerts, notify: Vec<Notify>) -> Config {
    let server = |name: &str| Server {
        name: Some(name.into()),
        address: SocketAddr::from(([127, 0, 0, 1], mysql_port(name))),
        weight: 1,
        backup: false,
    };
    Config {
        global,
        checks: BTreeMap::new(),
        pools: BTreeMap::from([(
            "mysql".to_owned(),
            Pool {
                check: "mysql".into(),
                servers: vec![server("db1"), server("db2")],
                failover: None,
            },
        )]),
        relays: BTreeMap::new(),
        vrrp: Vrrp::default(),
        alerts,
        notify,
        quorum: None,
    }
}

/// `server` of pool `mysql` going from `old` to `new` for `reason`.
pub fn mysql_health(
    server: &str,
    old: Status,
    new: Status,
    reason: &str,
    at: SystemTime,
) -> HealthEvent {
    HealthEvent {
        pool: "mysql".into(),
        server: server.into(),
        address: SocketAddr::from(([127, 0, 0, 1], mysql_port(server))),
        old,
        new,
        role: None,
        reason: reason.into(),
        at,
    }
}
