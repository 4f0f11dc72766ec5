//! The `hafront` binary end to end: `check` on good and bad files, and
//! `run` in front of a real MariaDB primary/replica pair — the write relay
//! follows the writable server, reads spread over both, a dead server gets
//! no clients, SIGHUP reloads without dropping connections and a bad reload
//! keeps the running configuration.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use nix::sys::signal::Signal;
use support::{
    CHECK_PASSWORD, CHECK_USER, HAFRONT, HafrontRun, MariaDb, closed_address, free_port,
    replication_pair, wait_for,
};
use tempfile::TempDir;

/// A `hafront run` process at `RUST_LOG=info`, owned by the test.
struct Daemon(HafrontRun);

impl Daemon {
    fn start(config: &Path, log: PathBuf) -> Daemon {
        Daemon(HafrontRun::spawn(config, log, &[("RUST_LOG", "info")]))
    }

    fn signal(&self, signal: Signal) {
        self.0.signal(signal);
    }

    fn log(&self) -> String {
        self.0.log()
    }

    /// Sends SIGTERM and returns the exit code (open connections get the default 5 s
    /// `stop_grace`, so up to 10 s).
    fn stop(self) -> Option<i32> {
        self.0.stop(Duration::from_secs(10))
    }
}

fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("hafront.yaml");
    fs::write(&path, text).expect("write config");
    path
}

/// The first part of every config here: paths inside the test's own dir.
fn global(dir: &TempDir) -> String {
    format!(
        "global:\n  node: test\n  state_dir: {state}\n  control_socket: {state}/control.sock\n",
        state = dir.path().display()
    )
}

/// Login as the check user through `relay`, over TCP.
fn client_opts(relay: SocketAddr) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(relay.ip().to_string())
        .tcp_port(relay.port())
        .prefer_socket(false)
        .user(Some(CHECK_USER))
        .pass(Some(CHECK_PASSWORD))
}

/// `SELECT @@server_id` over a fresh connection through `relay`.
async fn server_id_through(relay: SocketAddr) -> Result<u32, mysql_async::Error> {
    let mut conn = mysql_async::Conn::new(client_opts(relay)).await?;
    let id: Option<u32> = conn.query_first("SELECT @@server_id").await?;
    conn.disconnect().await?;
    Ok(id.expect("a server id"))
}

#[test]
fn check_prints_ok_or_every_error_with_its_location() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = write_config(
        &dir,
        "checks:\n  tcp: { kind: tcp }\npools:\n  web:\n    check: tcp\n    servers:\n      - address: 127.0.0.1:80\n",
    );
    let output = Command::new(HAFRONT)
        .args(["check", "-c"])
        .arg(&good)
        .output()
        .expect("run hafront check");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "OK");

    let bad = write_config(
        &dir,
        "checks:\n  tcp: { kind: tcp, interval: soon }\npools:\n  web:\n    check: tpc\n    servers: []\n",
    );
    let output = Command::new(HAFRONT)
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .expect("run hafront check");
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = errors.lines().collect();
    assert!(lines.len() >= 2, "every error reported, got: {errors}");
    let file = bad.display().to_string();
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&format!("{file}:2:")) && line.contains("interval")),
        "bad duration located on line 2: {errors}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&format!("{file}:5:")) && line.contains("tpc")),
        "unknown check located on line 5: {errors}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_follow_the_writable_mysql_and_skip_dead_servers() {
    let (primary, mut replica) = replication_pair().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (write, read) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    let config = write_config(
        &dir,
        &format!(
            "{global}checks:
  mysql:
    kind: mysql
    user: {CHECK_USER}
    password: {{ value: {CHECK_PASSWORD} }}
    role: true
    interval: 200ms
    timeout: 200ms
    rise: 2
    fall: 2
pools:
  db:
    check: mysql
    servers:
      - {{ name: one, address: {one} }}
      - {{ name: two, address: {two} }}
relays:
  write:
    listen: [{write}]
    pool: db
    policy: first
    role: primary
    on_server_down: close
  read:
    listen: [{read}]
    pool: db
",
            global = global(&dir),
            one = primary.address(),
            two = replica.address(),
        ),
    );
    let daemon = Daemon::start(&config, dir.path().join("daemon.log"));

    wait_for(
        "the write relay to reach the primary",
        Duration::from_secs(10),
        || async { server_id_through(write).await.ok() == Some(1) },
    )
    .await;
    wait_for(
        "both servers up for reads",
        Duration::from_secs(10),
        || async {
            let mut seen = [false; 2];
            for _ in 0..4 {
                if let Ok(id) = server_id_through(read).await {
                    seen[id as usize - 1] = true;
                }
            }
            seen == [true, true]
        },
    )
    .await;
    let mut counts = [0; 2];
    for _ in 0..20 {
        let id = server_id_through(read)
            .await
            .expect("read through the relay");
        counts[id as usize - 1] += 1;
    }
    assert_eq!(counts, [10, 10], "round-robin over both servers");

    // Swap roles as a failover script would: the write relay follows.
    primary.execute("SET GLOBAL read_only = ON").await;
    replica
        .execute_all(&["STOP SLAVE", "SET GLOBAL read_only = OFF"])
        .await;
    let moved = wait_for(
        "the write relay to follow the new primary",
        Duration::from_secs(5),
        || async { server_id_through(write).await.ok() == Some(2) },
    )
    .await;
    assert!(
        moved < Duration::from_secs(2),
        "role change seen within a few intervals: {moved:?}"
    );

    // The new primary dies: no server qualifies for writes, reads go to the survivor.
    replica.kill();
    wait_for(
        "the dead server to leave the read relay",
        Duration::from_secs(5),
        || async {
            let mut all_one = true;
            for _ in 0..4 {
                all_one &= server_id_through(read).await.ok() == Some(1);
            }
            all_one
        },
    )
    .await;
    assert!(
        server_id_through(write).await.is_err(),
        "with no writable server the write relay closes clients at once"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_connections_and_a_bad_file_keeps_the_old_config() {
    let server = MariaDb::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    let body = |relays: &str| {
        format!(
            "{global}checks:\n  tcp: {{ kind: tcp, interval: 100ms, timeout: 100ms }}\n\
             pools:\n  db:\n    check: tcp\n    servers:\n      - address: {address}\n\
             relays:\n{relays}",
            global = global(&dir),
            address = server.address(),
        )
    };
    let one_relay = format!("  first:\n    listen: [{first}]\n    pool: db\n");
    let config = write_config(&dir, &body(&one_relay));
    let daemon = Daemon::start(&config, dir.path().join("daemon.log"));
    wait_for("the relay to serve", Duration::from_secs(10), || async {
        server_id_through(first).await.is_ok()
    })
    .await;

    // A MySQL session held open across both reloads.
    let mut held = mysql_async::Conn::new(client_opts(first))
        .await
        .expect("session through the relay");

    fs::write(&config, "relays: [this is not a map\n").expect("write a bad config");
    daemon.signal(Signal::SIGHUP);
    wait_for(
        "the refusal to be logged",
        Duration::from_secs(5),
        || async { daemon.log().contains("reload refused") },
    )
    .await;
    assert!(
        server_id_through(first).await.is_ok(),
        "old config still serves"
    );

    let two_relays = format!("{one_relay}  second:\n    listen: [{second}]\n    pool: db\n");
    fs::write(&config, body(&two_relays)).expect("write the new config");
    daemon.signal(Signal::SIGHUP);
    wait_for(
        "the added relay to serve",
        Duration::from_secs(10),
        || async { server_id_through(second).await.is_ok() },
    )
    .await;

    let id: Option<u32> = held
        .query_first("SELECT @@server_id")
        .await
        .expect("the session opened before both reloads still answers");
    assert_eq!(id, Some(1));
    assert!(
        !daemon.log().contains("relay stopped accepting"),
        "an unchanged relay is not restarted on reload:\n{}",
        daemon.log()
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn gateway_token_decrypts_with_openssl_and_refuses_addresses_off_the_allow_list_or_pool() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        &dir,
        "checks:\n  tcp: { kind: tcp }\npools:\n  any:\n    check: tcp\n    servers:\n      - address: 10.213.1.2:3306\n      - address: 192.0.2.1:3306\n\
         relays:\n  gw:\n    listen: [127.0.0.1:0]\n    pool: any\n    mode:\n      kind: gateway\n\
         \x20     secret: { value: correct-horse }\n      allow: [10.213.0.0/16]\n",
    );
    let output = Command::new(HAFRONT)
        .args(["gateway-token", "-c"])
        .arg(&config)
        .arg("10.213.1.2:3306")
        .output()
        .expect("run hafront gateway-token");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8 token");

    let mut openssl = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-256-cbc",
            "-a",
            "-A",
            "-salt",
            "-md",
            "md5",
        ])
        .args(["-pass", "pass:correct-horse"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    use std::io::Write as _;
    openssl
        .stdin
        .take()
        .expect("openssl stdin")
        .write_all(token.trim().as_bytes())
        .expect("feed the token");
    let decrypted = openssl.wait_with_output().expect("openssl output");
    assert!(decrypted.status.success(), "{decrypted:?}");
    assert_eq!(
        String::from_utf8_lossy(&decrypted.stdout),
        "10.213.1.2:3306"
    );

    let refused = Command::new(HAFRONT)
        .args(["gateway-token", "-c"])
        .arg(&config)
        .arg("192.0.2.1:3306")
        .output()
        .expect("run hafront gateway-token");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("192.0.2.1"));

    let outside_pool = Command::new(HAFRONT)
        .args(["gateway-token", "-c"])
        .arg(&config)
        .arg("10.213.1.3:3306")
        .output()
        .expect("run hafront gateway-token");
    assert_eq!(outside_pool.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&outside_pool.stderr).contains("not a server of pool any"),
        "{outside_pool:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_at_its_limit_alerts_once_not_once_per_client() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    // The kernel completes connections into the backlog: a server that never
    // reads is enough to hold relayed connections open.
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind server");
    let relay = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let events = dir.path().join("events");
    let script = dir.path().join("record.sh");
    fs::write(&script, "#!/bin/sh\necho \"$HAFRONT_EVENT\" >> \"$1\"\n").expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod script");
    let config = write_config(
        &dir,
        &format!(
            "{global}checks:\n  tcp: {{ kind: tcp, interval: 100ms, timeout: 100ms, fall: 15 }}\n\
             pools:\n  p:\n    check: tcp\n    servers:\n      - address: {server}\n\
             relays:\n  small:\n    listen: [{relay}]\n    pool: p\n    max_connections: 1\n\
             notify:\n  - command: [{script}, {events}]\n",
            global = global(&dir),
            server = server.local_addr().expect("server address"),
            script = script.display(),
            events = events.display(),
        ),
    );
    let daemon = Daemon::start(&config, dir.path().join("daemon.log"));
    let recorded = |name: &'static str| {
        let events = events.clone();
        move || {
            let text = fs::read_to_string(&events).unwrap_or_default();
            let count = text.lines().filter(|line| *line == name).count();
            async move { count }
        }
    };
    let server_up = recorded("server_up");
    wait_for("the server to be up", Duration::from_secs(10), || async {
        server_up().await == 1
    })
    .await;

    let _held = std::net::TcpStream::connect(relay).expect("first client");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = Vec::new();
    for _ in 0..5 {
        refused.push(std::net::TcpStream::connect(relay).expect("excess client"));
    }
    let saturated = recorded("relay_saturated");
    wait_for("the saturation alert", Duration::from_secs(5), || async {
        saturated().await >= 1
    })
    .await;
    // More refusals within the episode add no alert.
    for _ in 0..5 {
        refused.push(std::net::TcpStream::connect(relay).expect("excess client"));
    }
    // Each excess client is closed at once: the relay has counted every refusal.
    for stream in &mut refused {
        use std::io::Read as _;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let read = stream.read(&mut [0u8; 1]);
        assert!(
            matches!(&read, Ok(0))
                || read
                    .as_ref()
                    .is_err_and(|err| err.kind() == std::io::ErrorKind::ConnectionReset),
            "an excess client was not refused: {read:?}"
        );
    }
    // The server's failure takes 15 probes of 100 ms, longer than the saturation
    // check's period (1 s): a second alert for these refusals would be recorded
    // by the same script before it.
    drop(server);
    let server_down = recorded("server_down");
    wait_for("the server to be down", Duration::from_secs(10), || async {
        server_down().await == 1
    })
    .await;
    assert_eq!(saturated().await, 1, "one alert for the whole episode");
    assert!(daemon.log().contains("relay at its connection limit"));
    assert!(
        daemon.log().contains("at its limit of 1 connection event="),
        "singular: {}",
        daemon.log()
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_half_up_at_start_or_after_a_reload_raises_no_pool_event() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind server");
    let (up, down) = (server.local_addr().expect("address"), closed_address());
    let events = dir.path().join("events");
    let script = dir.path().join("record.sh");
    fs::write(
        &script,
        "#!/bin/sh\necho \"$HAFRONT_EVENT $HAFRONT_POOL $HAFRONT_OLD\" >> \"$1\"\n",
    )
    .expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod script");
    let text = |pools: &[&str]| {
        let pools: String = pools
            .iter()
            .map(|name| {
                format!(
                    "  {name}:\n    check: tcp\n    servers:\n      - {{ name: up, address: {up} }}\n      \
                     - {{ name: down, address: {down} }}\n"
                )
            })
            .collect();
        format!(
            "{global}checks:\n  tcp: {{ kind: tcp, interval: 100ms, timeout: 100ms }}\n\
             pools:\n{pools}notify:\n  - command: [{script}, {events}]\n",
            global = global(&dir),
            script = script.display(),
            events = events.display(),
        )
    };
    let recorded = || {
        let text = fs::read_to_string(&events).unwrap_or_default();
        text.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let seen = |wanted: &'static [&'static str]| {
        let recorded = &recorded;
        move || {
            let lines = recorded();
            let all = wanted
                .iter()
                .all(|want| lines.iter().any(|line| line.starts_with(want)));
            async move { all }
        }
    };
    let config = write_config(&dir, &text(&["a"]));
    let daemon = Daemon::start(&config, dir.path().join("daemon.log"));
    let first_verdicts = seen(&["server_up a", "server_down a"]);
    wait_for(
        "pool a's first verdicts",
        Duration::from_secs(10),
        first_verdicts,
    )
    .await;

    write_config(&dir, &text(&["a", "b"]));
    daemon.signal(Signal::SIGHUP);
    let added = seen(&["server_up b", "server_down b"]);
    wait_for(
        "added pool b's first verdicts",
        Duration::from_secs(10),
        added,
    )
    .await;

    // Alerts restarted by a reload (a notify change) still know both pools
    // are up: a real outage afterwards is reported, once per pool, from up.
    write_config(
        &dir,
        &text(&["a", "b"]).replace(
            &format!("{}]\n", events.display()),
            &format!("{}]\n    timeout: 5s\n", events.display()),
        ),
    );
    daemon.signal(Signal::SIGHUP);
    let restarted = || {
        let count = daemon.log().matches("configuration reloaded").count();
        async move { count == 2 }
    };
    wait_for(
        "the alerts-restarting reload",
        Duration::from_secs(10),
        restarted,
    )
    .await;
    drop(server);
    let outage = seen(&["pool_down a", "pool_down b"]);
    wait_for("both pools down", Duration::from_secs(10), outage).await;
    let mut pool_events: Vec<String> = recorded()
        .into_iter()
        .filter(|line| line.starts_with("pool_"))
        .collect();
    pool_events.sort();
    assert_eq!(pool_events, ["pool_down a up", "pool_down b up"]);
    assert_eq!(daemon.stop(), Some(0));
}
