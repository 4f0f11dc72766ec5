//! `hafront check` is a promise: a file it passes starts, and what stops
//! `run` is what `check` reports, at the same file:line:column. Each case
//! here once passed `check` and then stopped `run`. What no check can
//! foresee (an address in use) `run` still locates.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{HAFRONT, HafrontRun, free_port};
use tempfile::TempDir;

/// Runs openssl in `dir`, panicking with its output when it fails.
fn openssl(arguments: &[&str], dir: &Path) {
    let output = Command::new("openssl")
        .args(arguments)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed certificate `NAME.pem` and its key `NAME.key` (mode 600).
fn self_signed(dir: &Path, name: &str) {
    let (key, pem, subject) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN={name}"),
    );
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subject,
        ],
        dir,
    );
    fs::set_permissions(dir.join(&key), fs::Permissions::from_mode(0o600)).expect("chmod key");
}

/// A config of one tcp pool and relay `r` (in `mode`, listening on
/// `listen`), with `global` lines and a trailing `extra` section.
fn config(dir: &TempDir, global: &str, listen: &str, mode: &str, extra: &str) -> String {
    format!(
        "global:
  state_dir: {state}
  control_socket: {state}/control.sock
{global}checks:
  port: {{ kind: tcp }}
pools:
  p: {{ check: port, servers: [{{ address: 127.0.0.1:1 }}] }}
relays:
  r:
    listen: [{listen}]
    pool: p
{mode}{extra}",
        state = dir.path().display(),
    )
}

/// The line (1-based) of `text` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} in {text}"))
        + 1
}

/// What `hafront run -c CONFIG` printed before exiting; panics if it does
/// not exit within 10 s (it started).
fn run_refused(config: &Path, log: PathBuf) -> String {
    let mut daemon = HafrontRun::spawn(config, log, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = daemon.try_wait() {
            assert_eq!(status.code(), Some(1), "{}", daemon.log());
            return daemon.log();
        }
        assert!(
            Instant::now() < deadline,
            "run started although check refused the file:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn what_stops_run_is_what_check_reports_at_the_same_location() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    self_signed(path, "a");
    self_signed(path, "b");
    fs::write(path.join("garbage.pem"), "not a certificate\n").expect("garbage CA");
    let file = |name: &str| path.join(name).display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let tls_server = |cert: &str, key: &str| {
        format!(
            "    mode: {{ kind: tls_server, cert_file: {}, key_file: {} }}\n",
            file(cert),
            file(key)
        )
    };
    let cases = [
        (
            "a private key given as the certificate",
            config(&dir, "", &listen, &tls_server("a.key", "a.key"), ""),
            "cert_file",
            "relays.r.mode.cert_file",
        ),
        (
            "a certificate whose key does not match",
            config(&dir, "", &listen, &tls_server("a.pem", "b.key"), ""),
            "cert_file",
            "relays.r.mode.cert_file",
        ),
        (
            "a garbage CA file",
            config(
                &dir,
                "",
                &listen,
                &format!(
                    "    mode: {{ kind: tls_client, ca_file: {}, server_name: db.test }}\n",
                    file("garbage.pem")
                ),
                "",
            ),
            "ca_file",
            "relays.r.mode.ca_file",
        ),
        (
            "a notify user that does not exist",
            config(
                &dir,
                "",
                &listen,
                "",
                "notify:\n  - command: [true]\n    user: hafront-no-such-user\n",
            ),
            "user:",
            "notify[0].user",
        ),
        (
            "metrics on a relay's address",
            config(&dir, &format!("  metrics: {listen}\n"), &listen, "", ""),
            "listen:",
            "relays.r.listen[0]",
        ),
        (
            "a state_dir that is a regular file",
            config(&dir, "", &listen, "", "").replacen(
                &path.display().to_string(),
                &file("a.pem"),
                1,
            ),
            "state_dir:",
            "global.state_dir",
        ),
    ];
    for (index, (case, text, needle, key)) in cases.into_iter().enumerate() {
        let config = path.join(format!("case{index}.yaml"));
        fs::write(&config, &text).expect("write config");
        let located = format!("{}:{}:", config.display(), line_of(&text, needle));
        let is_the_error =
            |line: &&str| line.starts_with(&located) && line.contains(&format!(": {key}: "));

        let check = Command::new(HAFRONT)
            .args(["check", "-c"])
            .arg(&config)
            .output()
            .expect("run hafront check");
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "{case}: check passed it");
        let reported = stderr
            .lines()
            .find(is_the_error)
            .unwrap_or_else(|| panic!("{case}: check reports {located} {key}:\n{stderr}"));

        let run = run_refused(&config, path.join(format!("case{index}.log")));
        assert!(
            run.lines().any(|line| line == reported),
            "{case}: run reports {reported:?} too:\n{run}"
        );
    }
}

#[test]
fn run_locates_an_address_in_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let busy = holder.local_addr().expect("address").to_string();
    let free = format!("127.0.0.1:{}", free_port());
    let cases = [
        (
            config(&dir, "", &busy, "", ""),
            "listen:",
            14,
            format!("relays.r.listen[0]: relay r: cannot listen on {busy}:"),
        ),
        (
            config(&dir, &format!("  metrics: {busy}\n"), &free, "", ""),
            "metrics:",
            12,
            format!("global.metrics: metrics: cannot listen on {busy}:"),
        ),
    ];
    for (index, (text, needle, column, error)) in cases.into_iter().enumerate() {
        let config = dir.path().join(format!("case{index}.yaml"));
        fs::write(&config, &text).expect("write config");
        let located = format!(
            "{}:{}:{column}: {error}",
            config.display(),
            line_of(&text, needle)
        );
        let run = run_refused(&config, dir.path().join(format!("case{index}.log")));
        assert!(
            run.lines().any(|line| line.contains(&located)),
            "{located} in:\n{run}"
        );
    }
}

/// A direct-routing relay reaches its servers by MAC address: `check` and `run` refuse a
/// server off the interface's subnet at its line, naming the interface's networks; a file
/// for another machine passes with `--skip-files`.
#[test]
fn a_direct_routing_server_off_the_interface_subnet_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "global:\n  state_dir: {state}\n  control_socket: {state}/control.sock\n\
         checks:\n  port: {{ kind: tcp }}\n\
         pools:\n  db:\n    check: port\n    servers:\n      - address: 127.0.0.5:3306\n      - address: 10.213.9.9:3306\n\
         vrrp:\n  instances:\n    vip:\n      interface: lo\n      vrid: 51\n      priority: 100\n      virtual_addresses: [127.0.0.100/8]\n\
         relays:\n  db:\n    listen: [127.0.0.100:3306]\n    pool: db\n    forward: direct_routing\n",
        state = dir.path().display(),
    );
    let config = dir.path().join("hafront.yaml");
    fs::write(&config, &text).expect("write config");
    let location = format!("{}:{}:", config.display(), line_of(&text, "10.213.9.9"));

    let check = Command::new(HAFRONT)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .expect("run hafront check");
    assert!(!check.status.success(), "check accepted it");
    let check = String::from_utf8_lossy(&check.stderr).into_owned();
    let run = run_refused(&config, dir.path().join("run.log"));
    for (command, output) in [("check", check), ("run", run)] {
        assert!(
            output.contains(&location)
                && output.contains("pools.db.servers[1].address")
                && output.contains("10.213.9.9 must be on that interface's subnet")
                && output.contains("127.0.0.0/8"),
            "{command}: not located at {location} with the interface's networks: {output}"
        );
        assert!(
            !output.contains("servers[0]"),
            "{command}: the server on the subnet was refused too: {output}"
        );
    }

    let output = Command::new(HAFRONT)
        .args(["check", "--skip-files", "-c"])
        .arg(&config)
        .output()
        .expect("run hafront");
    assert!(
        output.status.success(),
        "--skip-files (a file for another machine) refused it: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
