//! Precise translations of small hand-written keepalived and HAProxy
//! configurations, read back with hafront's own configuration loader.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hafront_config::{
    CheckKind, Config, Forward, ParseOptions, Policy, Role, Secret, SmtpSecurity,
};
use hafront_import::Translation;

/// An input file in a temporary directory, kept as long as the value.
struct Input {
    _directory: tempfile::TempDir,
    path: PathBuf,
}

impl Input {
    fn new(name: &str, text: &str) -> Input {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join(name);
        std::fs::write(&path, text).expect("write the input");
        Input {
            _directory: directory,
            path,
        }
    }

    /// The `# hafront import: FILE:LINE: ` prefix of a comment on `line`.
    fn at(&self, line: usize) -> String {
        format!("# hafront import: {}:{line}: ", self.path.display())
    }
}

/// The translation read back by hafront's validator (files not checked,
/// as `hafront check --skip-files`).
fn load(translation: &Translation) -> Config {
    hafront_config::parse_with(
        &translation.yaml,
        "translated.yaml",
        ParseOptions { check_files: false },
    )
    .unwrap_or_else(|errors| panic!("{errors}\n--- translation:\n{}", translation.yaml))
}

fn keepalived(text: &str) -> (Input, Translation, Config) {
    let input = Input::new("keepalived.conf", text);
    let translation = hafront_import::keepalived(&input.path).expect("import");
    let config = load(&translation);
    (input, translation, config)
}

fn haproxy(text: &str) -> (Input, Translation, Config) {
    let input = Input::new("haproxy.cfg", text);
    let translation = hafront_import::haproxy(&input.path).expect("import");
    let config = load(&translation);
    (input, translation, config)
}

fn address(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

#[test]
fn a_vrrp_instance_keeps_its_priority_interval_preemption_addresses_and_peers() {
    let (_, _, config) = keepalived(
        "vrrp_instance VI_1 {\n\
         \x20   state BACKUP\n\
         \x20   interface eth0\n\
         \x20   virtual_router_id 51\n\
         \x20   priority 150\n\
         \x20   advert_int 2\n\
         \x20   nopreempt\n\
         \x20   preempt_delay 30\n\
         \x20   unicast_peer {\n\
         \x20       192.0.2.2\n\
         \x20       192.0.2.3\n\
         \x20   }\n\
         \x20   virtual_ipaddress {\n\
         \x20       192.0.2.100/24 dev eth0\n\
         \x20       192.0.2.101\n\
         \x20   }\n\
         }\n",
    );
    let instance = &config.vrrp.instances["VI_1"];
    assert_eq!(instance.interface, "eth0");
    assert_eq!(instance.vrid, 51);
    assert_eq!(instance.version, 2, "keepalived's default VRRP version");
    assert_eq!(instance.priority, 150);
    assert_eq!(instance.advert_interval, Duration::from_secs(2));
    assert!(!instance.preempt);
    assert_eq!(instance.preempt_delay, Duration::from_secs(30));
    let addresses: Vec<String> = instance
        .virtual_addresses
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(addresses, ["192.0.2.100/24", "192.0.2.101/32"]);
    let peers: Vec<IpAddr> = ["192.0.2.2", "192.0.2.3"]
        .map(|p| p.parse().unwrap())
        .to_vec();
    assert_eq!(instance.unicast_peers, peers);
    assert!(instance.track.is_empty());
}

#[test]
fn vrrp_version_3_keeps_sub_second_advert_intervals_and_other_devices_are_comments() {
    let (input, translation, config) = keepalived(
        "global_defs {\n  vrrp_version 3\n}\n\
         vrrp_instance db {\n  interface eth1\n  virtual_router_id 7\n  advert_int 0.1\n\
         \x20 virtual_ipaddress {\n    10.213.0.100/24\n    10.213.1.100/24 dev eth2\n  }\n}\n",
    );
    let instance = &config.vrrp.instances["db"];
    assert_eq!(instance.version, 3);
    assert_eq!(instance.advert_interval, Duration::from_millis(100));
    assert_eq!(instance.virtual_addresses.len(), 1);
    assert!(
        translation.yaml.contains(&format!(
            "{}10.213.1.100/24 dev eth2 — not translated: hafront adds virtual addresses to the instance's interface only",
            input.at(10)
        )),
        "{}",
        translation.yaml
    );
}

#[test]
fn auth_pass_becomes_a_secret_file_and_the_password_is_not_printed() {
    let (input, translation, config) = keepalived(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n\
         \x20 authentication {\n    auth_type PASS\n    auth_pass s3cr3tpw\n  }\n\
         \x20 virtual_ipaddress {\n    192.0.2.100/24\n  }\n}\n",
    );
    let file = "/etc/hafront/secrets/vrrp-VI_1.pass";
    assert_eq!(
        config.vrrp.instances["VI_1"].auth_pass,
        Some(Secret::File(PathBuf::from(file)))
    );
    assert!(
        !translation.yaml.contains("s3cr3tpw"),
        "{}",
        translation.yaml
    );
    assert_eq!(translation.secret_files, [file]);
    assert!(
        translation.yaml.contains(&format!(
            "{}auth_pass ... — the password is not copied here",
            input.at(6)
        )),
        "{}",
        translation.yaml
    );
}

#[test]
fn track_script_and_track_interface_weights_become_tracking() {
    let (_, translation, config) = keepalived(
        "vrrp_script chk_mysql {\n\
         \x20 script \"/usr/local/bin/check-mysql --socket '/run/mysqld/mysqld.sock'\"\n\
         \x20 interval 2\n  timeout 1\n  weight -20\n  rise 2\n  fall 3\n}\n\
         vrrp_script chk_cron {\n  script \"/usr/bin/pgrep cron\"\n  weight 10\n}\n\
         vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  priority 100\n\
         \x20 track_interface {\n    eth1\n    eth2 weight -5\n  }\n\
         \x20 track_script {\n    chk_mysql\n    chk_cron\n  }\n\
         \x20 virtual_ipaddress {\n    192.0.2.100/24\n  }\n}\n",
    );
    let check = &config.checks["script-chk_mysql"];
    match &check.kind {
        CheckKind::Exec(exec) => assert_eq!(
            exec.command,
            [
                "/usr/local/bin/check-mysql",
                "--socket",
                "/run/mysqld/mysqld.sock"
            ]
        ),
        other => panic!("not an exec check: {other:?}"),
    }
    assert_eq!(check.interval, Duration::from_secs(2));
    assert_eq!(check.timeout, Duration::from_secs(1));
    assert_eq!((check.rise, check.fall), (2, 3));
    assert_eq!(config.pools["script-chk_mysql"].check, "script-chk_mysql");
    let instance = &config.vrrp.instances["VI_1"];
    // chk_cron's positive weight is added while it is up: the priority is
    // raised by it and it is subtracted while down.
    assert_eq!(instance.priority, 110, "{}", translation.yaml);
    let track: Vec<(Option<&str>, Option<&str>, Option<u8>)> = instance
        .track
        .iter()
        .map(|t| (t.interface.as_deref(), t.pool.as_deref(), t.weight))
        .collect();
    assert_eq!(
        track,
        [
            (Some("eth1"), None, None),
            (Some("eth2"), None, Some(5)),
            (None, Some("script-chk_mysql"), Some(20)),
            (None, Some("script-chk_cron"), Some(10)),
        ]
    );
}

#[test]
fn notify_scripts_become_argv_and_per_state_scripts_are_comments() {
    let (input, translation, config) = keepalived(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n\
         \x20 virtual_ipaddress {\n    192.0.2.100/24\n  }\n\
         \x20 notify \"/usr/local/bin/vrrp-event --syslog\"\n\
         \x20 notify_master /usr/local/bin/became-master\n}\n",
    );
    assert_eq!(config.notify.len(), 1);
    assert_eq!(
        config.notify[0].command,
        ["/usr/local/bin/vrrp-event", "--syslog"]
    );
    assert_eq!(config.notify[0].instance.as_deref(), Some("VI_1"));
    assert!(translation.yaml.contains(&format!(
        "{}notify_master /usr/local/bin/became-master — not translated: hafront runs notify scripts on every state change",
        input.at(8)
    )), "{}", translation.yaml);
}

/// keepalived with LVS-DR on a VRRP address, the classic MySQL director: a direct-routing
/// relay on the instance's address; a second DR service whose server uses another port
/// stays a proxy and says why.
#[test]
fn an_lvs_dr_virtual_server_on_a_vrrp_address_becomes_direct_routing() {
    let (_, translation, config) = keepalived(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  priority 100\n\
         \x20 virtual_ipaddress {\n    10.0.0.100/24\n  }\n}\n\
         virtual_server 10.0.0.100 3306 {\n  lb_algo wlc\n  lb_kind DR\n  protocol TCP\n\
         \x20 real_server 10.0.0.11 3306 {\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n\
         \x20 real_server 10.0.0.12 3306 {\n    weight 2\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n}\n\
         virtual_server 10.0.0.100 6379 {\n  lb_kind DR\n\
         \x20 real_server 10.0.0.11 6380 {\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n}\n",
    );
    let mysql = &config.relays["vs-10.0.0.100-3306"];
    assert_eq!(
        mysql.forward,
        Forward::DirectRouting,
        "{}",
        translation.yaml
    );
    assert_eq!(mysql.listen, [address("10.0.0.100:3306")]);
    assert_eq!(
        mysql.policy,
        Policy::RoundRobin,
        "direct routing spreads by weight, not by connections"
    );
    assert_eq!(config.pools["vs-10.0.0.100-3306"].servers[1].weight, 2);
    assert!(
        translation
            .yaml
            .contains("direct routing cannot count connections"),
        "{}",
        translation.yaml
    );
    let redis = &config.relays["vs-10.0.0.100-6379"];
    assert_eq!(redis.forward, Forward::Proxy);
    assert!(
        translation.yaml.contains(
            "10.0.0.11:6380 listens on another port than 6379, and direct routing keeps the port"
        ),
        "{}",
        translation.yaml
    );
}

#[test]
fn virtual_servers_become_relays_with_their_checks() {
    let (_, translation, config) = keepalived(
        "global_defs {\n  notification_email {\n    dba@example.com\n  }\n\
         \x20 notification_email_from keepalived@db.example.com\n  smtp_server 192.0.2.25 2525\n\
         \x20 smtp_connect_timeout 20\n  router_id front-1\n}\n\
         virtual_server 192.0.2.100 80 {\n  delay_loop 5\n  lb_algo wlc\n  lb_kind DR\n  protocol TCP\n\
         \x20 sorry_server 192.0.2.99 80\n\
         \x20 real_server 192.0.2.11 80 {\n    weight 3\n    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n\
         \x20     connect_timeout 3\n      retry 2\n    }\n  }\n\
         \x20 real_server 192.0.2.12 80 {\n    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n\
         \x20     connect_timeout 3\n      retry 2\n    }\n  }\n}\n\
         virtual_server 192.0.2.100 3306 {\n  lb_algo rr\n\
         \x20 real_server 192.0.2.11 3306 {\n    MISC_CHECK {\n      misc_path \"/usr/local/bin/check-db 192.0.2.11\"\n      misc_timeout 4\n    }\n  }\n\
         \x20 real_server 192.0.2.12 3306 {\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n}\n",
    );
    let web = "vs-192.0.2.100-80";
    let relay = &config.relays[web];
    assert_eq!(relay.listen, [address("192.0.2.100:80")]);
    assert_eq!(relay.pool, web);
    assert_eq!(relay.policy, Policy::LeastConnections);
    let servers = &config.pools[web].servers;
    assert_eq!(servers.len(), 3);
    assert_eq!(
        (servers[0].address, servers[0].weight),
        (address("192.0.2.11:80"), 3)
    );
    assert_eq!(servers[1].address, address("192.0.2.12:80"));
    assert!(servers[2].backup, "the sorry server is a backup");
    let check = &config.checks[web];
    match &check.kind {
        CheckKind::Http(http) => {
            assert_eq!(http.path, "/health");
            assert_eq!(
                (http.expect_status.low, http.expect_status.high),
                (200, 200)
            );
        }
        other => panic!("not an http check: {other:?}"),
    }
    assert_eq!(check.interval, Duration::from_secs(5));
    assert_eq!(check.timeout, Duration::from_secs(3));
    assert_eq!((check.rise, check.fall), (1, 3), "one try and two retries");
    let db = "vs-192.0.2.100-3306";
    assert_eq!(config.relays[db].policy, Policy::RoundRobin);
    match &config.checks[db].kind {
        CheckKind::Exec(exec) => {
            assert_eq!(exec.command, ["/usr/local/bin/check-db", "192.0.2.11"])
        }
        other => panic!("not an exec check: {other:?}"),
    }
    assert_eq!(
        config.checks[db].interval,
        Duration::from_secs(60),
        "keepalived's delay_loop"
    );
    assert_eq!(config.checks[db].timeout, Duration::from_secs(4));
    assert!(
        translation
            .yaml
            .contains("TCP_CHECK { — not translated: hafront runs one check per pool"),
        "{}",
        translation.yaml
    );
    assert!(
        translation.yaml.contains(
            "not as `forward: direct_routing`: 192.0.2.100 is no virtual_ipaddress of a vrrp_instance"
        ),
        "lb_kind DR without a VRRP instance does not say why it stays a proxy:\n{}",
        translation.yaml
    );
    assert_eq!(relay.forward, Forward::Proxy);
    let email = config.alerts.email.as_ref().expect("mail settings");
    assert_eq!(email.smtp_host, "192.0.2.25");
    assert_eq!(email.smtp_port, Some(2525));
    assert_eq!(email.security, SmtpSecurity::Plain);
    assert_eq!(email.from, "keepalived@db.example.com");
    assert_eq!(email.to, ["dba@example.com"]);
    assert_eq!(email.timeout, Duration::from_secs(20));
    assert_eq!(config.global.node.as_deref(), Some("front-1"));
}

#[test]
fn an_unknown_keepalived_directive_is_a_comment_naming_its_line() {
    let (input, translation, config) = keepalived(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  frobnicate 7\n\
         \x20 virtual_ipaddress {\n    192.0.2.100/24\n  }\n}\nno_such_block {\n  a b\n}\n",
    );
    assert_eq!(config.vrrp.instances.len(), 1);
    assert!(
        translation.yaml.contains(&format!(
            "{}frobnicate 7 — not translated: no hafront equivalent",
            input.at(4)
        )),
        "{}",
        translation.yaml
    );
    assert!(translation.yaml.contains(&format!(
        "{}no_such_block {{ — not translated: no hafront equivalent (the whole block, to line 11)",
        input.at(9)
    )), "{}", translation.yaml);
    assert_eq!(translation.untranslated, 2);
}

#[test]
fn broken_keepalived_syntax_is_an_error_with_its_line() {
    let input = Input::new(
        "keepalived.conf",
        "vrrp_instance VI_1 {\n  interface eth0\n",
    );
    let error = hafront_import::keepalived(&input.path)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "{}:1: this block is never closed with `}}`",
            input.path.display()
        )
    );
}

#[test]
fn haproxy_servers_keep_inter_rise_fall_weight_and_backup() {
    let (input, translation, config) = haproxy(
        "defaults\n  mode tcp\n  timeout connect 4s\n  timeout client 1h\n  timeout server 1h\n\n\
         listen mysql\n  bind 127.0.0.1:3306\n  balance first\n  option mysql-check user haproxy_check\n\
         \x20 server db1 192.0.2.11:3306 check inter 500ms rise 3 fall 2 weight 20\n\
         \x20 server db2 192.0.2.12:3306 check inter 500ms rise 3 fall 2 backup\n\
         \x20 server db3 db3.example.com:3306 check\n",
    );
    let check = &config.checks["mysql"];
    assert_eq!(check.interval, Duration::from_millis(500));
    assert_eq!(check.timeout, Duration::from_millis(500));
    assert_eq!((check.rise, check.fall), (3, 2));
    match &check.kind {
        CheckKind::Mysql(mysql) => {
            assert_eq!(mysql.user, "haproxy_check");
            assert_eq!(mysql.password, None);
        }
        other => panic!("not a mysql check: {other:?}"),
    }
    let servers = &config.pools["mysql"].servers;
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0].name.as_deref(), Some("db1"));
    assert_eq!((servers[0].weight, servers[0].backup), (20, false));
    assert_eq!((servers[1].weight, servers[1].backup), (1, true));
    let relay = &config.relays["mysql"];
    assert_eq!(relay.listen, [address("127.0.0.1:3306")]);
    assert_eq!(relay.policy, Policy::First);
    assert_eq!(relay.connect_timeout, Duration::from_secs(4));
    assert_eq!(relay.idle_timeout, Duration::from_secs(3600));
    assert!(translation.yaml.contains(&format!(
        "{}server db3 db3.example.com:3306 check — not translated: db3.example.com:3306 is not an IP address and port: hafront does not resolve names",
        input.at(13)
    )), "{}", translation.yaml);
}

#[test]
fn haproxy_balance_algorithms_become_policies() {
    for (balance, policy, untranslated) in [
        ("roundrobin", Policy::RoundRobin, false),
        ("static-rr", Policy::RoundRobin, false),
        ("leastconn", Policy::LeastConnections, false),
        ("first", Policy::First, false),
        ("source", Policy::RoundRobin, true),
    ] {
        let (_, translation, config) = haproxy(&format!(
            "frontend app\n  mode tcp\n  bind :6000\n  default_backend servers\n\
             backend servers\n  mode tcp\n  balance {balance}\n  server a 192.0.2.1:6000 check\n"
        ));
        assert_eq!(config.relays["app"].policy, policy, "balance {balance}");
        assert_eq!(config.relays["app"].listen, [address("0.0.0.0:6000")]);
        assert_eq!(config.relays["app"].pool, "servers");
        assert_eq!(
            translation
                .yaml
                .contains(&format!("balance {balance} — not translated")),
            untranslated,
            "{}",
            translation.yaml
        );
    }
}

#[test]
fn a_redis_tcp_check_for_the_master_becomes_a_redis_role_check() {
    let (input, translation, config) = haproxy(
        "defaults REDIS\n  mode tcp\n  timeout connect 3s\n  timeout server 6s\n  timeout client 6s\n\
         defaults OTHER\n  mode http\n\
         frontend ft_redis from REDIS\n  bind *:6379 name redis\n  default_backend bk_redis\n\
         backend bk_redis from REDIS\n  option tcp-check\n\
         \x20 tcp-check send AUTH hunter2\\r\\n\n  tcp-check expect string +OK\n\
         \x20 tcp-check send PING\\r\\n\n  tcp-check expect string +PONG\n\
         \x20 tcp-check send info\\ replication\\r\\n\n  tcp-check expect string role:master\n\
         \x20 tcp-check send QUIT\\r\\n\n  tcp-check expect string +OK\n\
         \x20 server R1 192.0.2.21:6379 check inter 1s\n  server R2 192.0.2.22:6379 check inter 1s\n",
    );
    let check = &config.checks["bk_redis"];
    let file = "/etc/hafront/secrets/redis-bk_redis.pass";
    match &check.kind {
        CheckKind::Redis(redis) => {
            assert!(redis.role);
            assert_eq!(redis.password, Some(Secret::File(PathBuf::from(file))));
        }
        other => panic!("not a redis check: {other:?}"),
    }
    assert_eq!(translation.secret_files, [file]);
    assert!(
        !translation.yaml.contains("hunter2"),
        "{}",
        translation.yaml
    );
    let relay = &config.relays["ft_redis"];
    assert_eq!(relay.role, Some(Role::Primary));
    assert_eq!(
        relay.idle_timeout,
        Duration::from_secs(6),
        "inherited from the named defaults"
    );
    assert!(translation.yaml.contains(&format!(
        "{}bind *:6379 name redis — not translated: the address is translated, not these parameters: name redis",
        input.at(9)
    )), "{}", translation.yaml);
}

#[test]
fn an_unknown_haproxy_directive_is_a_comment_naming_its_line() {
    let (input, translation, config) = haproxy(
        "listen pg\n  mode tcp\n  bind 127.0.0.1:5432\n  option pgsql-check user postgres\n\
         \x20 frobnicate on\n  server pg1 192.0.2.31:5432 check\n",
    );
    assert!(matches!(config.checks["pg"].kind, CheckKind::Tcp));
    for (line, text) in [
        (
            4,
            "option pgsql-check user postgres — not translated: hafront has no such check: a TCP connect check is used instead",
        ),
        (5, "frobnicate on — not translated: no hafront equivalent"),
    ] {
        assert!(
            translation
                .yaml
                .contains(&format!("{}{text}", input.at(line))),
            "line {line}:\n{}",
            translation.yaml
        );
    }
    assert_eq!(translation.untranslated, 2);
}

#[test]
fn an_http_check_keeps_its_path_host_and_status() {
    let (input, translation, config) = haproxy(
        "backend web\n  option httpchk HEAD /health HTTP/1.1\n\
         \x20 http-check send hdr Host www.example.com\n  http-check expect status 204\n\
         \x20 timeout check 400ms\n  server w1 192.0.2.41:8080 check inter 1s\n\
         frontend www\n  bind 192.0.2.40:80\n  default_backend web\n",
    );
    let check = &config.checks["web"];
    match &check.kind {
        CheckKind::Http(http) => {
            assert_eq!(http.path, "/health");
            assert_eq!(http.host.as_deref(), Some("www.example.com"));
            assert_eq!(
                (http.expect_status.low, http.expect_status.high),
                (204, 204)
            );
        }
        other => panic!("not an http check: {other:?}"),
    }
    assert_eq!(check.interval, Duration::from_secs(1));
    assert_eq!(check.timeout, Duration::from_millis(400));
    assert!(translation.yaml.contains(&format!(
        "{}option httpchk HEAD /health HTTP/1.1 — not translated: hafront's http check sends GET, not HEAD",
        input.at(2)
    )), "{}", translation.yaml);
    assert_eq!(config.relays["www"].pool, "web");
}

#[test]
fn overlapping_binds_are_comments_and_the_result_still_validates() {
    let (input, translation, config) = haproxy(
        "backend app\n  server a 192.0.2.1:80 check\n\
         frontend one\n  bind :80\n  bind 127.0.0.1:80\n  default_backend app\n\
         frontend two\n  bind *:80\n  default_backend app\n\
         frontend orphan\n  bind :81\n",
    );
    assert_eq!(config.relays.len(), 1);
    assert_eq!(config.relays["one"].listen, [address("0.0.0.0:80")]);
    for (line, text) in [
        (
            5,
            "bind 127.0.0.1:80 — not translated: 127.0.0.1:80 overlaps an earlier bind",
        ),
        (
            8,
            "bind *:80 — not translated: 0.0.0.0:80 overlaps an address of relay one",
        ),
        (
            7,
            "frontend two — not translated: no address hafront can listen on",
        ),
        (
            10,
            "frontend orphan — not translated: no default_backend with servers",
        ),
    ] {
        assert!(
            translation
                .yaml
                .contains(&format!("{}{text}", input.at(line))),
            "line {line}:\n{}",
            translation.yaml
        );
    }
}

#[test]
fn a_check_on_another_port_becomes_a_connect_check_with_comments() {
    // Galera's clustercheck answers HTTP on 9200 for the MySQL on 3306.
    let (input, translation, config) = haproxy(
        "listen galera\n  bind 127.0.0.1:3306\n  option httpchk\n\
         \x20 server g1 192.0.2.51:3306 check port 9200 inter 2s\n",
    );
    assert!(matches!(config.checks["galera"].kind, CheckKind::Tcp));
    for (line, text) in [
        (
            3,
            "option httpchk — not translated: replaced by a TCP connect check (`port 9200` above)",
        ),
        (
            4,
            "server g1 192.0.2.51:3306 check port 9200 inter 2s — not translated: `port 9200` checks another port",
        ),
    ] {
        assert!(
            translation
                .yaml
                .contains(&format!("{}{text}", input.at(line))),
            "line {line}:\n{}",
            translation.yaml
        );
    }
}
