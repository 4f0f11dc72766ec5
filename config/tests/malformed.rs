//! A table of broken configurations, each with the exact position, key and
//! message its errors must carry.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use hafront_config::{ConfigErrors, ParseOptions, parse, parse_with};

/// One broken config and the errors it must produce, in file order, as
/// (`LINE:COL`, key path, message fragment).
struct Case {
    name: &'static str,
    yaml: &'static str,
    errors: &'static [(&'static str, &'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "yaml syntax error",
        yaml: "checks:\n  db: {kind: tcp\n",
        errors: &[("2:7", "", "unclosed bracket")],
    },
    Case {
        name: "not a mapping",
        yaml: "- checks\n",
        errors: &[("1:1", "", "expected a mapping of sections")],
    },
    Case {
        name: "secret written as plain text is refused without repeating it",
        yaml: "\
checks:
  cache:
    kind: redis
    password: hunter2
",
        errors: &[(
            "4:15",
            "checks.cache.password",
            "expected `{value: ...}` or, better, `{file: /path}`",
        )],
    },
    Case {
        name: "secret given both ways",
        yaml: "\
checks:
  cache:
    kind: redis
    password:
      value: x
      file: /x
",
        errors: &[(
            "5:7",
            "checks.cache.password.value",
            "give either `value` or `file`, not both",
        )],
    },
    Case {
        name: "unknown top-level key",
        yaml: "global: {}\nchekcs: {}\n",
        errors: &[(
            "2:1",
            "chekcs",
            "unknown key, expected one of global, checks",
        )],
    },
    Case {
        name: "unknown nested key",
        yaml: "\
relays:
  rw:
    listen: [127.0.0.1:3306]
    pool: mysql
    polcy: first
",
        errors: &[(
            "5:5",
            "relays.rw.polcy",
            "unknown field `polcy`, expected one of listen, pool, policy",
        )],
    },
    Case {
        name: "unknown key deep inside a mode",
        yaml: "\
relays:
  rw:
    listen: [127.0.0.1:3306]
    pool: mysql
    mode:
      kind: spiped_encrypt
      key_file: /k
      keyfile: /k
",
        errors: &[("8:7", "relays.rw.mode.keyfile", "unknown field `keyfile`")],
    },
    Case {
        name: "wrong type",
        yaml: "\
checks:
  db:
    kind: tcp
    rise: many
",
        errors: &[("4:11", "checks.db.rise", "invalid")],
    },
    Case {
        name: "bad duration",
        yaml: "\
checks:
  db:
    kind: tcp
    interval: 3 fortnights
",
        errors: &[("4:5", "checks.db.interval", "expected a duration")],
    },
    Case {
        name: "unknown check kind",
        yaml: "\
checks:
  db:
    kind: postgres
",
        errors: &[("3:11", "checks.db.kind", "unknown variant `postgres`")],
    },
    Case {
        name: "missing required field",
        yaml: "\
relays:
  rw:
    listen: [127.0.0.1:3306]
",
        errors: &[("3:5", "relays.rw", "missing field `pool`")],
    },
    Case {
        name: "setting of another check kind",
        yaml: "\
checks:
  db:
    kind: mysql
    user: check
    command: [/bin/true]
",
        errors: &[(
            "5:5",
            "checks.db.command",
            "does not apply to mysql checks, whose own settings are: user",
        )],
    },
    Case {
        name: "duplicate mapping key",
        yaml: "\
pools:
  mysql:
    check: db
    check: db
",
        errors: &[("4:5", "", "duplicate")],
    },
    Case {
        name: "invalid server address",
        yaml: "\
checks:
  db: {kind: tcp}
pools:
  mysql:
    check: db
    servers:
      - address: 192.0.2.300:3306
",
        errors: &[("7:18", "pools.mysql.servers[0].address", "invalid")],
    },
    Case {
        name: "unknown policy",
        yaml: "\
relays:
  rw:
    listen: [127.0.0.1:3306]
    pool: mysql
    policy: random
",
        errors: &[("5:13", "relays.rw.policy", "unknown variant `random`")],
    },
    Case {
        name: "unknown pool",
        yaml: "\
checks:
  db: {kind: tcp}
pools:
  mysql: {check: db, servers: [{address: 127.0.0.1:3306}]}
  redis: {check: db, servers: [{address: 127.0.0.1:6379}]}
relays:
  rw:
    listen: [127.0.0.1:13306]
    pool: mysq
",
        errors: &[(
            "9:11",
            "relays.rw.pool",
            "unknown pool \"mysq\"; defined pools: mysql, redis",
        )],
    },
    Case {
        name: "unknown check",
        yaml: "\
checks:
  mysql: {kind: tcp}
pools:
  db:
    check: mysq
    servers: [{address: 127.0.0.1:3306}]
",
        errors: &[(
            "5:12",
            "pools.db.check",
            "unknown check \"mysq\"; defined checks: mysql",
        )],
    },
    Case {
        name: "role on a pool without a role-aware check",
        yaml: "\
checks:
  db: {kind: mysql, user: check}
pools:
  mysql: {check: db, servers: [{address: 127.0.0.1:3306}]}
relays:
  rw:
    listen: [127.0.0.1:13306]
    pool: mysql
    role: primary
",
        errors: &[(
            "9:11",
            "relays.rw.role",
            "needs a role-aware check, but pool \"mysql\" uses check \"db\"",
        )],
    },
    Case {
        name: "rise and fall zero",
        yaml: "\
checks:
  db:
    kind: tcp
    rise: 0
    fall: 0
",
        errors: &[
            ("4:11", "checks.db.rise", "must be at least 1"),
            ("5:11", "checks.db.fall", "must be at least 1"),
        ],
    },
    Case {
        name: "timeout longer than the interval",
        yaml: "\
checks:
  db:
    kind: tcp
    interval: 1s
    timeout: 1500ms
",
        errors: &[(
            "5:14",
            "checks.db.timeout",
            "1s 500ms is longer than the interval (1s)",
        )],
    },
    Case {
        name: "zero timeout",
        yaml: "\
checks:
  db:
    kind: tcp
    timeout: 0s
",
        errors: &[("4:14", "checks.db.timeout", "must be longer than 0s")],
    },
    Case {
        name: "empty exec command",
        yaml: "\
checks:
  script:
    kind: exec
    command: []
",
        errors: &[("4:14", "checks.script.command", "must name a program")],
    },
    Case {
        name: "pool without servers, zero weight",
        yaml: "\
checks:
  db: {kind: tcp}
pools:
  empty:
    check: db
    servers: []
  weighted:
    check: db
    servers:
      - address: 127.0.0.1:3306
        weight: 0
",
        errors: &[
            ("6:14", "pools.empty.servers", "needs at least one server"),
            (
                "11:17",
                "pools.weighted.servers[0].weight",
                "must be at least 1",
            ),
        ],
    },
    Case {
        name: "duplicate server name and address",
        yaml: "\
checks:
  db: {kind: tcp}
pools:
  mysql:
    check: db
    servers:
      - {name: a, address: 127.0.0.1:3306}
      - {name: a, address: 127.0.0.1:3307}
      - {name: b, address: 127.0.0.1:3306}
",
        errors: &[
            (
                "8:16",
                "pools.mysql.servers[1].name",
                "server name \"a\" is already used by pools.mysql.servers[0]",
            ),
            (
                "9:28",
                "pools.mysql.servers[2].address",
                "address 127.0.0.1:3306 is already used by pools.mysql.servers[0]",
            ),
        ],
    },
    Case {
        name: "relay limits and empty listen",
        yaml: "\
relays:
  rw:
    listen: []
    pool: mysql
    connect_attempts: 0
    max_connections: 0
",
        errors: &[
            ("3:13", "relays.rw.listen", "needs at least one address"),
            (
                "4:11",
                "relays.rw.pool",
                "unknown pool \"mysql\"; no pools are defined",
            ),
            ("5:23", "relays.rw.connect_attempts", "must be at least 1"),
            ("6:22", "relays.rw.max_connections", "must be at least 1"),
        ],
    },
    Case {
        name: "duplicate listen address",
        yaml: "\
checks:
  db: {kind: tcp}
pools:
  mysql: {check: db, servers: [{address: 127.0.0.1:3306}]}
relays:
  rw:
    listen: [127.0.0.1:13306]
    pool: mysql
  ro:
    listen: [127.0.0.1:13307, 127.0.0.1:13306]
    pool: mysql
",
        errors: &[(
            "10:31",
            "relays.ro.listen[1]",
            "address 127.0.0.1:13306 is already used by relays.rw.listen[0]",
        )],
    },
    Case {
        name: "wildcard listen address overlaps",
        yaml: "\
checks:
  db: {kind: tcp}
pools:
  mysql: {check: db, servers: [{address: 127.0.0.1:3306}]}
relays:
  any:
    listen: [0.0.0.0:13306]
    pool: mysql
  local:
    listen: [127.0.0.1:13306]
    pool: mysql
",
        errors: &[(
            "10:14",
            "relays.local.listen[0]",
            "overlaps 0.0.0.0:13306 of relays.any.listen[0]",
        )],
    },
    Case {
        name: "vrid and priority 0, version 4",
        yaml: "\
vrrp:
  instances:
    vip:
      interface: eth0
      vrid: 0
      priority: 0
      version: 4
      virtual_addresses: [192.0.2.100/24]
",
        errors: &[
            ("5:13", "vrrp.instances.vip.vrid", "must be 1..=255"),
            ("6:17", "vrrp.instances.vip.priority", "must be 1..=255"),
            ("7:16", "vrrp.instances.vip.version", "must be 2 or 3"),
        ],
    },
    Case {
        name: "vrid out of u8 range",
        yaml: "\
vrrp:
  instances:
    vip:
      interface: eth0
      vrid: 256
      virtual_addresses: [192.0.2.100/24]
",
        errors: &[("5:13", "vrrp.instances.vip.vrid", "")],
    },
    Case {
        name: "v2 interval 1.5s",
        yaml: "\
vrrp:
  instances:
    vip:
      interface: eth0
      vrid: 1
      version: 2
      advert_interval: 1.5s
      virtual_addresses: [192.0.2.100/24]
",
        errors: &[(
            "7:24",
            "vrrp.instances.vip.advert_interval",
            "VRRPv2 adverts a whole number of seconds from 1s to 255s, not 1s 500ms",
        )],
    },
    Case {
        name: "v3 interval not a multiple of 10ms, and too long",
        yaml: "\
vrrp:
  instances:
    a:
      interface: eth0
      vrid: 1
      advert_interval: 15ms
      virtual_addresses: [192.0.2.100/24]
    b:
      interface: eth0
      vrid: 2
      advert_interval: 41s
      virtual_addresses: [192.0.2.101/24]
",
        errors: &[
            (
                "6:24",
                "vrrp.instances.a.advert_interval",
                "VRRPv3 adverts a multiple of 10ms from 10ms to 40s 950ms, not 15ms",
            ),
            ("11:24", "vrrp.instances.b.advert_interval", "not 41s"),
        ],
    },
    Case {
        name: "auth_pass on v3",
        yaml: "\
vrrp:
  instances:
    vip:
      interface: eth0
      vrid: 1
      auth_pass: {value: secret}
      virtual_addresses: [192.0.2.100/24]
",
        errors: &[(
            "6:18",
            "vrrp.instances.vip.auth_pass",
            "VRRPv3 has no authentication",
        )],
    },
    Case {
        name: "auth_pass longer than 8 bytes",
        yaml: "\
vrrp:
  instances:
    vip:
      interface: eth0
      vrid: 1
      version: 2
      auth_pass:
        value: much-too-long
      virtual_addresses: [192.0.2.100/24]
",
        errors: &[(
            "8:9",
            "vrrp.instances.vip.auth_pass",
            "the password is 13 bytes; VRRPv2 carries at most 8",
        )],
    },
    Case {
        name: "mixed address families",
        yaml: "\
vrrp:
  instances:
    vip:
      interface: eth0
      vrid: 1
      virtual_addresses:
        - 192.0.2.100/24
        - 2001:db8::100/64
",
        errors: &[(
            "8:11",
            "vrrp.instances.vip.virtual_addresses[1]",
            "2001:db8::100/64 is IPv6 but 192.0.2.100/24 is IPv4",
        )],
    },
    Case {
        name: "IPv6 with v2, no virtual addresses",
        yaml: "\
vrrp:
  instances:
    v6:
      interface: eth0
      vrid: 1
      version: 2
      virtual_addresses: [2001:db8::100/64]
    none:
      interface: eth0
      vrid: 2
      virtual_addresses: []
",
        errors: &[
            (
                "7:27",
                "vrrp.instances.v6.virtual_addresses[0]",
                "IPv6 virtual addresses need version: 3",
            ),
            (
                "11:26",
                "vrrp.instances.none.virtual_addresses",
                "needs at least one virtual address",
            ),
        ],
    },
    Case {
        name: "same virtual router twice",
        yaml: "\
vrrp:
  instances:
    first:
      interface: eth0
      vrid: 7
      virtual_addresses: [192.0.2.100/24]
    second:
      interface: eth0
      vrid: 7
      virtual_addresses: [192.0.2.101/24]
    other-family:
      interface: eth0
      vrid: 7
      virtual_addresses: [2001:db8::7/64]
",
        errors: &[(
            "9:13",
            "vrrp.instances.second.vrid",
            "vrid 7 on eth0 (IPv4) is already used by vrrp.instances.first",
        )],
    },
    Case {
        name: "track items",
        yaml: "\
checks:
  db: {kind: tcp}
pools:
  mysql: {check: db, servers: [{name: db-a, address: 127.0.0.1:3306}]}
vrrp:
  instances:
    vip:
      interface: eth0
      vrid: 1
      virtual_addresses: [192.0.2.100/24]
      track:
        - {pool: mysql, interface: eth0}
        - server: mysql/db-z
        - server: db-a
        - pool: redis
        - {interface: eth1, weight: 0}
",
        errors: &[
            (
                "12:11",
                "vrrp.instances.vip.track[0]",
                "name exactly one of server, pool or interface",
            ),
            (
                "13:19",
                "vrrp.instances.vip.track[1].server",
                "pool \"mysql\" has no server \"db-z\"; its servers: db-a",
            ),
            (
                "14:19",
                "vrrp.instances.vip.track[2].server",
                "\"db-a\" is not written pool/server",
            ),
            (
                "15:17",
                "vrrp.instances.vip.track[3].pool",
                "unknown pool \"redis\"; defined pools: mysql",
            ),
            (
                "16:37",
                "vrrp.instances.vip.track[4].weight",
                "must be at least 1",
            ),
        ],
    },
    Case {
        name: "email recipients and addresses",
        yaml: "\
alerts:
  email:
    smtp_host: smtp.example.com
    from: hafront
    to: []
    max_per_hour: 0
",
        errors: &[
            (
                "4:11",
                "alerts.email.from",
                "\"hafront\" is not a mail address",
            ),
            ("5:9", "alerts.email.to", "needs at least one recipient"),
            ("6:19", "alerts.email.max_per_hour", "must be at least 1"),
        ],
    },
    Case {
        name: "bad recipient",
        yaml: "\
alerts:
  email:
    smtp_host: smtp.example.com
    from: hafront@example.com
    to: [dba@example.com, 'ops team@example']
",
        errors: &[(
            "5:27",
            "alerts.email.to[1]",
            "\"ops team@example\" is not a mail address",
        )],
    },
    Case {
        name: "notify: empty command, unknown instance and pool",
        yaml: "\
notify:
  - command: []
  - command: [/bin/true]
    instance: vip
    pool: mysql
",
        errors: &[
            ("2:14", "notify[0].command", "must name a program"),
            (
                "4:15",
                "notify[1].instance",
                "unknown VRRP instance \"vip\"; no VRRP instances are defined",
            ),
            (
                "5:11",
                "notify[1].pool",
                "unknown pool \"mysql\"; no pools are defined",
            ),
        ],
    },
    Case {
        name: "notify: empty program name",
        yaml: "notify:\n  - command: ['', -x]\n",
        errors: &[("2:15", "notify[0].command[0]", "the program name is empty")],
    },
];

/// Position, key and message of each error, for comparison and for the
/// failure message.
fn describe(errors: &ConfigErrors) -> Vec<(String, String, String)> {
    errors
        .errors()
        .iter()
        .map(|error| {
            let position = error
                .position
                .map(|position| position.to_string())
                .unwrap_or_default();
            (position, error.key.to_string(), error.message.clone())
        })
        .collect()
}

/// Why `errors` differ from `expected`, if they do.
fn mismatch(name: &str, errors: &ConfigErrors, expected: &[(&str, &str, &str)]) -> Option<String> {
    let actual = describe(errors);
    let matches = actual.len() == expected.len()
        && actual.iter().zip(expected).all(
            |((position, key, message), (want_position, want_key, fragment))| {
                position == want_position && key == want_key && message.contains(fragment)
            },
        );
    (!matches).then(|| format!("case {name:?}:\nexpected {expected:#?}\ngot {actual:#?}"))
}

fn assert_errors(name: &str, errors: &ConfigErrors, expected: &[(&str, &str, &str)]) {
    if let Some(mismatch) = mismatch(name, errors, expected) {
        panic!("{mismatch}");
    }
}

#[test]
fn every_malformed_config_is_refused_with_its_exact_errors() {
    assert!(CASES.len() >= 25, "the table must stay broad");
    let options = ParseOptions { check_files: false };
    let mut mismatches = Vec::new();
    for case in CASES {
        match parse_with(case.yaml, "site.yaml", options) {
            Ok(config) => mismatches.push(format!("case {:?} was accepted: {config:?}", case.name)),
            Err(errors) => mismatches.extend(mismatch(case.name, &errors, case.errors)),
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn display_prints_file_line_column_key_and_message() {
    let yaml = CASES
        .iter()
        .find(|case| case.name == "unknown pool")
        .expect("the unknown pool case")
        .yaml;
    let errors = parse_with(yaml, "site.yaml", ParseOptions { check_files: false })
        .expect_err("unknown pool");
    assert_eq!(
        errors.to_string(),
        "site.yaml:9:11: relays.rw.pool: unknown pool \"mysq\"; defined pools: mysql, redis"
    );
}

#[test]
fn a_config_with_several_errors_reports_all_of_them_in_file_order() {
    let yaml = "\
global:
  log: {level: info, colour: true}
checks:
  db:
    kind: tcp
    interval: soon
  ok:
    kind: tcp
    rise: 0
pools:
  mysql:
    check: missing
    servers: [{address: 127.0.0.1:3306}]
relays:
  rw:
    listen: [127.0.0.1:13306]
    pool: mysql
    connect_timeout: 1 parsec
  ro:
    listen: [127.0.0.1:13306]
    pool: mysq
vrrp:
  instances:
    vip: {interface: eth0, vrid: 0, virtual_addresses: [192.0.2.1/24]}
notify:
  - command: []
";
    let errors = parse_with(yaml, "site.yaml", ParseOptions { check_files: false })
        .expect_err("broken config");
    assert_errors(
        "several errors",
        &errors,
        &[
            ("2:22", "global.log.colour", "unknown field `colour`"),
            ("6:5", "checks.db.interval", "expected a duration"),
            ("9:11", "checks.ok.rise", "must be at least 1"),
            (
                "12:12",
                "pools.mysql.check",
                "unknown check \"missing\"; defined checks: db, ok",
            ),
            ("18:5", "relays.rw.connect_timeout", "expected a duration"),
            (
                "21:11",
                "relays.ro.pool",
                "unknown pool \"mysq\"; defined pools: mysql",
            ),
            ("24:34", "vrrp.instances.vip.vrid", "must be 1..=255"),
            ("26:14", "notify[0].command", "must name a program"),
        ],
    );
}

/// Writes `content` to a new file with `mode` in `dir`.
fn file_with_mode(dir: &tempfile::TempDir, name: &str, content: &[u8], mode: u32) -> String {
    let path = dir.path().join(name);
    let mut file = std::fs::File::create(&path).expect("create file");
    file.write_all(content).expect("write file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_str().expect("utf-8 temp path").to_owned()
}

#[test]
fn secret_and_key_files_must_exist_and_be_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let private = file_with_mode(&dir, "private.pass", b"s3cret\n", 0o600);
    let readable = file_with_mode(&dir, "readable.pass", b"s3cret\n", 0o644);
    let group = file_with_mode(&dir, "group.key", &[7; 32], 0o640);
    let short = file_with_mode(&dir, "short.key", &[7; 16], 0o600);
    let missing = dir.path().join("missing.pass");
    let missing = missing.to_str().expect("utf-8 temp path");
    let yaml = format!(
        "\
checks:
  ok: {{kind: mysql, user: u, password: {{file: {private}}}}}
  readable: {{kind: redis, password: {{file: {readable}}}}}
  missing: {{kind: redis, password: {{file: {missing}}}}}
pools:
  p: {{check: ok, servers: [{{address: 127.0.0.1:1}}]}}
relays:
  a:
    listen: [127.0.0.1:2]
    pool: p
    mode: {{kind: spiped_encrypt, key_file: {group}}}
  b:
    listen: [127.0.0.1:3]
    pool: p
    mode: {{kind: spiped_decrypt, key_file: {short}}}
"
    );
    let errors = parse(&yaml, "site.yaml").expect_err("unsafe files");
    let actual = describe(&errors);
    assert_eq!(actual.len(), 4, "{actual:#?}");
    let (position, key, message) = &actual[0];
    assert_eq!(
        (position.as_str(), key.as_str()),
        ("3:44", "checks.readable.password.file")
    );
    assert!(
        message.contains(&format!(
            "{readable} is accessible by group or others (mode 0644); run: chmod 600 {readable}"
        )),
        "{message}"
    );
    let (position, key, message) = &actual[1];
    assert_eq!(
        (position.as_str(), key.as_str()),
        ("4:43", "checks.missing.password.file")
    );
    assert!(message.contains("No such file"), "{message}");
    let (position, key, message) = &actual[2];
    assert_eq!(
        (position.as_str(), key.as_str()),
        ("11:44", "relays.a.mode.key_file")
    );
    assert!(message.contains("(mode 0640); run: chmod 600"), "{message}");
    let (position, key, message) = &actual[3];
    assert_eq!(
        (position.as_str(), key.as_str()),
        ("15:44", "relays.b.mode.key_file")
    );
    assert!(
        message.contains("holds 16 bytes; use at least 32"),
        "{message}"
    );

    let skipping_files = parse_with(&yaml, "site.yaml", ParseOptions { check_files: false });
    assert!(skipping_files.is_ok(), "{skipping_files:?}");
}

#[test]
fn auth_pass_file_length_is_checked_when_files_are() {
    let dir = tempfile::tempdir().expect("temp dir");
    let long = file_with_mode(&dir, "vrrp.pass", b"123456789\n", 0o600);
    let yaml = format!(
        "vrrp:\n  instances:\n    vip:\n      interface: eth0\n      vrid: 1\n      version: 2\n      auth_pass: {{file: {long}}}\n      virtual_addresses: [192.0.2.1/24]\n"
    );
    let errors = parse(&yaml, "site.yaml").expect_err("long password");
    assert_errors(
        "auth_pass file",
        &errors,
        &[(
            "7:18",
            "vrrp.instances.vip.auth_pass",
            "the password is 9 bytes",
        )],
    );
}

#[test]
fn programs_to_run_must_exist_be_executable_and_not_writable_by_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let safe = file_with_mode(&dir, "safe.sh", b"#!/bin/sh\n", 0o755);
    let writable = file_with_mode(&dir, "writable.sh", b"#!/bin/sh\n", 0o757);
    let plain = file_with_mode(&dir, "plain.sh", b"#!/bin/sh\n", 0o644);
    let yaml = format!(
        "\
checks:
  ok: {{kind: exec, command: [{safe}, --flag]}}
  bad: {{kind: exec, command: [{plain}]}}
notify:
  - command: [{writable}, 'a; rm -rf /']
  - command: [no-such-program-hafront]
  - command: [true]
"
    );
    let errors = parse(&yaml, "site.yaml").expect_err("unsafe programs");
    let actual = describe(&errors);
    assert_eq!(actual.len(), 3, "{actual:#?}");
    let (position, key, message) = &actual[0];
    assert_eq!(
        (position.as_str(), key.as_str()),
        ("3:31", "checks.bad.command[0]")
    );
    assert!(message.contains("is not executable"), "{message}");
    let (position, key, message) = &actual[1];
    assert_eq!(
        (position.as_str(), key.as_str()),
        ("5:15", "notify[0].command[0]")
    );
    assert!(
        message.contains(&format!("{writable} is writable by others")),
        "{message}"
    );
    let (position, key, message) = &actual[2];
    assert_eq!(
        (position.as_str(), key.as_str()),
        ("6:15", "notify[1].command[0]")
    );
    assert!(message.contains("not found in"), "{message}");

    let unchecked = parse_with(&yaml, "site.yaml", ParseOptions { check_files: false });
    assert!(unchecked.is_ok(), "{unchecked:?}");
}

#[test]
fn a_tls_client_needs_a_ca_file_or_a_well_formed_pin() {
    let yaml = "\
checks:
  t: {kind: tcp}
pools:
  p: {check: t, servers: [{address: 127.0.0.1:1}]}
relays:
  no_trust:
    listen: [127.0.0.1:2]
    pool: p
    mode: {kind: tls_client, server_name: db.example}
  bad_pin:
    listen: [127.0.0.1:3]
    pool: p
    mode: {kind: tls_client, server_name: db.example, pin_sha256: abc}
  short_pin:
    listen: [127.0.0.1:4]
    pool: p
    mode: {kind: tls_client, server_name: db.example, pin_sha256: 'sha256//AAAA'}
  pinned:
    listen: [127.0.0.1:5]
    pool: p
    mode: {kind: tls_client, server_name: db.example, pin_sha256: 'sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='}
  pinned_hex:
    listen: [127.0.0.1:6]
    pool: p
    mode: {kind: tls_client, server_name: db.example, pin_sha256: a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0}
";
    let errors = parse(yaml, "site.yaml").expect_err("no way to trust the server");
    let actual = describe(&errors);
    assert_eq!(actual.len(), 3, "{actual:#?}");
    let keys: Vec<&str> = actual.iter().map(|(_, key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "relays.no_trust.mode.ca_file",
            "relays.bad_pin.mode.pin_sha256",
            "relays.short_pin.mode.pin_sha256"
        ]
    );
    assert!(
        actual[0].2.contains("unless pin_sha256 is set"),
        "{actual:#?}"
    );
    assert!(
        actual[1].2.contains("neither 64 hex digits nor base64"),
        "{actual:#?}"
    );
    assert!(actual[2].2.contains("decodes to 3 bytes"), "{actual:#?}");
}
