//! Notify scripts run for real: event order one at a time, per-pool and
//! per-instance filters, keepalived-style arguments passed verbatim (no
//! shell), a clean environment describing the event, timeout kills of the
//! whole process group, the run-as user, and refusal of unsafe scripts.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hafront::alerts::{Alerts, AlertsHandle, Event, EventKind, VrrpState, VrrpTransition};
use hafront_config::program::{SCRIPT_PATH, check_program};
use hafront_config::{Alerts as AlertsConfig, Config, Global, Notify};
use hafront_health::{HealthEvent, Status};
use support::{mysql_health, mysql_pool_config};

/// Writes an executable shell script (the script may use a shell; hafront
/// never does).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn notify(command: &[&str]) -> Notify {
    Notify {
        command: command.iter().map(|arg| (*arg).to_owned()).collect(),
        instance: None,
        pool: None,
        timeout: Duration::from_secs(10),
        user: None,
    }
}

fn config(notify: Vec<Notify>) -> Config {
    let global = Global {
        node: Some("node1".into()),
        ..Global::default()
    };
    mysql_pool_config(global, AlertsConfig::default(), notify)
}

fn start(notify: Vec<Notify>) -> AlertsHandle {
    Alerts::start("node1".into(), &config(notify), Arc::new(String::new)).expect("alerts start")
}

fn health(server: &str, old: Status, new: Status, reason: &str, at: SystemTime) -> HealthEvent {
    mysql_health(server, old, new, reason, at)
}

fn vrrp(old: VrrpState, new: VrrpState, priority: u8) -> Event {
    Event {
        at: SystemTime::now(),
        kind: EventKind::Vrrp(VrrpTransition {
            instance: "VI_1".into(),
            old,
            new,
            priority,
            reason: "no advert from the master for 3.6s".into(),
        }),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `KEY=value` lines of an `env` dump, as a map.
fn environment(path: &Path) -> BTreeMap<String, String> {
    lines(path)
        .iter()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[tokio::test]
async fn scripts_run_in_event_order_one_at_a_time_and_see_only_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"echo "start $HAFRONT_EVENT $HAFRONT_REASON" >> "$1"
sleep 0.05
echo "end $HAFRONT_EVENT $HAFRONT_REASON" >> "$1""#;
    let program = script(dir.path(), "log.sh", body);
    let program = program.to_str().unwrap();
    let pool_log = dir.path().join("pool.log");
    let instance_log = dir.path().join("instance.log");
    let mut for_pool = notify(&[program, pool_log.to_str().unwrap()]);
    for_pool.pool = Some("mysql".into());
    let mut for_instance = notify(&[program, instance_log.to_str().unwrap()]);
    for_instance.instance = Some("VI_1".into());
    let alerts = start(vec![for_pool, for_instance]);

    let at = SystemTime::now();
    alerts.send(health("db2", Status::Unknown, Status::Up, "seq0", at));
    alerts.send(health("db1", Status::Unknown, Status::Up, "seq1", at));
    for seq in 2..10 {
        let (old, new) = if seq % 2 == 0 {
            (Status::Up, Status::Down)
        } else {
            (Status::Down, Status::Up)
        };
        alerts.send(health("db1", old, new, &format!("seq{seq}"), at));
    }
    alerts.send(vrrp(VrrpState::Backup, VrrpState::Master, 150));
    alerts.shutdown().await;

    let mut expected = Vec::new();
    for seq in 0..10 {
        let event = match seq {
            0 | 1 => "server_up",
            seq if seq % 2 == 0 => "server_down",
            _ => "server_up",
        };
        expected.push(format!("start {event} seq{seq}"));
        expected.push(format!("end {event} seq{seq}"));
    }
    assert_eq!(lines(&pool_log), expected);
    assert_eq!(
        lines(&instance_log),
        [
            "start vrrp no advert from the master for 3.6s",
            "end vrrp no advert from the master for 3.6s"
        ]
    );
}

#[tokio::test]
async fn arguments_are_passed_verbatim_with_keepalived_style_vrrp_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "args.sh",
        r#"log="$1"; shift; for arg in "$@"; do printf '%s\n' "$arg" >> "$log"; done"#,
    );
    let log = dir.path().join("args.log");
    let marker = dir.path().join("pwned");
    let substitution = format!("$(touch {})", marker.display());
    let backticks = format!("`touch {}`", marker.display());
    let hostile = [
        "a;b",
        substitution.as_str(),
        backticks.as_str(),
        "*",
        "two words",
        "x && touch y",
    ];
    let mut command = vec![program.to_str().unwrap(), log.to_str().unwrap()];
    command.extend(hostile);
    let alerts = start(vec![notify(&command)]);
    alerts.send(vrrp(VrrpState::Backup, VrrpState::Master, 150));
    alerts.shutdown().await;

    let mut expected: Vec<&str> = hostile.to_vec();
    expected.extend(["INSTANCE", "VI_1", "MASTER", "150"]);
    assert_eq!(lines(&log), expected);
    assert!(!marker.exists(), "no shell interpreted an argument");
}

#[tokio::test]
async fn the_environment_describes_the_event_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "env.sh", r#"env > "$1/$HAFRONT_EVENT.env""#);
    let alerts = start(vec![notify(&[
        program.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ])]);
    let down_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    alerts.send(health(
        "db2",
        Status::Unknown,
        Status::Up,
        "ping ok",
        down_at,
    ));
    alerts.send(health(
        "db1",
        Status::Unknown,
        Status::Up,
        "ping ok",
        down_at,
    ));
    alerts.send(health(
        "db1",
        Status::Up,
        Status::Down,
        "connect: connection refused",
        down_at,
    ));
    alerts.send(health(
        "db1",
        Status::Down,
        Status::Up,
        "ping ok",
        down_at + Duration::from_secs(42),
    ));
    alerts.send(vrrp(VrrpState::Master, VrrpState::Fault, 0));
    alerts.shutdown().await;

    let down = environment(&dir.path().join("server_down.env"));
    let expected = [
        ("HAFRONT_EVENT", "server_down"),
        ("HAFRONT_NODE", "node1"),
        ("HAFRONT_POOL", "mysql"),
        ("HAFRONT_SERVER", "db1"),
        ("HAFRONT_ADDRESS", "127.0.0.1:3306"),
        ("HAFRONT_OLD", "up"),
        ("HAFRONT_NEW", "down"),
        ("HAFRONT_REASON", "connect: connection refused"),
        ("HAFRONT_TIME", "2023-11-14T22:13:20.000Z"),
        ("PATH", SCRIPT_PATH),
    ];
    for (key, value) in expected {
        assert_eq!(down.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert!(
        down.keys().all(|key| key.starts_with("HAFRONT_")
            || ["PATH", "PWD", "SHLVL", "_"].contains(&key.as_str())),
        "the daemon's environment does not leak: {down:?}"
    );

    let up = environment(&dir.path().join("server_up.env"));
    assert_eq!(up["HAFRONT_DOWN_SECONDS"], "42");
    assert_eq!(up["HAFRONT_OLD"], "down");

    let fault = environment(&dir.path().join("vrrp.env"));
    assert_eq!(fault["HAFRONT_INSTANCE"], "VI_1");
    assert_eq!(fault["HAFRONT_OLD"], "MASTER");
    assert_eq!(fault["HAFRONT_NEW"], "FAULT");
    assert_eq!(fault["HAFRONT_PRIORITY"], "0");
    assert_eq!(
        fault["HAFRONT_REASON"],
        "no advert from the master for 3.6s"
    );
    assert!(!fault.contains_key("HAFRONT_POOL"));
}

/// Whether a process is gone (or a zombie no longer running).
fn process_is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn a_script_past_its_timeout_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "hang.sh",
        r#"echo $$ >> "$1"; sleep 1000 & echo $! >> "$1"; wait"#,
    );
    let pids = dir.path().join("pids");
    let log = dir.path().join("after");
    let after = script(dir.path(), "after.sh", r#"echo "$HAFRONT_NEW" >> "$1""#);
    let mut hanging = notify(&[program.to_str().unwrap(), pids.to_str().unwrap()]);
    hanging.timeout = Duration::from_millis(300);
    let alerts = start(vec![
        hanging,
        notify(&[after.to_str().unwrap(), log.to_str().unwrap()]),
    ]);
    let started = Instant::now();
    alerts.send(vrrp(VrrpState::Backup, VrrpState::Master, 150));
    alerts.send(vrrp(VrrpState::Master, VrrpState::Backup, 100));
    alerts.shutdown().await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(600),
        "two runs of 300 ms: {elapsed:?}"
    );

    let pids = lines(&pids);
    assert_eq!(
        pids.len(),
        4,
        "both runs started script and child: {pids:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while !pids.iter().all(|pid| process_is_gone(pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in &pids {
        assert!(process_is_gone(pid), "process {pid} survived the timeout");
    }
    assert_eq!(
        lines(&log),
        ["MASTER", "BACKUP"],
        "other scripts unaffected"
    );
}

#[tokio::test]
async fn an_unsafe_script_is_reported_and_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let program = script(dir.path(), "unsafe.sh", r#"touch "$1""#);
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o757)).unwrap();
    let problem = check_program(&program).unwrap_err();
    assert!(problem.contains("writable by others"), "{problem}");

    let alerts = start(vec![notify(&[
        program.to_str().unwrap(),
        marker.to_str().unwrap(),
    ])]);
    alerts.send(health(
        "db1",
        Status::Unknown,
        Status::Down,
        "x",
        SystemTime::now(),
    ));
    alerts.shutdown().await;
    assert!(!marker.exists());

    let missing = dir.path().join("missing.sh");
    assert!(check_program(&missing).is_err());
}

#[tokio::test]
async fn a_script_runs_as_the_configured_user() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = dir.path().join("out");
    std::fs::create_dir(&output).unwrap();
    std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o777)).unwrap();
    let program = script(
        dir.path(),
        "whoami.sh",
        r#"{ id -u; id -g; id -G; echo "$USER $HOME"; } > "$1/id""#,
    );
    let mut as_nobody = notify(&[program.to_str().unwrap(), output.to_str().unwrap()]);
    as_nobody.user = Some("nobody".into());
    let alerts = start(vec![as_nobody]);
    alerts.send(health(
        "db1",
        Status::Unknown,
        Status::Down,
        "x",
        SystemTime::now(),
    ));
    alerts.shutdown().await;

    let id = lines(&output.join("id"));
    assert_eq!(id.len(), 4, "{id:?}");
    assert_eq!(id[0], nobody.uid.to_string());
    assert_eq!(id[1], nobody.gid.to_string());
    assert!(
        id[2].split(' ').all(|group| group != "0"),
        "root's groups dropped: {}",
        id[2]
    );
    assert_eq!(id[3], format!("nobody {}", nobody.dir.display()));
}

#[test]
fn an_unknown_user_is_refused_at_start() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let mut entry = notify(&["/bin/true"]);
    entry.user = Some("no-such-user-hafront".into());
    let err = Alerts::start("n".into(), &config(vec![entry]), Arc::new(String::new)).unwrap_err();
    assert!(err.to_string().contains("no-such-user-hafront"), "{err}");
}
