//! Test harness shared by the integration tests (`mod support;`): real
//! MariaDB and Redis servers on 127.0.0.1 ephemeral ports, each with its own
//! temporary directory, stopped by PID when dropped.
//!
//! Every test binary uses a different subset of these helpers, so unused
//! items and re-exports are expected in any one of them.
#![allow(dead_code, unused_imports)]

mod daemon;
mod echo;
mod events;
mod mariadb;
mod metrics;
mod process;
mod redis;
mod relay;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

pub use daemon::{HAFRONT, HafrontRun};
pub use echo::{EchoServer, TRAILER, assert_echoed};
pub use events::{mysql_health, mysql_pool_config};
pub use mariadb::{
    CHECK_PASSWORD, CHECK_USER, MariaDb, MariaDbOptions, REPLICATION_PASSWORD, REPLICATION_USER,
    replication_pair,
};
pub use metrics::{sample, scrape};
pub use process::ServerProcess;
pub use redis::{Redis, RedisOptions};
pub use relay::relay_config;

/// Skips (the rest of) the calling test for `why`; under `HAFRONT_REQUIRE_EVERY_TEST` (set
/// by `test.sh`) the skip is a failure.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("HAFRONT_REQUIRE_EVERY_TEST").is_none(),
        "cannot run: {why} (HAFRONT_REQUIRE_EVERY_TEST is set, so this is a failure)"
    );
    eprintln!("skipped: {why}");
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Servers that cannot
/// bind port 0 themselves use it; their start retries on a lost race.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port on 127.0.0.1")
        .port()
}

/// An address on 127.0.0.1 where nothing listens (a port that was just freed).
pub fn closed_address() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` if it
/// does not within `timeout`. Returns how long it took.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
