//! A backend's health check: from `option mysql-check`, `redis-check`,
//! `httpchk` (with `http-check` rules) or `tcp-check` (a Redis conversation
//! becomes a role check), timed by its servers' `inter`, `rise` and `fall`.

use std::time::Duration;

use super::{Directive, Section, haproxy_duration};
use crate::SECRETS_DIR;
use crate::source::Line;
use crate::yaml::{Document, Entry, Value, duration, string};

/// A server's check timing: `inter`, `rise` and `fall`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Timing {
    /// Time between two checks.
    pub inter: Duration,
    /// Successes that bring a server up.
    pub rise: u32,
    /// Failures that take a server down.
    pub fall: u32,
}

impl Default for Timing {
    /// HAProxy's defaults.
    fn default() -> Self {
        Timing {
            inter: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

/// The health check of a backend, from its options and check rules.
pub(super) struct CheckPlan {
    /// The check.
    pub entry: Entry,
    /// The role relays to the pool take, from a role-checking tcp-check.
    pub role: Option<&'static str>,
}

/// The check of a backend, from its check options and rules, with the
/// timing of its servers' `check` (`None` when no server has `check`), and
/// the first server parameter sending checks to another port or address.
pub(super) fn check_plan(
    pool: &str,
    section: &Section,
    directives: &[(&Directive, bool)],
    timing: Option<Timing>,
    check_elsewhere: Option<(String, Line)>,
    document: &mut Document,
) -> CheckPlan {
    let mut entry = Entry::default();
    let mut role = None;
    let mut check_timeout = None;
    let mut option: Option<&Directive> = None;
    let mut tcp_rules = Vec::new();
    let mut http_rules = Vec::new();
    for (directive, _) in directives {
        match (directive.keyword(), directive.arg(0)) {
            ("option", Some("tcp-check" | "mysql-check" | "redis-check" | "httpchk")) => {
                option = Some(directive)
            }
            (
                "option",
                Some(
                    "ssl-hello-chk" | "smtpchk" | "ldap-check" | "pgsql-check" | "spop-check"
                    | "external-check",
                ),
            ) => option = Some(directive),
            ("tcp-check", _) => tcp_rules.push(*directive),
            ("http-check", _) => http_rules.push(*directive),
            ("timeout", Some("check")) => {
                check_timeout = directive.arg(1).and_then(haproxy_duration)
            }
            _ => {}
        }
    }
    if timing.is_none() {
        entry.comments.push(section.line.note(
            "no server has `check` (HAProxy never checks them): a TCP connect check, the lightest",
        ));
        entry.scalar("kind", "tcp");
    } else if let Some((parameter, line)) = check_elsewhere {
        entry.comments.push(line.untranslated(format!(
            "`{parameter}` checks another port or address than the server's, which hafront \
             cannot: a TCP connect to the server itself is used instead (an exec check can \
             run your own probe)"
        )));
        for replaced in option.iter().chain(&tcp_rules).chain(&http_rules) {
            entry.comments.push(replaced.line.untranslated(format!(
                "replaced by a TCP connect check (`{parameter}` above)"
            )));
        }
        entry.scalar("kind", "tcp");
    } else {
        match option.map(|o| (o, o.arg(0).unwrap_or(""))) {
            None => entry.scalar("kind", "tcp"),
            Some((directive, "mysql-check")) => match (directive.arg(1), directive.arg(2)) {
                (Some("user"), Some(user)) => {
                    entry.comments.push(directive.line.note(
                        "hafront's mysql check logs in as this user (no password, as HAProxy's) and pings",
                    ));
                    entry.scalar("kind", "mysql");
                    entry.scalar("user", string(user));
                }
                _ => {
                    entry.comments.push(directive.line.untranslated(
                        "without a user hafront's mysql check cannot log in: a TCP connect check is \
                         used; add `user:` and kind: mysql",
                    ));
                    entry.scalar("kind", "tcp");
                }
            },
            Some((_, "redis-check")) => entry.scalar("kind", "redis"),
            Some((directive, "httpchk")) => {
                let mut path = match directive.words.len() {
                    3 => directive.arg(1),
                    n if n >= 4 => directive.arg(2),
                    _ => None,
                }
                .unwrap_or("/")
                .to_owned();
                let method = match directive.words.len() {
                    n if n >= 4 => directive.arg(1),
                    // `option httpchk` alone sends OPTIONS /.
                    2 => Some("OPTIONS"),
                    _ => None,
                };
                if let Some(method) = method.filter(|method| *method != "GET") {
                    entry.comments.push(
                        directive
                            .line
                            .untranslated(format!("hafront's http check sends GET, not {method}")),
                    );
                }
                let mut host = None;
                let mut status = None;
                // Rules inherited from defaults are commented in each backend
                // using them: those lines are not commented elsewhere.
                for rule in &http_rules {
                    let words = &rule.words[1..];
                    match words.first().map(String::as_str) {
                        Some("send") => {
                            let mut parts = words[1..].iter();
                            while let Some(part) = parts.next() {
                                match (part.as_str(), parts.next()) {
                                    ("uri", Some(uri)) => path = uri.clone(),
                                    ("hdr", Some(header))
                                        if header.eq_ignore_ascii_case("host") =>
                                    {
                                        host = parts.next().cloned()
                                    }
                                    ("hdr", Some(_)) => {
                                        parts.next();
                                    }
                                    ("meth" | "ver", _) => {}
                                    _ => entry.comments.push(rule.line.untranslated(
                                        "only the uri and the Host header are translated",
                                    )),
                                }
                            }
                        }
                        Some("expect") if words.get(1).map(String::as_str) == Some("status") => {
                            match words.get(2) {
                                Some(code)
                                    if code
                                        .parse::<u16>()
                                        .is_ok_and(|c| (100..=599).contains(&c)) =>
                                {
                                    status = Some(code.clone())
                                }
                                _ => entry.comments.push(
                                    rule.line
                                        .untranslated("hafront accepts one status code or range"),
                                ),
                            }
                        }
                        _ => entry
                            .comments
                            .push(rule.line.untranslated(
                                "hafront's http check looks at the status code only",
                            )),
                    }
                }
                entry.scalar("kind", "http");
                if !path.starts_with('/') {
                    entry.comments.push(
                        directive.line.untranslated(format!(
                            "{path} is not a path starting with /: / is used"
                        )),
                    );
                    path = "/".to_owned();
                }
                entry.scalar("path", string(&path));
                if let Some(host) = host {
                    entry.scalar("host", string(&host));
                }
                if let Some(status) = status {
                    entry.scalar("expect_status", string(&status));
                }
            }
            Some((_, "tcp-check")) => {
                role = tcp_check(pool, &tcp_rules, &mut entry, document);
            }
            // The option itself is commented as never translated.
            Some(_) => entry.scalar("kind", "tcp"),
        }
    }
    let Timing { inter, rise, fall } = timing.unwrap_or_default();
    entry.scalar("interval", duration(inter));
    let timeout = check_timeout
        .filter(|t| !t.is_zero() && *t < inter)
        .unwrap_or(inter);
    entry.scalar("timeout", duration(timeout));
    entry.scalar("rise", rise.to_string());
    entry.scalar("fall", fall.to_string());
    CheckPlan { entry, role }
}

/// Translates `tcp-check` rules: a Redis conversation (PING, AUTH, INFO
/// replication with `role:master`/`role:slave`, QUIT) becomes a redis check;
/// anything else a TCP connect check with a comment per rule. Returns the
/// role relays to this pool take.
fn tcp_check(
    pool: &str,
    rules: &[&Directive],
    entry: &mut Entry,
    document: &mut Document,
) -> Option<&'static str> {
    let mut redis = false;
    let mut role = None;
    let mut password = None;
    let mut username = None;
    let mut unknown = Vec::new();
    for rule in rules {
        let words: Vec<&str> = rule.words[1..].iter().map(String::as_str).collect();
        let payload = |index: usize| {
            words[index..]
                .join(" ")
                .trim_end_matches(['\r', '\n'])
                .to_owned()
        };
        match words.first().copied() {
            Some("comment") => {}
            Some("connect") if words.len() == 1 => {}
            Some("send" | "send-lf") if words.len() > 1 => {
                let sent = payload(1);
                let upper = sent.to_ascii_uppercase();
                let mut parts = sent.split_whitespace();
                if upper == "PING" || upper == "QUIT" || upper == "INFO REPLICATION" {
                    redis = true;
                } else if upper.starts_with("AUTH ") {
                    redis = true;
                    parts.next();
                    match (parts.next(), parts.next()) {
                        (Some(user), Some(_)) => {
                            username = Some(user.to_owned());
                            password = Some(rule.line.clone());
                        }
                        (Some(_), None) => password = Some(rule.line.clone()),
                        _ => unknown.push(*rule),
                    }
                } else {
                    unknown.push(*rule);
                }
            }
            Some("expect") if words.len() > 2 && words[1] == "string" => {
                match payload(2).as_str() {
                    "+PONG" | "+OK" => redis = true,
                    "role:master" => {
                        redis = true;
                        role = Some("primary");
                    }
                    "role:slave" | "role:replica" => {
                        redis = true;
                        role = Some("replica");
                    }
                    _ => unknown.push(*rule),
                }
            }
            _ => unknown.push(*rule),
        }
    }
    for rule in &unknown {
        let why = if redis {
            "hafront's redis check sends PING (and ROLE with `role: true`), not custom commands"
        } else {
            "hafront has no scripted TCP check: a TCP connect check is used instead"
        };
        entry.comments.push(rule.line.untranslated(why));
    }
    if !redis {
        entry.scalar("kind", "tcp");
        return None;
    }
    entry.scalar("kind", "redis");
    if let Some(username) = username {
        entry.scalar("username", string(&username));
    }
    if let Some(line) = password {
        let file = format!(
            "{SECRETS_DIR}/redis-{}.pass",
            pool.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_"
            )
        );
        entry.comments.push(line.note(format!(
            "the password is not copied here: write it to {file}, readable by root only: \
             install -d -m 700 {SECRETS_DIR} && printf '%s\\n' 'PASSWORD' | install -m 600 /dev/stdin {file}"
        )));
        entry.set(
            "password",
            Value::Map(vec![("file".to_owned(), string(&file))]),
        );
        document.secret_files.push(file);
    }
    if role.is_some() {
        entry.scalar("role", "true");
    }
    role
}
