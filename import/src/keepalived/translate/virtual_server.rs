//! `virtual_server`s: a relay listening on the virtual address and port, in
//! front of a pool of the real servers (and the sorry server as a backup),
//! with the check of the first real server's checker.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Translator, shell_syntax, socket_address, untranslated_block};
use crate::keepalived::parse::Statement;
use crate::source::{Comment, Line, listeners_overlap, seconds, split_command};
use crate::yaml::{Entry, Item, Value, duration, string, strings};

/// keepalived's default `delay_loop`.
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default checker `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// keepalived's default checker `retry`.
const DEFAULT_RETRY: u32 = 1;

/// Settings of a health check, compared between real servers.
#[derive(Debug, Clone, PartialEq)]
struct CheckSpec {
    kind: CheckKind,
    timeout: Duration,
    fall: u32,
}

/// The probe of a [`CheckSpec`].
#[derive(Debug, Clone, PartialEq)]
enum CheckKind {
    Tcp,
    Http {
        path: String,
        expect_status: Option<String>,
        host: Option<String>,
    },
    Exec {
        command: Vec<String>,
    },
}

impl Translator<'_> {
    pub(super) fn virtual_server(&mut self, statement: &Statement) {
        let (Some(ip), Some(port)) = (statement.arg(0), statement.arg(1)) else {
            self.document.header.push(untranslated_block(
                statement,
                "hafront relays listen on an address and port (not fwmark or group)",
            ));
            return;
        };
        let Some(listen) = socket_address(ip, port) else {
            self.document.header.push(untranslated_block(
                statement,
                "hafront relays listen on an IP address and port (not fwmark or group)",
            ));
            return;
        };
        let protocol = statement
            .children()
            .iter()
            .find(|child| child.keyword() == "protocol")
            .and_then(|child| child.arg(0))
            .unwrap_or("TCP");
        if protocol != "TCP" {
            self.document.header.push(untranslated_block(
                statement,
                &format!("hafront relays TCP only, not {protocol}"),
            ));
            return;
        }
        let name = format!("vs-{}-{}", listen.ip(), listen.port());
        if self.document.pools.iter().any(|(pool, _)| *pool == name) {
            self.document.header.push(untranslated_block(
                statement,
                "an earlier virtual_server has this address and port",
            ));
            return;
        }
        let mut relay = Entry::default();
        let mut pool_comments = Vec::new();
        let mut check_comments = Vec::new();
        let mut interval = DEFAULT_DELAY_LOOP;
        let mut defaults = CheckerDefaults::default();
        let mut policy = None;
        let mut sort_by_weight = false;
        let mut servers: Vec<(Item, u32)> = Vec::new();
        let mut addresses = BTreeSet::new();
        let mut spec: Option<(CheckSpec, Line)> = None;
        let mut real_servers = Vec::new();
        // The `lb_kind DR` line, if any.
        let mut direct_routing: Option<&Line> = None;
        // Indexes in `servers` (and lines) of the real servers without a checker.
        let mut unchecked = Vec::new();
        for child in statement.children() {
            let line = &child.line;
            match child.keyword() {
                "delay_loop" => match child.arg(0).and_then(seconds) {
                    Some(value) if !value.is_zero() => interval = value,
                    _ => check_comments.push(line.untranslated("not a positive number of seconds")),
                },
                "connect_timeout" | "retry" | "nb_get_retry" => {
                    defaults.read(child, &mut check_comments)
                }
                "lb_algo" | "lvs_sched" => {
                    policy = match child.arg(0) {
                        Some("rr" | "wrr") => Some("round_robin"),
                        Some("lc" | "wlc") => Some("least_connections"),
                        Some("fo") => {
                            sort_by_weight = true;
                            relay.comment(line.note(
                                "the servers are listed by weight, highest first: `first` \
                                 picks the first healthy one, as IPVS's fo picks the heaviest",
                            ));
                            Some("first")
                        }
                        _ => {
                            relay.comment(line.untranslated(
                                "hafront balances round_robin, least_connections or first; \
                                 round_robin is used",
                            ));
                            None
                        }
                    }
                }
                "lb_kind" | "lvs_method" if child.arg(0) == Some("DR") => {
                    direct_routing = Some(line)
                }
                "lb_kind" | "lvs_method" => relay.comment(line.note(
                    "hafront relays (proxies) each connection: the servers see the relay's \
                     address as the client's and need not hold the virtual address",
                )),
                "protocol" => {}
                "real_server" => real_servers.push(child),
                "sorry_server" => match child
                    .arg(0)
                    .zip(child.arg(1))
                    .and_then(|(ip, port)| socket_address(ip, port))
                {
                    Some(address) if addresses.insert(address) => {
                        let mut item = Item::default();
                        item.comments.push(
                            line.note("a backup server, used only while no real server is up"),
                        );
                        item.fields.push(("name".to_owned(), "sorry".to_owned()));
                        item.fields
                            .push(("address".to_owned(), string(&address.to_string())));
                        item.fields.push(("backup".to_owned(), "true".to_owned()));
                        servers.push((item, 0));
                    }
                    _ => pool_comments.push(line.untranslated("not a new IP address and port")),
                },
                "smtp_alert" if self.mail => {
                    relay.comment(line.note("hafront mails every server event"))
                }
                "smtp_alert" => relay.comment(
                    line.untranslated("global_defs gives no smtp_server and recipient to mail"),
                ),
                "persistence_timeout" | "persistence_granularity" | "persistence_engine" => relay
                    .comment(line.untranslated(
                        "hafront has no persistence: each connection picks a server",
                    )),
                "quorum" | "quorum_up" | "quorum_down" | "hysteresis" => relay.comment(
                    line.untranslated("hafront has no quorum; a relay serves while a server is up"),
                ),
                _ => relay.comment(untranslated_block(child, "no hafront equivalent")),
            }
        }
        for real_server in real_servers {
            let Some(address) = real_server
                .arg(0)
                .and_then(|ip| socket_address(ip, real_server.arg(1).unwrap_or(port)))
            else {
                pool_comments.push(untranslated_block(
                    real_server,
                    "not an IP address and port",
                ));
                continue;
            };
            if !addresses.insert(address) {
                pool_comments.push(untranslated_block(
                    real_server,
                    "this address is already a server of the pool",
                ));
                continue;
            }
            let mut item = Item::default();
            let mut weight = 1;
            let mut server_defaults = defaults.clone();
            let mut checkers = Vec::new();
            for setting in real_server.children() {
                let line = &setting.line;
                match setting.keyword() {
                    "weight" => match setting.arg(0).and_then(|w| w.parse::<u32>().ok()) {
                        Some(0) => item.comments.push(line.untranslated(
                            "hafront weights are at least 1: run `hafront drain POOL/SERVER` \
                             to give this server no new clients",
                        )),
                        Some(value) => weight = value,
                        None => item.comments.push(line.untranslated("not a number")),
                    },
                    "connect_timeout" | "retry" | "nb_get_retry" => {
                        server_defaults.read(setting, &mut item.comments)
                    }
                    "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK"
                    | "DNS_CHECK" | "PING_CHECK" | "UDP_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
                        checkers.push(setting)
                    }
                    "notify_up" | "notify_down" => item.comments.push(line.untranslated(
                        "hafront's notify scripts get every event of a pool (`pool:`), with \
                         HAFRONT_EVENT=server_up or server_down",
                    )),
                    "inhibit_on_failure" => {}
                    _ => item
                        .comments
                        .push(untranslated_block(setting, "no hafront equivalent")),
                }
            }
            if checkers.is_empty() {
                unchecked.push((servers.len(), real_server.line.clone()));
            }
            for (index, checker) in checkers.iter().enumerate() {
                let (found, mut comments) = checker_spec(checker, &server_defaults);
                match (&spec, index) {
                    (None, 0) => {
                        check_comments.append(&mut comments);
                        spec = Some((found, checker.line.clone()));
                    }
                    (Some((pool_spec, pool_line)), 0) if *pool_spec != found => {
                        item.comments.push(untranslated_block(
                            checker,
                            &format!(
                                "hafront runs one check per pool, the one of {}:{}",
                                pool_line.file, pool_line.number
                            ),
                        ))
                    }
                    // The pool's check: what of it is not translated is said here too.
                    (_, 0) => item.comments.append(&mut comments),
                    _ => item.comments.push(untranslated_block(
                        checker,
                        "hafront runs one check per server: the first one is kept",
                    )),
                }
            }
            item.fields
                .push(("address".to_owned(), string(&address.to_string())));
            if weight > 1 || sort_by_weight {
                item.fields.push(("weight".to_owned(), weight.to_string()));
            }
            servers.push((item, weight));
        }
        if spec.is_some() {
            for (index, line) in unchecked {
                let (item, _) = &mut servers[index];
                item.comments.push(line.note(
                    "no checker (keepalived counts it up): hafront runs the pool's check on it too",
                ));
            }
        }
        // Real servers first (by weight for `fo`), the sorry server last.
        let (mut real, sorry): (Vec<_>, Vec<_>) =
            servers.into_iter().partition(|(_, weight)| *weight > 0);
        if sort_by_weight {
            real.sort_by_key(|(_, weight)| std::cmp::Reverse(*weight));
        }
        let has_real = !real.is_empty();
        let items: Vec<Item> = real
            .into_iter()
            .chain(sorry)
            .map(|(item, _)| item)
            .collect();
        if !has_real {
            self.document.header.extend(pool_comments);
            self.document.header.extend(relay.into_comments());
            self.document.header.push(untranslated_block(
                statement,
                "no real server hafront can reach",
            ));
            return;
        }
        let (spec, spec_line) = spec.unwrap_or_else(|| {
            check_comments.push(statement.line.note(
                "no real server has a checker (keepalived counts them up): a TCP connect check",
            ));
            (
                CheckSpec {
                    kind: CheckKind::Tcp,
                    timeout: defaults.timeout,
                    fall: defaults.fall(),
                },
                statement.line.clone(),
            )
        });
        let mut check = Entry::with_comments(check_comments);
        match &spec.kind {
            CheckKind::Tcp => check.scalar("kind", "tcp"),
            CheckKind::Http {
                path,
                expect_status,
                host,
            } => {
                check.scalar("kind", "http");
                check.scalar("path", string(path));
                if let Some(host) = host {
                    check.scalar("host", string(host));
                }
                if let Some(status) = expect_status {
                    check.scalar("expect_status", string(status));
                }
            }
            CheckKind::Exec { command } => {
                check.scalar("kind", "exec");
                check.set("command", Value::List(strings(command)));
            }
        }
        check.scalar("interval", duration(interval));
        let timeout = if spec.timeout > interval {
            check.comment(spec_line.note(format!(
                "a probe must end before the next starts: the timeout is delay_loop, {}",
                duration(interval)
            )));
            interval
        } else {
            spec.timeout
        };
        check.scalar("timeout", duration(timeout));
        check.scalar("rise", "1");
        check.scalar("fall", spec.fall.to_string());
        self.document.checks.push((name.clone(), check));
        let mut pool = Entry::with_comments(pool_comments);
        pool.scalar("check", string(&name));
        pool.set("servers", Value::Items(items));
        self.document.pools.push((name.clone(), pool));
        if !self
            .listeners
            .iter()
            .any(|taken| listeners_overlap(*taken, listen))
        {
            self.listeners.push(listen);
            relay.set("listen", Value::List(vec![string(&listen.to_string())]));
            relay.scalar("pool", string(&name));
            let direct =
                direct_routing.map(|line| (line, self.direct_routing_refusal(listen, &addresses)));
            let mut policy = policy;
            match direct {
                Some((line, None)) => {
                    relay.comment(line.note(
                        "LVS-DR: the director forwards packets to the servers' MACs and the \
                         servers answer clients directly, with the VIP on their lo \
                         (docs/direct-routing.md)",
                    ));
                    relay.scalar("forward", "direct_routing");
                    if policy == Some("least_connections") {
                        relay.comment(line.note(
                            "direct routing cannot count connections: new flows are spread \
                             by weight (round_robin)",
                        ));
                        policy = None;
                    }
                }
                Some((line, Some(why))) => relay.comment(line.note(format!(
                    "translated as a proxy relay (the servers see the relay's address as the \
                     client's), not as `forward: direct_routing`: {why}"
                ))),
                None => {}
            }
            if let Some(policy) = policy {
                relay.scalar("policy", policy);
            }
            self.document.relays.push((name, relay));
        } else {
            self.document.header.extend(relay.into_comments());
            self.document.header.push(statement.line.untranslated(
                "an earlier virtual_server listens on this address already (only the pool is translated)",
            ));
        }
    }
}

impl Translator<'_> {
    /// Why an LVS-DR `virtual_server` on `listen` with servers at `servers`
    /// cannot be a direct-routing relay, or `None` when it can.
    fn direct_routing_refusal(
        &self,
        listen: SocketAddr,
        servers: &BTreeSet<SocketAddr>,
    ) -> Option<String> {
        if !listen.is_ipv4() {
            Some("hafront's direct routing is IPv4 only".to_owned())
        } else if !self.virtual_ips.contains(&listen.ip()) {
            Some(format!(
                "{} is no virtual_ipaddress of a vrrp_instance in this file, and direct \
                 routing runs on the master of the instance holding the address",
                listen.ip()
            ))
        } else {
            servers
                .iter()
                .find(|server| server.port() != listen.port())
                .map(|other| {
                    format!(
                        "{other} listens on another port than {}, and direct routing keeps \
                         the port",
                        listen.port()
                    )
                })
        }
    }
}

/// Checker settings given at the virtual or real server level.
#[derive(Debug, Clone)]
struct CheckerDefaults {
    timeout: Duration,
    retry: u32,
}

impl Default for CheckerDefaults {
    fn default() -> Self {
        CheckerDefaults {
            timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: DEFAULT_RETRY,
        }
    }
}

impl CheckerDefaults {
    /// Reads `connect_timeout`, `retry` or `nb_get_retry`.
    fn read(&mut self, setting: &Statement, comments: &mut Vec<Comment>) {
        match setting.keyword() {
            "connect_timeout" => match setting.arg(0).and_then(seconds) {
                Some(value) if !value.is_zero() => self.timeout = value,
                _ => comments.push(
                    setting
                        .line
                        .untranslated("not a positive number of seconds"),
                ),
            },
            _ => match setting.arg(0).and_then(|n| n.parse::<u32>().ok()) {
                Some(value) => self.retry = value,
                None => comments.push(setting.line.untranslated("not a count")),
            },
        }
    }

    /// Consecutive failures that take a server down: the first and its retries.
    fn fall(&self) -> u32 {
        self.retry.saturating_add(1)
    }
}

/// The check a keepalived checker block describes, and comments on what of
/// it is not translated.
fn checker_spec(checker: &Statement, defaults: &CheckerDefaults) -> (CheckSpec, Vec<Comment>) {
    let mut settings = defaults.clone();
    let mut comments = Vec::new();
    let mut kind = CheckKind::Tcp;
    match checker.keyword() {
        "TCP_CHECK" => {}
        "HTTP_GET" => {
            kind = CheckKind::Http {
                path: "/".to_owned(),
                expect_status: None,
                host: None,
            }
        }
        "MISC_CHECK" => {
            kind = CheckKind::Exec {
                command: Vec::new(),
            }
        }
        "SSL_GET" => comments.push(checker.line.untranslated(
            "hafront's http check speaks plain HTTP: a TCP connect check is used instead",
        )),
        other => comments.push(checker.line.untranslated(format!(
            "hafront has no {other}: a TCP connect check is used instead"
        ))),
    }
    let mut urls = 0;
    // HTTP_GET of another port or address than the server's.
    let mut elsewhere = false;
    for setting in checker.children() {
        let line = &setting.line;
        match (setting.keyword(), &mut kind) {
            ("connect_timeout" | "retry" | "nb_get_retry", _) => {
                settings.read(setting, &mut comments)
            }
            (
                "url",
                CheckKind::Http {
                    path,
                    expect_status,
                    ..
                },
            ) => {
                urls += 1;
                if urls > 1 {
                    comments.push(untranslated_block(
                        setting,
                        "hafront's http check fetches one path: the first url is kept",
                    ));
                    continue;
                }
                for part in setting.children() {
                    match part.keyword() {
                        "path" => match part.arg(0) {
                            Some(value) if value.starts_with('/') => *path = value.to_owned(),
                            _ => {
                                comments.push(part.line.untranslated("not a path starting with /"))
                            }
                        },
                        "status_code" => match part.arg(0) {
                            Some(code) if part.words.len() == 2 && status_range(code) => {
                                *expect_status = Some(code.to_owned())
                            }
                            _ => comments.push(part.line.untranslated(
                                "hafront accepts one status code or one range such as 200-299",
                            )),
                        },
                        "digest" => comments
                            .push(part.line.untranslated(
                                "hafront's http check looks at the status code only",
                            )),
                        _ => comments.push(part.line.untranslated("no hafront equivalent")),
                    }
                }
            }
            ("virtualhost", CheckKind::Http { host, .. }) => match setting.arg(0) {
                Some(value) => *host = Some(value.to_owned()),
                None => comments.push(line.untranslated("names no host")),
            },
            ("misc_path", CheckKind::Exec { command }) => {
                let mut argv = setting.arg(0).map(split_command).unwrap_or_default();
                argv.extend(setting.words.iter().skip(2).cloned());
                if let Some(why) = shell_syntax(&argv) {
                    comments.push(line.untranslated(why));
                }
                *command = argv;
            }
            ("url", _) => comments.push(untranslated_block(
                setting,
                "part of a checker that is not translated",
            )),
            ("misc_timeout", CheckKind::Exec { .. }) => match setting.arg(0).and_then(seconds) {
                Some(value) if !value.is_zero() => settings.timeout = value,
                _ => comments.push(line.untranslated("not a positive number of seconds")),
            },
            ("delay_before_retry", _) => comments.push(line.untranslated(
                "hafront probes every interval, retries included (fall counts them)",
            )),
            ("connect_port" | "connect_ip", CheckKind::Http { .. }) => {
                comments.push(line.untranslated(
                    "hafront checks each server at its own address and port: a TCP connect to \
                     the server replaces this HTTP_GET",
                ));
                elsewhere = true;
            }
            ("connect_port" | "connect_ip" | "bindto" | "bind_port", _) => comments
                .push(line.untranslated("hafront checks each server at its own address and port")),
            _ => comments.push(untranslated_block(setting, "no hafront equivalent")),
        }
    }
    if let CheckKind::Exec { command } = &kind
        && command.is_empty()
    {
        comments.push(
            checker
                .line
                .untranslated("a MISC_CHECK needs misc_path: a TCP connect check is used instead"),
        );
        kind = CheckKind::Tcp;
    }
    if elsewhere {
        kind = CheckKind::Tcp;
    }
    let spec = CheckSpec {
        kind,
        timeout: settings.timeout,
        fall: settings.fall(),
    };
    (spec, comments)
}

/// Whether `code` is a status code or a range hafront accepts.
fn status_range(code: &str) -> bool {
    let (low, high) = code.split_once('-').unwrap_or((code, code));
    match (low.parse::<u16>(), high.parse::<u16>()) {
        (Ok(low), Ok(high)) => {
            (100..=599).contains(&low) && (100..=599).contains(&high) && low <= high
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert!(status_range("200"));
        assert!(status_range("200-299"));
        assert!(!status_range("299-200"));
        assert!(!status_range("abc"));
    }
}
