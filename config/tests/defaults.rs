//! What an operator gets for the keys left out, and loading from disk.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hafront_config::{
    CheckKind, Garp, LogFormat, OnQuorumLoss, OnServerDown, Policy, ProxyVersion, RelayMode,
    Secret, SmtpSecurity, V3Checksum, load, parse,
};

#[test]
fn an_empty_global_section_gives_the_default_globals() {
    for text in ["global: {}\n", "global: {log: {}}\n"] {
        let config = parse(text, "empty.yaml").expect("empty config");
        assert_eq!(config.global.node, None);
        assert_eq!(config.global.state_dir, PathBuf::from("/var/lib/hafront"));
        assert_eq!(
            config.global.control_socket,
            PathBuf::from("/run/hafront/control.sock")
        );
        assert_eq!(config.global.log.level, "info");
        assert_eq!(config.global.log.format, LogFormat::Text);
        assert_eq!(config.global.metrics, None);
        assert!(config.checks.is_empty() && config.pools.is_empty() && config.relays.is_empty());
        assert!(config.vrrp.instances.is_empty() && config.notify.is_empty());
        assert_eq!(config.alerts.email, None);
    }
}

#[test]
fn left_out_keys_take_the_documented_defaults() {
    let config = parse(
        "\
checks:
  db: {kind: tcp}
  web: {kind: http}
pools:
  p: {check: db, servers: [{address: 127.0.0.1:3306}]}
relays:
  r: {listen: ['127.0.0.1:13306'], pool: p}
vrrp:
  instances:
    vip: {interface: eth0, vrid: 1, virtual_addresses: [192.0.2.1/24]}
alerts:
  email: {smtp_host: localhost, from: a@example.com, to: [b@example.com]}
notify:
  - command: [/bin/true]
",
        "defaults.yaml",
    )
    .expect("valid config");

    let check = &config.checks["db"];
    assert_eq!(
        (check.interval, check.timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
    assert_eq!((check.rise, check.fall), (2, 3));
    let CheckKind::Http(http) = &config.checks["web"].kind else {
        panic!("expected an http check");
    };
    assert_eq!(http.path, "/");
    assert!(http.expect_status.contains(200) && http.expect_status.contains(399));
    assert!(!http.expect_status.contains(404));

    let server = &config.pools["p"].servers[0];
    assert_eq!((server.weight, server.backup), (1, false));
    assert_eq!(server.display_name(), "127.0.0.1:3306");

    let relay = &config.relays["r"];
    assert_eq!(
        relay.listen,
        ["127.0.0.1:13306".parse::<SocketAddr>().expect("address")]
    );
    assert_eq!(relay.policy, Policy::RoundRobin);
    assert_eq!(relay.role, None);
    assert_eq!(relay.connect_timeout, Duration::from_secs(3));
    assert_eq!(relay.idle_timeout, Duration::from_secs(3600));
    assert_eq!(relay.max_connections, 10_000);
    assert_eq!(relay.connect_attempts, 3);
    assert_eq!(relay.on_server_down, OnServerDown::Keep);
    assert_eq!(relay.mode, RelayMode::Plain);
    assert_eq!(
        (
            relay.send_proxy,
            relay.accept_proxy,
            relay.accept_proxy_from.len()
        ),
        (None, false, 0)
    );
    let proxied = parse(
        "checks: {c: {kind: tcp}}\npools: {p: {check: c, servers: [{address: 127.0.0.1:1}]}}\nrelays:\n  a: {listen: [127.0.0.1:2], pool: p, send_proxy: v1}\n  b: {listen: [127.0.0.1:3], pool: p, send_proxy: v2, accept_proxy: true, accept_proxy_from: [10.0.0.0/24, 192.0.2.7/32]}\n",
        "proxy.yaml",
    )
    .expect("PROXY protocol settings, as documented");
    assert_eq!(proxied.relays["a"].send_proxy, Some(ProxyVersion::V1));
    let b = &proxied.relays["b"];
    assert_eq!(
        (b.send_proxy, b.accept_proxy),
        (Some(ProxyVersion::V2), true)
    );
    assert_eq!(
        b.accept_proxy_from,
        vec![
            "10.0.0.0/24".parse().expect("network"),
            "192.0.2.7/32".parse().expect("network")
        ]
    );
    let written_plain = parse(
        "checks: {c: {kind: tcp}}\npools: {p: {check: c, servers: [{address: 127.0.0.1:1}]}}\nrelays:\n  a: {listen: [127.0.0.1:2], pool: p, mode: plain}\n  b: {listen: [127.0.0.1:3], pool: p, mode: {kind: plain}}\n",
        "plain.yaml",
    )
    .expect("mode: plain, as documented");
    assert!(
        written_plain
            .relays
            .values()
            .all(|relay| relay.mode == RelayMode::Plain)
    );

    let instance = &config.vrrp.instances["vip"];
    assert_eq!((instance.version, instance.priority), (3, 100));
    assert_eq!(instance.advert_interval, Duration::from_secs(1));
    assert!(instance.preempt);
    assert_eq!(instance.preempt_delay, Duration::ZERO);
    assert!(instance.unicast_peers.is_empty() && instance.track.is_empty());
    assert_eq!(instance.auth_pass, None);
    assert_eq!(instance.v3_checksum, V3Checksum::PseudoHeader);
    assert_eq!(
        instance.garp,
        Garp {
            repeat: 3,
            interval: Duration::from_millis(100),
            refresh: None
        }
    );

    let email = config.alerts.email.as_ref().expect("email");
    assert_eq!(
        (email.smtp_port, email.security),
        (None, SmtpSecurity::Starttls)
    );
    assert_eq!(email.coalesce, Duration::from_secs(10));
    assert_eq!(email.max_per_hour, 20);
    assert_eq!(email.timeout, Duration::from_secs(30));

    let notify = &config.notify[0];
    assert_eq!(notify.timeout, Duration::from_secs(30));
    assert_eq!(
        (
            notify.instance.as_ref(),
            notify.pool.as_ref(),
            notify.user.as_ref()
        ),
        (None, None, None)
    );
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hafront.yaml");
    std::fs::write(&path, "global:\n  node: front-1\n").expect("write config");
    let config = load(&path).expect("valid config");
    assert_eq!(config.global.node.as_deref(), Some("front-1"));

    std::fs::write(&path, "global:\n  nod: front-1\n").expect("write config");
    let errors = load(&path).expect_err("unknown key");
    let expected = format!("{}:2:3: global.nod: unknown field `nod`", path.display());
    assert!(errors.to_string().starts_with(&expected), "{errors}");

    let missing = dir.path().join("absent.yaml");
    let errors = load(&missing).expect_err("absent file");
    assert_eq!(errors.len(), 1);
    let line = errors.to_string();
    assert!(
        line.starts_with(&format!(
            "{}: cannot read the configuration:",
            missing.display()
        )),
        "{line}"
    );
}

fn private_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(content.as_bytes()).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

#[test]
fn secrets_reveal_values_and_file_contents_without_the_trailing_newline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unix = private_file(dir.path(), "unix.pass", "pa ss\n");
    let dos = private_file(dir.path(), "dos.pass", "word\r\n");
    assert_eq!(Secret::File(unix).reveal().expect("read"), "pa ss");
    assert_eq!(Secret::File(dos).reveal().expect("read"), "word");
    assert_eq!(
        Secret::Value("inline\n".to_owned())
            .reveal()
            .expect("value"),
        "inline\n"
    );
    assert!(Secret::File(dir.path().join("absent")).reveal().is_err());
}

#[test]
fn secret_values_stay_out_of_debug_output_and_errors() {
    let config = parse(
        "checks:\n  db: {kind: redis, password: {value: hunter2}}\n",
        "secret.yaml",
    )
    .expect("valid config");
    assert!(!format!("{config:?}").contains("hunter2"));

    let errors = parse(
        "vrrp:\n  instances:\n    v: {interface: eth0, vrid: 1, version: 2, auth_pass: {value: hunter2-too-long}, virtual_addresses: [192.0.2.1/24]}\n",
        "secret.yaml",
    )
    .expect_err("password too long");
    assert!(!errors.to_string().contains("hunter2"), "{errors}");

    let errors = parse(
        "checks:\n  db: {kind: redis, password: hunter2}\n",
        "secret.yaml",
    )
    .expect_err("a secret must be {value: ...} or {file: ...}");
    assert!(!errors.to_string().contains("hunter2"), "{errors}");
}

#[test]
fn relative_file_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
    private_file(dir.path(), "secrets/redis.pass", "pw\n");
    private_file(dir.path(), "key.pem", "key\n");
    private_file(dir.path(), "cert.pem", "cert\n");
    let path = dir.path().join("hafront.yaml");
    std::fs::write(
        &path,
        "\
checks:
  cache: {kind: redis, password: {file: secrets/redis.pass}}
pools:
  redis: {check: cache, servers: [{address: 127.0.0.1:6379}]}
relays:
  tls:
    listen: [127.0.0.1:6380]
    pool: redis
    mode: {kind: tls_server, cert_file: cert.pem, key_file: key.pem}
",
    )
    .expect("write config");
    // The test runs in the crate's directory, which holds none of these files.
    let config = load(&path).expect("files found beside the config");
    let CheckKind::Redis(redis) = &config.checks["cache"].kind else {
        panic!("expected a redis check");
    };
    assert_eq!(
        redis.password,
        Some(Secret::File(dir.path().join("secrets/redis.pass")))
    );
    let RelayMode::TlsServer(tls) = &config.relays["tls"].mode else {
        panic!("expected tls_server");
    };
    assert_eq!(
        (tls.cert_file.as_path(), tls.key_file.as_path()),
        (
            dir.path().join("cert.pem").as_path(),
            dir.path().join("key.pem").as_path()
        )
    );
}

#[test]
fn a_quorum_section_takes_the_documented_defaults_and_its_files() {
    let config = parse(
        "quorum: {endpoints: [http://10.0.0.5:2379]}\n",
        "quorum.yaml",
    )
    .expect("valid config");
    let quorum = config.quorum.expect("a quorum section");
    assert_eq!(quorum.prefix, "/hafront/");
    assert_eq!(quorum.ttl, Duration::from_secs(2));
    assert_eq!(quorum.node_name, None);
    assert_eq!(quorum.on_quorum_loss, OnQuorumLoss::Resign);
    assert_eq!(
        (quorum.user, quorum.password, quorum.tls),
        (None, None, None)
    );
    assert_eq!(
        parse("global: {}\n", "none.yaml").expect("valid").quorum,
        None
    );

    // The key file must be private, like every key file; relative paths are read from the
    // configuration's directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, mode: u32| {
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .and_then(|mut file| file.write_all(b"pem"))
            .expect("write file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write("ca.pem", 0o644);
    write("client.pem", 0o644);
    write("client.key", 0o644);
    write("etcd.pass", 0o600);
    let yaml = dir.path().join("hafront.yaml");
    std::fs::write(
        &yaml,
        "quorum:
  endpoints: [https://etcd1:2379, https://etcd2:2379, https://etcd3:2379]
  tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key}
  user: hafront
  password: {file: etcd.pass}
  on_quorum_loss: keep
",
    )
    .expect("write config");
    let errors = load(&yaml).expect_err("a readable key");
    let message = errors.to_string();
    assert!(
        message.contains(":3:59: quorum.tls.key_file:")
            && message.contains("client.key is accessible by group or others (mode 0644)"),
        "{message}"
    );
    write("client.key", 0o600);
    let quorum = load(&yaml).expect("private key").quorum.expect("quorum");
    let tls = quorum.tls.expect("tls");
    assert_eq!(tls.key_file, Some(dir.path().join("client.key")));
    assert_eq!(
        quorum.password,
        Some(Secret::File(dir.path().join("etcd.pass")))
    );
    assert_eq!(quorum.on_quorum_loss, OnQuorumLoss::Keep);
}

#[test]
fn names_that_yaml_1_1_reads_as_booleans_stay_names() {
    let config = parse(
        "\
checks:
  y: {kind: tcp}
pools:
  on:
    check: y
    servers: [{address: 127.0.0.1:6379}]
relays:
  y: {listen: [127.0.0.1:16379], pool: on}
  off: {listen: [127.0.0.1:16380], pool: on}
",
        "names.yaml",
    )
    .expect("names like y, on and off");
    assert_eq!(config.checks.keys().collect::<Vec<_>>(), ["y"]);
    assert_eq!(config.pools["on"].check, "y");
    assert_eq!(config.relays.keys().collect::<Vec<_>>(), ["off", "y"]);
    assert_eq!(config.relays["y"].pool, "on");
}
