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
        name: "failover block: wrong check kind, unknown names, local without vrrp, timings",
        yaml: "\
checks:
  port: { kind: tcp }
pools:
  db:
    check: port
    servers:
      - { name: a, address: 10.0.0.1:3306 }
      - { name: b, address: 10.0.0.2:3306 }
    failover:
      user: admin
      replication_user: repl
      candidates: [b, c]
      local: d
      vrrp: vip
      heartbeat: 1s
",
        errors: &[
            (
                "10:7",
                "pools.db.failover",
                "failover needs a mysql check on the pool, and \"port\" is a tcp check",
            ),
            (
                "12:23",
                "pools.db.failover.candidates[1]",
                "unknown server \"c\"; servers of this pool: a, b",
            ),
            ("13:14", "pools.db.failover.local", "unknown server \"d\""),
            (
                "14:13",
                "pools.db.failover.vrrp",
                "unknown VRRP instance \"vip\"",
            ),
            (
                "15:18",
                "pools.db.failover.heartbeat",
                "confirm_timeout (1s) must hold at least two heartbeats",
            ),
        ],
    },
    Case {
        name: "failover block: co-located without vrrp, one server",
        yaml: "\
checks:
  db: { kind: mysql, user: check }
pools:
  db:
    check: db
    servers:
      - { name: a, address: 10.0.0.1:3306 }
    failover: { user: admin, replication_user: repl, local: a }
",
        errors: &[
            (
                "8:15",
                "pools.db.failover",
                "failover needs at least two servers in the pool",
            ),
            (
                "8:61",
                "pools.db.failover.local",
                "a co-located failover follows a VRRP instance: set `vrrp` too",
            ),
        ],
    },
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
        errors: &[
            (
                "4:11",
                "relays.rw.pool",
                "unknown pool \"mysql\"; no pools are defined",
            ),
            (
                "5:5",
                "relays.rw.polcy",
                "unknown field `polcy`, expected one of listen, pool, policy",
            ),
        ],
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
        errors: &[
            (
                "4:11",
                "relays.rw.pool",
                "unknown pool \"mysql\"; no pools are defined",
            ),
            ("8:7", "relays.rw.mode.keyfile", "unknown field `keyfile`"),
        ],
    },
    Case {
        name: "wrong type",
        yaml: "\
checks:
  db:
    kind: tcp
    rise: many
",
        errors: &[(
            "4:11",
            "checks.db.rise",
            "\"many\" is not a whole number such as 3",
        )],
    },
    Case {
        name: "bad duration",
        yaml: "\
checks:
  db:
    kind: tcp
    interval: 3 fortnights
",
        errors: &[(
            "4:15",
            "checks.db.interval",
            "\"3 fortnights\" is not a duration such as 200ms, 3s or 1m",
        )],
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
        errors: &[
            ("3:5", "pools.mysql", "missing field `servers`"),
            (
                "4:5",
                "pools.mysql.check",
                "given twice in the same mapping; the first, on line 3, is the one read: remove one",
            ),
        ],
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
        errors: &[(
            "7:18",
            "pools.mysql.servers[0].address",
            "\"192.0.2.300:3306\" is not an IP address and port such as 127.0.0.1:3306 \
             (names are not resolved)",
        )],
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
        errors: &[
            (
                "4:11",
                "relays.rw.pool",
                "unknown pool \"mysql\"; no pools are defined",
            ),
            ("5:13", "relays.rw.policy", "unknown variant `random`"),
        ],
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
    Case {
        name: "secret with a misspelt key",
        yaml: "\
checks:
  cache:
    kind: redis
    password: { value: x, vaule: y }
",
        errors: &[(
            "4:27",
            "checks.cache.password.vaule",
            "unknown field `vaule`, expected one of value, file",
        )],
    },
    Case {
        name: "default timeout longer than a short interval",
        yaml: "\
checks:
  c:
    kind: tcp
    interval: 500ms
",
        errors: &[(
            "3:5",
            "checks.c.timeout",
            "1s (the default timeout) is longer than the interval (500ms); \
             set timeout to at most 500ms",
        )],
    },
    Case {
        name: "timeout longer than the default interval",
        yaml: "\
checks:
  c:
    kind: tcp
    timeout: 3s
",
        errors: &[(
            "4:14",
            "checks.c.timeout",
            "3s is longer than the interval (2s, the default); set interval to at least 3s",
        )],
    },
    Case {
        name: "http path without its leading slash",
        yaml: "\
checks:
  web:
    kind: http
    path: health
",
        errors: &[(
            "4:11",
            "checks.web.path",
            "\"health\" must start with /, such as /health",
        )],
    },
    Case {
        name: "misspelt log level",
        yaml: "global:\n  log:\n    level: inof\n",
        errors: &[(
            "3:12",
            "global.log.level",
            "unknown log level \"inof\" in \"inof\"; expected a level (trace, debug, info, \
             warn, error or off) or per-module directives such as info,hafront_health=debug",
        )],
    },
    Case {
        name: "misspelt level in a per-module directive",
        yaml: "global: {log: {level: 'info,hafront_health=debgu'}}\n",
        errors: &[(
            "1:23",
            "global.log.level",
            "unknown log level \"debgu\" in \"info,hafront_health=debgu\"",
        )],
    },
    Case {
        name: "module without a level",
        yaml: "global: {log: {level: 'hafront_health'}}\n",
        errors: &[(
            "1:23",
            "global.log.level",
            "unknown log level \"hafront_health\"",
        )],
    },
    Case {
        name: "malformed filter directive",
        yaml: "global: {log: {level: 'hafront[{=debug'}}\n",
        errors: &[(
            "1:23",
            "global.log.level",
            "invalid directive \"hafront[{=debug\"",
        )],
    },
    Case {
        name: "empty file",
        yaml: "",
        errors: &[(
            "1:1",
            "",
            "the file configures nothing; write at least one of the sections global, checks",
        )],
    },
    Case {
        name: "comment-only file",
        yaml: "# hafront.yaml: to be written\n\n",
        errors: &[("1:1", "", "the file configures nothing")],
    },
    Case {
        name: "two YAML documents",
        yaml: "global: {node: a}\n---\nglobal: {node: b}\n",
        errors: &[(
            "3:1",
            "",
            "a second YAML document starts here (a `---` line after the first); \
             a configuration is one document: remove the `---` or split the file",
        )],
    },
    Case {
        name: "status range that is neither a code nor a range",
        yaml: "checks:\n  web: {kind: http, expect_status: [200]}\n",
        errors: &[(
            "2:21",
            "checks.web.expect_status",
            "expected a status code such as 200 or a range such as 200-399, codes 100..=599, \
             not a list",
        )],
    },
    Case {
        name: "numbers out of range, negative or fractional",
        yaml: "\
checks:
  c: {kind: tcp, fall: -1}
pools:
  p:
    check: c
    servers: [{address: 127.0.0.1:1, weight: 1.5}]
vrrp:
  instances:
    v: {interface: eth0, vrid: 1, priority: 256, virtual_addresses: [192.0.2.100/24]}
",
        errors: &[
            (
                "2:24",
                "checks.c.fall",
                "-1 is not a whole number such as 3",
            ),
            (
                "6:46",
                "pools.p.servers[0].weight",
                "1.5 is not a whole number such as 3",
            ),
            (
                "9:45",
                "vrrp.instances.v.priority",
                "256 is not a whole number from 1 to 254 (255 for the address owner)",
            ),
        ],
    },
    Case {
        name: "one address where a list belongs, a duration without unit, a host name",
        yaml: "\
checks:
  c: {kind: tcp, interval: \"2\"}
pools:
  p: {check: c, servers: [{address: localhost:3306}]}
relays:
  r:
    listen: 127.0.0.1:17620
    pool: p
",
        errors: &[
            (
                "2:28",
                "checks.c.interval",
                "2 has no unit; expected a duration such as 200ms, 3s or 1m",
            ),
            (
                "4:37",
                "pools.p.servers[0].address",
                "\"localhost:3306\" is not an IP address and port such as 127.0.0.1:3306 \
                 (names are not resolved)",
            ),
            (
                "7:13",
                "relays.r.listen",
                "expected a list such as [127.0.0.1:17620]",
            ),
        ],
    },
    Case {
        name: "virtual address and allowed network without a prefix",
        yaml: "\
checks:
  c: {kind: tcp}
pools:
  p: {check: c, servers: [{address: 127.0.0.1:1}]}
relays:
  g:
    listen: [127.0.0.1:2]
    pool: p
    mode: {kind: gateway, secret: {value: x}, allow: [10.0.0.1]}
vrrp:
  instances:
    v: {interface: eth0, vrid: 1, virtual_addresses: [192.0.2.100]}
",
        errors: &[
            (
                "9:55",
                "relays.g.mode.allow[0]",
                "\"10.0.0.1\" is not an address or network with a prefix such as 10.0.0.0/24 \
                 or 192.0.2.7/32",
            ),
            (
                "12:55",
                "vrrp.instances.v.virtual_addresses[0]",
                "\"192.0.2.100\" is not an address with a prefix such as 192.0.2.100/24",
            ),
        ],
    },
    Case {
        name: "required settings without a value or missing in a mode",
        yaml: "\
checks:
  c: {kind: mysql, user: }
pools:
  p: {check: c, servers: [{address: 127.0.0.1:1}]}
relays:
  g:
    listen: [127.0.0.1:2]
    pool: p
    mode: {kind: gateway, secret: {value: x}}
  s:
    listen: [127.0.0.1:3]
    pool: p
    mode: spiped_encrypt
",
        errors: &[
            (
                "2:20",
                "checks.c.user",
                "needs a value (required by kind mysql)",
            ),
            (
                "9:11",
                "relays.g.mode",
                "missing field `allow` (required by kind gateway)",
            ),
            (
                "13:11",
                "relays.s.mode",
                "spiped_encrypt needs settings; write a mapping such as `{kind: spiped_encrypt, ...}`",
            ),
        ],
    },
    Case {
        name: "setting of another relay mode",
        yaml: "\
checks:
  c: {kind: tcp}
pools:
  p: {check: c, servers: [{address: 127.0.0.1:1}]}
relays:
  s:
    listen: [127.0.0.1:3]
    pool: p
    mode: {kind: spiped_decrypt, key_file: /k, allow: [10.0.0.0/8]}
",
        errors: &[(
            "9:48",
            "relays.s.mode.allow",
            "does not apply to spiped_decrypt relays, whose own settings are: key_file, \
             forward_secrecy, handshake_timeout",
        )],
    },
    Case {
        name: "YAML 1.1 yes/no/on/off where a boolean belongs",
        yaml: "\
checks:
  t: {kind: tcp}
pools:
  p:
    check: t
    servers:
      - {address: 127.0.0.1:1, backup: yes}
      - {address: 127.0.0.1:2, backup: off}
",
        errors: &[
            (
                "7:40",
                "pools.p.servers[0].backup",
                "expected true or false (yes, no, on and off are not booleans in hafront's YAML)",
            ),
            (
                "8:40",
                "pools.p.servers[1].backup",
                "expected true or false (yes, no, on and off are not booleans in hafront's YAML)",
            ),
        ],
    },
    Case {
        name: "a value where a list or mapping belongs, and the reverse",
        yaml: "\
global: 5
checks:
  e: {kind: exec, command: /bin/true}
  m: {kind: mysql, user: [a]}
pools:
  p: {check: e, servers: [{address: 127.0.0.1:1, backup: maybe}]}
",
        errors: &[
            (
                "1:9",
                "global",
                "expected a mapping of keys to values, such as {key: value}",
            ),
            (
                "3:28",
                "checks.e.command",
                "expected a list, such as [a, b]",
            ),
            (
                "4:26",
                "checks.m.user",
                "expected a single value, such as a name, not a list or mapping",
            ),
            (
                "6:58",
                "pools.p.servers[0].backup",
                "expected true or false",
            ),
        ],
    },
    Case {
        name: "quorum: endpoints, TLS without https, lone user, TTL range and adverts",
        yaml: "\
vrrp:
  instances:
    vip: {interface: eth0, vrid: 1, virtual_addresses: [192.0.2.1/24], advert_interval: 3s}
quorum:
  endpoints: [http://10.0.0.5:2379, 10.0.0.6:2379, 'http://10.0.0.7']
  tls: {cert_file: /etc/hafront/etcd.crt}
  user: hafront
  prefix: ''
  ttl: 1500ms
  node_name: ''
  on_quorum_loss: ignore
",
        errors: &[
            (
                "5:37",
                "quorum.endpoints[1]",
                "\"10.0.0.6:2379\" is not an etcd URL such as http://10.0.0.5:2379",
            ),
            (
                "5:52",
                "quorum.endpoints[2]",
                "\"http://10.0.0.7\" is not an etcd URL",
            ),
            (
                "6:8",
                "quorum.tls",
                "TLS is set but no endpoint is https://",
            ),
            ("6:8", "quorum.tls", "cert_file and key_file go together"),
            ("6:8", "quorum.tls", "needs ca_file"),
            ("7:9", "quorum.user", "needs a password"),
            ("8:11", "quorum.prefix", "must not be empty"),
            ("9:8", "quorum.ttl", "must be whole seconds from 1s to 10s"),
            (
                "9:8",
                "quorum.ttl",
                "must exceed the advert_interval of VRRP instance vip (3s)",
            ),
            ("10:14", "quorum.node_name", "must be 1 to 253 bytes long"),
            (
                "11:19",
                "quorum.on_quorum_loss",
                "unknown variant `ignore`, expected one of resign, keep",
            ),
        ],
    },
    Case {
        name: "PROXY protocol: bad version, untrusted list without accept_proxy, tunnel entries",
        yaml: "\
checks:
  port: { kind: tcp }
pools:
  p: { check: port, servers: [{ address: 127.0.0.1:1 }] }
relays:
  a: { listen: [127.0.0.1:2], pool: p, send_proxy: v3 }
  b: { listen: [127.0.0.1:3], pool: p, accept_proxy_from: [10.0.0.0/8] }
  c: { listen: [127.0.0.1:4], pool: p, accept_proxy: true, accept_proxy_from: [10.0.0.1] }
  d:
    listen: [127.0.0.1:5]
    pool: p
    send_proxy: v2
    mode: { kind: tls_client, server_name: db, pin_sha256: \"sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\" }
",
        errors: &[
            ("6:52", "relays.a.send_proxy", "unknown variant `v3`, expected one of v1, v2"),
            (
                "7:59",
                "relays.b.accept_proxy_from",
                "only with `accept_proxy: true`",
            ),
            (
                "8:80",
                "relays.c.accept_proxy_from[0]",
                "\"10.0.0.1\" is not an address or network with a prefix",
            ),
            (
                "12:17",
                "relays.d.send_proxy",
                "set send_proxy on the tls_server relay",
            ),
        ],
    },
    Case {
        name: "direct routing: not a VIP, two instances, least connections, a port the servers do not use, encryption, PROXY, IPv6, hook",
        yaml: "\
checks:
  port: { kind: tcp }
pools:
  db: { check: port, servers: [{ address: 10.0.0.11:3306 }, { address: 10.0.0.12:3307 }] }
vrrp:
  instances:
    a: { interface: eth0, vrid: 1, priority: 100, virtual_addresses: [10.0.0.100/24] }
    b: { interface: eth0, vrid: 2, priority: 100, virtual_addresses: [10.0.0.101/24] }
relays:
  x: { listen: [10.0.0.100:3306, 10.0.0.101:3306], pool: db, forward: direct_routing, policy: least_connections }
  yy: { listen: [10.0.0.200:3306], pool: db, forward: direct_routing, send_proxy: v1, accept_proxy: true }
  z: { listen: [\"[::1]:3306\"], pool: db, forward: direct_routing, mode: { kind: gateway, secret: { value: s }, allow: [10.0.0.0/8] } }
  w: { listen: [127.0.0.1:3306], pool: db, hook: tc }
",
        errors: &[
            (
                "4:72",
                "pools.db.servers[1].address",
                "the server must listen on 3306, the relay's port",
            ),
            (
                "10:34",
                "relays.x.listen[1]",
                "belongs to vrrp instance \"b\", but this relay's first address belongs to \"a\"",
            ),
            ("10:95", "relays.x.policy", "cannot count them: use round_robin (by weight) or first"),
            (
                "11:18",
                "relays.yy.listen[0]",
                "10.0.0.200 is not a virtual address of any vrrp instance",
            ),
            ("11:83", "relays.yy.send_proxy", "no header is needed"),
            ("11:101", "relays.yy.accept_proxy", "cannot read a PROXY protocol header"),
            ("12:17", "relays.z.listen[0]", "direct routing is IPv4 only"),
            ("12:73", "relays.z.mode", "so it cannot encrypt"),
            ("13:50", "relays.w.hook", "only with `forward: direct_routing`"),
        ],
    },
    Case {
        name: "quorum: https without TLS, a password without a user, a TTL too long",
        yaml: "\
quorum:
  endpoints: [https://etcd1.example.com:2379]
  password: {file: /etc/hafront/etcd.pass}
  ttl: 30s
",
        errors: &[
            (
                "2:14",
                "quorum.endpoints",
                "https:// endpoints need a tls section",
            ),
            ("3:13", "quorum.password", "needs a user"),
            ("4:8", "quorum.ttl", "must be whole seconds from 1s to 10s"),
        ],
    },
    Case {
        name: "metrics listening where a relay does",
        yaml: "\
global:
  metrics: 127.0.0.1:9100
checks:
  port: { kind: tcp }
pools:
  p: { check: port, servers: [{ address: 127.0.0.1:1 }] }
relays:
  r: { listen: [127.0.0.1:9100], pool: p }
",
        errors: &[(
            "8:17",
            "relays.r.listen[0]",
            "address 127.0.0.1:9100 is already used by global.metrics",
        )],
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
            ("6:15", "checks.db.interval", "\"soon\" is not a duration"),
            ("9:11", "checks.ok.rise", "must be at least 1"),
            (
                "12:12",
                "pools.mysql.check",
                "unknown check \"missing\"; defined checks: db, ok",
            ),
            (
                "18:22",
                "relays.rw.connect_timeout",
                "\"1 parsec\" is not a duration",
            ),
            (
                "20:14",
                "relays.ro.listen[0]",
                "address 127.0.0.1:13306 is already used by relays.rw.listen[0]",
            ),
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
fn files_run_or_read_must_be_changeable_only_by_root_or_the_daemon_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let group_writable = file_with_mode(&dir, "group.sh", b"#!/bin/sh\n", 0o775);
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    let in_shared = shared.join("check.sh");
    std::fs::write(&in_shared, "#!/bin/sh\n").expect("write script");
    std::fs::set_permissions(&in_shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o770)).expect("chmod");
    let in_shared = in_shared.to_str().expect("utf-8 temp path");
    let secret = file_with_mode(&dir, "foreign.pass", b"s3cret\n", 0o600);
    let key = file_with_mode(&dir, "foreign.key", &[7; 32], 0o600);
    let as_root = nix::unistd::Uid::effective().is_root();
    if as_root {
        // Owned by nobody: only root can give a file away.
        std::os::unix::fs::chown(&secret, Some(65534), None).expect("chown");
        std::os::unix::fs::chown(&key, Some(65534), None).expect("chown");
    }
    let yaml = format!(
        "\
checks:
  shared: {{kind: exec, command: [{in_shared}]}}
  cache: {{kind: redis, password: {{file: {secret}}}}}
pools:
  p: {{check: cache, servers: [{{address: 127.0.0.1:1}}]}}
relays:
  a:
    listen: [127.0.0.1:2]
    pool: p
    mode: {{kind: spiped_encrypt, key_file: {key}}}
notify:
  - command: [{group_writable}]
"
    );
    let errors = parse(&yaml, "site.yaml").expect_err("unsafe files");
    let actual = describe(&errors);
    let shared = shared.display();
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::effective())
        .ok()
        .flatten()
        .map_or_else(
            || nix::unistd::Gid::effective().to_string(),
            |group| group.name,
        );
    let mut expected = vec![(
        "2:34",
        "checks.shared.command[0]",
        format!(
            "{shared} is writable by its group {group} (chmod g-w {shared}); refusing to run {in_shared}"
        ),
    )];
    if as_root {
        expected.push((
            "3:41",
            "checks.cache.password.file",
            format!("secret file {secret} is owned by user nobody (uid 65534), not by root or the user hafront runs as; run: chown root {secret}"),
        ));
        expected.push((
            "10:44",
            "relays.a.mode.key_file",
            format!("key file {key} is owned by user nobody (uid 65534)"),
        ));
    }
    expected.push((
        "12:15",
        "notify[0].command[0]",
        format!("{group_writable} is writable by its group {group} (chmod g-w {group_writable})"),
    ));
    let expected: Vec<(&str, &str, &str)> = expected
        .iter()
        .map(|(position, key, message)| (*position, *key, message.as_str()))
        .collect();
    assert_errors("files", &errors, &expected);
    assert_eq!(actual.len(), expected.len());
}

#[test]
fn mistakes_in_one_entry_do_not_hide_the_next_ones() {
    // Seven independent mistakes, four of them in one relay: each is
    // reported in one pass, and none that is not there.
    let yaml = "\
checks:
  db: {kind: mysql, user: check, interval: 2, rise: 1.5, timeout: 3s}
pools:
  mysql:
    check: db
    servers:
      - {address: 127.0.0.1:3306, wieght: 2}
relays:
  rw:
    listen: 127.0.0.1:17620
    pool: mysq
    polcy: first
    mode: {kind: gateway, secret: {value: x}, allow: [10.0.0.1]}
";
    let errors = parse_with(yaml, "site.yaml", ParseOptions { check_files: false })
        .expect_err("broken config");
    assert_errors(
        "seven mistakes",
        &errors,
        &[
            ("2:44", "checks.db.interval", "2 has no unit"),
            ("2:53", "checks.db.rise", "1.5 is not a whole number"),
            (
                "7:35",
                "pools.mysql.servers[0].wieght",
                "unknown field `wieght`",
            ),
            (
                "10:13",
                "relays.rw.listen",
                "expected a list such as [127.0.0.1:17620]",
            ),
            (
                "11:11",
                "relays.rw.pool",
                "unknown pool \"mysq\"; defined pools: mysql",
            ),
            ("12:5", "relays.rw.polcy", "unknown field `polcy`"),
            (
                "13:55",
                "relays.rw.mode.allow[0]",
                "\"10.0.0.1\" is not an address or network with a prefix",
            ),
        ],
    );
}

#[test]
fn a_wrong_value_that_cannot_be_stood_in_for_stops_only_its_entry() {
    // A server without a usable address leaves its pool unread past it
    // (there is no address to stand in), and nothing is made up about the
    // pool; the relay is still read and checked.
    let yaml = "\
checks:
  c: {kind: tcp}
pools:
  p:
    check: c
    servers:
      - {address: db-a:3306, weight: 0}
relays:
  r: {listen: [127.0.0.1:1], pool: q, max_connections: 0}
";
    let errors = parse_with(yaml, "site.yaml", ParseOptions { check_files: false })
        .expect_err("broken config");
    assert_errors(
        "stand-in refused",
        &errors,
        &[
            (
                "7:19",
                "pools.p.servers[0].address",
                "\"db-a:3306\" is not an IP address and port",
            ),
            (
                "9:36",
                "relays.r.pool",
                "unknown pool \"q\"; defined pools: p",
            ),
            ("9:56", "relays.r.max_connections", "must be at least 1"),
        ],
    );
}

#[test]
fn notify_users_and_the_state_dir_are_checked_with_the_files() {
    let yaml = "\
global:
  state_dir: /etc/passwd
notify:
  - command: [true]
    user: hafront-no-such-user
";
    let errors = parse(yaml, "site.yaml").expect_err("no such user, state_dir a file");
    assert_errors(
        "machine-specific names",
        &errors,
        &[
            (
                "2:14",
                "global.state_dir",
                "/etc/passwd exists and is not a directory",
            ),
            (
                "5:11",
                "notify[0].user",
                "no user hafront-no-such-user on this machine",
            ),
        ],
    );
    let skipped = parse_with(yaml, "site.yaml", ParseOptions { check_files: false });
    assert!(skipped.is_ok(), "--skip-files: {skipped:?}");
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
