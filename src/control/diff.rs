//! What a reload would change: the named sections of two configurations
//! compared entry by entry.

use std::collections::BTreeMap;
use std::fmt;

use hafront_config::Config;
use serde::{Deserialize, Serialize};

/// The part of the configuration a change concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// `global:` (node name, paths, logging, control socket, metrics).
    Global,
    /// An entry of `checks:`.
    Check,
    /// An entry of `pools:`.
    Pool,
    /// An entry of `relays:`.
    Relay,
    /// An entry of `vrrp.instances:`.
    Instance,
    /// `alerts:`.
    Alerts,
    /// `notify:`.
    Notify,
    /// `quorum:` (applies at the next restart).
    Quorum,
}

/// How an entry changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Present only in the new configuration.
    Added,
    /// Present only in the running configuration.
    Removed,
    /// Present in both, with different settings.
    Changed,
}

/// One difference between the running and the new configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What kind of entry.
    pub section: Section,
    /// The entry's name (empty for the unnamed sections).
    pub name: String,
    /// Added, removed or changed.
    pub action: Action,
}

impl fmt::Display for Change {
    /// `+ relay read`, `- pool old`, `~ check mysql`, `~ alerts`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.action {
            Action::Added => '+',
            Action::Removed => '-',
            Action::Changed => '~',
        };
        let section = match self.section {
            Section::Global => "global",
            Section::Check => "check",
            Section::Pool => "pool",
            Section::Relay => "relay",
            Section::Instance => "instance",
            Section::Alerts => "alerts",
            Section::Notify => "notify",
            Section::Quorum => "quorum",
        };
        if self.name.is_empty() {
            write!(f, "{sign} {section}")
        } else {
            write!(f, "{sign} {section} {}", self.name)
        }
    }
}

/// Every difference between `running` and `new`, section by section, names
/// in order.
pub fn diff(running: &Config, new: &Config) -> Vec<Change> {
    let mut changes = Vec::new();
    unnamed(&mut changes, Section::Global, &running.global, &new.global);
    named(&mut changes, Section::Check, &running.checks, &new.checks);
    named(&mut changes, Section::Pool, &running.pools, &new.pools);
    named(&mut changes, Section::Relay, &running.relays, &new.relays);
    named(
        &mut changes,
        Section::Instance,
        &running.vrrp.instances,
        &new.vrrp.instances,
    );
    unnamed(&mut changes, Section::Alerts, &running.alerts, &new.alerts);
    unnamed(&mut changes, Section::Notify, &running.notify, &new.notify);
    unnamed(&mut changes, Section::Quorum, &running.quorum, &new.quorum);
    changes
}

fn unnamed<T: PartialEq>(changes: &mut Vec<Change>, section: Section, running: &T, new: &T) {
    if running != new {
        changes.push(Change {
            section,
            name: String::new(),
            action: Action::Changed,
        });
    }
}

fn named<T: PartialEq>(
    changes: &mut Vec<Change>,
    section: Section,
    running: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
) {
    let mut names: Vec<&String> = running.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let action = match (running.get(name), new.get(name)) {
            (None, Some(_)) => Action::Added,
            (Some(_), None) => Action::Removed,
            (Some(old), Some(new)) if old != new => Action::Changed,
            _ => continue,
        };
        changes.push(Change {
            section,
            name: name.clone(),
            action,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        hafront_config::parse(text, "test.yaml").expect("valid test config")
    }

    const BASE: &str = "checks:
  tcp: { kind: tcp }
pools:
  db:
    check: tcp
    servers: [{ address: 127.0.0.1:3306 }]
relays:
  keep:
    listen: [127.0.0.1:7000]
    pool: db
  gone:
    listen: [127.0.0.1:7001]
    pool: db
";

    #[test]
    fn reports_added_removed_and_changed_entries_only() {
        let running = parse(BASE);
        let new = parse(
            "checks:
  tcp: { kind: tcp, interval: 5s }
pools:
  db:
    check: tcp
    servers: [{ address: 127.0.0.1:3306 }]
relays:
  keep:
    listen: [127.0.0.1:7000]
    pool: db
  fresh:
    listen: [127.0.0.1:7002]
    pool: db
",
        );
        let shown: Vec<String> = diff(&running, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["~ check tcp", "+ relay fresh", "- relay gone"]);
    }

    #[test]
    fn a_changed_quorum_section_is_one_change() {
        let with = |ttl: &str| {
            parse(&format!(
                "{BASE}quorum: {{endpoints: [http://10.0.0.5:2379], ttl: {ttl}}}\n"
            ))
        };
        let shown: Vec<String> = diff(&with("2s"), &with("3s"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["~ quorum"]);
        assert!(diff(&with("2s"), &with("2s")).is_empty());
    }

    #[test]
    fn identical_configurations_differ_in_nothing() {
        assert!(diff(&parse(BASE), &parse(BASE)).is_empty());
    }
}
