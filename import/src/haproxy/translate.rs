//! HAProxy sections to hafront sections: each `backend` (or `listen`) with
//! servers becomes a check and a pool, each `frontend` (or `listen`) with
//! binds becomes a relay to its pool. `defaults` sections are inherited as
//! HAProxy does: the last one before a proxy, or the one named by `from`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::parse::{Directive, Section};
use crate::source::{Comment, Line, listeners_overlap};
use crate::yaml::{Document, Entry, Item, Value, duration, string, strings};

mod checks;
use checks::{Timing, check_plan};

/// Server and bind parameters that take a value (the others are flags).
const PARAMETERS_WITH_VALUE: &[&str] = &[
    "inter",
    "fastinter",
    "downinter",
    "rise",
    "fall",
    "weight",
    "port",
    "addr",
    "maxconn",
    "minconn",
    "maxqueue",
    "cookie",
    "verify",
    "sni",
    "ca-file",
    "crt",
    "crl-file",
    "resolvers",
    "resolve-prefer",
    "resolve-net",
    "init-addr",
    "slowstart",
    "on-error",
    "on-marked-down",
    "on-marked-up",
    "error-limit",
    "observe",
    "agent-port",
    "agent-inter",
    "agent-addr",
    "agent-send",
    "track",
    "id",
    "redir",
    "source",
    "proto",
    "alpn",
    "npn",
    "check-sni",
    "check-alpn",
    "check-proto",
    "namespace",
    "pool-max-conn",
    "pool-purge-delay",
    "pool-low-conn",
    "max-reuse",
    "tcp-ut",
    "ciphers",
    "ciphersuites",
    "ssl-min-ver",
    "ssl-max-ver",
    "curves",
    "sigalgs",
    "client-sigalgs",
    "name",
    "mode",
    "user",
    "group",
    "uid",
    "gid",
    "level",
    "severity-output",
    "process",
    "thread",
    "interface",
    "mss",
    "nice",
    "backlog",
    "accept-netscaler-cip",
    "ca-ignore-err",
    "crt-ignore-err",
    "crt-list",
    "ecdhe",
    "expose-fd",
    "shards",
    "label",
    "set-proxy-v2-tlv-fmt",
    "ws",
    "log-proto",
    "hash-key",
];

/// Translates the sections of an HAProxy configuration read from `file`.
pub(crate) fn translate(file: &str, sections: &[Section]) -> Document {
    let mut document = Document::default();
    document.header.push(Comment::Text(format!(
        "hafront configuration translated by `hafront import haproxy` from {file}."
    )));
    document.header.push(Comment::Text(
        "Lines marked \"not translated\" have no hafront equivalent (docs/import.md); \
         check the result with `hafront check -c FILE`."
            .to_owned(),
    ));
    let mut translator = Translator {
        document,
        pools: Vec::new(),
        listeners: Vec::new(),
    };
    // Each proxy with the defaults it inherits.
    let mut proxies = Vec::new();
    let mut last_defaults: Option<&Section> = None;
    for section in sections {
        match section.kind.as_str() {
            "global" | "" => {
                for directive in &section.directives {
                    let why = global_reason(directive.keyword());
                    translator
                        .document
                        .header
                        .push(directive.line.untranslated(why));
                }
            }
            "defaults" => {
                for directive in &section.directives {
                    if let Some(why) = never_translated(directive) {
                        translator
                            .document
                            .header
                            .push(directive.line.untranslated(why));
                    }
                }
                last_defaults = Some(section);
            }
            "listen" | "frontend" | "backend" => {
                let defaults = match from_name(section) {
                    Some(name) => sections.iter().rev().find(|candidate| {
                        candidate.kind == "defaults"
                            && candidate.name.as_deref() == Some(name)
                            && candidate.line.number < section.line.number
                    }),
                    None => last_defaults,
                };
                proxies.push((section, defaults));
            }
            kind => translator.document.header.push(untranslated_section(
                section,
                &format!("hafront has no {kind} sections"),
            )),
        }
    }
    for (section, defaults) in &proxies {
        if section.kind != "frontend" {
            translator.backend(section, *defaults);
        }
    }
    for (section, defaults) in &proxies {
        if section.kind != "backend" {
            let backend = match section.kind.as_str() {
                "listen" => Some((*section, *defaults)),
                _ => default_backend(section, *defaults).and_then(|name| {
                    proxies
                        .iter()
                        .find(|(candidate, _)| {
                            candidate.kind != "frontend" && candidate.name.as_deref() == Some(name)
                        })
                        .map(|(candidate, defaults)| (*candidate, *defaults))
                }),
            };
            translator.frontend(section, *defaults, backend);
        }
    }
    translator.document
}

/// The defaults section a proxy names with `from NAME`.
fn from_name(section: &Section) -> Option<&str> {
    match section.args.as_slice() {
        [from, name, ..] if from == "from" => Some(name.as_str()),
        _ => None,
    }
}

/// The `default_backend` of a frontend (its own, else its defaults').
fn default_backend<'a>(section: &'a Section, defaults: Option<&'a Section>) -> Option<&'a str> {
    effective(section, defaults)
        .into_iter()
        .rev()
        .find(|(directive, _)| directive.keyword() == "default_backend")
        .and_then(|(directive, _)| directive.arg(0))
}

/// A proxy's directives: those of its defaults (marked inherited), then its own.
fn effective<'a>(
    section: &'a Section,
    defaults: Option<&'a Section>,
) -> Vec<(&'a Directive, bool)> {
    defaults
        .into_iter()
        .flat_map(|defaults| defaults.directives.iter().map(|d| (d, true)))
        .chain(section.directives.iter().map(|d| (d, false)))
        .collect()
}

/// One comment for a section and all its lines.
fn untranslated_section(section: &Section, why: &str) -> Comment {
    match section.directives.last() {
        Some(last) => section.line.untranslated(format!(
            "{why} (the whole section, to line {})",
            last.line.number
        )),
        None => section.line.untranslated(why),
    }
}

/// Why a `global` directive is not translated.
fn global_reason(keyword: &str) -> &'static str {
    match keyword {
        "log" | "log-send-hostname" | "log-tag" => {
            "hafront logs to stderr or journald (global.log in hafront's configuration)"
        }
        "daemon" | "user" | "group" | "uid" | "gid" | "chroot" | "pidfile" | "nbthread"
        | "nbproc" | "master-worker" | "cpu-map" => {
            "a process setting: hafront runs in the foreground under systemd (dist/hafront.service)"
        }
        "stats" => "`hafront status` and global.metrics report hafront's state",
        "maxconn" => "each relay has its own max_connections (10000 by default)",
        keyword if keyword.starts_with("ssl-") || keyword.ends_with("-base") => {
            "hafront's TLS settings are per relay (mode: tls_server or tls_client)"
        }
        _ => "no hafront equivalent",
    }
}

/// Why a directive has no hafront equivalent in any proxy, or `None` when
/// it is (or may be) translated.
fn never_translated(directive: &Directive) -> Option<&'static str> {
    let keyword = directive.keyword();
    let translated = matches!(
        keyword,
        "mode"
            | "balance"
            | "timeout"
            | "retries"
            | "maxconn"
            | "default-server"
            | "tcp-check"
            | "http-check"
            | "default_backend"
            | "bind"
            | "server"
    );
    if translated {
        return match (keyword, directive.arg(0)) {
            ("mode", Some("http")) => Some(
                "hafront relays TCP: the bytes are forwarded as they come, with no HTTP \
                 processing (headers, rules, redirects)",
            ),
            ("timeout", Some("connect" | "client" | "server" | "tunnel" | "check")) => None,
            ("timeout", _) => Some("hafront's relays have a connect and an idle timeout only"),
            _ => None,
        };
    }
    Some(match (keyword, directive.arg(0)) {
        (
            "option",
            Some(
                "tcp-check" | "mysql-check" | "redis-check" | "httpchk" | "redispatch"
                | "dontlognull",
            ),
        ) => return None,
        ("option", Some("tcplog" | "httplog" | "logasap" | "log-health-checks")) | ("log", _) => {
            "hafront logs to stderr or journald (global.log in hafront's configuration)"
        }
        ("option", Some("tcpka" | "clitcpka" | "srvtcpka")) => "hafront sets no TCP keep-alive",
        (
            "option",
            Some("ssl-hello-chk" | "smtpchk" | "ldap-check" | "pgsql-check" | "spop-check"),
        )
        | ("option", Some("external-check")) => {
            "hafront has no such check: a TCP connect check is used instead"
        }
        ("option", Some(option))
            if option.starts_with("http") || option == "forwardfor" || option == "abortonclose" =>
        {
            "hafront relays TCP and does no HTTP processing"
        }
        ("option", _) | ("no", _) => "no hafront equivalent",
        ("errorfile" | "errorloc" | "errorloc302" | "errorloc303" | "errorfiles", _) => {
            "hafront relays TCP and writes no HTTP error pages"
        }
        ("stats", _) => "`hafront status` and global.metrics report hafront's state",
        ("use_backend" | "use-server", _) => {
            "hafront relays have one pool; make one relay per pool on its own address"
        }
        ("acl", _) => "hafront has no ACLs",
        (keyword, _)
            if keyword.starts_with("http-")
                || keyword == "cookie"
                || keyword == "compression"
                || keyword == "capture"
                || keyword == "redirect"
                || keyword == "unique-id-format"
                || keyword == "monitor-uri" =>
        {
            "hafront relays TCP and does no HTTP processing"
        }
        ("tcp-request" | "tcp-response", _) => "hafront relays have no content rules",
        ("stick-table" | "stick" | "hash-type" | "hash-balance-factor", _) => {
            "hafront has no persistence: each connection picks a server"
        }
        _ => "no hafront equivalent",
    })
}

/// A backend's pool, as the frontends need it.
struct PoolInfo {
    name: String,
    /// `role:` the relays to it take, from a role-checking tcp-check.
    role: Option<&'static str>,
}

struct Translator {
    document: Document,
    pools: Vec<PoolInfo>,
    /// Relay listen addresses taken so far, with the relay.
    listeners: Vec<(SocketAddr, String)>,
}

impl Translator {
    /// A backend or listen section's servers as a pool, with its check.
    fn backend(&mut self, section: &Section, defaults: Option<&Section>) {
        let name = section.name.clone().unwrap_or_default();
        let directives = effective(section, defaults);
        let mut pool = Entry::default();
        // default-server parameters, then each server's.
        let mut default_params: Vec<String> = Vec::new();
        let mut servers = Vec::new();
        for (directive, inherited) in &directives {
            match directive.keyword() {
                "default-server" => default_params.extend(directive.words[1..].iter().cloned()),
                "server" => servers.push(*directive),
                _ if *inherited || section.kind != "backend" => {}
                _ => {
                    if let Some(why) = never_translated(directive) {
                        pool.comments.push(directive.line.untranslated(why));
                    }
                }
            }
        }
        if servers.is_empty() {
            if section.kind == "backend" {
                self.document.header.push(untranslated_section(
                    section,
                    "a backend without servers has no hafront pool",
                ));
            }
            return;
        }
        let mut items = Vec::new();
        let mut names = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        // The check timing of the first server with `check`, and its line.
        let mut timing: Option<(Timing, usize)> = None;
        // A server's `port` or `addr`: its check goes elsewhere than its traffic.
        let mut check_elsewhere: Option<(String, Line)> = None;
        let mut checked = 0;
        for server in &servers {
            let line = &server.line;
            let (Some(server_name), Some(address)) = (server.arg(0), server.arg(1)) else {
                pool.comments
                    .push(line.untranslated("needs a name and an address"));
                continue;
            };
            let address = match server_address(address) {
                Ok(address) => address,
                Err(why) => {
                    pool.comments.push(line.untranslated(why));
                    continue;
                }
            };
            let server_name = server_name.replace('/', "_");
            if !names.insert(server_name.clone()) || !addresses.insert(address) {
                pool.comments
                    .push(line.untranslated("the name or address is already used in this pool"));
                continue;
            }
            let params: Vec<String> = default_params
                .iter()
                .chain(&server.words[3..])
                .cloned()
                .collect();
            let mut item = Item::default();
            item.fields.push(("name".to_owned(), string(&server_name)));
            item.fields
                .push(("address".to_owned(), string(&address.to_string())));
            let mut own_timing = Timing::default();
            let mut check = false;
            let mut dropped = Vec::new();
            let mut params = params.iter();
            while let Some(param) = params.next() {
                let value = if PARAMETERS_WITH_VALUE.contains(&param.as_str()) {
                    params.next().map(String::as_str)
                } else {
                    None
                };
                match (param.as_str(), value) {
                    ("check", _) => check = true,
                    ("no-check", _) => check = false,
                    ("backup", _) => item.fields.push(("backup".to_owned(), "true".to_owned())),
                    ("weight", Some(weight)) => match weight.parse::<u32>() {
                        Ok(0) => item.comments.push(line.untranslated(
                            "weight 0: hafront weights are at least 1; run `hafront drain POOL/SERVER` \
                             to give this server no new clients",
                        )),
                        Ok(1) => {}
                        Ok(weight) => item.fields.push(("weight".to_owned(), weight.to_string())),
                        Err(_) => dropped.push(format!("weight {weight}")),
                    },
                    ("inter", Some(value)) => match haproxy_duration(value) {
                        Some(value) if !value.is_zero() => own_timing.inter = value,
                        _ => dropped.push(format!("inter {value}")),
                    },
                    ("rise", Some(value)) => match value.parse::<u32>() {
                        Ok(value) if value > 0 => own_timing.rise = value,
                        _ => dropped.push(format!("rise {value}")),
                    },
                    ("fall", Some(value)) => match value.parse::<u32>() {
                        Ok(value) if value > 0 => own_timing.fall = value,
                        _ => dropped.push(format!("fall {value}")),
                    },
                    ("disabled", _) => item.comments.push(line.untranslated(
                        "disabled: run `hafront drain POOL/SERVER` after start to give it no clients",
                    )),
                    ("enabled", _) => {}
                    ("port" | "addr", Some(value)) => {
                        let elsewhere = format!("{param} {value}");
                        if check_elsewhere.is_none() {
                            check_elsewhere = Some((elsewhere.clone(), line.clone()));
                        }
                        dropped.push(elsewhere);
                    }
                    (param, Some(value)) => dropped.push(format!("{param} {value}")),
                    (param, None) => dropped.push(param.to_owned()),
                }
            }
            if !dropped.is_empty() {
                item.comments.push(line.untranslated(format!(
                    "the server is translated, not these parameters: {}",
                    dropped.join(", ")
                )));
            }
            if check {
                checked += 1;
                match timing {
                    None => timing = Some((own_timing, line.number)),
                    Some((first, first_line)) if first != own_timing => {
                        item.comments.push(line.untranslated(format!(
                            "hafront checks a pool's servers alike: inter, rise and fall are those of line {first_line}"
                        )))
                    }
                    Some(_) => {}
                }
            }
            items.push(item);
        }
        if items.is_empty() {
            self.document.header.extend(pool.comments);
            self.document.header.push(untranslated_section(
                section,
                "no server hafront can reach (an IP address and port each)",
            ));
            return;
        }
        if checked > 0 && checked < items.len() {
            pool.comments.push(
                section
                    .line
                    .note("hafront checks every server of a pool, also those without `check`"),
            );
        }
        let plan = check_plan(
            &name,
            section,
            &directives,
            timing.map(|(timing, _)| timing),
            check_elsewhere,
            &mut self.document,
        );
        self.document.checks.push((name.clone(), plan.entry));
        pool.scalar("check", string(&name));
        pool.set("servers", Value::Items(items));
        self.document.pools.push((name.clone(), pool));
        self.pools.push(PoolInfo {
            name,
            role: plan.role,
        });
    }

    /// A frontend or listen section as a relay to `backend`'s pool.
    fn frontend(
        &mut self,
        section: &Section,
        defaults: Option<&Section>,
        backend: Option<(&Section, Option<&Section>)>,
    ) {
        let name = section.name.clone().unwrap_or_default();
        let directives = effective(section, defaults);
        let mut relay = Entry::default();
        let mut listen: Vec<SocketAddr> = Vec::new();
        let mut maxconn = None;
        let mut client_timeout = None;
        let mut tunnel_timeout = None;
        // The listen section's own address (`listen NAME ADDRESS`).
        if section.kind == "listen"
            && let Some(address) = section.args.first().filter(|arg| *arg != "from")
        {
            self.bind_addresses(address, &section.line, &mut listen, &mut relay);
        }
        for (directive, inherited) in &directives {
            let line = &directive.line;
            match (directive.keyword(), directive.arg(0)) {
                ("bind", Some(addresses)) => {
                    let params = &directive.words[2..];
                    if params.iter().any(|p| p == "ssl" || p == "accept-proxy") {
                        relay.comment(line.untranslated(
                            "TLS or PROXY protocol on the listener: a plain relay would forward \
                             it to the servers unchanged (see mode: tls_server in README)",
                        ));
                        continue;
                    }
                    let added = self.bind_addresses(addresses, line, &mut listen, &mut relay);
                    let mut dropped = Vec::new();
                    let mut params = params.iter();
                    while let Some(param) = params.next() {
                        if PARAMETERS_WITH_VALUE.contains(&param.as_str()) {
                            dropped.push(format!("{param} {}", params.next().map_or("", |v| v)));
                        } else if param != "v4v6" && param != "transparent" {
                            dropped.push(param.clone());
                        }
                    }
                    if !dropped.is_empty() && added {
                        relay.comment(line.untranslated(format!(
                            "the address is translated, not these parameters: {}",
                            dropped.join(", ")
                        )));
                    }
                }
                ("maxconn", Some(value)) => match value.parse::<usize>() {
                    Ok(value) if value > 0 => maxconn = Some(value),
                    _ => relay.comment(line.untranslated("not a positive count")),
                },
                ("timeout", Some("client")) => client_timeout = time(directive, &mut relay),
                // A listen section's tunnel timeout is read (and commented) with its backend side.
                ("timeout", Some("tunnel")) if section.kind == "frontend" => {
                    tunnel_timeout = time(directive, &mut relay)
                }
                _ => {
                    // Backend directives of a listen section are the backend's business.
                    let backend_keyword = matches!(
                        directive.keyword(),
                        "server" | "default-server" | "balance" | "tcp-check" | "http-check"
                    ) || matches!(
                        (directive.keyword(), directive.arg(0)),
                        (
                            "option",
                            Some(
                                "tcp-check"
                                    | "mysql-check"
                                    | "redis-check"
                                    | "httpchk"
                                    | "redispatch"
                            )
                        ) | ("timeout", Some("connect" | "server" | "check"))
                            | ("retries", _)
                    );
                    let listen_backend = backend_keyword && section.kind == "listen";
                    if !inherited && !listen_backend {
                        if let Some(why) = never_translated(directive) {
                            relay.comment(line.untranslated(why));
                        } else if section.kind == "frontend" && backend_keyword {
                            relay.comment(line.untranslated("a backend setting in a frontend"));
                        }
                    }
                }
            }
        }
        let Some((backend, backend_defaults)) = backend else {
            self.document.header.extend(relay.into_comments());
            self.document.header.push(untranslated_section(
                section,
                "no default_backend with servers: hafront relays forward to one pool",
            ));
            return;
        };
        let pool_name = backend.name.clone().unwrap_or_default();
        let Some(pool) = self.pools.iter().find(|pool| pool.name == pool_name) else {
            self.document.header.extend(relay.into_comments());
            self.document.header.push(untranslated_section(
                section,
                &format!("its backend {pool_name} has no server hafront can reach"),
            ));
            return;
        };
        let role = pool.role;
        if listen.is_empty() {
            self.document.header.extend(relay.into_comments());
            self.document.header.push(untranslated_section(
                section,
                "no address hafront can listen on (an IP address and port)",
            ));
            return;
        }
        self.listeners
            .extend(listen.iter().map(|address| (*address, name.clone())));
        relay.set(
            "listen",
            Value::List(strings(
                &listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            )),
        );
        relay.scalar("pool", string(&pool_name));
        // Backend-side settings: balance, connect and server timeouts, retries.
        let backend_directives = effective(backend, backend_defaults);
        let mut policy = None;
        let mut connect_timeout = None;
        let mut server_timeout = None;
        let mut retries = None;
        let mut redispatch = false;
        for (directive, _) in &backend_directives {
            let line = &directive.line;
            match (directive.keyword(), directive.arg(0)) {
                ("balance", Some(algorithm)) => {
                    policy = match algorithm {
                        "roundrobin" | "static-rr" => Some("round_robin"),
                        "leastconn" => Some("least_connections"),
                        "first" => Some("first"),
                        _ => {
                            relay.comment(line.untranslated(
                                "hafront balances round_robin, least_connections or first; round_robin is used",
                            ));
                            None
                        }
                    }
                }
                ("timeout", Some("connect")) => connect_timeout = time(directive, &mut relay),
                ("timeout", Some("server")) => server_timeout = time(directive, &mut relay),
                ("timeout", Some("tunnel")) => tunnel_timeout = time(directive, &mut relay),
                ("retries", Some(count)) => match count.parse::<u32>() {
                    Ok(count) => retries = Some(count),
                    Err(_) => relay.comment(line.untranslated("not a count")),
                },
                ("option", Some("redispatch")) => redispatch = true,
                _ => {}
            }
        }
        if let Some(policy) = policy.filter(|policy| *policy != "round_robin") {
            relay.scalar("policy", policy);
        }
        if let Some(role) = role {
            relay.comment(backend.line.note(format!(
                "the backend's tcp-check lets only Redis {} pass; hafront asks ROLE and relays to the {role}",
                if role == "primary" { "masters" } else { "replicas" }
            )));
            relay.scalar("role", role);
        }
        if let Some(timeout) = connect_timeout.filter(|t| !t.is_zero()) {
            relay.scalar("connect_timeout", duration(timeout));
        }
        let idle = tunnel_timeout.or(match (client_timeout, server_timeout) {
            (Some(client), Some(server)) => Some(client.max(server)),
            (one, other) => one.or(other),
        });
        if let Some(idle) = idle.filter(|t| !t.is_zero()) {
            relay.scalar("idle_timeout", duration(idle));
        }
        if let Some(maxconn) = maxconn {
            relay.scalar("max_connections", maxconn.to_string());
        }
        if let Some(retries) = retries {
            if !redispatch {
                relay.comment(section.line.note(
                    "hafront tries another server on each attempt, as HAProxy's option redispatch",
                ));
            }
            relay.scalar("connect_attempts", retries.saturating_add(1).to_string());
        }
        self.document.relays.push((name, relay));
    }

    /// Adds the addresses of a bind (`ADDRESS[,ADDRESS...]`) to `listen`,
    /// with a comment for each one hafront cannot listen on; whether any was added.
    fn bind_addresses(
        &self,
        addresses: &str,
        line: &Line,
        listen: &mut Vec<SocketAddr>,
        entry: &mut Entry,
    ) -> bool {
        let mut added = false;
        for address in addresses.split(',') {
            match bind_address(address) {
                Ok(address) => {
                    let taken = self
                        .listeners
                        .iter()
                        .find(|(taken, _)| listeners_overlap(*taken, address))
                        .map(|(_, relay)| format!("an address of relay {relay}"))
                        .or_else(|| {
                            listen
                                .iter()
                                .any(|taken| listeners_overlap(*taken, address))
                                .then(|| "an earlier bind".to_owned())
                        });
                    match taken {
                        Some(taken) => {
                            entry.comment(line.untranslated(format!("{address} overlaps {taken}")))
                        }
                        None => {
                            listen.push(address);
                            added = true;
                        }
                    }
                }
                Err(why) => entry.comment(line.untranslated(why)),
            }
        }
        added
    }
}

/// A server address: `IP:PORT` (`ipv4@`/`ipv6@` prefixes allowed, IPv6 in
/// brackets or with the port after the last colon).
fn server_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim_start_matches("ipv4@").trim_start_matches("ipv6@");
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if let Some((ip, port)) = text.rsplit_once(':')
        && let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>())
    {
        if port == 0 {
            return Err("port 0 is not a port hafront can connect to".to_owned());
        }
        return Ok(SocketAddr::new(ip, port));
    }
    if text.parse::<IpAddr>().is_ok() {
        return Err(
            "no port: HAProxy uses the client's destination port, hafront needs one".to_owned(),
        );
    }
    Err(format!(
        "{text} is not an IP address and port: hafront does not resolve names; write the address"
    ))
}

/// A bind address: `:PORT`, `*:PORT`, `IP:PORT`, `[IPv6]:PORT`, `:::PORT`
/// (`ipv4@`/`ipv6@` prefixes allowed).
fn bind_address(text: &str) -> Result<SocketAddr, String> {
    let (text, ipv6) = match text.strip_prefix("ipv6@") {
        Some(rest) => (rest, true),
        None => (text.strip_prefix("ipv4@").unwrap_or(text), false),
    };
    if text.starts_with('/') || text.contains("@") {
        return Err(
            "hafront listens on TCP addresses only (not Unix sockets or file descriptors)"
                .to_owned(),
        );
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("no port".to_owned());
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err("hafront listens on single ports, not ranges".to_owned());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "" | "*" | "0.0.0.0" if !ipv6 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "" | "*" | "::" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        host => host
            .parse::<IpAddr>()
            .map_err(|_| format!("{host} is not an IP address: hafront does not resolve names"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// The time a `timeout KIND TIME` directive gives; a comment on `entry`
/// when it is not one.
fn time(directive: &Directive, entry: &mut Entry) -> Option<Duration> {
    let time = directive.arg(1).and_then(haproxy_duration);
    if time.is_none() {
        entry.comment(directive.line.untranslated("not a time such as 5s or 5000"));
    }
    time
}

/// An HAProxy time: a number with an optional unit (`us`, `ms`, `s`, `m`,
/// `h`, `d`), milliseconds when none is given.
fn haproxy_duration(text: &str) -> Option<Duration> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let value: u64 = text[..digits].parse().ok()?;
    Some(match &text[digits..] {
        "" | "ms" => Duration::from_millis(value),
        "us" => Duration::from_micros(value),
        "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value.checked_mul(60)?),
        "h" => Duration::from_secs(value.checked_mul(3600)?),
        "d" => Duration::from_secs(value.checked_mul(86_400)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses() {
        assert_eq!(bind_address(":80").unwrap(), "0.0.0.0:80".parse().unwrap());
        assert_eq!(
            bind_address("*:3306").unwrap(),
            "0.0.0.0:3306".parse().unwrap()
        );
        assert_eq!(
            bind_address("127.0.0.1:6379").unwrap(),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert_eq!(bind_address(":::80").unwrap(), "[::]:80".parse().unwrap());
        assert_eq!(
            bind_address("ipv6@:80").unwrap(),
            "[::]:80".parse().unwrap()
        );
        assert!(bind_address("/run/x.sock").is_err());
        assert!(bind_address(":8000-8010").is_err());
        assert!(bind_address("example.com:80").is_err());
    }

    #[test]
    fn server_addresses() {
        assert_eq!(
            server_address("10.0.0.1:3306").unwrap(),
            "10.0.0.1:3306".parse().unwrap()
        );
        assert_eq!(
            server_address("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            server_address("ipv6@::1:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert!(server_address("10.0.0.1").unwrap_err().contains("no port"));
        assert!(
            server_address("db.example.com:3306")
                .unwrap_err()
                .contains("resolve")
        );
    }

    #[test]
    fn durations_default_to_milliseconds() {
        assert_eq!(haproxy_duration("5000"), Some(Duration::from_secs(5)));
        assert_eq!(haproxy_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(haproxy_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(haproxy_duration("1x"), None);
    }
}

/// No line of a real configuration is dropped silently: each directive is
/// either of a kind the translation carries or named by a comment.
#[cfg(test)]
mod silence {
    use super::*;

    /// Directives the translation carries (when valid), by keyword and first argument.
    fn carried(directive: &Directive) -> bool {
        matches!(
            (directive.keyword(), directive.arg(0)),
            (
                "bind" | "server" | "default-server" | "default_backend" | "balance" | "maxconn",
                _
            ) | ("retries" | "tcp-check" | "http-check", _)
                | ("mode", Some("tcp"))
                | (
                    "timeout",
                    Some("connect" | "client" | "server" | "tunnel" | "check")
                )
                | (
                    "option",
                    Some(
                        "tcp-check"
                            | "mysql-check"
                            | "redis-check"
                            | "httpchk"
                            | "redispatch"
                            | "dontlognull"
                    )
                )
        )
    }

    #[test]
    fn every_line_of_the_samples_is_translated_or_named() {
        let directory =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples/haproxy");
        let mut checked = 0;
        for entry in std::fs::read_dir(directory).expect("the samples directory") {
            let path = entry.expect("a directory entry").path();
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).expect("read");
            let sections = super::super::parse::parse(&file, &text);
            let yaml = translate(&file, &sections).render();
            let named = |line: &Line| yaml.contains(&format!("{}:{}: ", line.file, line.number));
            let mut found = Vec::new();
            for section in &sections {
                if named(&section.line) {
                    continue;
                }
                for directive in &section.directives {
                    if !carried(directive) && !named(&directive.line) {
                        found.push(directive.line.number);
                    }
                }
            }
            assert!(
                found.is_empty(),
                "{file}: lines dropped silently: {found:?}\n{yaml}"
            );
            checked += 1;
        }
        assert!(checked >= 5);
    }
}
