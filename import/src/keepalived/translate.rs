//! keepalived statements to hafront sections: `global_defs` mail settings,
//! `vrrp_instance`s (with their `vrrp_script`s as exec checks), and
//! `virtual_server`s as relays in front of pools.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hafront_config::looks_like_mail_address;

use super::parse::Statement;
use crate::SECRETS_DIR;
use crate::source::{Comment, Line, seconds, split_command};
use crate::yaml::{Document, Entry, Item, Value, duration, string, strings};

mod virtual_server;

/// The highest priority a backup may have (255 is the address owner's).
const MAX_BACKUP_PRIORITY: u32 = 254;

/// Translates the statements of a keepalived configuration read from `file`.
pub(crate) fn translate(file: &str, statements: &[Statement]) -> Document {
    let mut translator = Translator {
        document: Document::default(),
        version: 2,
        mail: false,
        scripts: BTreeMap::new(),
        tracked_scripts: BTreeSet::new(),
        listeners: Vec::new(),
        routers: BTreeSet::new(),
        virtual_ips: virtual_ips(statements),
    };
    translator.document.header.push(Comment::Text(format!(
        "hafront configuration translated by `hafront import keepalived` from {file}."
    )));
    translator.document.header.push(Comment::Text(
        "Lines marked \"not translated\" have no hafront equivalent (docs/import.md); \
         check the result with `hafront check -c FILE`."
            .to_owned(),
    ));
    for statement in statements {
        if statement.keyword() == "global_defs" {
            translator.global_defs(statement);
        }
    }
    for statement in statements {
        if statement.keyword() == "vrrp_script" {
            match statement.arg(0) {
                Some(name) => {
                    translator.scripts.insert(name.to_owned(), statement);
                }
                None => {
                    let comment = untranslated_block(statement, "a vrrp_script needs a name");
                    translator.document.header.push(comment);
                }
            }
        }
    }
    for statement in statements {
        match statement.keyword() {
            "global_defs" | "vrrp_script" => {}
            "vrrp_instance" => translator.vrrp_instance(statement),
            "virtual_server" => translator.virtual_server(statement),
            keyword => {
                let why = top_level_reason(keyword);
                translator
                    .document
                    .header
                    .push(untranslated_block(statement, why));
            }
        }
    }
    let unused: Vec<&Statement> = translator
        .scripts
        .iter()
        .filter(|(name, _)| !translator.tracked_scripts.contains(*name))
        .map(|(_, statement)| *statement)
        .collect();
    for statement in unused {
        translator.document.header.push(untranslated_block(
            statement,
            "no vrrp_instance tracks this script, so it changes nothing",
        ));
    }
    translator.document
}

/// Why a top-level block other than the translated ones is not translated.
fn top_level_reason(keyword: &str) -> &'static str {
    match keyword {
        "vrrp_sync_group" => {
            "hafront's VRRP instances are independent (no sync groups); track the same items in each instead"
        }
        "virtual_server_group" => "hafront relays listen on addresses, not on server groups",
        "static_ipaddress" | "static_routes" | "static_rules" => {
            "hafront manages only virtual addresses; configure static ones with the system's network setup"
        }
        "vrrp_track_process" | "vrrp_track_file" | "track_file" | "bfd_instance" => {
            "hafront tracks servers, pools and interfaces only; an exec check can watch a process or file"
        }
        "net_namespace" | "net_namespace_ipvs" | "instance" | "linkbeat_use_polling" => {
            "hafront runs in the namespace it is started in"
        }
        keyword if keyword.starts_with('@') => {
            "conditional configuration (keepalived -i NAME); import the lines for one host by hand"
        }
        keyword if keyword.starts_with('$') => "keepalived parameter definitions are not expanded",
        _ => "no hafront equivalent",
    }
}

/// One comment for a statement and its whole block.
fn untranslated_block(statement: &Statement, why: &str) -> Comment {
    let keyword = statement.keyword();
    let why = if keyword.starts_with(['@', '$']) {
        top_level_reason(keyword)
    } else {
        why
    };
    match statement.end {
        Some(end) if end > statement.line.number => statement
            .line
            .untranslated(format!("{why} (the whole block, to line {end})")),
        _ => statement.line.untranslated(why),
    }
}

struct Translator<'a> {
    document: Document,
    /// `vrrp_version` of `global_defs` (keepalived's default is 2).
    version: u8,
    /// Whether `global_defs` gave what mail alerts need.
    mail: bool,
    scripts: BTreeMap<String, &'a Statement>,
    /// The `vrrp_script`s already made into checks and pools.
    tracked_scripts: BTreeSet<String>,
    /// Relay listen addresses taken so far.
    listeners: Vec<SocketAddr>,
    /// (interface, vrid, IPv4?) of the instances so far.
    routers: BTreeSet<(String, u8, bool)>,
    /// Every address in a `vrrp_instance`'s `virtual_ipaddress`, in the whole
    /// file: an LVS-DR `virtual_server` on one becomes a direct-routing relay.
    virtual_ips: BTreeSet<IpAddr>,
}

/// The addresses listed in the `virtual_ipaddress` blocks of all `vrrp_instance`s.
fn virtual_ips(statements: &[Statement]) -> BTreeSet<IpAddr> {
    statements
        .iter()
        .filter(|statement| statement.keyword() == "vrrp_instance")
        .flat_map(Statement::children)
        .filter(|child| child.keyword() == "virtual_ipaddress")
        .flat_map(Statement::children)
        .filter_map(|address| ip_with_prefix(address.keyword()).map(|(ip, _)| ip))
        .collect()
}

impl Translator<'_> {
    fn global_defs(&mut self, statement: &Statement) {
        let mut recipients = Vec::new();
        let mut recipient_comments = Vec::new();
        let mut from = None;
        let mut smtp: Option<(&Statement, String, Option<String>)> = None;
        let mut timeout = None;
        let mut comments = Vec::new();
        for child in statement.children() {
            let line = &child.line;
            match child.keyword() {
                "notification_email" => {
                    for address in child.children() {
                        let text = address.keyword();
                        if looks_like_mail_address(text) {
                            recipients.push(text.to_owned());
                        } else {
                            recipient_comments.push(address.line.untranslated(
                                "not a mail address like dba@example.com (hafront needs user@domain)",
                            ));
                        }
                    }
                }
                "notification_email_from" => match child.arg(0) {
                    Some(address) if looks_like_mail_address(address) => {
                        from = Some(address.to_owned())
                    }
                    _ => comments.push(line.untranslated("not a mail address like a@example.com")),
                },
                "smtp_server" => match child.arg(0) {
                    Some(host) => {
                        smtp = Some((child, host.to_owned(), child.arg(1).map(str::to_owned)))
                    }
                    None => comments.push(line.untranslated("names no server")),
                },
                "smtp_connect_timeout" => match child.arg(0).and_then(seconds) {
                    Some(value) if !value.is_zero() => timeout = Some(value),
                    _ => comments.push(line.untranslated("not a number of seconds")),
                },
                "router_id" => match child.arg(0) {
                    Some(node) => {
                        self.document.global.comment(line.note("the node's name"));
                        self.document.global.scalar("node", string(node));
                    }
                    None => comments.push(line.untranslated("names nothing")),
                },
                "vrrp_version" => match child.arg(0) {
                    Some("2") => self.version = 2,
                    Some("3") => self.version = 3,
                    _ => comments.push(line.untranslated("must be 2 or 3")),
                },
                "enable_script_security" => {}
                "script_user" => comments.push(line.untranslated(
                    "hafront runs exec checks as itself; notify scripts take a `user:` each",
                )),
                _ => comments.push(untranslated_block(child, "no hafront equivalent")),
            }
        }
        self.document.header.extend(comments);
        match smtp {
            Some((server, host, port)) if !recipients.is_empty() => {
                let mut email = Entry::default();
                email.comments.push(server.line.note(
                    "keepalived speaks plain SMTP, so security is plain; use starttls or tls \
                     with a server that offers it. hafront mails every event, not only those \
                     with smtp_alert",
                ));
                email.scalar("smtp_host", string(&host));
                if let Some(port) = port {
                    match port.parse::<u16>() {
                        Ok(port) if port > 0 => email.scalar("smtp_port", port.to_string()),
                        _ => email.comment(server.line.untranslated("the port is not 1..65535")),
                    }
                }
                email.scalar("security", "plain");
                let from = from.unwrap_or_else(|| {
                    email.comment(server.line.note(
                        "no notification_email_from: keepalived sends as keepalived@HOSTNAME; \
                         set this node's",
                    ));
                    "keepalived@localhost.localdomain".to_owned()
                });
                email.scalar("from", string(&from));
                for comment in recipient_comments {
                    email.comment(comment);
                }
                email.set("to", Value::List(strings(&recipients)));
                if let Some(timeout) = timeout {
                    email.scalar("timeout", duration(timeout));
                }
                self.mail = true;
                self.document.email = Some(email);
            }
            Some((server, _, _)) => {
                self.document.header.extend(recipient_comments);
                self.document.header.push(
                    server
                        .line
                        .untranslated("no notification_email recipient, so no mail is sent"),
                );
            }
            None => {
                self.document.header.extend(recipient_comments);
                if !recipients.is_empty() {
                    self.document.header.push(
                        statement
                            .line
                            .untranslated("notification_email without smtp_server sends no mail"),
                    );
                }
            }
        }
    }

    fn vrrp_instance(&mut self, statement: &Statement) {
        let Some(name) = statement.arg(0) else {
            self.document.header.push(untranslated_block(
                statement,
                "a vrrp_instance needs a name",
            ));
            return;
        };
        if self
            .document
            .instances
            .iter()
            .any(|(known, _)| known == name)
        {
            self.document.header.push(untranslated_block(
                statement,
                "an earlier vrrp_instance has this name",
            ));
            return;
        }
        let mut instance = Instance::default();
        for child in statement.children() {
            self.instance_setting(name, child, &mut instance);
        }
        let missing = [
            (instance.interface.is_none(), "no interface"),
            (instance.vrid.is_none(), "no valid virtual_router_id"),
            (
                instance.addresses.is_empty(),
                "no virtual address hafront can hold",
            ),
        ];
        if let Some((_, why)) = missing.iter().find(|(missing, _)| *missing) {
            self.document.header.extend(instance.into_comments());
            self.document.header.push(untranslated_block(
                statement,
                &format!("the instance has {why}"),
            ));
            return;
        }
        let interface = instance.interface.clone().unwrap_or_default();
        let vrid = instance.vrid.unwrap_or_default();
        let ipv4 = instance
            .addresses
            .first()
            .is_some_and(|(ip, _)| ip.is_ipv4());
        if !self.routers.insert((interface.clone(), vrid, ipv4)) {
            self.document.header.extend(instance.into_comments());
            self.document.header.push(untranslated_block(
                statement,
                &format!("an earlier instance already runs vrid {vrid} on {interface}"),
            ));
            return;
        }
        let version = if !ipv4 {
            3
        } else {
            instance.version.unwrap_or(self.version)
        };
        let mut entry = Entry::with_comments(instance.comments);
        entry.scalar("interface", string(&interface));
        entry.scalar("vrid", vrid.to_string());
        if !ipv4 && instance.version == Some(2) {
            entry.comment(
                statement
                    .line
                    .note("IPv6 addresses need VRRPv3, which keepalived also uses for them"),
            );
        }
        entry.scalar("version", version.to_string());
        let mut priority = instance.priority;
        // The address owner's 255 is never changed by tracking, in keepalived too.
        if instance.bonus > 0 && priority < 255 {
            let raised = (priority + instance.bonus).min(MAX_BACKUP_PRIORITY);
            entry.comment(statement.line.note(format!(
                "keepalived adds positive track weights while the item is up; hafront subtracts \
                 weights while it is down, so the priority is {priority} + {} = {raised} and \
                 each such item subtracts its weight",
                instance.bonus
            )));
            priority = raised;
        }
        entry.scalar("priority", priority.to_string());
        let interval = instance.advert_int.unwrap_or(Duration::from_secs(1));
        let interval = match version {
            2 => {
                let whole = interval.as_secs_f64().round().clamp(1.0, 255.0) as u64;
                if interval != Duration::from_secs(whole) {
                    entry.comment(instance.advert_line.clone().map_or_else(
                        || statement.line.note("VRRPv2 adverts whole seconds"),
                        |line| {
                            line.untranslated(format!(
                                "VRRPv2 adverts whole seconds from 1 to 255: {whole}s is used"
                            ))
                        },
                    ));
                }
                Duration::from_secs(whole)
            }
            _ => {
                let centis = (interval.as_millis() as f64 / 10.0)
                    .round()
                    .clamp(1.0, 4095.0) as u64;
                let rounded = Duration::from_millis(centis * 10);
                if rounded != interval
                    && let Some(line) = &instance.advert_line
                {
                    entry.comment(line.untranslated(format!(
                        "VRRPv3 adverts multiples of 10ms up to 40.95s: {} is used",
                        duration(rounded)
                    )));
                }
                rounded
            }
        };
        entry.scalar("advert_interval", duration(interval));
        let addresses: Vec<String> = instance
            .addresses
            .iter()
            .map(|(ip, prefix)| format!("{ip}/{prefix}"))
            .collect();
        for comment in instance.address_comments {
            entry.comment(comment);
        }
        entry.set("virtual_addresses", Value::List(strings(&addresses)));
        if !instance.preempt {
            entry.scalar("preempt", "false");
        }
        if let Some(delay) = instance.preempt_delay {
            entry.scalar("preempt_delay", duration(delay));
        }
        if !instance.peers.is_empty() {
            let peers: Vec<String> = instance.peers.iter().map(IpAddr::to_string).collect();
            entry.set("unicast_peers", Value::List(strings(&peers)));
        }
        if let Some(line) = instance.auth_pass {
            if version == 2 {
                let file = format!("{SECRETS_DIR}/vrrp-{}.pass", file_safe(name));
                entry.comment(line.note(format!(
                    "the password is not copied here: write it (at most its first 8 bytes, all \
                     that VRRPv2 carries) to {file}, readable by root only: \
                     install -d -m 700 {SECRETS_DIR} && printf '%s\\n' 'PASSWORD' | install -m 600 /dev/stdin {file}"
                )));
                entry.set(
                    "auth_pass",
                    Value::Map(vec![("file".to_owned(), string(&file))]),
                );
                self.document.secret_files.push(file);
            } else {
                entry.comment(
                    line.untranslated("VRRPv3 has no authentication (keepalived ignores it too)"),
                );
            }
        }
        if !instance.garp.is_empty() {
            entry.set("garp", Value::Map(instance.garp));
        }
        if !instance.track.is_empty() {
            entry.set("track", Value::Items(instance.track));
        }
        self.document.instances.push((name.to_owned(), entry));
        for (line, command) in instance.notify {
            let mut notify = Entry::default();
            notify.comments.push(line.note(
                "on each state change hafront appends keepalived's arguments INSTANCE NAME \
                 STATE PRIORITY and sets HAFRONT_* variables; it also runs the script, without \
                 those arguments, when a peer advertises other addresses \
                 (HAFRONT_EVENT=vrrp_address_mismatch)",
            ));
            notify.set("command", Value::List(strings(&command)));
            notify.scalar("instance", string(name));
            self.document.notify.push(notify);
        }
    }

    /// Reads one statement of a `vrrp_instance` into `instance`.
    fn instance_setting(&mut self, name: &str, child: &Statement, instance: &mut Instance) {
        let line = &child.line;
        let mut skip = |why: &str| instance.comments.push(untranslated_block(child, why));
        match child.keyword() {
            "state" => match child.arg(0) {
                Some("BACKUP") => {}
                _ => skip(
                    "hafront always starts as backup; the highest priority becomes master after \
                     the master-down interval (docs/vrrp.md)",
                ),
            },
            "interface" => match child.arg(0) {
                Some(interface) => instance.interface = Some(interface.to_owned()),
                None => skip("names no interface"),
            },
            "virtual_router_id" => match child.arg(0).and_then(|id| id.parse::<u8>().ok()) {
                Some(vrid) if vrid > 0 => instance.vrid = Some(vrid),
                _ => skip("must be 1..255"),
            },
            "priority" => match child.arg(0).and_then(|p| p.parse::<u32>().ok()) {
                Some(priority @ 1..=255) => instance.priority = priority,
                _ => skip("must be 1..255"),
            },
            "advert_int" => match child.arg(0).and_then(seconds) {
                Some(interval) if !interval.is_zero() => {
                    instance.advert_int = Some(interval);
                    instance.advert_line = Some(line.clone());
                }
                _ => skip("not a number of seconds"),
            },
            "version" => match child.arg(0) {
                Some("2") => instance.version = Some(2),
                Some("3") => instance.version = Some(3),
                _ => skip("must be 2 or 3"),
            },
            "nopreempt" => instance.preempt = false,
            "preempt" | "accept" => {}
            "preempt_delay" => match child.arg(0).and_then(seconds) {
                Some(delay) => instance.preempt_delay = Some(delay),
                None => skip("not a number of seconds"),
            },
            "authentication" => self.authentication(child, instance),
            "virtual_ipaddress" => {
                for address in child.children() {
                    instance.virtual_address(address);
                }
            }
            "unicast_peer" => {
                for peer in child.children() {
                    match peer.keyword().parse::<IpAddr>() {
                        Ok(ip) => instance.peers.push(ip),
                        Err(_) => instance
                            .comments
                            .push(peer.line.untranslated("not an IP address")),
                    }
                    if peer.words.len() > 1 {
                        instance.comments.push(
                            peer.line
                                .untranslated("peer options are not translated (the address is)"),
                        );
                    }
                }
            }
            "track_interface" => {
                for tracked in child.children() {
                    match track_weight(tracked, 0) {
                        Ok(weight) => {
                            let mut item = Item::default();
                            item.fields
                                .push(("interface".to_owned(), string(tracked.keyword())));
                            instance.add_track(tracked, item, weight);
                        }
                        Err(why) => instance.comments.push(tracked.line.untranslated(why)),
                    }
                }
            }
            "track_script" => {
                for tracked in child.children() {
                    self.track_script(tracked, instance);
                }
            }
            "notify" => {
                let command = child.arg(0).map(split_command).unwrap_or_default();
                if command.is_empty() {
                    skip("names no script");
                } else {
                    let mut argv = command;
                    argv.extend(child.words.iter().skip(2).cloned());
                    instance.notify.push((line.clone(), argv));
                }
            }
            "notify_master"
            | "notify_backup"
            | "notify_fault"
            | "notify_stop"
            | "notify_deleted"
            | "notify_master_rx_lower_pri" => skip(&format!(
                "hafront runs notify scripts on every state change of the instance, with \
                 INSTANCE {name} STATE PRIORITY appended and HAFRONT_NEW set; use one `notify` \
                 script that acts on its third argument (keepalived's `notify`)"
            )),
            "smtp_alert" => {
                if self.mail {
                    instance
                        .comments
                        .push(line.note("hafront mails every event of every instance"));
                } else {
                    skip("global_defs gives no smtp_server and recipient to mail");
                }
            }
            "garp_master_repeat" => match child.arg(0).and_then(|n| n.parse::<u32>().ok()) {
                Some(repeat) if repeat > 0 => instance
                    .garp
                    .push(("repeat".to_owned(), repeat.to_string())),
                _ => skip("not a positive count"),
            },
            "garp_master_refresh" => match child.arg(0).and_then(seconds) {
                Some(refresh) if refresh.is_zero() => {}
                Some(refresh) => instance
                    .garp
                    .push(("refresh".to_owned(), duration(refresh))),
                None => skip("not a number of seconds"),
            },
            "garp_interval" => match child.arg(0).and_then(seconds) {
                Some(interval) => instance
                    .garp
                    .push(("interval".to_owned(), duration(interval))),
                None => skip("not a number of seconds"),
            },
            "dont_track_primary" => {
                skip("hafront always tracks the instance's interface (FAULT while it is down)")
            }
            "unicast_src_ip" | "mcast_src_ip" => {
                skip("hafront sends from the interface's primary address")
            }
            "use_vmac" | "vmac_xmit_base" => skip("hafront does not use a virtual MAC address"),
            "virtual_ipaddress_excluded" => skip(
                "hafront advertises every virtual address; add these with the system's network \
                 setup, or to virtual_addresses on every node",
            ),
            "track_process" | "track_file" | "track_bfd" => skip(
                "hafront tracks servers, pools and interfaces; an exec check in a pool can watch \
                 a process or file",
            ),
            "no_accept" => skip("hafront's virtual addresses accept traffic like any local one"),
            _ => skip("no hafront equivalent"),
        }
    }

    fn authentication(&mut self, statement: &Statement, instance: &mut Instance) {
        let mut pass = None;
        let mut kind = None;
        for child in statement.children() {
            match child.keyword() {
                "auth_type" => kind = Some(child),
                "auth_pass" if child.arg(0).is_some() => pass = Some(child.line.clone()),
                _ => instance
                    .comments
                    .push(child.line.untranslated("no hafront equivalent")),
            }
        }
        match (kind.and_then(|kind| kind.arg(0)), pass) {
            (Some("PASS"), Some(line)) => instance.auth_pass = Some(line),
            (Some("AH"), _) => instance.comments.push(untranslated_block(
                statement,
                "IPsec AH authentication is not supported by hafront",
            )),
            _ => instance.comments.push(untranslated_block(
                statement,
                "needs auth_type PASS and an auth_pass",
            )),
        }
    }

    /// One entry of a `track_script` block: the script becomes an exec
    /// check in a pool of its own, which the instance tracks.
    fn track_script(&mut self, tracked: &Statement, instance: &mut Instance) {
        let name = tracked.keyword();
        let Some(script) = self.scripts.get(name).copied() else {
            instance
                .comments
                .push(tracked.line.untranslated("no vrrp_script of this name"));
            return;
        };
        let mut command = None;
        let mut interval = Duration::from_secs(1);
        let mut timeout = None;
        let mut rise = 1;
        let mut fall = 1;
        let mut script_weight = 0;
        let mut comments = Vec::new();
        for child in script.children() {
            let line = &child.line;
            let count = || {
                child
                    .arg(0)
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|&n| n > 0)
            };
            match child.keyword() {
                "script" => {
                    let mut argv = child.arg(0).map(split_command).unwrap_or_default();
                    argv.extend(child.words.iter().skip(2).cloned());
                    if argv.is_empty() {
                        comments.push(line.untranslated("names no program"));
                    } else {
                        if let Some(why) = shell_syntax(&argv) {
                            comments.push(line.untranslated(why));
                        }
                        command = Some(argv);
                    }
                }
                "interval" => match child.arg(0).and_then(seconds) {
                    Some(value) if !value.is_zero() => interval = value,
                    _ => comments.push(line.untranslated("not a positive number of seconds")),
                },
                "timeout" => match child.arg(0).and_then(seconds) {
                    Some(value) if !value.is_zero() => timeout = Some((value, line.clone())),
                    _ => comments.push(line.untranslated("not a positive number of seconds")),
                },
                "rise" => match count() {
                    Some(value) => rise = value,
                    None => comments.push(line.untranslated("not a positive count")),
                },
                "fall" => match count() {
                    Some(value) => fall = value,
                    None => comments.push(line.untranslated("not a positive count")),
                },
                "weight" => {
                    match child.arg(0).and_then(|w| w.parse::<i32>().ok()) {
                        Some(weight) => script_weight = weight,
                        None => comments.push(line.untranslated("not a number")),
                    }
                    if child.arg(1) == Some("reverse") {
                        comments.push(line.untranslated(
                            "`reverse` has no hafront equivalent (the weight applies as usual)",
                        ));
                    }
                }
                "init_fail" => comments.push(
                    line.note("hafront counts a script not run yet as failed, as init_fail does"),
                ),
                "user" => {
                    comments.push(line.untranslated("hafront runs exec checks as its own user"))
                }
                _ => comments.push(untranslated_block(child, "no hafront equivalent")),
            }
        }
        let Some(command) = command else {
            self.document.header.extend(comments);
            instance.comments.push(tracked.line.untranslated(format!(
                "vrrp_script {name} ({}:{}) has no script to run",
                script.line.file, script.line.number
            )));
            return;
        };
        let weight = match track_weight(tracked, script_weight) {
            Ok(weight) => weight,
            Err(why) => {
                instance.comments.push(tracked.line.untranslated(why));
                return;
            }
        };
        let pool = format!("script-{name}");
        if self.tracked_scripts.insert(name.to_owned()) {
            let mut check = Entry::with_comments(comments);
            check.comments.push(
                script
                    .line
                    .note("an exec check, run without a shell like keepalived's scripts"),
            );
            check.scalar("kind", "exec");
            check.set("command", Value::List(strings(&command)));
            check.scalar("interval", duration(interval));
            let mut timeout_value = interval;
            if let Some((value, line)) = timeout {
                if value > interval {
                    check.comment(line.untranslated(format!(
                        "a probe must end before the next starts: the timeout is the interval, {}",
                        duration(interval)
                    )));
                } else {
                    timeout_value = value;
                }
            }
            check.scalar("timeout", duration(timeout_value));
            check.scalar("rise", rise.to_string());
            check.scalar("fall", fall.to_string());
            self.document.checks.push((pool.clone(), check));
            let mut entry = Entry::default();
            entry.comments.push(script.line.note(
                "a pool holding only the script's check, for VRRP tracking; the address is \
                 never connected to",
            ));
            entry.scalar("check", string(&pool));
            let mut server = Item::default();
            server.fields.push(("name".to_owned(), "script".to_owned()));
            server
                .fields
                .push(("address".to_owned(), "127.0.0.1:0".to_owned()));
            entry.set("servers", Value::Items(vec![server]));
            self.document.pools.push((pool.clone(), entry));
        }
        let mut item = Item::default();
        item.fields.push(("pool".to_owned(), string(&pool)));
        instance.add_track(tracked, item, weight);
    }
}

/// Why a command that relies on a shell (redirections, pipes, variables)
/// cannot run as written: hafront runs programs without a shell.
fn shell_syntax(argv: &[String]) -> Option<String> {
    let shell = argv
        .iter()
        .any(|word| word.contains(['<', '>', '|', '&', ';', '$', '`', '*', '(']));
    shell.then(|| {
        "it uses shell syntax, and hafront runs programs without a shell: put the command \
         in a script (or run it as [bash, -c, '...'])"
            .to_owned()
    })
}

/// A VRRP instance being read.
struct Instance {
    comments: Vec<Comment>,
    interface: Option<String>,
    vrid: Option<u8>,
    version: Option<u8>,
    priority: u32,
    /// Sum of positive track weights, added to the priority.
    bonus: u32,
    advert_int: Option<Duration>,
    advert_line: Option<Line>,
    preempt: bool,
    preempt_delay: Option<Duration>,
    addresses: Vec<(IpAddr, u8)>,
    address_comments: Vec<Comment>,
    peers: Vec<IpAddr>,
    /// The line of `auth_pass` (the password itself is never kept).
    auth_pass: Option<Line>,
    garp: Vec<(String, String)>,
    track: Vec<Item>,
    notify: Vec<(Line, Vec<String>)>,
}

impl Default for Instance {
    fn default() -> Self {
        Instance {
            comments: Vec::new(),
            interface: None,
            vrid: None,
            version: None,
            priority: 100,
            bonus: 0,
            advert_int: None,
            advert_line: None,
            preempt: true,
            preempt_delay: None,
            addresses: Vec::new(),
            address_comments: Vec::new(),
            peers: Vec::new(),
            auth_pass: None,
            garp: Vec::new(),
            track: Vec::new(),
            notify: Vec::new(),
        }
    }
}

impl Instance {
    /// Every comment gathered, for an instance that is not written.
    fn into_comments(self) -> Vec<Comment> {
        let tracked = self.track.into_iter().flat_map(|item| item.comments);
        self.comments
            .into_iter()
            .chain(self.address_comments)
            .chain(tracked)
            .collect()
    }

    /// One line of `virtual_ipaddress`: `ADDRESS[/PREFIX] [dev IF] [options]`.
    fn virtual_address(&mut self, statement: &Statement) {
        let Some((ip, prefix)) = ip_with_prefix(statement.keyword()) else {
            self.address_comments.push(
                statement
                    .line
                    .untranslated("not an IP address with an optional /prefix"),
            );
            return;
        };
        if let Some((first, _)) = self.addresses.first()
            && first.is_ipv4() != ip.is_ipv4()
        {
            self.address_comments.push(statement.line.untranslated(
                "one hafront instance serves one address family: make a second instance",
            ));
            return;
        }
        let mut options = statement.words[1..].iter();
        let mut dropped = Vec::new();
        while let Some(option) = options.next() {
            match option.as_str() {
                "dev" => {
                    let device = options.next().map(String::as_str);
                    if device.is_some() && device != self.interface.as_deref() {
                        self.address_comments.push(statement.line.untranslated(
                            "hafront adds virtual addresses to the instance's interface only",
                        ));
                        return;
                    }
                }
                "label" | "scope" | "brd" | "broadcast" | "preferred_lft" => {
                    options.next();
                    dropped.push(option.as_str());
                }
                other => dropped.push(other),
            }
        }
        if !dropped.is_empty() {
            self.address_comments
                .push(statement.line.untranslated(format!(
                    "the address is translated, not its options ({})",
                    dropped.join(", ")
                )));
        }
        if self.addresses.iter().any(|(known, _)| *known == ip) {
            self.address_comments.push(
                statement
                    .line
                    .untranslated("this address is listed already"),
            );
            return;
        }
        self.addresses.push((ip, prefix));
    }

    /// Adds a tracked item with keepalived's `weight`: negative subtracts
    /// while down, positive adds while up (so the priority is raised by it
    /// and it is subtracted while down), 0 means FAULT.
    fn add_track(&mut self, statement: &Statement, mut item: Item, weight: i32) {
        if weight != 0 {
            let magnitude = weight.unsigned_abs().min(255);
            if weight > 0 {
                self.bonus += magnitude;
            }
            item.fields
                .push(("weight".to_owned(), magnitude.to_string()));
        } else {
            item.comments.push(
                statement
                    .line
                    .note("no weight: FAULT while down, as in keepalived"),
            );
        }
        self.track.push(item);
    }
}

/// The weight of a tracked item: `weight N` on its line, else `default`.
fn track_weight(statement: &Statement, default: i32) -> Result<i32, &'static str> {
    match statement.words.get(1).map(String::as_str) {
        None => Ok(default),
        Some("weight") => {
            if statement.words.get(3).map(String::as_str) == Some("reverse") {
                return Err("`reverse` weights have no hafront equivalent");
            }
            statement
                .words
                .get(2)
                .and_then(|weight| weight.parse::<i32>().ok())
                .ok_or("the weight is not a number")
        }
        Some(_) => Err("only `weight N` is understood after the name"),
    }
}

/// `IP` or `IP/PREFIX`, with the host prefix when none is given.
fn ip_with_prefix(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = match text.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(prefix) => prefix.parse::<u8>().ok().filter(|&p| p <= max)?,
        None => max,
    };
    Some((ip, prefix))
}

/// An IP address and a port.
fn socket_address(ip: &str, port: &str) -> Option<SocketAddr> {
    let ip: IpAddr = ip.parse().ok()?;
    let port: u16 = port.parse().ok().filter(|&port| port > 0)?;
    Some(SocketAddr::new(ip, port))
}

/// A name safe in a file name.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_host_prefix_when_none_is_given() {
        assert_eq!(
            ip_with_prefix("10.0.0.1"),
            Some(("10.0.0.1".parse().unwrap(), 32))
        );
        assert_eq!(
            ip_with_prefix("10.0.0.1/24"),
            Some(("10.0.0.1".parse().unwrap(), 24))
        );
        assert_eq!(
            ip_with_prefix("fe80::1"),
            Some(("fe80::1".parse().unwrap(), 128))
        );
        assert_eq!(ip_with_prefix("10.0.0.1/33"), None);
        assert_eq!(ip_with_prefix("eth0"), None);
    }
}

/// No line of a real configuration is dropped silently: each statement is
/// either of a kind the translation carries or named by a comment.
#[cfg(test)]
mod silence {
    use super::*;

    /// Keywords whose statements the translation carries (when valid).
    const CARRIED: &[&str] = &[
        "global_defs",
        "notification_email",
        "notification_email_from",
        "smtp_server",
        "smtp_connect_timeout",
        "router_id",
        "vrrp_version",
        "enable_script_security",
        "vrrp_instance",
        "state",
        "interface",
        "virtual_router_id",
        "priority",
        "advert_int",
        "version",
        "nopreempt",
        "preempt",
        "accept",
        "preempt_delay",
        "authentication",
        "auth_type",
        "auth_pass",
        "virtual_ipaddress",
        "unicast_peer",
        "track_interface",
        "track_script",
        "notify",
        "smtp_alert",
        "garp_master_repeat",
        "garp_master_refresh",
        "garp_interval",
        "vrrp_script",
        "script",
        "interval",
        "timeout",
        "weight",
        "rise",
        "fall",
        "virtual_server",
        "delay_loop",
        "lb_algo",
        "lvs_sched",
        "lb_kind",
        "lvs_method",
        "protocol",
        "real_server",
        "sorry_server",
        "TCP_CHECK",
        "HTTP_GET",
        "MISC_CHECK",
        "url",
        "path",
        "status_code",
        "connect_timeout",
        "retry",
        "nb_get_retry",
        "misc_path",
        "misc_timeout",
        "virtualhost",
        "inhibit_on_failure",
    ];

    /// Blocks whose lines are values (addresses, names), not statements.
    const VALUE_BLOCKS: &[&str] = &[
        "notification_email",
        "virtual_ipaddress",
        "unicast_peer",
        "track_interface",
        "track_script",
    ];

    fn silent(statements: &[Statement], in_values: bool, yaml: &str, found: &mut Vec<String>) {
        for statement in statements {
            let named = yaml.contains(&format!(
                "{}:{}: ",
                statement.line.file, statement.line.number
            ));
            if !in_values && !named && !CARRIED.contains(&statement.keyword()) {
                found.push(format!("{}:{}", statement.line.file, statement.line.number));
            }
            if !named || statement.block.is_none() {
                silent(
                    statement.children(),
                    VALUE_BLOCKS.contains(&statement.keyword()),
                    yaml,
                    found,
                );
            }
        }
    }

    #[test]
    fn every_line_of_the_samples_is_translated_or_named() {
        let directory =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples/keepalived");
        let mut checked = 0;
        for entry in std::fs::read_dir(directory).expect("the samples directory") {
            let path = entry.expect("a directory entry").path();
            let statements = super::super::parse::read(&path).expect("parse").statements;
            let yaml = translate(&path.display().to_string(), &statements).render();
            let mut found = Vec::new();
            silent(&statements, false, &yaml, &mut found);
            assert!(
                found.is_empty(),
                "lines dropped silently: {found:?}\n{yaml}"
            );
            checked += 1;
        }
        assert!(checked >= 10);
    }
}
