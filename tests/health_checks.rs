//! Health checks against real servers: MariaDB (with real replication),
//! Redis (with passwords, ACL users and a replica), tiny HTTP servers and
//! real programs. Intervals are short so the whole file stays fast.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hafront_config::{Check, Config, ParseOptions, Role};
use hafront_health::{HealthEvent, Monitor, ProbeResult, ServerHealth, Status, probe};
use support::{
    CHECK_PASSWORD, CHECK_USER, MariaDb, Redis, RedisOptions, closed_address, replication_pair,
    wait_for,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// Upper bound on any single wait for an event in these tests.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A configuration with one check (`check`, a YAML flow mapping) and one
/// pool `db` of named servers.
fn config(check: &str, servers: &[(&str, SocketAddr)]) -> Config {
    let servers: String = servers
        .iter()
        .map(|(name, address)| format!("      - {{name: {name}, address: \"{address}\"}}\n"))
        .collect();
    let yaml = format!(
        "checks:\n  probe: {check}\npools:\n  db:\n    check: probe\n    servers:\n{servers}"
    );
    hafront_config::parse_with(&yaml, "test.yaml", ParseOptions { check_files: false })
        .unwrap_or_else(|errors| panic!("test config rejected: {errors}\n{yaml}"))
}

/// The single check of a [`config`].
fn check(config: &Config) -> &Check {
    &config.checks["probe"]
}

/// Probes `address` once with the check written as YAML.
async fn probe_once(check_yaml: &str, address: SocketAddr) -> ProbeResult {
    let config = config(check_yaml, &[("server", address)]);
    let server = ServerHealth::new("db", &config.pools["db"].servers[0]);
    let check = check(&config);
    probe(&check.kind, &server, check.timeout).await
}

/// The next event about `server`, skipping others.
async fn next_event(events: &mut broadcast::Receiver<HealthEvent>, server: &str) -> HealthEvent {
    tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            let event = events.recv().await.expect("event channel open");
            if event.server == server {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event for {server} within {EVENT_TIMEOUT:?}"))
}

/// The server named `name` in pool `db`.
fn server(monitor: &Monitor, name: &str) -> Arc<ServerHealth> {
    monitor
        .pool("db")
        .expect("pool db")
        .iter()
        .find(|server| server.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("server {name} in pool db"))
}

/// A monitor running `config`, with a receiver that sees every event
/// including each server's first.
fn start_subscribed(config: &Config) -> (Monitor, broadcast::Receiver<HealthEvent>) {
    let mut monitor = Monitor::new();
    let events = monitor.subscribe();
    monitor.reload(config).unwrap();
    (monitor, events)
}

fn mysql_check(extra: &str) -> String {
    format!(
        "{{kind: mysql, user: {CHECK_USER}, password: {{value: {CHECK_PASSWORD}}}, \
         interval: 250ms, timeout: 250ms, rise: 1, fall: 2{extra}}}"
    )
}

#[tokio::test]
async fn tcp_check_tells_listening_from_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap();
    let closed = closed_address();
    let config = config(
        "{kind: tcp, interval: 100ms, timeout: 100ms, rise: 2, fall: 2}",
        &[("open", open), ("closed", closed)],
    );
    let (monitor, mut events) = start_subscribed(&config);

    let up = next_event(&mut events, "open").await;
    assert_eq!(
        (up.old, up.new, up.role),
        (Status::Unknown, Status::Up, None)
    );
    assert_eq!(up.pool, "db");
    assert_eq!(up.address, open);
    let down = next_event(&mut events, "closed").await;
    assert_eq!((down.old, down.new), (Status::Unknown, Status::Down));
    assert!(down.reason.contains("refused"), "{}", down.reason);

    assert!(server(&monitor, "open").is_up());
    assert_eq!(server(&monitor, "closed").status(), Status::Down);
    let last = server(&monitor, "closed")
        .last_probe()
        .expect("a probe ran");
    assert!(!last.ok);
    // Bounded by the 100ms timeout (with room for a loaded machine).
    assert!(
        last.latency < Duration::from_millis(600),
        "{:?}",
        last.latency
    );
}

#[tokio::test]
async fn mysql_login_passes_and_wrong_password_is_access_denied() {
    let db = MariaDb::start().await;
    let good = probe_once(&mysql_check(""), db.address()).await;
    assert!(good.ok, "{}", good.reason);
    assert_eq!(good.role, None, "role not asked");
    assert!(good.reason.contains("ping ok"), "{}", good.reason);

    let wrong = format!(
        "{{kind: mysql, user: {CHECK_USER}, password: {{value: not-the-password}}, timeout: 1s}}"
    );
    let denied = probe_once(&wrong, db.address()).await;
    assert!(!denied.ok);
    assert!(denied.reason.contains("Access denied"), "{}", denied.reason);
    assert!(
        !denied.reason.contains("not-the-password"),
        "reason leaks the password: {}",
        denied.reason
    );

    let secret_dir = tempfile::tempdir().unwrap();
    let secret_file = secret_dir.path().join("password");
    std::fs::write(&secret_file, format!("{CHECK_PASSWORD}\n")).unwrap();
    let from_file = format!(
        "{{kind: mysql, user: {CHECK_USER}, password: {{file: \"{}\"}}, timeout: 1s}}",
        secret_file.display()
    );
    let result = probe_once(&from_file, db.address()).await;
    assert!(result.ok, "{}", result.reason);

    for _ in 0..5 {
        assert!(probe_once(&mysql_check(""), db.address()).await.ok);
    }
    // Each probe ends with COM_QUIT: the server logs no aborted connection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = std::fs::read_to_string(db.error_log()).unwrap();
    let aborted: Vec<_> = log
        .lines()
        .filter(|line| line.contains("Aborted connection") && line.contains(CHECK_USER))
        .collect();
    assert!(
        aborted.is_empty(),
        "aborted connections logged: {aborted:#?}"
    );
}

#[tokio::test]
async fn mysql_role_follows_read_only() {
    let db = MariaDb::start().await;
    let config = config(&mysql_check(", role: true"), &[("db1", db.address())]);
    let (monitor, mut events) = start_subscribed(&config);

    let up = next_event(&mut events, "db1").await;
    assert_eq!((up.new, up.role), (Status::Up, Some(Role::Primary)));
    assert_eq!(server(&monitor, "db1").role(), Some(Role::Primary));

    db.execute("SET GLOBAL read_only = ON").await;
    let demoted = next_event(&mut events, "db1").await;
    assert_eq!(
        (demoted.old, demoted.new, demoted.role),
        (Status::Up, Status::Up, Some(Role::Replica))
    );
    assert_eq!(server(&monitor, "db1").role(), Some(Role::Replica));

    db.execute("SET GLOBAL read_only = OFF").await;
    let promoted = next_event(&mut events, "db1").await;
    assert_eq!(
        (promoted.new, promoted.role),
        (Status::Up, Some(Role::Primary))
    );
}

#[tokio::test]
async fn mysql_replication_check_follows_the_sql_thread() {
    let (primary, replica) = replication_pair().await;
    let check = mysql_check(", role: true, replication: {max_lag: 30s}");
    let config = config(
        &check,
        &[
            ("primary", primary.address()),
            ("replica", replica.address()),
        ],
    );
    let (monitor, mut events) = start_subscribed(&config);

    let replica_up = next_event(&mut events, "replica").await;
    assert_eq!(
        (replica_up.new, replica_up.role),
        (Status::Up, Some(Role::Replica))
    );
    assert!(
        replica_up.reason.contains("replication running"),
        "{}",
        replica_up.reason
    );
    wait_for("primary up", EVENT_TIMEOUT, || async {
        server(&monitor, "primary").is_up()
    })
    .await;
    assert_eq!(server(&monitor, "primary").role(), Some(Role::Primary));

    replica.execute("STOP SLAVE SQL_THREAD").await;
    let down = next_event(&mut events, "replica").await;
    assert_eq!((down.old, down.new), (Status::Up, Status::Down));
    assert!(
        down.reason.contains("SQL thread not running"),
        "{}",
        down.reason
    );
    assert_eq!(server(&monitor, "replica").role(), None);

    replica.execute("START SLAVE SQL_THREAD").await;
    let back = next_event(&mut events, "replica").await;
    assert_eq!(
        (back.old, back.new, back.role),
        (Status::Down, Status::Up, Some(Role::Replica))
    );
    assert!(
        server(&monitor, "primary").is_up(),
        "the primary never depended on replication"
    );

    // Without the role, replication is required of every server: the primary
    // has none configured.
    let strict = probe_once(
        &mysql_check(", replication: {max_lag: 30s}"),
        primary.address(),
    )
    .await;
    assert!(!strict.ok);
    assert!(
        strict.reason.contains("not configured"),
        "{}",
        strict.reason
    );
}

#[tokio::test]
async fn mysql_replication_check_fails_while_the_replica_lags() {
    let (primary, replica) = replication_pair().await;
    // Delayed replication: every event is applied 3s after it was written.
    replica
        .execute_all(&[
            "STOP SLAVE",
            "CHANGE MASTER TO MASTER_DELAY = 3",
            "START SLAVE",
        ])
        .await;
    wait_for("replication threads to run again", EVENT_TIMEOUT, || {
        replica.replication_running()
    })
    .await;
    let config = config(
        &mysql_check(", replication: {max_lag: 1s}"),
        &[("replica", replica.address())],
    );
    let (monitor, mut events) = start_subscribed(&config);
    let up = next_event(&mut events, "replica").await;
    assert_eq!(up.new, Status::Up, "{}", up.reason);

    primary
        .execute_all(&[
            "CREATE DATABASE lag_test",
            "CREATE TABLE lag_test.t (id INT PRIMARY KEY)",
        ])
        .await;
    let lagging = next_event(&mut events, "replica").await;
    assert_eq!((lagging.old, lagging.new), (Status::Up, Status::Down));
    assert!(lagging.reason.contains("exceeds 1s"), "{}", lagging.reason);
    assert!(!server(&monitor, "replica").is_up());

    let caught_up = next_event(&mut events, "replica").await;
    assert_eq!((caught_up.old, caught_up.new), (Status::Down, Status::Up));
    let last = server(&monitor, "replica").last_probe().unwrap();
    assert!(
        last.reason.contains("replication running"),
        "{}",
        last.reason
    );
}

#[tokio::test]
async fn redis_check_authenticates_with_password_or_acl_user() {
    let redis = Redis::start_with(RedisOptions {
        password: Some("redis-secret".to_owned()),
        acl_user: Some(("checker".to_owned(), "checker-secret".to_owned())),
        replica_of: None,
    })
    .await;
    let address = redis.address();

    let with_password = probe_once(
        "{kind: redis, password: {value: redis-secret}, timeout: 1s}",
        address,
    )
    .await;
    assert!(with_password.ok, "{}", with_password.reason);
    assert_eq!(with_password.reason, "PONG");

    let with_acl_user = probe_once(
        "{kind: redis, username: checker, password: {value: checker-secret}, role: true, timeout: 1s}",
        address,
    )
    .await;
    assert!(with_acl_user.ok, "{}", with_acl_user.reason);
    assert_eq!(with_acl_user.role, Some(Role::Primary));

    let wrong = probe_once(
        "{kind: redis, password: {value: wrong}, timeout: 1s}",
        address,
    )
    .await;
    assert!(!wrong.ok);
    assert!(
        wrong.reason.starts_with("auth: ") && wrong.reason.contains("WRONGPASS"),
        "{}",
        wrong.reason
    );
    assert!(
        !wrong.reason.contains("wrong"),
        "reason leaks the password: {}",
        wrong.reason
    );

    let anonymous = probe_once("{kind: redis, timeout: 1s}", address).await;
    assert!(!anonymous.ok);
    assert!(
        anonymous.reason.starts_with("ping: ") && anonymous.reason.contains("NOAUTH"),
        "{}",
        anonymous.reason
    );
}

#[tokio::test]
async fn redis_check_reasons_are_one_line_naming_the_failed_step() {
    let refused = probe_once("{kind: redis, timeout: 1s}", closed_address()).await;
    assert!(
        !refused.ok && refused.reason.starts_with("connect: "),
        "{}",
        refused.reason
    );

    // A server that is not Redis: the connection succeeds, the reply to
    // PING is a multi-line protocol error.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 256];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let garbage = probe_once("{kind: redis, timeout: 1s}", address).await;
    let garbage_to_auth =
        probe_once("{kind: redis, password: {value: pw}, timeout: 1s}", address).await;
    server.abort();
    for (result, step) in [(garbage, "ping: "), (garbage_to_auth, "auth: ")] {
        assert!(!result.ok);
        assert!(result.reason.starts_with(step), "{}", result.reason);
        assert!(!result.reason.contains(['\n', '\r']), "{:?}", result.reason);
    }
}

#[tokio::test]
async fn redis_role_tells_master_from_replica() {
    let master = Redis::start().await;
    let replica = Redis::start_with(RedisOptions {
        replica_of: Some(master.address()),
        ..RedisOptions::default()
    })
    .await;
    let config = config(
        "{kind: redis, role: true, interval: 200ms, timeout: 200ms, rise: 1, fall: 2}",
        &[("master", master.address()), ("replica", replica.address())],
    );
    let monitor = Monitor::start(&config).unwrap();
    wait_for("both servers up", EVENT_TIMEOUT, || async {
        server(&monitor, "master").is_up() && server(&monitor, "replica").is_up()
    })
    .await;
    assert_eq!(server(&monitor, "master").role(), Some(Role::Primary));
    assert_eq!(server(&monitor, "replica").role(), Some(Role::Replica));

    // Promote the replica: the role change is an event while it stays up.
    let mut events = monitor.subscribe();
    let mut conn = replica.connection().await.unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await
        .unwrap();
    let promoted = next_event(&mut events, "replica").await;
    assert_eq!(
        (promoted.old, promoted.new, promoted.role),
        (Status::Up, Status::Up, Some(Role::Primary))
    );
}

/// A one-request-per-connection HTTP server answering `/status/NNN` with
/// status NNN, and garbage on `/garbage`. It serves two virtual hosts, its
/// own address and `db.example.test`; any other Host header gets 421.
async fn http_server(bind: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let address = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = vec![0u8; 1024];
                let read = stream.read(&mut request).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..read]);
                let path = request.split(' ').nth(1).unwrap_or("/");
                let known_host = [format!("{address}"), "db.example.test".to_owned()]
                    .iter()
                    .any(|host| request.contains(&format!("\r\nHost: {host}\r\n")));
                let response = match path.strip_prefix("/status/") {
                    Some(_) if !known_host => "HTTP/1.1 421 Misdirected Request\r\n\r\n".to_owned(),
                    Some(code) => format!("HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\n\r\n"),
                    None => "SSH-2.0-not-http\r\n".to_owned(),
                };
                stream.write_all(response.as_bytes()).await.ok();
            });
        }
    });
    (address, handle)
}

#[tokio::test]
async fn http_check_judges_the_status_code() {
    let (address, server) = http_server("127.0.0.1:0").await;
    let probe_path = |path: &str, expect: &str| {
        let check =
            format!("{{kind: http, path: \"{path}\", expect_status: \"{expect}\", timeout: 1s}}");
        async move { probe_once(&check, address).await }
    };

    let virtual_host = probe_once(
        "{kind: http, path: /status/200, host: db.example.test, timeout: 1s}",
        address,
    )
    .await;
    assert!(virtual_host.ok, "{}", virtual_host.reason);
    let unknown_host = probe_once(
        "{kind: http, path: /status/200, host: other.test, timeout: 1s}",
        address,
    )
    .await;
    assert_eq!(unknown_host.reason, "HTTP status 421, expected 200-399");

    let ok = probe_path("/status/204", "200-399").await;
    assert!(ok.ok, "{}", ok.reason);
    assert_eq!(ok.reason, "HTTP 204");

    let unavailable = probe_path("/status/503", "200-399").await;
    assert!(!unavailable.ok);
    assert_eq!(unavailable.reason, "HTTP status 503, expected 200-399");

    let expected_error = probe_path("/status/503", "500-599").await;
    assert!(expected_error.ok, "{}", expected_error.reason);

    let below = probe_path("/status/199", "200").await;
    assert!(!below.ok);

    let garbage = probe_path("/garbage", "200-399").await;
    assert!(!garbage.ok);
    assert!(
        garbage.reason.contains("malformed status line"),
        "{}",
        garbage.reason
    );
    server.abort();
}

#[tokio::test]
async fn http_check_over_ipv6_sends_a_bracketed_host() {
    let (address, server) = http_server("[::1]:0").await;
    let result = probe_once("{kind: http, path: /status/200, timeout: 1s}", address).await;
    assert!(result.ok, "{}", result.reason);
    server.abort();
}

#[tokio::test]
async fn exec_check_passes_on_exit_zero_with_server_in_environment() {
    let address: SocketAddr = "127.0.0.1:4567".parse().unwrap();
    let env_check = r#"{kind: exec, timeout: 1s, command: [sh, -c, 'test "$HAFRONT_SERVER_ADDRESS" = 127.0.0.1:4567 && test "$HAFRONT_POOL" = db && test "$HAFRONT_SERVER" = server']}"#;
    let passed = probe_once(env_check, address).await;
    assert!(passed.ok, "{}", passed.reason);

    let failing =
        r#"{kind: exec, timeout: 1s, command: [sh, -c, 'echo "replica is lagging" >&2; exit 3']}"#;
    let failed = probe_once(failing, address).await;
    assert!(!failed.ok);
    assert_eq!(failed.reason, "exit status 3: replica is lagging");

    // 256 KiB of stderr (more than a pipe holds) neither blocks the program
    // nor grows the reason past its first line.
    let chatty = r#"{kind: exec, timeout: 1s, command: [sh, -c, 'echo first line >&2; head -c 262144 /dev/zero | tr "\\0" x >&2; exit 1']}"#;
    let chatty = probe_once(chatty, address).await;
    assert_eq!(chatty.reason, "exit status 1: first line");

    let missing = probe_once(
        "{kind: exec, timeout: 1s, command: [/nonexistent/check]}",
        address,
    )
    .await;
    assert!(!missing.ok);
    assert!(
        missing.reason.starts_with("spawn /nonexistent/check"),
        "{}",
        missing.reason
    );
}

#[tokio::test]
async fn exec_check_is_killed_with_its_process_group_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleep.pid");
    // The shell starts `sleep 30` in the background and waits for it: both
    // must die at the timeout, not just the shell.
    let check = format!(
        "{{kind: exec, timeout: 300ms, command: [sh, -c, 'sleep 30 & echo $! > {}; wait']}}",
        pid_file.display()
    );
    let started = Instant::now();
    let result = probe_once(&check, closed_address()).await;
    let elapsed = started.elapsed();
    assert!(!result.ok);
    assert_eq!(result.reason, "timed out after 300ms");
    // 30s if only the shell were killed; the timeout plus process start-up if
    // the group is.
    assert!(elapsed < Duration::from_millis(1300), "took {elapsed:?}");

    let sleep_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        "the background sleep to die",
        Duration::from_secs(2),
        || async {
            // Gone, or a zombie waiting for its new parent to reap it.
            match std::fs::read_to_string(format!("/proc/{sleep_pid}/stat")) {
                Err(_) => true,
                Ok(stat) => stat
                    .rsplit(") ")
                    .next()
                    .is_some_and(|rest| rest.starts_with('Z')),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn killed_server_goes_down_after_fall_and_returns_after_rise() {
    let mut db = MariaDb::start().await;
    let interval = Duration::from_millis(200);
    let timeout = Duration::from_millis(200);
    let (rise, fall) = (2u32, 3u32);
    let check = format!(
        "{{kind: mysql, user: {CHECK_USER}, password: {{value: {CHECK_PASSWORD}}}, \
         interval: 200ms, timeout: 200ms, rise: {rise}, fall: {fall}}}"
    );
    let config = config(&check, &[("db1", db.address())]);
    let (monitor, mut events) = start_subscribed(&config);
    assert_eq!(next_event(&mut events, "db1").await.new, Status::Up);

    db.kill();
    let killed = Instant::now();
    let down = next_event(&mut events, "db1").await;
    let went_down = killed.elapsed();
    assert_eq!((down.old, down.new), (Status::Up, Status::Down));
    assert!(down.reason.contains("connect"), "{}", down.reason);
    assert!(!server(&monitor, "db1").is_up());
    // Room for a loaded machine; still far below what a broken fall/rise
    // count would take.
    let slack = Duration::from_millis(800);
    assert!(
        went_down >= interval * (fall - 1),
        "down after {went_down:?}: fewer than {fall} failures"
    );
    assert!(
        went_down <= interval * fall + timeout + slack,
        "down only after {went_down:?}"
    );

    // The checks may log in before the harness sees the server ready, so
    // the lower bound counts from the restart's start and the upper bound
    // from its end.
    let restarting = Instant::now();
    db.restart().await;
    let restarted = Instant::now();
    let up = next_event(&mut events, "db1").await;
    assert_eq!((up.old, up.new), (Status::Down, Status::Up));
    assert!(server(&monitor, "db1").is_up());
    let came_up = restarting.elapsed();
    assert!(
        came_up >= interval * (rise - 1),
        "up {came_up:?} after the restart began: fewer than {rise} successes"
    );
    let came_up = restarted.elapsed();
    assert!(
        came_up <= interval * rise + slack,
        "up only {came_up:?} after the server was ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_server_times_out_without_delaying_other_servers() {
    let (hung, healthy) = tokio::join!(MariaDb::start(), MariaDb::start());
    // fall: 3, so a probe slowed by a loaded machine does not count as the hang.
    let check = format!(
        "{{kind: mysql, user: {CHECK_USER}, password: {{value: {CHECK_PASSWORD}}}, \
         interval: 100ms, timeout: 100ms, rise: 1, fall: 3}}"
    );
    let config = config(
        &check,
        &[("hung", hung.address()), ("healthy", healthy.address())],
    );
    let monitor = Monitor::start(&config).unwrap();
    wait_for("both servers up", EVENT_TIMEOUT, || async {
        server(&monitor, "hung").is_up() && server(&monitor, "healthy").is_up()
    })
    .await;
    let mut events = monitor.subscribe();

    hung.process().pause();
    let down = next_event(&mut events, "hung").await;
    assert_eq!(down.new, Status::Down);
    assert_eq!(down.reason, "timed out after 100ms");
    let last = server(&monitor, "hung").last_probe().unwrap();
    assert!(
        last.latency < Duration::from_millis(600),
        "{:?}",
        last.latency
    );

    // While one server hangs, the other is still probed every interval.
    let healthy_server = server(&monitor, "healthy");
    let mut probe_times = Vec::new();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(1) {
        let at = healthy_server.last_probe().unwrap().at;
        if probe_times.last() != Some(&at) {
            probe_times.push(at);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        probe_times.len() >= 6,
        "healthy server probed only {} times in 1s at a 100ms interval",
        probe_times.len()
    );
    assert!(healthy_server.is_up());

    hung.process().resume();
    let back = next_event(&mut events, "hung").await;
    assert_eq!((back.old, back.new), (Status::Down, Status::Up));
}

#[tokio::test]
async fn reload_keeps_unchanged_servers_and_stops_removed_ones() {
    let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a, b) = (first.local_addr().unwrap(), second.local_addr().unwrap());
    let tcp = "{kind: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}";
    let mut monitor = Monitor::start(&config(tcp, &[("a", a)])).unwrap();
    wait_for("a up", EVENT_TIMEOUT, || async {
        server(&monitor, "a").is_up()
    })
    .await;
    let kept = server(&monitor, "a");

    monitor.reload(&config(tcp, &[("a", a), ("b", b)])).unwrap();
    assert!(
        Arc::ptr_eq(&kept, &server(&monitor, "a")),
        "unchanged server replaced"
    );
    assert!(kept.is_up(), "unchanged server reset");
    assert_eq!(server(&monitor, "b").status(), Status::Unknown);
    wait_for("b up", EVENT_TIMEOUT, || async {
        server(&monitor, "b").is_up()
    })
    .await;

    // A changed check continues from the current status instead of resetting.
    let slower = "{kind: tcp, interval: 200ms, timeout: 100ms, rise: 3, fall: 3}";
    monitor.reload(&config(slower, &[("a", a)])).unwrap();
    let replaced = server(&monitor, "a");
    assert!(!Arc::ptr_eq(&kept, &replaced));
    assert!(replaced.is_up(), "changed check reset the status");
    assert_eq!(monitor.pool("db").unwrap().len(), 1);

    // The removed server's task is gone: its state stops changing.
    let removed_last = kept.last_probe().unwrap().at;
    // Two probes of the new task at the same interval: the old one would have
    // probed too.
    for _ in 0..2 {
        let probed = replaced.last_probe().map(|probe| probe.at);
        wait_for("a probe by the new task", EVENT_TIMEOUT, || async {
            replaced.last_probe().map(|probe| probe.at) != probed
        })
        .await;
    }
    assert_eq!(
        kept.last_probe().unwrap().at,
        removed_last,
        "old task still probing"
    );
    assert!(replaced.last_probe().unwrap().at > removed_last);
    drop((first, second));
}
