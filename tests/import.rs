//! `hafront import keepalived|haproxy FILE`: the binary prints a
//! configuration that `hafront check --skip-files` accepts, and a summary
//! on stderr; an imported HAProxy front for Redis, run by hafront, sends
//! clients to the master only, as HAProxy's tcp-check did.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::{HAFRONT, HafrontRun, Redis, RedisOptions, closed_address, wait_for};

fn hafront(args: &[&str]) -> Output {
    Command::new(HAFRONT)
        .args(args)
        .output()
        .expect("run hafront")
}

fn sample(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("import/tests/samples")
        .join(path)
        .display()
        .to_string()
}

/// Imports `file` and checks the output with `hafront check --skip-files`.
fn import_and_check(kind: &str, file: &str) -> String {
    let imported = hafront(&["import", kind, file]);
    let stderr = String::from_utf8_lossy(&imported.stderr).into_owned();
    assert!(imported.status.success(), "import {file}: {stderr}");
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = directory.path().join("hafront.yaml");
    std::fs::write(&output, &imported.stdout).expect("write the translation");
    let checked = hafront(&["check", "--skip-files", "-c", &output.display().to_string()]);
    assert!(
        checked.status.success(),
        "{}\n--- translation:\n{}",
        String::from_utf8_lossy(&checked.stderr),
        String::from_utf8_lossy(&imported.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&checked.stdout), "OK\n");
    stderr
}

#[test]
fn import_prints_what_hafront_check_accepts_and_a_summary() {
    let file = sample("keepalived/keepalived.conf.vrrp");
    let stderr = import_and_check("keepalived", &file);
    assert!(
        stderr.contains(&format!(
            "hafront import: 11 line(s) of {file} not translated"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("create /etc/hafront/secrets/vrrp-VI_1.pass (mode 600)"),
        "{stderr}"
    );
    let file = sample("haproxy/configuration-txt-checks.cfg");
    let stderr = import_and_check("haproxy", &file);
    assert!(
        stderr.contains(&format!(
            "hafront import: 0 line(s) of {file} not translated"
        )),
        "{stderr}"
    );
}

#[test]
fn import_fails_when_nothing_translates_or_the_file_is_unreadable() {
    let file = sample("haproxy/debian-haproxy.cfg");
    let imported = hafront(&["import", "haproxy", &file]);
    assert_eq!(imported.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(
        stderr.contains(&format!(
            "nothing in {file} translates to hafront: the output configures nothing"
        )),
        "{stderr}"
    );
    let missing = hafront(&["import", "keepalived", "/nonexistent/keepalived.conf"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "hafront import: /nonexistent/keepalived.conf: cannot read: No such file or directory (os error 2)\n"
    );
    assert!(missing.stdout.is_empty());
}

/// The `role:` line of `INFO replication`, asked through `address`.
async fn role_through(address: SocketAddr, password: &str) -> Option<String> {
    let client = redis::Client::open(format!("redis://:{password}@{address}/")).ok()?;
    let connect = client.get_multiplexed_async_connection();
    let mut connection = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .ok()?
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut connection)
        .await
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("role:"))
        .map(|role| role.trim().to_owned())
}

#[tokio::test]
async fn an_imported_haproxy_redis_front_relays_to_the_master_only() {
    let password = "import-test-pw";
    let master = Redis::start_with(RedisOptions {
        password: Some(password.to_owned()),
        ..RedisOptions::default()
    })
    .await;
    let replica = Redis::start_with(RedisOptions {
        password: Some(password.to_owned()),
        replica_of: Some(master.address()),
        ..RedisOptions::default()
    })
    .await;
    let listen = closed_address();
    let directory = tempfile::tempdir().expect("temporary directory");
    // HAProxy's documented Redis master check, with AUTH; the replica first,
    // so that only the role check keeps clients from it.
    let haproxy_cfg = directory.path().join("haproxy.cfg");
    std::fs::write(
        &haproxy_cfg,
        format!(
            "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1m\n  timeout server 1m\n\
             listen redis\n  bind {listen}\n  option tcp-check\n\
             \x20 tcp-check send AUTH\\ {password}\\r\\n\n  tcp-check expect string +OK\n\
             \x20 tcp-check send PING\\r\\n\n  tcp-check expect string +PONG\n\
             \x20 tcp-check send info\\ replication\\r\\n\n  tcp-check expect string role:master\n\
             \x20 tcp-check send QUIT\\r\\n\n  tcp-check expect string +OK\n\
             \x20 server replica {} check inter 200ms fall 2 rise 1\n\
             \x20 server master {} check inter 200ms fall 2 rise 1\n",
            replica.address(),
            master.address()
        ),
    )
    .expect("write haproxy.cfg");
    let imported = hafront(&["import", "haproxy", &haproxy_cfg.display().to_string()]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let yaml = String::from_utf8(imported.stdout).expect("UTF-8");
    assert!(!yaml.contains(password), "the password was copied:\n{yaml}");
    // What the user does next: create the password file the import names,
    // and give this node its own state directory and control socket.
    let secret = directory.path().join("redis.pass");
    std::fs::write(&secret, format!("{password}\n")).expect("write the password file");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let state = directory.path().join("state");
    let config = directory.path().join("hafront.yaml");
    let yaml = yaml.replace(
        "/etc/hafront/secrets/redis-redis.pass",
        &secret.display().to_string(),
    ) + &format!(
        "\nglobal:\n  state_dir: {}\n  control_socket: {}\n",
        state.display(),
        state.join("control.sock").display()
    );
    std::fs::write(&config, &yaml).expect("write hafront.yaml");
    let checked = hafront(&["check", "-c", &config.display().to_string()]);
    assert!(
        checked.status.success(),
        "{}\n{yaml}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let daemon = HafrontRun::spawn(&config, directory.path().join("hafront.log"), &[]);
    wait_for(
        "a client through the relay",
        Duration::from_secs(15),
        || async { role_through(listen, password).await.is_some() },
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            role_through(listen, password).await.as_deref(),
            Some("master"),
            "a client reached the replica"
        );
    }
    assert_eq!(daemon.stop(Duration::from_secs(10)), Some(0));
}
