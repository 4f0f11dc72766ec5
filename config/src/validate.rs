//! Checks that go beyond the YAML shape: references between sections
//! resolve, numbers are in range, VRRP settings are coherent, and secret
//! files are private. Every problem found is reported, not just the first.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use crate::ParseOptions;
use crate::document::Document;
use crate::error::{ConfigError, KeyPath, Position};
use crate::schema::{
    Check, CheckKind, Config, Email, Failover, Forward, Notify, Policy, Pool, Quorum, Relay,
    RelayMode, Secret, Track, VrrpInstance,
};

/// The longest `global.stop_grace`.
const MAX_STOP_GRACE: Duration = Duration::from_secs(300);

/// The shortest and longest `quorum.ttl`: etcd counts leases in whole seconds, and a crash
/// failover waits for the TTL.
const MIN_QUORUM_TTL: Duration = Duration::from_secs(1);
const MAX_QUORUM_TTL: Duration = Duration::from_secs(10);

/// The longest node name kept in a leader key (a host name's limit).
const MAX_NODE_NAME_BYTES: usize = 253;

/// Spiped derives its keys from the key file with SHA-256; shorter files
/// hold less entropy than the derived key.
const SPIPED_MIN_KEY_BYTES: u64 = 32;

/// Settings every check kind accepts.
const COMMON_CHECK_SETTINGS: &[&str] = &["kind", "interval", "timeout", "rise", "fall"];

/// VRRPv2 (RFC 3768) passwords occupy an 8-byte field.
const VRRP_V2_MAX_AUTH_PASS_BYTES: usize = 8;

/// VRRPv3 advertises its interval in 12 bits of centiseconds.
const VRRP_V3_MAX_ADVERT_CENTISECONDS: u128 = 4095;

/// Validates `config` and pushes every problem to `errors`, located through
/// `document`. References are resolved against the names declared in the
/// document, so an entry that failed to deserialize does not also show up
/// as an unknown reference. Nothing is reported at or under the `repaired`
/// paths: their wrong values were reported already, and what the config
/// holds there is a default or a stand-in.
pub(crate) fn validate(
    config: &Config,
    document: &Document,
    repaired: &[KeyPath],
    file: &str,
    options: ParseOptions,
    errors: &mut Vec<ConfigError>,
) {
    let mut validator = Validator {
        config,
        document,
        repaired,
        file,
        options,
        errors,
    };
    let root = KeyPath::root();
    if let Err(problem) = check_log_filter(&config.global.log.level) {
        validator.report(&root.key("global").key("log").key("level"), problem);
    }
    validator.state_dir(
        &root.key("global").key("state_dir"),
        &config.global.state_dir,
    );
    if config.global.stop_grace > MAX_STOP_GRACE {
        validator.report(
            &root.key("global").key("stop_grace"),
            "at most 5m: systemd and operators wait for a stop",
        );
    }
    for (name, check) in &config.checks {
        validator.check(&root.key("checks").key(name), check);
    }
    for (name, pool) in &config.pools {
        validator.pool(&root.key("pools").key(name), pool);
    }
    for (name, relay) in &config.relays {
        validator.relay(&root.key("relays").key(name), relay);
    }
    validator.listen_addresses_are_unique();
    for (name, instance) in &config.vrrp.instances {
        validator.vrrp_instance(&root.key("vrrp").key("instances").key(name), instance);
    }
    validator.vrrp_routers_are_unique();
    if let Some(email) = &config.alerts.email {
        validator.email(&root.key("alerts").key("email"), email);
    }
    for (index, notify) in config.notify.iter().enumerate() {
        validator.notify(&root.key("notify").index(index), notify);
    }
    if let Some(quorum) = &config.quorum {
        validator.quorum(&root.key("quorum"), quorum);
    }
}

struct Validator<'a> {
    config: &'a Config,
    document: &'a Document,
    repaired: &'a [KeyPath],
    file: &'a str,
    options: ParseOptions,
    errors: &'a mut Vec<ConfigError>,
}

impl Validator<'_> {
    /// Whether the value at `path` was left out or stood in for after a
    /// reported error (or lies inside such a value).
    fn repaired(&self, path: &KeyPath) -> bool {
        self.repaired
            .iter()
            .any(|repaired| crate::recover::starts_with(path, repaired))
    }

    /// Reports a problem with the value at `path`.
    fn report(&mut self, path: &KeyPath, message: impl Into<String>) {
        if self.repaired(path) {
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            position: Some(self.document.value_position(path)),
            key: path.clone(),
            message: message.into(),
        });
    }

    /// Reports a problem with the key ending `path`, which starts at `position`.
    fn report_key(&mut self, position: Position, path: KeyPath, message: impl Into<String>) {
        if self.repaired(&path) {
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            position: Some(position),
            key: path,
            message: message.into(),
        });
    }

    /// The names declared under `section` in the document, in file order.
    fn declared(&self, section: &KeyPath) -> Vec<&str> {
        self.document
            .get(section)
            .map(|node| {
                node.entries()
                    .iter()
                    .map(|entry| entry.key.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reports `name` at `path` unless it is declared under `section`.
    fn reference(&mut self, path: &KeyPath, what: &str, section: &KeyPath, name: &str) {
        let declared = self.declared(section);
        if declared.contains(&name) {
            return;
        }
        let defined = if declared.is_empty() {
            format!("no {what}s are defined under {section}")
        } else {
            format!("defined {what}s: {}", declared.join(", "))
        };
        self.report(path, format!("unknown {what} {name:?}; {defined}"));
    }

    fn at_least_one(&mut self, path: &KeyPath, value: u64) {
        if value == 0 {
            self.report(path, "must be at least 1");
        }
    }

    fn positive_duration(&mut self, path: &KeyPath, value: Duration) {
        if value.is_zero() {
            self.report(path, "must be longer than 0s");
        }
    }

    fn command(&mut self, path: &KeyPath, command: &[String]) {
        match command.first() {
            None => self.report(path, "must name a program to run, as [program, args...]"),
            Some(program) if program.is_empty() => {
                self.report(&path.index(0), "the program name is empty")
            }
            Some(program) if self.options.check_files => {
                if let Err(problem) = crate::program::check_program(Path::new(program)) {
                    self.report(&path.index(0), problem);
                }
            }
            Some(_) => {}
        }
    }

    fn check(&mut self, path: &KeyPath, check: &Check) {
        self.settings_match_kind(
            path,
            &format!("{} checks", check.kind.name()),
            COMMON_CHECK_SETTINGS,
            check.kind.setting_names(),
        );
        self.at_least_one(&path.key("rise"), check.rise.into());
        self.at_least_one(&path.key("fall"), check.fall.into());
        self.positive_duration(&path.key("interval"), check.interval);
        self.positive_duration(&path.key("timeout"), check.timeout);
        let compared = [path.key("timeout"), path.key("interval")];
        if check.timeout > check.interval && !compared.iter().any(|key| self.repaired(key)) {
            self.timeout_within_interval(path, check);
        }
        match &check.kind {
            CheckKind::Tcp => {}
            CheckKind::Http(http) => {
                if !http.path.starts_with('/') {
                    self.report(
                        &path.key("path"),
                        format!(
                            "{:?} must start with /, such as /{}",
                            http.path,
                            http.path.trim_start_matches('/')
                        ),
                    );
                }
            }
            CheckKind::Mysql(mysql) => {
                if let Some(password) = &mysql.password {
                    self.secret(&path.key("password"), password);
                }
                if let Some(replication) = &mysql.replication {
                    self.positive_duration(
                        &path.key("replication").key("max_lag"),
                        replication.max_lag,
                    );
                }
            }
            CheckKind::Redis(redis) => {
                if let Some(password) = &redis.password {
                    self.secret(&path.key("password"), password);
                }
            }
            CheckKind::Exec(exec) => self.command(&path.key("command"), &exec.command),
        }
    }

    /// Reports a timeout longer than the interval, saying which of the two
    /// is a default the user never wrote.
    fn timeout_within_interval(&mut self, path: &KeyPath, check: &Check) {
        let written = |key: &str| self.document.get(&path.key(key)).is_some();
        let (timeout_written, interval_written) = (written("timeout"), written("interval"));
        let timeout = humantime::format_duration(check.timeout);
        let interval = humantime::format_duration(check.interval);
        let message = match (timeout_written, interval_written) {
            (false, _) => format!(
                "{timeout} (the default timeout) is longer than the interval ({interval}); \
                 set timeout to at most {interval}"
            ),
            (true, false) => format!(
                "{timeout} is longer than the interval ({interval}, the default); \
                 set interval to at least {timeout}, or a shorter timeout"
            ),
            (true, true) => format!(
                "{timeout} is longer than the interval ({interval}); \
                 a probe must end before the next starts"
            ),
        };
        self.report(&path.key("timeout"), message);
    }

    /// Settings of other kinds (`user` on a tcp check, `allow` on a spiped
    /// mode) in the mapping at `path` are refused; `subject` names the kind
    /// (`tcp checks`), `common` lists the keys every kind accepts.
    fn settings_match_kind(
        &mut self,
        path: &KeyPath,
        subject: &str,
        common: &[&str],
        own: &[&str],
    ) {
        let foreign: Vec<(Position, String)> = self
            .document
            .get(path)
            .map(|node| node.entries())
            .unwrap_or_default()
            .iter()
            .filter(|entry| {
                !common.contains(&entry.key.as_str()) && !own.contains(&entry.key.as_str())
            })
            .map(|entry| (entry.key_position, entry.key.clone()))
            .collect();
        for (position, key) in foreign {
            let message = if own.is_empty() {
                format!("does not apply to {subject}, which have no settings of their own")
            } else {
                format!(
                    "does not apply to {subject}, whose own settings are: {}",
                    own.join(", ")
                )
            };
            self.report_key(position, path.key(key), message);
        }
    }

    fn pool(&mut self, path: &KeyPath, pool: &Pool) {
        self.reference(
            &path.key("check"),
            "check",
            &KeyPath::root().key("checks"),
            &pool.check,
        );
        let servers = path.key("servers");
        if pool.servers.is_empty() {
            self.report(&servers, "needs at least one server");
        }
        let mut names = HashMap::new();
        let mut addresses = HashMap::new();
        for (index, server) in pool.servers.iter().enumerate() {
            let server_path = servers.index(index);
            self.at_least_one(&server_path.key("weight"), server.weight.into());
            let name = server.display_name();
            let name_path = if server.name.is_some() {
                server_path.key("name")
            } else {
                server_path.key("address")
            };
            if name.contains('/') {
                self.report(
                    &name_path,
                    format!("server name {name:?} must not contain '/' (tracked as pool/server)"),
                );
            }
            if let Some(first) = names.insert(name.clone(), index) {
                self.report(
                    &name_path,
                    format!(
                        "server name {name:?} is already used by {}",
                        servers.index(first)
                    ),
                );
            }
            if let Some(first) = addresses.insert(server.address, index) {
                self.report(
                    &server_path.key("address"),
                    format!(
                        "address {} is already used by {}",
                        server.address,
                        servers.index(first)
                    ),
                );
            }
        }
        if let Some(failover) = &pool.failover {
            self.failover(&path.key("failover"), pool, failover);
        }
    }

    /// A failover block: a MariaDB pool (its check logs in), servers and VRRP instance that
    /// exist, coherent timings.
    fn failover(&mut self, path: &KeyPath, pool: &Pool, failover: &Failover) {
        let check_kind = self.config.checks.get(&pool.check).map(|check| &check.kind);
        if let Some(kind) = check_kind.filter(|kind| !matches!(kind, CheckKind::Mysql(_))) {
            self.report(
                path,
                format!(
                    "failover needs a mysql check on the pool, and {:?} is a {} check",
                    pool.check,
                    kind.name()
                ),
            );
        }
        if pool.servers.len() < 2 {
            self.report(path, "failover needs at least two servers in the pool");
        }
        let names: Vec<String> = pool.servers.iter().map(|s| s.display_name()).collect();
        let server_reference = |validator: &mut Self, at: &KeyPath, name: &str| {
            if !names.iter().any(|known| known == name) {
                validator.report(
                    at,
                    format!(
                        "unknown server {name:?}; servers of this pool: {}",
                        names.join(", ")
                    ),
                );
            }
        };
        for (index, candidate) in failover.candidates.iter().flatten().enumerate() {
            server_reference(self, &path.key("candidates").index(index), candidate);
        }
        if failover.candidates.as_ref().is_some_and(Vec::is_empty) {
            self.report(
                &path.key("candidates"),
                "names no server; leave it out to let every server be promoted",
            );
        }
        if let Some(local) = &failover.local {
            server_reference(self, &path.key("local"), local);
            if failover.vrrp.is_none() {
                self.report(
                    &path.key("local"),
                    "a co-located failover follows a VRRP instance: set `vrrp` too",
                );
            }
        }
        if let (Some(_), Some(instance)) = (&failover.local, &failover.vrrp)
            && self
                .config
                .vrrp
                .instances
                .get(instance)
                .is_some_and(|i| i.preempt)
        {
            self.report(
                &path.key("local"),
                format!(
                    "VRRP instance {instance:?} preempts: a recovered node would take the VIP \
                     back from the promoted server; set `preempt: false` on it"
                ),
            );
        }
        if let Some(instance) = &failover.vrrp {
            self.reference(
                &path.key("vrrp"),
                "VRRP instance",
                &KeyPath::root().key("vrrp").key("instances"),
                instance,
            );
        }
        for (key, value) in [
            ("max_lag", failover.max_lag),
            ("catch_up_timeout", failover.catch_up_timeout),
            ("confirm_timeout", failover.confirm_timeout),
            ("heartbeat", failover.heartbeat),
            ("write_drain", failover.write_drain),
        ] {
            self.positive_duration(&path.key(key), value);
        }
        if failover.heartbeat * 2 > failover.confirm_timeout {
            self.report(
                &path.key("heartbeat"),
                format!(
                    "confirm_timeout ({}) must hold at least two heartbeats, so that a replica \
                     can show it still hears the primary: set confirm_timeout to {} or more, \
                     or a shorter heartbeat",
                    humantime::format_duration(failover.confirm_timeout),
                    humantime::format_duration(failover.heartbeat * 2)
                ),
            );
        }
        for (key, secret) in [
            ("password", &failover.password),
            ("replication_password", &failover.replication_password),
        ] {
            if let Some(secret) = secret {
                self.secret(&path.key(key), secret);
            }
        }
    }

    fn relay(&mut self, path: &KeyPath, relay: &Relay) {
        let pool_path = path.key("pool");
        self.reference(
            &pool_path,
            "pool",
            &KeyPath::root().key("pools"),
            &relay.pool,
        );
        if relay.listen.is_empty() {
            self.report(
                &path.key("listen"),
                "needs at least one address to listen on",
            );
        }
        self.at_least_one(&path.key("connect_attempts"), relay.connect_attempts.into());
        self.at_least_one(
            &path.key("max_connections"),
            u64::try_from(relay.max_connections).unwrap_or(u64::MAX),
        );
        self.positive_duration(&path.key("connect_timeout"), relay.connect_timeout);
        self.positive_duration(&path.key("idle_timeout"), relay.idle_timeout);
        if relay.role.is_some() {
            self.relay_role(&path.key("role"), &relay.pool);
        }
        self.relay_proxy_protocol(path, relay);
        match relay.forward {
            Forward::DirectRouting => self.relay_direct_routing(path, relay),
            Forward::Proxy => {
                if relay.hook.is_some() {
                    self.report(
                        &path.key("hook"),
                        "only with `forward: direct_routing`: a proxy relay runs no kernel program",
                    );
                }
            }
        }
        let mode = path.key("mode");
        self.settings_match_kind(
            &mode,
            &format!("{} relays", relay.mode.name()),
            &["kind"],
            relay.mode.setting_names(),
        );
        match &relay.mode {
            RelayMode::Plain => {}
            RelayMode::SpipedEncrypt(spiped) | RelayMode::SpipedDecrypt(spiped) => {
                self.positive_duration(&mode.key("handshake_timeout"), spiped.handshake_timeout);
                self.private_file(&mode.key("key_file"), &spiped.key_file, "key");
                self.spiped_key_length(&mode.key("key_file"), &spiped.key_file);
            }
            RelayMode::TlsServer(tls) => {
                self.positive_duration(&mode.key("handshake_timeout"), tls.handshake_timeout);
                self.existing_file(&mode.key("cert_file"), &tls.cert_file);
                self.private_file(&mode.key("key_file"), &tls.key_file, "key");
                if let Some(ca_file) = &tls.client_ca_file {
                    self.existing_file(&mode.key("client_ca_file"), ca_file);
                }
            }
            RelayMode::TlsClient(tls) => {
                self.positive_duration(&mode.key("handshake_timeout"), tls.handshake_timeout);
                match (&tls.ca_file, tls.pin()) {
                    (_, Err(error)) => self.report(&mode.key("pin_sha256"), error),
                    (Some(ca_file), Ok(_)) => self.existing_file(&mode.key("ca_file"), ca_file),
                    (None, Ok(None)) => self.report(
                        &mode.key("ca_file"),
                        "needed to verify the server, unless pin_sha256 is set",
                    ),
                    (None, Ok(Some(_))) => {}
                }
                if tls.server_name.is_empty() {
                    self.report(&mode.key("server_name"), "must not be empty");
                }
                match (&tls.cert_file, &tls.key_file) {
                    (Some(cert_file), Some(key_file)) => {
                        self.existing_file(&mode.key("cert_file"), cert_file);
                        self.private_file(&mode.key("key_file"), key_file, "key");
                    }
                    (Some(_), None) => {
                        self.report(&mode.key("cert_file"), "needs key_file as well")
                    }
                    (None, Some(_)) => {
                        self.report(&mode.key("key_file"), "needs cert_file as well")
                    }
                    (None, None) => {}
                }
            }
            RelayMode::Gateway(gateway) => {
                self.secret(&mode.key("secret"), &gateway.secret);
                self.positive_duration(&mode.key("handshake_timeout"), gateway.handshake_timeout);
                if gateway.allow.is_empty() {
                    self.report(&mode.key("allow"), "needs at least one address or network");
                }
            }
        }
    }

    /// `send_proxy` needs a plaintext connection to the server, and
    /// `accept_proxy_from` means something only with `accept_proxy`.
    fn relay_proxy_protocol(&mut self, path: &KeyPath, relay: &Relay) {
        if relay.send_proxy.is_some() {
            let tunnel = match relay.mode {
                RelayMode::SpipedEncrypt(_) => Some("spiped_decrypt"),
                RelayMode::TlsClient(_) => Some("tls_server"),
                _ => None,
            };
            if let Some(exit) = tunnel {
                self.report(
                    &path.key("send_proxy"),
                    format!(
                        "a {} relay's servers are the other end of its tunnel, which would \
                         take the header for its handshake; set send_proxy on the {exit} relay \
                         that connects to the real servers",
                        relay.mode.name()
                    ),
                );
            }
        }
        if !relay.accept_proxy_from.is_empty() && !relay.accept_proxy {
            self.report(
                &path.key("accept_proxy_from"),
                "only with `accept_proxy: true`: it lists the proxies allowed to send headers",
            );
        }
    }

    /// A direct-routing relay forwards packets unchanged from the master of
    /// one VRRP instance: plain IPv4 to that instance's virtual addresses,
    /// servers listening on the same port.
    fn relay_direct_routing(&mut self, path: &KeyPath, relay: &Relay) {
        const UNCHANGED: &str = "direct routing forwards packets unchanged";
        if !matches!(relay.mode, RelayMode::Plain) {
            self.report(
                &path.key("mode"),
                format!("{UNCHANGED}, so it cannot encrypt: use a proxy relay for this mode"),
            );
        }
        if relay.send_proxy.is_some() {
            self.report(
                &path.key("send_proxy"),
                format!("{UNCHANGED}: servers see the client's own address, no header is needed"),
            );
        }
        if relay.accept_proxy {
            self.report(
                &path.key("accept_proxy"),
                format!("{UNCHANGED}, so it cannot read a PROXY protocol header"),
            );
        }
        if relay.policy == Policy::LeastConnections {
            self.report(
                &path.key("policy"),
                "direct routing spreads new flows by weight (Maglev hashing) and never sees a \
                 connection end, so it cannot count them: use round_robin (by weight) or first",
            );
        }
        let listen = path.key("listen");
        let mut owner: Option<&str> = None;
        for (index, address) in relay.listen.iter().enumerate() {
            let at = listen.index(index);
            if !address.is_ipv4() {
                self.report(&at, "direct routing is IPv4 only");
                continue;
            }
            let instance = self.config.vrrp_instance_holding(address.ip());
            match (instance, owner) {
                (None, _) => self.report(
                    &at,
                    format!(
                        "{} is not a virtual address of any vrrp instance: direct routing \
                         runs on the master of the instance that holds the address; listen on \
                         one of an instance's virtual_addresses, or add it to them",
                        address.ip()
                    ),
                ),
                (Some((name, _)), Some(first)) if name != first => self.report(
                    &at,
                    format!(
                        "belongs to vrrp instance {name:?}, but this relay's first address \
                         belongs to {first:?}: one relay follows one instance's master; \
                         make a relay per instance"
                    ),
                ),
                (Some((name, _)), _) => owner = Some(name),
            }
        }
        if let Some(owner) = owner {
            self.direct_routing_hook(path, relay, owner);
        }
        let ports: BTreeSet<u16> = relay.listen.iter().map(SocketAddr::port).collect();
        if ports.len() > 1 {
            self.report(
                &listen,
                format!(
                    "{UNCHANGED}, keeping their port, so the servers can serve only one: \
                     use one port, or one relay per port"
                ),
            );
        }
        let Some(pool) = self.config.pools.get(&relay.pool) else {
            return;
        };
        let servers = KeyPath::root().key("pools").key(&relay.pool).key("servers");
        for (index, server) in pool.servers.iter().enumerate() {
            let at = servers.index(index).key("address");
            if !server.address.is_ipv4() {
                self.report(&at, "direct routing is IPv4 only");
            } else if let [port] = ports.iter().copied().collect::<Vec<_>>()[..]
                && server.address.port() != port
            {
                self.report(
                    &at,
                    format!(
                        "a direct-routing relay forwards to this pool, keeping the destination \
                         port: the server must listen on {port}, the relay's port"
                    ),
                );
            }
        }
    }

    /// One program runs per interface: direct-routing relays on the same
    /// interface (through their instances) must name the same hook.
    fn direct_routing_hook(&mut self, path: &KeyPath, relay: &Relay, instance: &str) {
        let interface_of = |instance: &str| {
            self.config
                .vrrp
                .instances
                .get(instance)
                .map(|instance| instance.interface.clone())
        };
        let Some(interface) = interface_of(instance) else {
            return;
        };
        let hook = relay.hook.unwrap_or_default();
        let clash = self.config.relays.iter().find(|(_, other)| {
            !std::ptr::eq(*other, relay)
                && other.hook.unwrap_or_default() != hook
                && self
                    .config
                    .direct_routing_instance(other)
                    .is_some_and(|(_, instance)| instance.interface == interface)
        });
        if let Some((other, _)) = clash {
            self.report(
                &path.key("hook"),
                format!(
                    "relay {other:?} also forwards on {interface} with another hook; one \
                     program runs per interface, so give both relays the same hook"
                ),
            );
        }
    }

    /// A relay with `role:` needs its pool's check to report roles.
    fn relay_role(&mut self, path: &KeyPath, pool_name: &str) {
        let Some(pool) = self.config.pools.get(pool_name) else {
            return;
        };
        let Some(check) = self.config.checks.get(&pool.check) else {
            return;
        };
        let role_aware = match &check.kind {
            CheckKind::Mysql(mysql) => mysql.role,
            CheckKind::Redis(redis) => redis.role,
            _ => false,
        };
        if !role_aware {
            self.report(
                path,
                format!(
                    "needs a role-aware check, but pool {pool_name:?} uses check {:?}, \
                     which is not a mysql or redis check with `role: true`",
                    pool.check
                ),
            );
        }
    }

    /// No two listeners may bind the same address, counting a wildcard
    /// address as overlapping every address of its family on that port.
    fn listen_addresses_are_unique(&mut self) {
        let mut listeners: Vec<(KeyPath, SocketAddr)> = self
            .config
            .relays
            .iter()
            .flat_map(|(name, relay)| {
                let path = KeyPath::root().key("relays").key(name).key("listen");
                relay
                    .listen
                    .iter()
                    .enumerate()
                    .map(move |(index, address)| (path.index(index), *address))
            })
            .collect();
        if let Some(metrics) = self.config.global.metrics {
            listeners.push((KeyPath::root().key("global").key("metrics"), metrics));
        }
        listeners.sort_by_key(|(path, _)| self.document.value_position(path));
        for (later, (path, address)) in listeners.iter().enumerate() {
            let clash = listeners[..later]
                .iter()
                .find(|(_, earlier)| listeners_overlap(*earlier, *address));
            if let Some((earlier_path, earlier)) = clash {
                let message = if earlier == address {
                    format!("address {address} is already used by {earlier_path}")
                } else {
                    format!("address {address} overlaps {earlier} of {earlier_path}")
                };
                self.report(path, message);
            }
        }
    }

    fn vrrp_instance(&mut self, path: &KeyPath, instance: &VrrpInstance) {
        if instance.vrid == 0 {
            self.report(&path.key("vrid"), "must be 1..=255");
        }
        if instance.priority == 0 {
            self.report(
                &path.key("priority"),
                "must be 1..=255 (0 is reserved for a master that is leaving)",
            );
        }
        let interval = instance.advert_interval;
        let interval_path = path.key("advert_interval");
        match instance.version {
            2 => {
                if interval.subsec_nanos() != 0 || !(1..=255).contains(&interval.as_secs()) {
                    self.report(
                        &interval_path,
                        format!(
                            "VRRPv2 adverts a whole number of seconds from 1s to 255s, not {}",
                            humantime::format_duration(interval)
                        ),
                    );
                }
            }
            3 => {
                let centiseconds = interval.as_millis() / 10;
                if interval.as_nanos() % 10_000_000 != 0
                    || !(1..=VRRP_V3_MAX_ADVERT_CENTISECONDS).contains(&centiseconds)
                {
                    self.report(
                        &interval_path,
                        format!(
                            "VRRPv3 adverts a multiple of 10ms from 10ms to 40s 950ms, not {}",
                            humantime::format_duration(interval)
                        ),
                    );
                }
            }
            _ => self.report(&path.key("version"), "must be 2 or 3"),
        }
        if let Some(auth_pass) = &instance.auth_pass {
            self.auth_pass(&path.key("auth_pass"), instance.version, auth_pass);
        }
        self.virtual_addresses(path, instance);
        for (index, track) in instance.track.iter().enumerate() {
            self.track(&path.key("track").index(index), track);
        }
    }

    fn auth_pass(&mut self, path: &KeyPath, version: u8, auth_pass: &Secret) {
        if version != 2 {
            self.report(
                path,
                "VRRPv3 has no authentication; remove auth_pass or use version: 2",
            );
            return;
        }
        self.secret(path, auth_pass);
        let length = match auth_pass {
            Secret::Value(value) => Some(value.len()),
            Secret::File(_) if self.options.check_files => {
                auth_pass.reveal().ok().map(|value| value.len())
            }
            Secret::File(_) => None,
        };
        if let Some(length) = length.filter(|&length| length > VRRP_V2_MAX_AUTH_PASS_BYTES) {
            self.report(
                path,
                format!(
                    "the password is {length} bytes; VRRPv2 carries at most {VRRP_V2_MAX_AUTH_PASS_BYTES}"
                ),
            );
        }
    }

    fn virtual_addresses(&mut self, path: &KeyPath, instance: &VrrpInstance) {
        let addresses_path = path.key("virtual_addresses");
        let Some(first) = instance.virtual_addresses.first() else {
            self.report(&addresses_path, "needs at least one virtual address");
            return;
        };
        for (index, address) in instance.virtual_addresses.iter().enumerate() {
            if address.addr().is_ipv4() != first.addr().is_ipv4() {
                self.report(
                    &addresses_path.index(index),
                    format!(
                        "{address} is {} but {first} is {}; one instance serves one address family",
                        family(address),
                        family(first)
                    ),
                );
            } else if address.addr().is_ipv6() && instance.version == 2 {
                self.report(
                    &addresses_path.index(index),
                    "IPv6 virtual addresses need version: 3",
                );
            }
        }
        for (index, peer) in instance.unicast_peers.iter().enumerate() {
            if peer.is_ipv4() != first.addr().is_ipv4() {
                self.report(
                    &path.key("unicast_peers").index(index),
                    format!(
                        "peer {peer} is not {} like the virtual addresses",
                        family(first)
                    ),
                );
            }
        }
    }

    fn track(&mut self, path: &KeyPath, track: &Track) {
        let named = [
            track.server.is_some(),
            track.pool.is_some(),
            track.interface.is_some(),
        ];
        if named.iter().filter(|&&set| set).count() != 1 {
            self.report(path, "name exactly one of server, pool or interface");
            return;
        }
        if track.weight == Some(0) {
            self.report(
                &path.key("weight"),
                "must be at least 1 (leave it out to go FAULT while down)",
            );
        }
        let pools = KeyPath::root().key("pools");
        if let Some(pool) = &track.pool {
            self.reference(&path.key("pool"), "pool", &pools, pool);
        }
        if let Some(server) = &track.server {
            let server_path = path.key("server");
            let Some((pool_name, server_name)) = server.split_once('/') else {
                self.report(
                    &server_path,
                    format!("{server:?} is not written pool/server"),
                );
                return;
            };
            self.reference(&server_path, "pool", &pools, pool_name);
            if let Some(pool) = self.config.pools.get(pool_name) {
                let names: Vec<String> = pool.servers.iter().map(|s| s.display_name()).collect();
                if !names.iter().any(|name| name == server_name) {
                    self.report(
                        &server_path,
                        format!(
                            "pool {pool_name:?} has no server {server_name:?}; its servers: {}",
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        if track.interface.as_deref() == Some("") {
            self.report(&path.key("interface"), "must not be empty");
        }
    }

    /// No two instances may run the same virtual router: same interface,
    /// same vrid and same address family.
    fn vrrp_routers_are_unique(&mut self) {
        let mut routers: Vec<(KeyPath, (&str, u8, bool))> = self
            .config
            .vrrp
            .instances
            .iter()
            .filter_map(|(name, instance)| {
                let is_ipv4 = instance.virtual_addresses.first()?.addr().is_ipv4();
                let path = KeyPath::root().key("vrrp").key("instances").key(name);
                Some((path, (instance.interface.as_str(), instance.vrid, is_ipv4)))
            })
            .collect();
        routers.sort_by_key(|(path, _)| self.document.value_position(path));
        for (later, (path, router)) in routers.iter().enumerate() {
            if let Some((earlier_path, _)) = routers[..later].iter().find(|(_, r)| r == router) {
                let (interface, vrid, is_ipv4) = *router;
                let family = if is_ipv4 { "IPv4" } else { "IPv6" };
                self.report(
                    &path.key("vrid"),
                    format!(
                        "vrid {vrid} on {interface} ({family}) is already used by {earlier_path}"
                    ),
                );
            }
        }
    }

    fn email(&mut self, path: &KeyPath, email: &Email) {
        if email.smtp_host.is_empty() {
            self.report(&path.key("smtp_host"), "must not be empty");
        }
        if !looks_like_mail_address(&email.from) {
            self.report(
                &path.key("from"),
                format!(
                    "{:?} is not a mail address like alerts@example.com",
                    email.from
                ),
            );
        }
        if email.to.is_empty() {
            self.report(&path.key("to"), "needs at least one recipient");
        }
        for (index, recipient) in email.to.iter().enumerate() {
            if !looks_like_mail_address(recipient) {
                self.report(
                    &path.key("to").index(index),
                    format!("{recipient:?} is not a mail address like dba@example.com"),
                );
            }
        }
        self.at_least_one(&path.key("max_per_hour"), email.max_per_hour.into());
        self.positive_duration(&path.key("timeout"), email.timeout);
        if let Some(password) = &email.password {
            self.secret(&path.key("password"), password);
        }
        if let Some(ca_file) = &email.ca_file {
            self.existing_file(&path.key("ca_file"), ca_file);
        }
    }

    fn quorum(&mut self, path: &KeyPath, quorum: &Quorum) {
        if quorum.endpoints.is_empty() {
            self.report(
                &path.key("endpoints"),
                "needs at least one etcd URL such as http://10.0.0.5:2379 (all members, \
                 for an etcd cluster of three or five)",
            );
        }
        let mut https = false;
        for (index, endpoint) in quorum.endpoints.iter().enumerate() {
            match endpoint_scheme(endpoint) {
                Some(scheme) => https |= scheme == "https",
                None => self.report(
                    &path.key("endpoints").index(index),
                    format!(
                        "{endpoint:?} is not an etcd URL such as http://10.0.0.5:2379 or \
                         https://etcd1.example.com:2379"
                    ),
                ),
            }
        }
        match &quorum.tls {
            Some(tls) => {
                if !https && !quorum.endpoints.is_empty() {
                    self.report(
                        &path.key("tls"),
                        "TLS is set but no endpoint is https://: write the endpoints as https://",
                    );
                }
                if tls.cert_file.is_some() != tls.key_file.is_some() {
                    self.report(
                        &path.key("tls"),
                        "cert_file and key_file go together (a client certificate and its key)",
                    );
                }
                match &tls.ca_file {
                    Some(ca_file) => self.existing_file(&path.key("tls").key("ca_file"), ca_file),
                    None => self.report(
                        &path.key("tls"),
                        "needs ca_file: the CA that signed etcd's certificates",
                    ),
                }
                if let Some(cert_file) = &tls.cert_file {
                    self.existing_file(&path.key("tls").key("cert_file"), cert_file);
                }
                if let Some(key_file) = &tls.key_file {
                    self.private_file(&path.key("tls").key("key_file"), key_file, "key");
                }
            }
            None if https => self.report(
                &path.key("endpoints"),
                "https:// endpoints need a tls section with ca_file",
            ),
            None => {}
        }
        match (&quorum.user, &quorum.password) {
            (Some(_), Some(password)) => self.secret(&path.key("password"), password),
            (Some(_), None) => self.report(
                &path.key("user"),
                "needs a password (password: {file: /etc/hafront/etcd.pass})",
            ),
            (None, Some(_)) => self.report(&path.key("password"), "needs a user"),
            (None, None) => {}
        }
        if quorum.prefix.is_empty() {
            self.report(&path.key("prefix"), "must not be empty, such as /hafront/");
        }
        let ttl = quorum.ttl;
        if !(MIN_QUORUM_TTL..=MAX_QUORUM_TTL).contains(&ttl) || ttl.subsec_nanos() != 0 {
            self.report(
                &path.key("ttl"),
                "must be whole seconds from 1s to 10s (etcd counts leases in seconds; a crash \
                 failover waits for the TTL)",
            );
        }
        for (name, instance) in &self.config.vrrp.instances {
            if ttl <= instance.advert_interval {
                self.report(
                    &path.key("ttl"),
                    format!(
                        "must exceed the advert_interval of VRRP instance {name} ({}): a lease \
                         shorter than one advert would make every etcd hiccup a failover",
                        humantime::format_duration(instance.advert_interval)
                    ),
                );
            }
        }
        if let Some(node_name) = &quorum.node_name
            && (node_name.is_empty() || node_name.len() > MAX_NODE_NAME_BYTES)
        {
            self.report(
                &path.key("node_name"),
                format!("must be 1 to {MAX_NODE_NAME_BYTES} bytes long"),
            );
        }
    }

    fn notify(&mut self, path: &KeyPath, notify: &Notify) {
        self.command(&path.key("command"), &notify.command);
        self.positive_duration(&path.key("timeout"), notify.timeout);
        if let Some(instance) = &notify.instance {
            self.reference(
                &path.key("instance"),
                "VRRP instance",
                &KeyPath::root().key("vrrp").key("instances"),
                instance,
            );
        }
        if let Some(pool) = &notify.pool {
            self.reference(
                &path.key("pool"),
                "pool",
                &KeyPath::root().key("pools"),
                pool,
            );
        }
        if let Some(user) = &notify.user
            && self.options.check_files
        {
            match nix::unistd::User::from_name(user) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.report(&path.key("user"), format!("no user {user} on this machine"))
                }
                Err(error) => self.report(
                    &path.key("user"),
                    format!("cannot look up user {user}: {error}"),
                ),
            }
        }
    }

    /// The state directory, when it exists already, must be a directory.
    fn state_dir(&mut self, path: &KeyPath, dir: &Path) {
        if !self.options.check_files {
            return;
        }
        if let Ok(metadata) = std::fs::metadata(dir)
            && !metadata.is_dir()
        {
            self.report(
                path,
                format!("{} exists and is not a directory", dir.display()),
            );
        }
    }

    /// A secret given as a file: the file must be private.
    fn secret(&mut self, path: &KeyPath, secret: &Secret) {
        if let Secret::File(file) = secret {
            self.private_file(&path.key("file"), file, "secret");
        }
    }

    /// `file` must exist, be accessible by its owner only, and be owned by
    /// root or the user hafront runs as.
    fn private_file(&mut self, path: &KeyPath, file: &Path, what: &str) {
        let Some(metadata) = self.regular_file(path, file) else {
            return;
        };
        if let Some(owner) = crate::program::untrusted_owner(&metadata) {
            self.report(
                path,
                format!(
                    "{what} file {} is owned by {owner}, not by root or the user hafront \
                     runs as; run: chown root {}",
                    file.display(),
                    file.display()
                ),
            );
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            self.report(
                path,
                format!(
                    "{what} file {} is accessible by group or others (mode {mode:04o}); \
                     run: chmod 600 {}",
                    file.display(),
                    file.display()
                ),
            );
        }
    }

    fn existing_file(&mut self, path: &KeyPath, file: &Path) {
        self.regular_file(path, file);
    }

    /// The metadata of `file` if file checks are on and it is a regular
    /// file; reports why not otherwise.
    fn regular_file(&mut self, path: &KeyPath, file: &Path) -> Option<std::fs::Metadata> {
        if !self.options.check_files {
            return None;
        }
        match std::fs::metadata(file) {
            Ok(metadata) if metadata.is_file() => Some(metadata),
            Ok(_) => {
                self.report(path, format!("{} is not a regular file", file.display()));
                None
            }
            Err(error) => {
                let hint = if error.kind() == std::io::ErrorKind::NotFound {
                    "; create it, or correct the path (a relative path is read from the \
                     configuration file's directory)"
                } else {
                    ""
                };
                self.report(
                    path,
                    format!("cannot use {}: {error}{hint}", file.display()),
                );
                None
            }
        }
    }

    fn spiped_key_length(&mut self, path: &KeyPath, file: &Path) {
        if !self.options.check_files {
            return;
        }
        if let Ok(metadata) = std::fs::metadata(file)
            && metadata.is_file()
            && metadata.len() < SPIPED_MIN_KEY_BYTES
        {
            self.report(
                path,
                format!(
                    "key file {} holds {} bytes; use at least {SPIPED_MIN_KEY_BYTES} \
                     (dd if=/dev/urandom bs=32 count=1 of=FILE)",
                    file.display(),
                    metadata.len()
                ),
            );
        }
    }
}

/// Log levels, as tracing names them.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `log.level` filter: comma-separated directives, each a level
/// (`info`) or `TARGET=LEVEL` (`hafront_health=debug`), in tracing's
/// `EnvFilter` syntax. A bare word that is not a level is refused: tracing
/// would take `inof` for a module name and silence every other line.
fn check_log_filter(filter: &str) -> Result<(), String> {
    let expected = "expected a level (trace, debug, info, warn, error or off) or \
                    per-module directives such as info,hafront_health=debug";
    if filter.trim().is_empty() {
        return Err(format!("is empty; {expected}"));
    }
    for directive in filter.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "unknown log level {level:?} in {filter:?}; {expected}"
            ));
        }
        if let Err(error) = directive.parse::<tracing_subscriber::filter::Directive>() {
            return Err(format!(
                "invalid directive {directive:?} ({error}); {expected}"
            ));
        }
    }
    Ok(())
}

fn family(network: &IpNet) -> &'static str {
    match network {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

/// Whether two listen addresses cannot both be bound: equal, or a wildcard
/// and any address of the same family on the same port.
fn listeners_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A plausibility check, not RFC 5321: `local@domain`, no spaces or angle
/// brackets, a dotted domain without empty labels.
/// The scheme of an etcd URL `http(s)://HOST:PORT[/]`, if it is one.
fn endpoint_scheme(endpoint: &str) -> Option<&'static str> {
    let (scheme, rest) = if let Some(rest) = endpoint.strip_prefix("http://") {
        ("http", rest)
    } else {
        ("https", endpoint.strip_prefix("https://")?)
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':')?;
    let valid = !host.is_empty()
        && !host.contains(['/', '@', ' '])
        && port.parse::<u16>().is_ok_and(|port| port > 0);
    valid.then_some(scheme)
}

/// Whether `address` is a bare mail address as `alerts.email` accepts it (`user@domain`
/// with a dotted domain, no display name).
pub fn looks_like_mail_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '@');
    !local.is_empty()
        && !local.contains(forbidden)
        && domain.contains('.')
        && !domain.contains(forbidden)
        && domain.split('.').all(|label| !label.is_empty())
}
