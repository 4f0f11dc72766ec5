//! The configuration reference: every key of every section with its default and meaning, the
//! text of `hafront.yaml(5)`. Which keys exist is read from the schema itself (the field lists
//! serde derives), so a key added to the schema without its line here fails a test, and so
//! does a line for a key the schema no longer has; another test parses every stated default
//! and compares the result with the key left out.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::schema::{
    Alerts, Check, Config, Email, Failover, Garp, Global, Log, Notify, Pool, Quorum, QuorumTls,
    Relay, RelayModeRepr, ReplicationCheck, Server, Track, Vrrp, VrrpInstance,
};

/// One section of the file: a mapping and the keys it takes.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// Where the mapping is, as `relays.NAME.mode` (`NAME` any name, `[]` each list item);
    /// empty for the top level.
    pub path: &'static str,
    /// What the section is for.
    pub about: &'static str,
    /// Its keys, in the order they are best read.
    pub keys: &'static [Key],
}

/// One key of a section.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key as written in the file.
    pub name: &'static str,
    /// Its value when left out: `required`, `none` (unset), or the value.
    pub default: &'static str,
    /// What it does; `code` in backquotes.
    pub meaning: &'static str,
}

const fn key(name: &'static str, default: &'static str, meaning: &'static str) -> Key {
    Key {
        name,
        default,
        meaning,
    }
}

/// Every section, top level first.
#[rustfmt::skip]
pub const SECTIONS: &[Section] = &[
    Section {
        path: "",
        about: "The top level of the file. Every section is optional, but a file must configure something.",
        keys: &[
            key("global", "each key's default", "Node-wide settings."),
            key("checks", "none", "Named health checks, used by pools."),
            key("pools", "none", "Named groups of real servers behind one check."),
            key("relays", "none", "Named TCP listeners that forward clients to the healthy servers of a pool."),
            key("vrrp", "none", "VRRP instances that move virtual addresses between nodes."),
            key("alerts", "none", "Where alert mails go."),
            key("notify", "none", "Programs run on every state change, as a list."),
            key("quorum", "none", "Leader keys in etcd: no split brain even in a partition; plain VRRP when absent."),
        ],
    },
    Section {
        path: "global",
        about: "Node-wide settings.",
        keys: &[
            key("node", "host name", "This node's name in logs, alerts and status."),
            key("state_dir", "/var/lib/hafront", "Persistent state: the alert mail queue, drained servers and failover blocks."),
            key("log", "each key's default", "Logging settings (below)."),
            key("control_socket", "/run/hafront/control.sock", "Unix socket for `hafront status`, `hafront reload` and the other operator commands."),
            key("metrics", "none", "Address (`IP:PORT`) of the Prometheus metrics listener, serving `/metrics`."),
            key("stop_grace", "5s", "On stop, how long relays' open connections may finish before they are closed (at most 5m; keep systemd's `TimeoutStopSec` above it)."),
        ],
    },
    Section {
        path: "global.log",
        about: "Logging.",
        keys: &[
            key("level", "info", "A level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or per-module directives (`info,hafront_health=debug`); `-v`/`-vv` or `RUST_LOG` override it."),
            key("format", "text", "`text`, `json` (one object per line) or `journald`."),
        ],
    },
    Section {
        path: "checks.NAME",
        about: "A health check: `kind` and its settings, and how often and how patiently it probes each server of the pools that use it.",
        keys: &[
            key("kind", "required", "`tcp` (a connect), `mysql`, `redis`, `http` or `exec`."),
            key("interval", "2s", "Time between the starts of two probes of a server."),
            key("timeout", "1s", "A probe taking longer fails (at most `interval`)."),
            key("rise", "2", "Consecutive successes that bring a down server up."),
            key("fall", "3", "Consecutive failures that bring an up server down."),
            key("user", "required", "mysql: the user to log in as; it needs no privilege beyond USAGE (`SLAVE MONITOR` with `replication`)."),
            key("username", "none", "redis: the ACL user (Redis 6+); AUTH with the password alone when absent."),
            key("password", "none", "mysql, redis: the password, a secret."),
            key("role", "false", "mysql: read `read_only` (and `super_read_only`) to tell a primary (writable) from a replica; redis: ask `ROLE` (master = primary)."),
            key("replication", "none", "mysql: require running replication threads and bounded lag on replicas (below)."),
            key("path", "/", "http: the path of the GET, starting with `/`."),
            key("host", "the address", "http: the Host header."),
            key("expect_status", "200-399", "http: accepted status codes, `200` or `200-399`."),
            key("command", "required", "exec: program and arguments, run without a shell; exit 0 = up; killed with its process group at `timeout`. It gets `HAFRONT_SERVER_ADDRESS`, `HAFRONT_POOL` and `HAFRONT_SERVER`."),
        ],
    },
    Section {
        path: "checks.NAME.replication",
        about: "Replication requirements of a mysql check.",
        keys: &[key("max_lag", "30s", "Largest accepted `Seconds_Behind_Master`; both replication threads must run.")],
    },
    Section {
        path: "pools.NAME",
        about: "A group of real servers behind one health check.",
        keys: &[
            key("check", "required", "The check (a name under `checks`) run against every server."),
            key("servers", "required", "The servers, in priority order for the `first` policy (below)."),
            key("failover", "none", "Automatic failover and planned switchover of a MariaDB pool (below)."),
        ],
    },
    Section {
        path: "pools.NAME.servers[]",
        about: "One real server.",
        keys: &[
            key("name", "the address", "Its name in logs, alerts, status and operator commands."),
            key("address", "required", "Where it listens, `IP:PORT`."),
            key("weight", "1", "Relative share of connections under `round_robin` and `least_connections`."),
            key("backup", "false", "Used only while no other server is up."),
        ],
    },
    Section {
        path: "pools.NAME.failover",
        about: "Automatic failover of a MariaDB pool with GTID replication: the primary's death confirmed by its replicas, the most advanced replica promoted, the others re-pointed, the old primary fenced and rejoined when clean.",
        keys: &[
            key("user", "required", "Administrative user hafront logs in as to promote, fence and re-point servers."),
            key("password", "none", "That user's password, a secret."),
            key("replication_user", "required", "The user a re-pointed or rejoining server replicates as."),
            key("replication_password", "none", "That user's password, a secret."),
            key("candidates", "every server", "Servers that may be promoted, by name."),
            key("max_lag", "10s", "A replica further behind than this when the primary fails is not promoted."),
            key("catch_up_timeout", "10s", "How long a candidate may take to apply the relay log it received before it is given up."),
            key("confirm_timeout", "1s", "How long to wait for the replicas to confirm that they lost the primary too."),
            key("heartbeat", "100ms", "Replication heartbeat period set on the replicas hafront points."),
            key("block", "1h", "After a failover, no other automatic one for this long unless acknowledged (`hafront failover ack POOL`)."),
            key("auto_rejoin", "true", "Make a returning old primary a replica of the new one when it has no transaction the new one lacks."),
            key("write_drain", "2s", "During a switchover, how long the primary's running writes may take before their sessions are ended."),
            key("vrrp", "none", "Act only while this VRRP instance is master on this node."),
            key("local", "none", "Co-located: the server of the pool on this host, promoted while `vrrp` is master and fenced otherwise."),
        ],
    },
    Section {
        path: "relays.NAME",
        about: "A TCP listener that forwards each client to a healthy server of a pool.",
        keys: &[
            key("listen", "required", "Addresses, as a list; they need not exist yet, so a relay on a VIP starts before the VIP arrives."),
            key("pool", "required", "The pool clients go to."),
            key("policy", "round_robin", "`round_robin` (smooth weighted), `least_connections` (open connections / weight) or `first` (the first healthy server in pool order). With `forward: direct_routing`, `round_robin` spreads new flows by weight (Maglev) and `least_connections` is refused."),
            key("role", "none", "`primary` or `replica`: only servers whose check reports that role."),
            key("connect_timeout", "3s", "Time allowed to connect to one server."),
            key("idle_timeout", "1h", "Close a connection after this long without a byte either way."),
            key("max_connections", "10000", "Most clients at once; more are closed at once and counted, never queued."),
            key("connect_attempts", "3", "Servers tried for one client before giving up."),
            key("on_server_down", "keep", "`close` ends a server's connections when it goes down or loses the relay's role, so clients reconnect to a healthy server; `keep` leaves them."),
            key("mode", "plain", "`plain`, or a mapping with `kind` for an encrypted side (below)."),
            key("send_proxy", "none", "`v1` or `v2`: send a PROXY protocol header with the client's address to the server first (MariaDB: `proxy_protocol_networks`)."),
            key("accept_proxy", "false", "Every client must start with a PROXY protocol header (v1 or v2), read within 3 s; its address replaces the peer's."),
            key("accept_proxy_from", "[]", "With `accept_proxy`, the only peers (load balancers) allowed, as networks; others are refused. Empty: any peer."),
            key("forward", "proxy", "`proxy`: the relay accepts clients and connects to servers. `direct_routing`: on the master of the VRRP instance owning the `listen` addresses, an eBPF program sends each packet to a server's MAC unchanged and servers answer clients directly (LVS-DR; IPv4, plain mode; servers on the interface's subnet, listening on the same port, with the VIP on `lo` and `arp_ignore=1`, `arp_announce=2`)."),
            key("hook", "auto, with direct_routing", "With `direct_routing`: `auto` (native XDP on a device with a driver, generic XDP on veth and bridges), `xdp_native`, `xdp_generic` or `tc`."),
        ],
    },
    Section {
        path: "relays.NAME.mode",
        about: "The transport of a relay: `kind` and its settings. `spiped_encrypt` accepts plaintext and connects with the spiped protocol, `spiped_decrypt` the reverse; `tls_server` terminates TLS, `tls_client` connects with TLS; `gateway` reads an encrypted address token from each client.",
        keys: &[
            key("kind", "required", "`plain`, `spiped_encrypt`, `spiped_decrypt`, `tls_server`, `tls_client` or `gateway`."),
            key("key_file", "required", "spiped: the shared key file (at least 32 bytes, mode 600). tls_server: the certificate's private key. tls_client: the client certificate's key."),
            key("forward_secrecy", "true", "spiped: ephemeral Diffie-Hellman (`false` is spiped's `-f`)."),
            key("handshake_timeout", "5s", "Time for the peer's first byte, then for the handshake or request line."),
            key("cert_file", "required", "tls_server: the certificate chain presented. tls_client: an optional client certificate for mutual TLS."),
            key("client_ca_file", "none", "tls_server: clients must present a certificate signed by a CA in it."),
            key("ca_file", "none", "tls_client: CAs that may sign the server's certificate; a self-signed certificate in it that the server presents is trusted as itself. Required unless `pin_sha256` is set."),
            key("server_name", "required", "tls_client: the name the server's certificate must carry."),
            key("pin_sha256", "none", "tls_client: SHA-256 of the server's public key (base64 or hex, `sha256//` prefix allowed)."),
            key("secret", "required", "gateway: the shared secret of the address tokens, a secret."),
            key("allow", "required", "gateway: addresses or networks clients may ask for; only up servers of the pool are reached."),
        ],
    },
    Section {
        path: "vrrp",
        about: "VRRP, interoperating with keepalived.",
        keys: &[key("instances", "none", "Named VRRP instances (below).")],
    },
    Section {
        path: "vrrp.instances.NAME",
        about: "One virtual router: the node with the highest priority holds its virtual addresses.",
        keys: &[
            key("interface", "required", "Interface the adverts go out on and the virtual addresses are added to."),
            key("vrid", "required", "Virtual router id, 1..255, the same on every node of the router and unique on the segment."),
            key("version", "3", "`2` (RFC 3768) or `3` (RFC 5798)."),
            key("priority", "100", "1..254; 255 makes this node the address owner."),
            key("advert_interval", "1s", "Time between adverts (whole seconds for version 2, multiples of 10ms for version 3)."),
            key("virtual_addresses", "required", "The virtual addresses with their prefix length (`192.0.2.100/24`), one family per instance."),
            key("preempt", "true", "Take over from a master of lower priority; `false` is keepalived's `nopreempt`."),
            key("preempt_delay", "0s", "After start, wait this long before preempting."),
            key("unicast_peers", "none", "Send adverts to these addresses instead of multicast, and accept adverts only from them."),
            key("auth_pass", "none", "Version 2 only: the simple password (keepalived's `auth_type PASS`), at most 8 bytes, a secret."),
            key("v3_checksum", "pseudo_header", "Version 3 over IPv4: `pseudo_header` (RFC 5798, keepalived) or `message_only` (RFC 9568)."),
            key("garp", "each key's default", "Gratuitous ARP settings (below)."),
            key("track", "none", "Items that lower the priority or force FAULT (below)."),
        ],
    },
    Section {
        path: "vrrp.instances.NAME.garp",
        about: "Gratuitous ARPs (unsolicited neighbour advertisements for IPv6) sent for the virtual addresses.",
        keys: &[
            key("repeat", "3", "Announcements per address on becoming master."),
            key("interval", "100ms", "Gap between them."),
            key("refresh", "none", "Re-announce this often while master."),
        ],
    },
    Section {
        path: "vrrp.instances.NAME.track[]",
        about: "One tracked item: exactly one of `server`, `pool` or `interface`.",
        keys: &[
            key("server", "none", "`POOL/SERVER`: down while that server's check does not say up."),
            key("pool", "none", "A pool: down while none of its servers is up."),
            key("interface", "none", "An interface: down while its link is down."),
            key("weight", "none", "Priority subtracted while the item is down; without it the instance goes to FAULT."),
        ],
    },
    Section {
        path: "alerts",
        about: "Where alerts are delivered.",
        keys: &[key("email", "none", "Alert mails (below); no mail when absent.")],
    },
    Section {
        path: "alerts.email",
        about: "Alert mails: once per change, bursts coalesced, rate bounded, queued on disk under `state_dir` until the SMTP server accepts them.",
        keys: &[
            key("smtp_host", "required", "SMTP server host name."),
            key("smtp_port", "by security", "587 for `starttls`, 465 for `tls`, 25 for `plain`."),
            key("security", "starttls", "`starttls` (required), `tls` (from the first byte) or `plain` (local relays only)."),
            key("username", "none", "SMTP AUTH user."),
            key("password", "none", "SMTP AUTH password, a secret."),
            key("ca_file", "web PKI roots", "CA bundle for the SMTP server's certificate."),
            key("from", "required", "Sender address."),
            key("to", "required", "Recipients, as a list."),
            key("coalesce", "10s", "Events within this window go out as one mail."),
            key("max_per_hour", "20", "Most mails per hour; the rest are merged into the next one."),
            key("timeout", "30s", "Time allowed for one SMTP session."),
        ],
    },
    Section {
        path: "notify[]",
        about: "A program run on every event it subscribes to, in order and one at a time, without a shell. VRRP events append keepalived's arguments `INSTANCE name STATE priority`; `HAFRONT_EVENT` and the other `HAFRONT_*` variables describe the event.",
        keys: &[
            key("command", "required", "Program and arguments."),
            key("instance", "none", "Only this VRRP instance's events."),
            key("pool", "none", "Only this pool's events (neither `instance` nor `pool`: every event)."),
            key("timeout", "30s", "Then the program's whole process group is killed."),
            key("user", "the daemon's", "Run as this user."),
        ],
    },
    Section {
        path: "quorum",
        about: "A VRRP instance is master, and a failover pool acts, only while this node holds its leader key (`vrrp/NAME`, `failover/POOL` under `prefix`) in etcd under a live lease; a holder that cannot renew lets go before the TTL ends, by its own clock.",
        keys: &[
            key("endpoints", "required", "etcd client URLs, as a list: `http://HOST:PORT`, or `https://` with `tls`."),
            key("tls", "none", "TLS files for `https://` endpoints (below)."),
            key("user", "none", "etcd user, when etcd has authentication on."),
            key("password", "none", "The etcd user's password, a secret."),
            key("prefix", "/hafront/", "Prefix of every key hafront writes."),
            key("ttl", "2s", "Lease TTL, whole seconds from 1s to 10s, above every advert interval; a crash failover waits for it."),
            key("node_name", "`global.node`", "The value of every key this node holds (else the host name)."),
            key("on_quorum_loss", "resign", "With etcd out of reach: `resign` (no master, never two) or `keep` (plain VRRP, with an alert)."),
        ],
    },
    Section {
        path: "quorum.tls",
        about: "PEM files for TLS to etcd.",
        keys: &[
            key("ca_file", "none", "CA that signed etcd's certificates (required with `tls`)."),
            key("cert_file", "none", "Client certificate, for etcd's `--client-cert-auth`."),
            key("key_file", "none", "Its key; not readable by group or others."),
        ],
    },
];

/// Every section path and the keys the schema accepts there, read from the field lists
/// serde derives for each section's type.
pub fn schema_keys() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("", fields_of::<Config>()),
        ("global", fields_of::<Global>()),
        ("global.log", fields_of::<Log>()),
        ("checks.NAME", fields_of::<Check>()),
        ("checks.NAME.replication", fields_of::<ReplicationCheck>()),
        ("pools.NAME", fields_of::<Pool>()),
        ("pools.NAME.servers[]", fields_of::<Server>()),
        ("pools.NAME.failover", fields_of::<Failover>()),
        ("relays.NAME", fields_of::<Relay>()),
        ("relays.NAME.mode", fields_of::<RelayModeRepr>()),
        ("vrrp", fields_of::<Vrrp>()),
        ("vrrp.instances.NAME", fields_of::<VrrpInstance>()),
        ("vrrp.instances.NAME.garp", fields_of::<Garp>()),
        ("vrrp.instances.NAME.track[]", fields_of::<Track>()),
        ("alerts", fields_of::<Alerts>()),
        ("alerts.email", fields_of::<Email>()),
        ("notify[]", fields_of::<Notify>()),
        ("quorum", fields_of::<Quorum>()),
        ("quorum.tls", fields_of::<QuorumTls>()),
    ]
}

/// The field names a derived `Deserialize` of a struct hands to `deserialize_struct`.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(Fields(Some(fields))) => fields,
        _ => panic!("{} is not a derived struct", std::any::type_name::<T>()),
    }
}

/// A deserializer that only answers `deserialize_struct`, with the field names as its error.
struct FieldNames;

/// What [`FieldNames`] ends with: the field names, or none for anything but a struct.
#[derive(Debug)]
struct Fields(Option<&'static [&'static str]>);

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fields {:?}", self.0)
    }
}

impl std::error::Error for Fields {}

impl de::Error for Fields {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Fields(None)
    }
}

impl<'de> Deserializer<'de> for FieldNames {
    type Error = Fields;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
        Err(Fields(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Fields> {
        Err(Fields(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_schema_key_is_documented_and_nothing_else() {
        let schema = schema_keys();
        for (path, fields) in &schema {
            let section = SECTIONS
                .iter()
                .find(|section| section.path == *path)
                .unwrap_or_else(|| panic!("no section {path:?} in the reference"));
            let documented: BTreeSet<&str> = section.keys.iter().map(|key| key.name).collect();
            let accepted: BTreeSet<&str> = fields.iter().copied().collect();
            assert_eq!(documented, accepted, "keys of {path:?}");
            assert_eq!(
                documented.len(),
                section.keys.len(),
                "a key twice in {path:?}"
            );
        }
        assert_eq!(SECTIONS.len(), schema.len(), "a section the schema lacks");
    }

    /// Defaults that describe rather than state a value.
    const DESCRIBED: [&str; 11] = [
        "required",
        "none",
        "each key's default",
        "host name",
        "the address",
        "every server",
        "by security",
        "web PKI roots",
        "the daemon's",
        "`global.node`",
        "auto, with direct_routing",
    ];

    /// A small valid file with `%` where a key of the section goes, written in flow style.
    fn template(path: &str, key: &str) -> Option<String> {
        const POOL: &str = "pools: {p: {check: c, servers: [{address: '127.0.0.1:1'}]}}";
        let check = "checks: {c: {kind: mysql, user: u, role: true}}";
        Some(match path {
            "global" => format!("global: {{%}}\n{check}\n{POOL}"),
            "global.log" => format!("global: {{log: {{%}}}}\n{check}\n{POOL}"),
            "checks.NAME" => {
                let kind = match key {
                    "role" => "mysql, user: u",
                    "path" | "expect_status" => "http",
                    _ => "tcp",
                };
                format!("checks: {{c: {{kind: {kind}, %}}}}\n{POOL}")
            }
            "checks.NAME.replication" => {
                format!("checks: {{c: {{kind: mysql, user: u, replication: {{%}}}}}}\n{POOL}")
            }
            "pools.NAME.servers[]" => format!(
                "{check}\npools: {{p: {{check: c, servers: [{{address: '127.0.0.1:1', %}}]}}}}"
            ),
            "pools.NAME.failover" => format!(
                "{check}\npools: {{p: {{check: c, \
                 servers: [{{address: '127.0.0.1:1'}}, {{address: '127.0.0.1:2'}}], \
                 failover: {{user: a, replication_user: r, %}}}}}}"
            ),
            "relays.NAME" => {
                format!("{check}\n{POOL}\nrelays: {{r: {{listen: ['127.0.0.1:1'], pool: p, %}}}}")
            }
            "relays.NAME.mode" => format!(
                "{check}\n{POOL}\nrelays: {{r: {{listen: ['127.0.0.1:1'], pool: p, \
                 mode: {{kind: spiped_encrypt, key_file: /k, %}}}}}}"
            ),
            "vrrp.instances.NAME" | "vrrp.instances.NAME.garp" => {
                let instance = "interface: lo, vrid: 1, virtual_addresses: ['192.0.2.1/24']";
                let keys = if path.ends_with("garp") {
                    format!("{instance}, garp: {{%}}")
                } else {
                    format!("{instance}, %")
                };
                format!("{check}\n{POOL}\nvrrp: {{instances: {{v: {{{keys}}}}}}}")
            }
            "alerts.email" => format!(
                "{check}\n{POOL}\nalerts: {{email: {{smtp_host: h, from: 'a@b.c', to: ['d@e.f'], %}}}}"
            ),
            "notify[]" => format!("{check}\n{POOL}\nnotify: [{{command: [/bin/true], %}}]"),
            "quorum" => "quorum: {endpoints: ['http://10.0.0.5:2379'], %}".to_owned(),
            _ => return None,
        })
    }

    #[test]
    fn every_stated_default_is_the_schema_default() {
        let options = crate::ParseOptions { check_files: false };
        let parse = |text: &str| crate::parse_with(text, "reference", options);
        let mut compared = 0;
        for section in SECTIONS {
            for key in section.keys {
                if DESCRIBED.contains(&key.default) {
                    continue;
                }
                let template = template(section.path, key.name)
                    .unwrap_or_else(|| panic!("no template for {}", section.path));
                let left_out = template.replace(", %", "").replace('%', "");
                let given = template.replace('%', &format!("{}: {}", key.name, key.default));
                let left_out =
                    parse(&left_out).unwrap_or_else(|errors| panic!("{left_out}\n{errors}"));
                let given = parse(&given).unwrap_or_else(|errors| panic!("{given}\n{errors}"));
                assert_eq!(
                    left_out, given,
                    "{}: {} is not {}",
                    section.path, key.name, key.default
                );
                compared += 1;
            }
        }
        assert!(compared > 40, "only {compared} defaults compared");
    }

    #[test]
    fn every_key_says_what_it_does() {
        for section in SECTIONS {
            assert!(!section.about.is_empty(), "{}", section.path);
            for key in section.keys {
                assert!(
                    !key.default.is_empty() && key.meaning.ends_with('.'),
                    "{}.{}",
                    section.path,
                    key.name
                );
            }
        }
    }
}
