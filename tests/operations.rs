//! Operating the `hafront` binary against real Redis servers: `status` (table
//! and JSON) and the metrics show what a running daemon really does, `status`
//! fails when no daemon runs, reloads under load drop no connection, bad
//! reloads are refused with file:line and change nothing, `reload --dry-run`
//! lists changes, the control socket is private, systemd hears READY,
//! RELOADING, STOPPING and watchdog pings, and the unit file verifies.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use support::{HAFRONT, HafrontRun, Redis, free_port, sample, scrape};
use tempfile::TempDir;

/// A `hafront run` process owned by the test, with its config and control
/// socket.
struct Daemon {
    process: HafrontRun,
    config: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn start(dir: &TempDir, config: &Path) -> Daemon {
        Daemon::start_with_env(dir, config, &[])
    }

    /// Starts the daemon and waits until its control socket answers.
    fn start_with_env(dir: &TempDir, config: &Path, env: &[(&str, &str)]) -> Daemon {
        let process = HafrontRun::spawn(config, dir.path().join("daemon.log"), env);
        Daemon::attach(dir, config, process)
    }

    /// Waits until `process`, running `config` (absolute, for the client
    /// commands), answers on its control socket.
    fn attach(dir: &TempDir, config: &Path, process: HafrontRun) -> Daemon {
        let mut daemon = Daemon {
            process,
            config: config.to_owned(),
            socket: dir.path().join("control.sock"),
        };
        for _ in 0..500 {
            if daemon.hafront(&["status", "--json"]).status.success() {
                return daemon;
            }
            if let Some(status) = daemon.process.try_wait() {
                panic!("hafront exited ({status}):\n{}", daemon.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no answer on the control socket within 10 s:\n{}",
            daemon.log()
        );
    }

    /// Runs `hafront ARGS -c CONFIG` and returns what it did.
    fn hafront(&self, args: &[&str]) -> Output {
        Command::new(HAFRONT)
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .output()
            .expect("run hafront")
    }

    /// `hafront status --json`, parsed.
    fn status(&self) -> Value {
        let output = self.hafront(&["status", "--json"]);
        assert!(output.status.success(), "status failed: {output:?}");
        serde_json::from_slice(&output.stdout).expect("status JSON")
    }

    fn signal(&self, signal: Signal) {
        self.process.signal(signal);
    }

    fn log(&self) -> String {
        self.process.log()
    }

    /// Polls `condition` every 20 ms; panics with the log after `timeout`.
    fn wait_until(&self, timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !condition() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}\n--- hafront log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    fn stop(self) -> Option<i32> {
        self.process.stop(Duration::from_secs(10))
    }
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A config with a Redis check, one pool `cache` of `servers` and `relays`
/// (name, address) forwarding to it; `extra_global` adds lines under
/// `global:`, `interval` sets the check's.
fn config_text(
    dir: &TempDir,
    extra_global: &str,
    interval: &str,
    servers: &[(&str, SocketAddr)],
    relays: &[(&str, SocketAddr)],
) -> String {
    let mut text = format!(
        "global:
  node: ops-test
  state_dir: {state}
  control_socket: {state}/control.sock
{extra_global}checks:
  redis:
    kind: redis
    interval: {interval}
    timeout: 150ms
    rise: 1
    fall: 2
pools:
  cache:
    check: redis
    servers:{empty_servers}
",
        state = dir.path().display(),
        empty_servers = if servers.is_empty() { " []" } else { "" },
    );
    for (name, address) in servers {
        text.push_str(&format!("      - {{ name: {name}, address: {address} }}\n"));
    }
    text.push_str(if relays.is_empty() {
        "relays: {}\n"
    } else {
        "relays:\n"
    });
    for (name, address) in relays {
        text.push_str(&format!(
            "  {name}:\n    listen: [{address}]\n    pool: cache\n"
        ));
    }
    text
}

fn write(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("hafront.yaml");
    fs::write(&path, text).expect("write config");
    path
}

/// The relay named `name` in a status JSON.
fn relay<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["relays"]
        .as_array()
        .expect("relays")
        .iter()
        .find(|relay| relay["name"] == name)
        .unwrap_or_else(|| panic!("relay {name} in {status:#}"))
}

/// The server named `name` of pool `cache` in a status JSON.
fn server<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["pools"][0]["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|server| server["name"] == name)
        .unwrap_or_else(|| panic!("server {name} in {status:#}"))
}

/// Sends `count` PINGs over one connection through `relay`, checking each
/// PONG, and closes it. Returns the bytes sent and received.
fn ping_through(relay: SocketAddr, count: usize) -> (u64, u64) {
    let mut stream = TcpStream::connect(relay).expect("connect to the relay");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut reply = [0u8; 7];
    for _ in 0..count {
        stream.write_all(b"PING\r\n").expect("send PING");
        stream.read_exact(&mut reply).expect("read PONG");
        assert_eq!(&reply, b"+PONG\r\n");
    }
    (6 * count as u64, 7 * count as u64)
}

#[test]
fn status_fails_when_no_daemon_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        &dir,
        &config_text(&dir, "", "1s", &[("none", localhost())], &[]),
    );
    let output = Command::new(HAFRONT)
        .args(["status", "-c"])
        .arg(&config)
        .output()
        .expect("run hafront status");
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not running"), "{stderr}");
    assert!(
        stderr.contains("control.sock"),
        "names the socket: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_report_what_the_daemon_really_did() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (relay_address, metrics_address, dead) = (localhost(), localhost(), localhost());
    let config = write(
        &dir,
        &config_text(
            &dir,
            &format!("  metrics: {metrics_address}\n"),
            "200ms",
            &[("live", redis.address()), ("dead", dead)],
            &[("front", relay_address)],
        ),
    );
    let daemon = Daemon::start(&dir, &config);
    daemon.wait_until(Duration::from_secs(10), "live up and dead down", || {
        let status = daemon.status();
        server(&status, "live")["status"] == "up" && server(&status, "dead")["status"] == "down"
    });

    let mut sent = (0, 0);
    for count in [3, 5, 7] {
        let (up, down) = ping_through(relay_address, count);
        sent = (sent.0 + up, sent.1 + down);
    }
    daemon.wait_until(Duration::from_secs(5), "the three clients closed", || {
        relay(&daemon.status(), "front")["active_connections"] == 0
    });

    let status = daemon.status();
    assert_eq!(status["node"], "ops-test");
    let front = relay(&status, "front");
    assert_eq!(front["listeners"][0], relay_address.to_string());
    assert_eq!(front["total_connections"], 3);
    assert_eq!(front["client_to_server_bytes"], sent.0);
    assert_eq!(front["server_to_client_bytes"], sent.1);
    assert_eq!(front["refused"]["no_server"], 0);
    let live = server(&status, "live");
    assert_eq!(
        live["total_connections"], 3,
        "every client went to the live server"
    );
    assert_eq!(live["active_connections"], 0);
    assert_eq!(live["last_check"]["ok"], true);
    let dead_status = server(&status, "dead");
    assert_eq!(dead_status["total_connections"], 0);
    assert_eq!(dead_status["last_check"]["ok"], false);
    assert!(
        dead_status["last_check"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("refused")),
        "{dead_status:#}"
    );
    assert_eq!(status["vrrp"], Value::Array(Vec::new()));

    let table = daemon.hafront(&["status"]);
    assert!(table.status.success(), "{table:?}");
    let table = String::from_utf8_lossy(&table.stdout);
    let live_row = table
        .lines()
        .find(|line| line.contains(&redis.address().to_string()))
        .unwrap_or_else(|| panic!("a row for the live server:\n{table}"));
    let cells: Vec<&str> = live_row.split_whitespace().collect();
    assert_eq!(
        cells[..4],
        ["cache", "live", &redis.address().to_string(), "up"]
    );
    assert_eq!(
        cells[cells.len() - 2..],
        ["0", "3"],
        "active and total: {live_row}"
    );
    let relay_row = table
        .lines()
        .find(|line| line.trim_start().starts_with("front "))
        .unwrap_or_else(|| panic!("a row for the relay:\n{table}"));
    let expected = format!(
        "front cache {relay_address} 0 3 {} {} no_server=0 limit=0 connect_failed=0 handshake=0 proxy_header=0 untrusted=0 empty=0",
        sent.0, sent.1
    );
    assert_eq!(
        relay_row.split_whitespace().collect::<Vec<_>>().join(" "),
        expected
    );

    let metrics = scrape(metrics_address);
    let bytes = |direction: &str| {
        sample(
            &metrics,
            &format!("hafront_relay_bytes_total{{relay=\"front\",direction=\"{direction}\"}}"),
        )
    };
    assert_eq!(bytes("client_to_server"), sent.0 as f64);
    assert_eq!(bytes("server_to_client"), sent.1 as f64);
    assert_eq!(
        sample(&metrics, "hafront_relay_connections_total{relay=\"front\"}"),
        3.0
    );
    assert_eq!(
        sample(&metrics, "hafront_relay_connections{relay=\"front\"}"),
        0.0
    );
    let up = |name: &str, address: SocketAddr| {
        sample(
            &metrics,
            &format!("hafront_server_up{{pool=\"cache\",server=\"{name}\",address=\"{address}\"}}"),
        )
    };
    assert_eq!(up("live", redis.address()), 1.0);
    assert_eq!(up("dead", dead), 0.0);
    assert_eq!(
        sample(
            &metrics,
            "hafront_server_connections_total{pool=\"cache\",server=\"live\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &metrics,
            "hafront_relay_refused_total{relay=\"front\",reason=\"no_server\"}"
        ),
        0.0
    );
    assert!(metrics.contains("# TYPE hafront_relay_bytes_total counter"));
    let mut other = TcpStream::connect(metrics_address).expect("connect to metrics");
    other
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .expect("send the request");
    let mut response = String::new();
    other
        .read_to_string(&mut response)
        .expect("read the response");
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");

    assert_eq!(daemon.stop(), Some(0));
}

/// One client echoing checksummed payloads through a relay until told to
/// stop: returns how many round trips it completed, or why it broke.
fn stream_echoes(relay: SocketAddr, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let mut stream = TcpStream::connect(relay).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) && round < 1_000_000 {
        // 4 KiB of bytes derived from the round number, checked on return.
        let payload: Vec<u8> = (0..4096u64)
            .map(|i| b'a' + ((i * 7 + round * 13) % 26) as u8)
            .collect();
        let mut request = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", payload.len()).into_bytes();
        request.extend_from_slice(&payload);
        request.extend_from_slice(b"\r\n");
        stream
            .write_all(&request)
            .map_err(|e| format!("round {round}: send: {e}"))?;
        let mut expected = format!("${}\r\n", payload.len()).into_bytes();
        expected.extend_from_slice(&payload);
        expected.extend_from_slice(b"\r\n");
        let mut reply = vec![0u8; expected.len()];
        stream
            .read_exact(&mut reply)
            .map_err(|e| format!("round {round}: receive: {e}"))?;
        if reply != expected {
            return Err(format!(
                "round {round}: the echo differs from what was sent"
            ));
        }
        round += 1;
    }
    Ok(round)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_drop_no_connection() {
    let (one, two) = (Redis::start().await, Redis::start().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let (stay, leave, join) = (localhost(), localhost(), localhost());
    let config = write(
        &dir,
        &config_text(
            &dir,
            "",
            "200ms",
            &[("one", one.address())],
            &[("stay", stay), ("leave", leave)],
        ),
    );
    let daemon = Daemon::start(&dir, &config);
    daemon.wait_until(Duration::from_secs(10), "server one up", || {
        server(&daemon.status(), "one")["status"] == "up"
    });

    let stop = Arc::new(AtomicBool::new(false));
    let streams: Vec<_> = [stay, stay, leave]
        .into_iter()
        .map(|relay| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || stream_echoes(relay, stop))
        })
        .collect();
    daemon.wait_until(Duration::from_secs(5), "three clients streaming", || {
        let status = daemon.status();
        relay(&status, "stay")["active_connections"] == 2
            && relay(&status, "leave")["active_connections"] == 1
    });

    // 1: a second server joins the pool, relay `leave` goes, `join` comes
    // (by `hafront reload`); 2: the check interval changes (by SIGHUP).
    let reloaded = config_text(
        &dir,
        "",
        "200ms",
        &[("one", one.address()), ("two", two.address())],
        &[("stay", stay), ("join", join)],
    );
    write(&dir, &reloaded);
    let output = daemon.hafront(&["reload"]);
    assert!(output.status.success(), "{output:?}");
    let changes = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        changes.lines().collect::<Vec<_>>(),
        ["~ pool cache", "+ relay join", "- relay leave"]
    );
    daemon.wait_until(Duration::from_secs(10), "server two up", || {
        server(&daemon.status(), "two")["status"] == "up"
    });
    let since_one = server(&daemon.status(), "one")["since"].clone();
    write(
        &dir,
        &reloaded.replace("interval: 200ms", "interval: 250ms"),
    );
    daemon.signal(Signal::SIGHUP);
    daemon.wait_until(Duration::from_secs(5), "the SIGHUP reload", || {
        daemon.log().matches("configuration reloaded").count() == 2
    });
    // Two probes of server one after the reload: the state below is what the
    // changed check found, not what was left from before.
    for _ in 0..2 {
        let probed = server(&daemon.status(), "one")["last_check"]["at"].clone();
        daemon.wait_until(Duration::from_secs(5), "a probe after the reload", || {
            server(&daemon.status(), "one")["last_check"]["at"] != probed
        });
    }

    let status = daemon.status();
    assert_eq!(
        server(&status, "one")["status"],
        "up",
        "state kept across reloads"
    );
    assert_eq!(
        server(&status, "one")["since"],
        since_one,
        "not reset by a check change"
    );
    assert!(
        TcpStream::connect(leave).is_err(),
        "the removed relay stopped listening"
    );
    ping_through(join, 2);
    ping_through(stay, 2);

    stop.store(true, Ordering::Relaxed);
    for stream in streams {
        let rounds = stream
            .join()
            .expect("streaming thread")
            .unwrap_or_else(|error| panic!("a streaming client broke: {error}"));
        assert!(rounds > 10, "the client kept streaming ({rounds} rounds)");
    }
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reload_is_refused_with_its_location_and_the_old_config_keeps_serving() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (front, other) = (localhost(), localhost());
    let good = config_text(
        &dir,
        "",
        "200ms",
        &[("one", redis.address())],
        &[("front", front)],
    );
    let config = write(&dir, &good);
    let daemon = Daemon::start(&dir, &config);
    daemon.wait_until(Duration::from_secs(10), "server one up", || {
        server(&daemon.status(), "one")["status"] == "up"
    });

    // Line 8 gets a bad duration; a new relay elsewhere must not start.
    let bad = config_text(
        &dir,
        "",
        "soon",
        &[("one", redis.address())],
        &[("front", front), ("other", other)],
    );
    assert_eq!(bad.lines().nth(7), Some("    interval: soon"));
    write(&dir, &bad);
    let output = daemon.hafront(&["reload"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let location = format!("{}:8:", config.display());
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with(&location) && line.contains("interval")),
        "error located at {location}: {stderr}"
    );
    assert!(stderr.contains("running configuration stays"), "{stderr}");

    ping_through(front, 3);
    assert!(
        TcpStream::connect(other).is_err(),
        "nothing of the bad file applied"
    );
    let status = daemon.status();
    assert_eq!(status["relays"].as_array().map(Vec::len), Some(1));
    assert_eq!(relay(&status, "front")["total_connections"], 1);
    assert!(daemon.log().contains("reload refused"));
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_lists_the_changes_and_applies_none() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (keep, old, new) = (localhost(), localhost(), localhost());
    let config = write(
        &dir,
        &config_text(
            &dir,
            "",
            "1s",
            &[("one", redis.address())],
            &[("keep", keep), ("old", old)],
        ),
    );
    let daemon = Daemon::start(&dir, &config);
    write(
        &dir,
        &config_text(
            &dir,
            "",
            "2s",
            &[("one", redis.address())],
            &[("keep", keep), ("new", new)],
        ),
    );
    let output = daemon.hafront(&["reload", "--dry-run"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["~ check redis", "+ relay new", "- relay old"]
    );
    let status = daemon.status();
    let relays: Vec<&Value> = status["relays"]
        .as_array()
        .expect("relays")
        .iter()
        .map(|relay| &relay["name"])
        .collect();
    assert_eq!(relays, ["keep", "old"], "nothing applied");
    assert!(TcpStream::connect(old).is_ok(), "old still listens");
    assert!(TcpStream::connect(new).is_err(), "new not started");

    let output = daemon.hafront(&["reload", "--dry-run"]);
    assert!(output.status.success());
    let output = daemon.hafront(&["reload"]);
    assert!(output.status.success(), "{output:?}");
    let output = daemon.hafront(&["reload", "--dry-run"]);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "no changes");
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_the_log_filter() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let servers = [("one", redis.address())];
    let quiet = config_text(&dir, "  log: { level: warn }\n", "200ms", &servers, &[]);
    let config = write(&dir, &quiet);
    let daemon = Daemon::start(&dir, &config);
    // Probed up (rise probes) at warn: any debug line of theirs would be in the log.
    daemon.wait_until(Duration::from_secs(5), "server one up", || {
        server(&daemon.status(), "one")["status"] == "up"
    });
    assert!(!daemon.log().contains("probe"), "no debug lines at warn");

    write(
        &dir,
        &quiet.replace("level: warn", "level: \"info,hafront_health=debug\""),
    );
    let output = daemon.hafront(&["reload"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "~ global");
    daemon.wait_until(Duration::from_secs(5), "debug probe lines", || {
        daemon
            .log()
            .lines()
            .any(|line| line.contains("DEBUG") && line.contains("probe"))
    });
    assert!(
        daemon.log().contains("configuration reloaded"),
        "info lines too"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_to_what_runs_and_names_the_file_the_daemon_read() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (front, busy) = (localhost(), localhost());
    let servers = [("one", redis.address())];
    let config = write(
        &dir,
        &config_text(&dir, "", "1s", &servers, &[("front", front)]),
    );
    // Started as `hafront run -c hafront.yaml` from its directory, with
    // stderr to a file and NO_COLOR unset (empty).
    let process = HafrontRun::spawn_in(
        dir.path(),
        Path::new("hafront.yaml"),
        dir.path().join("daemon.log"),
        &[("NO_COLOR", "")],
    );
    let daemon = Daemon::attach(&dir, &config, process);
    assert_eq!(
        daemon.status()["config"],
        config.display().to_string(),
        "the configuration shown absolute"
    );
    assert!(daemon.log().contains("hafront running"), "{}", daemon.log());
    assert!(
        !daemon.log().contains('\x1b'),
        "no ANSI colours in a log that is no terminal:\n{}",
        daemon.log()
    );

    // A relay that cannot listen is not part of the running configuration.
    let holder = std::net::TcpListener::bind(busy).expect("hold the port");
    write(
        &dir,
        &config_text(
            &dir,
            "",
            "1s",
            &servers,
            &[("front", front), ("busy", busy)],
        ),
    );
    let output = daemon.hafront(&["reload"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let busy_line = fs::read_to_string(&config)
        .expect("read config")
        .lines()
        .position(|line| line.contains(&busy.to_string()))
        .expect("busy's listen line")
        + 1;
    let located = format!(
        "{}:{busy_line}:14: relays.busy.listen[0]: relay busy: cannot listen on {busy}:",
        config.display()
    );
    assert!(
        stderr.lines().any(|line| line.starts_with(&located))
            && stderr.contains(&format!("the daemon read {}", config.display())),
        "{located} in {stderr}"
    );
    let output = daemon.hafront(&["reload", "--dry-run"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "+ relay busy",
        "still to be added"
    );
    write(
        &dir,
        &config_text(&dir, "", "1s", &servers, &[("front", front)]),
    );
    let output = daemon.hafront(&["reload", "--dry-run"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "no changes",
        "nothing to remove: busy never ran"
    );
    drop(holder);

    // `-c OTHER` finds the socket; the daemon reads its own file, and says so.
    let other = dir.path().join("other.yaml");
    fs::write(
        &other,
        config_text(&dir, "", "2s", &servers, &[("front", front)]),
    )
    .expect("write other");
    let output = Command::new(HAFRONT)
        .args(["reload", "--dry-run", "-c"])
        .arg(&other)
        .output()
        .expect("run hafront reload");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "no changes");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the daemon read {}, not {}",
            config.display(),
            other.display()
        )),
        "{stderr}"
    );
    // The daemon's own file through a link is the same file: no warning.
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&config, &link).expect("link the config");
    let output = Command::new(HAFRONT)
        .args(["reload", "--dry-run", "-c"])
        .arg(&link)
        .output()
        .expect("run hafront reload");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        format!("hafront: the daemon read {}", config.display())
    );

    // Metrics moved to an address in use: reported, located, and not taken
    // for listening (the next dry run still has it to apply).
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let taken = holder.local_addr().expect("address");
    let metrics_global = format!("  metrics: {taken}\n");
    write(
        &dir,
        &config_text(&dir, &metrics_global, "1s", &servers, &[("front", front)]),
    );
    let output = daemon.hafront(&["reload"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let metrics_line = fs::read_to_string(&config)
        .expect("read config")
        .lines()
        .position(|line| line == metrics_global.trim_end())
        .expect("the metrics line")
        + 1;
    let located = format!(
        "{}:{metrics_line}:12: global.metrics: metrics: cannot listen on {taken}:",
        config.display()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().any(|line| line.starts_with(&located)),
        "{located} in {stderr}"
    );
    let output = daemon.hafront(&["reload", "--dry-run"]);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "~ global");
    drop(holder);

    // What `run` would refuse, reload refuses too, located as check does.
    let key = dir.path().join("key.pem");
    let keygen = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("run openssl");
    assert!(keygen.status.success(), "{keygen:?}");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod key");
    let tls = format!(
        "  tls:\n    listen: [{}]\n    pool: cache\n    mode: {{ kind: tls_server, cert_file: {key}, key_file: {key} }}\n",
        localhost(),
        key = key.display()
    );
    write(
        &dir,
        &(config_text(&dir, "", "1s", &servers, &[("front", front)]) + &tls),
    );
    let check = daemon.hafront(&["check"]);
    let located = String::from_utf8_lossy(&check.stderr).trim().to_owned();
    assert!(
        located.contains(": relays.tls.mode.cert_file: certificate file"),
        "{check:?}"
    );
    let output = daemon.hafront(&["reload"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().any(|line| line == located),
        "{located} in {stderr}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn the_control_socket_serves_root_and_the_daemon_user_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        &dir,
        &config_text(&dir, "", "1s", &[("none", localhost())], &[]),
    );
    let daemon = Daemon::start(&dir, &config);
    let metadata = fs::metadata(&daemon.socket).expect("the socket exists");
    assert_eq!(metadata.mode() & 0o777, 0o600, "socket mode");
    assert_eq!(metadata.uid(), nix::unistd::geteuid().as_raw());

    if !nix::unistd::geteuid().is_root() {
        support::skip("the other-user half needs root to run a client as nobody");
        return;
    }
    // Open the path up so the daemon's own check is what refuses.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    fs::set_permissions(&daemon.socket, fs::Permissions::from_mode(0o666)).expect("chmod socket");
    let output = Command::new(HAFRONT)
        .args(["status", "--socket"])
        .arg(&daemon.socket)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run hafront status as nobody");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("permission denied: uid 65534"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing leaked: {output:?}");
    assert!(daemon.log().contains("uid 65534"), "the refusal is logged");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn systemd_hears_ready_reloading_stopping_and_watchdog_pings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let config = write(
        &dir,
        &config_text(&dir, "", "1s", &[("none", localhost())], &[]),
    );
    let notify_env = notify_path.to_str().expect("UTF-8 path");
    let daemon = Daemon::start_with_env(
        &dir,
        &config,
        &[("NOTIFY_SOCKET", notify_env), ("WATCHDOG_USEC", "200000")],
    );
    let next = || {
        let mut buffer = [0u8; 512];
        let length = notify.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..length])
            .trim_end()
            .to_owned()
    };
    let mut seen = Vec::new();
    let started = Instant::now();
    // Ready first, then pings every 100 ms (half the watchdog interval).
    while seen
        .iter()
        .filter(|message| *message == "WATCHDOG=1")
        .count()
        < 4
    {
        seen.push(next());
        assert!(started.elapsed() < Duration::from_secs(10), "{seen:?}");
    }
    assert_eq!(seen[0], "READY=1", "{seen:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "pings come at half the watchdog interval: {seen:?}"
    );

    daemon.signal(Signal::SIGHUP);
    let reloading = (0..50)
        .map(|_| next())
        .find(|message| message.starts_with("RELOADING=1"))
        .expect("a RELOADING notification");
    let monotonic: u64 = reloading
        .lines()
        .find_map(|line| line.strip_prefix("MONOTONIC_USEC="))
        .expect("RELOADING carries MONOTONIC_USEC")
        .parse()
        .expect("a number");
    assert!(monotonic > 0);
    assert!(
        (0..50).map(|_| next()).any(|message| message == "READY=1"),
        "READY again after the reload"
    );

    daemon.signal(Signal::SIGTERM);
    assert!(
        (0..50)
            .map(|_| next())
            .any(|message| message == "STOPPING=1"),
        "STOPPING before exit"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        let installed = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "systemd"])
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            support::skip("systemd-analyze is missing and systemd cannot be installed here");
            return;
        }
    }
    let unit = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/hafront.service"))
        .expect("read dist/hafront.service");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStopPost=/usr/sbin/hafront release -c ",
        "StateDirectory=hafront",
        "RuntimeDirectory=hafront",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
    ] {
        assert!(unit.contains(needed), "the unit has {needed}");
    }
    // Verify checks that every command exists: point them at the built binary.
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("hafront.service");
    fs::write(&copy, unit.replace("/usr/sbin/hafront", HAFRONT)).expect("write the unit copy");
    // The man pages of `Documentation=` come with the Debian package (tests/package.rs).
    let output = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze verify");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One PING over an open connection.
fn ping(stream: &mut TcpStream) {
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").expect("send PING");
    stream.read_exact(&mut reply).expect("read PONG");
    assert_eq!(&reply, b"+PONG\r\n");
}

/// Connections forwarded to server `name` since the daemon started.
fn forwarded(daemon: &Daemon, name: &str) -> u64 {
    server(&daemon.status(), name)["total_connections"]
        .as_u64()
        .expect("total_connections")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_server_keeps_its_connections_takes_no_new_ones_across_reload_and_restart() {
    let (one, two) = (Redis::start().await, Redis::start().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let front = localhost();
    let servers = [("one", one.address()), ("two", two.address())];
    let config = write(
        &dir,
        &config_text(&dir, "", "200ms", &servers, &[("front", front)]),
    );
    let mut daemon = Daemon::start(&dir, &config);
    daemon.wait_until(Duration::from_secs(10), "both servers up", || {
        let status = daemon.status();
        server(&status, "one")["status"] == "up" && server(&status, "two")["status"] == "up"
    });
    // Round robin: one open connection on each server.
    let mut open: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(front).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("read timeout");
            ping(&mut stream);
            stream
        })
        .collect();
    assert_eq!(
        (forwarded(&daemon, "one"), forwarded(&daemon, "two")),
        (1, 1)
    );

    let output = daemon.hafront(&["drain", "cache/one"]);
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("cache/one drained"), "{said}");
    assert_eq!(server(&daemon.status(), "one")["drained"], true);
    let new_ones_reach_only_two = |daemon: &Daemon, count: u64| {
        let before = (forwarded(daemon, "one"), forwarded(daemon, "two"));
        for _ in 0..count {
            ping_through(front, 1);
        }
        assert_eq!(
            (forwarded(daemon, "one"), forwarded(daemon, "two")),
            (before.0, before.1 + count),
            "a drained server got a new connection"
        );
    };
    new_ones_reach_only_two(&daemon, 4);
    for stream in &mut open {
        ping(stream);
    }

    // Kept across a reload and a restart (the drain is recorded in state_dir).
    let output = daemon.hafront(&["reload"]);
    assert!(output.status.success(), "{output:?}");
    new_ones_reach_only_two(&daemon, 2);
    for stream in &mut open {
        ping(stream);
    }
    drop(open);
    assert_eq!(daemon.stop(), Some(0));
    daemon = Daemon::start(&dir, &config);
    daemon.wait_until(Duration::from_secs(10), "both servers up again", || {
        let status = daemon.status();
        server(&status, "one")["status"] == "up" && server(&status, "two")["status"] == "up"
    });
    assert_eq!(server(&daemon.status(), "one")["drained"], true);
    new_ones_reach_only_two(&daemon, 2);

    let output = daemon.hafront(&["enable", "cache/one"]);
    assert!(output.status.success(), "{output:?}");
    for _ in 0..2 {
        ping_through(front, 1);
    }
    assert_eq!(
        forwarded(&daemon, "one"),
        1,
        "an enabled server takes clients again"
    );
    let output = daemon.hafront(&["drain", "cache/three"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("pool cache has no server \"three\""),
        "{output:?}"
    );
}

/// Waits up to `within` for the daemon to exit; its exit code, or `None` while it runs.
fn exit_code_within(daemon: &mut Daemon, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = daemon.process.try_wait() {
            return status.code();
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_lets_open_connections_finish_within_the_grace_and_no_longer() {
    let redis = Redis::start().await;
    for (grace, client_leaves) in [("10s", true), ("1s", false)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let front = localhost();
        let config = write(
            &dir,
            &config_text(
                &dir,
                &format!("  stop_grace: {grace}\n"),
                "200ms",
                &[("one", redis.address())],
                &[("front", front)],
            ),
        );
        let mut daemon = Daemon::start(&dir, &config);
        daemon.wait_until(Duration::from_secs(10), "server up", || {
            server(&daemon.status(), "one")["status"] == "up"
        });
        let mut open = TcpStream::connect(front).expect("connect");
        open.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        ping(&mut open);
        let stopping = Instant::now();
        daemon.signal(Signal::SIGTERM);
        // New clients are turned away at once; the open one is still served.
        daemon.wait_until(Duration::from_secs(5), "listener closed", || {
            TcpStream::connect(front).is_err()
        });
        ping(&mut open);
        assert_eq!(
            exit_code_within(&mut daemon, Duration::from_millis(300)),
            None
        );
        if client_leaves {
            drop(open);
            assert_eq!(
                exit_code_within(&mut daemon, Duration::from_secs(3)),
                Some(0),
                "the daemon did not stop once its last connection finished"
            );
            assert!(
                stopping.elapsed() < Duration::from_secs(5),
                "it waited out the grace"
            );
        } else {
            assert_eq!(
                exit_code_within(&mut daemon, Duration::from_secs(5)),
                Some(0),
                "the daemon did not stop at the end of the grace"
            );
            assert!(
                stopping.elapsed() >= Duration::from_millis(900),
                "no grace given"
            );
            let mut byte = [0u8; 1];
            assert!(
                matches!(open.read(&mut byte), Ok(0) | Err(_)),
                "the connection outlived the grace"
            );
            assert!(
                daemon
                    .log()
                    .contains("closing the connections still open after the stop grace")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vrrp_instance_on_a_missing_interface_is_refused_by_check_run_and_reload_at_its_line() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let base = config_text(&dir, "", "200ms", &[("one", redis.address())], &[]);
    // No such interface here: the instance fails before it opens a socket.
    let vrrp = "vrrp:\n  instances:\n    vip:\n      interface: hft-missing0\n      vrid: 51\n      \
                priority: 100\n      virtual_addresses: [10.213.0.100/24]\n";
    let with_vrrp = format!("{base}{vrrp}");
    let line = with_vrrp
        .lines()
        .position(|line| line.contains("hft-missing0"))
        .expect("the interface line")
        + 1;
    let config = write(&dir, &with_vrrp);
    let location = format!("{}:{line}:", config.display());

    // `check` finds what would stop `run`; `check --skip-files` (a file for another
    // machine) does not look at this host's interfaces.
    for command in ["check", "run"] {
        let output = Command::new(HAFRONT)
            .args([command, "-c"])
            .arg(&config)
            .output()
            .expect("run hafront");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains(&location) && stderr.contains("vrrp.instances.vip.interface"),
            "{command}: not located at {location}: {stderr}"
        );
    }
    let output = Command::new(HAFRONT)
        .args(["check", "--skip-files", "-c"])
        .arg(&config)
        .output()
        .expect("run hafront");
    assert!(output.status.success(), "{output:?}");

    // At reload: refused at the same line; the running configuration stays, without
    // the instance.
    write(&dir, &base);
    let daemon = Daemon::start(&dir, &config);
    write(&dir, &with_vrrp);
    let output = daemon.hafront(&["reload"]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains(&location) && printed.contains("vrrp.instances.vip.interface"),
        "not located at {location}: {printed}"
    );
    let status = daemon.status();
    assert_eq!(status["vrrp"], serde_json::json!([]), "{status}");
    assert_eq!(daemon.stop(), Some(0));
}
