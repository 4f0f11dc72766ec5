//! The hafront configuration being written: sections of named entries whose
//! fields are already-rendered YAML scalars, each entry and field with the
//! comments (untranslated source lines, notes) that go before it.

use std::fmt::Write;
use std::time::Duration;

use crate::source::Comment;

/// A field value, rendered in YAML flow style.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// One scalar, already quoted as needed.
    Scalar(String),
    /// A flow sequence of scalars: `[a, b]`.
    List(Vec<String>),
    /// A flow mapping: `{ file: /path }`.
    Map(Vec<(String, String)>),
    /// A block sequence of flow mappings, each with its own comments.
    Items(Vec<Item>),
}

/// One element of a [`Value::Items`] list.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Item {
    /// Comments written above the element.
    pub comments: Vec<Comment>,
    /// The element's keys and rendered values.
    pub fields: Vec<(String, String)>,
}

/// One key of an entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    comments: Vec<Comment>,
    key: String,
    value: Value,
}

/// A named entry of a section (a check, a pool, a VRRP instance), or an
/// element of the `notify` list.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Entry {
    /// Comments written above the entry.
    pub comments: Vec<Comment>,
    fields: Vec<Field>,
    /// Comments kept for the next field added.
    pending: Vec<Comment>,
}

impl Entry {
    /// Adds `key: value`, with the comments gathered since the last field.
    pub fn set(&mut self, key: &str, value: Value) {
        self.fields.push(Field {
            comments: std::mem::take(&mut self.pending),
            key: key.to_owned(),
            value,
        });
    }

    /// Adds `key: scalar`.
    pub fn scalar(&mut self, key: &str, scalar: impl Into<String>) {
        self.set(key, Value::Scalar(scalar.into()));
    }

    /// An entry with `comments` above it and no field yet.
    pub fn with_comments(comments: Vec<Comment>) -> Self {
        Entry {
            comments,
            ..Entry::default()
        }
    }

    /// Every comment of the entry (above it, its fields and their items),
    /// for an entry that is not written after all.
    pub fn into_comments(self) -> Vec<Comment> {
        entry_comments(&self).into_iter().cloned().collect()
    }

    /// Writes `comment` above the next field (or at the end of the entry).
    pub fn comment(&mut self, comment: Comment) {
        self.pending.push(comment);
    }
}

/// The whole output document, in the order hafront's examples use.
#[derive(Debug, Default)]
pub(crate) struct Document {
    /// Comments at the top: the source, then lines that belong nowhere else.
    pub header: Vec<Comment>,
    /// `global:` keys.
    pub global: Entry,
    /// `checks:` by name.
    pub checks: Vec<(String, Entry)>,
    /// `pools:` by name.
    pub pools: Vec<(String, Entry)>,
    /// `relays:` by name.
    pub relays: Vec<(String, Entry)>,
    /// `vrrp.instances:` by name.
    pub instances: Vec<(String, Entry)>,
    /// `alerts.email`, if any.
    pub email: Option<Entry>,
    /// `notify:` elements.
    pub notify: Vec<Entry>,
    /// Secret files the output names, which the user must create.
    pub secret_files: Vec<String>,
}

impl Document {
    /// Whether anything besides comments was translated.
    pub fn configures_something(&self) -> bool {
        !self.global.fields.is_empty()
            || !self.checks.is_empty()
            || !self.pools.is_empty()
            || !self.relays.is_empty()
            || !self.instances.is_empty()
            || self.email.is_some()
            || !self.notify.is_empty()
    }

    /// Every comment of the document, in no particular order.
    pub fn comments(&self) -> Vec<&Comment> {
        let mut all: Vec<&Comment> = self.header.iter().collect();
        all.extend(entry_comments(&self.global));
        for (_, named) in self
            .checks
            .iter()
            .chain(&self.pools)
            .chain(&self.relays)
            .chain(&self.instances)
        {
            all.extend(entry_comments(named));
        }
        for unnamed in self.email.iter().chain(&self.notify) {
            all.extend(entry_comments(unnamed));
        }
        all
    }

    /// The document as YAML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        write_comments(&mut out, 0, &self.header);
        if !self.global.fields.is_empty() || !self.global.pending.is_empty() {
            out.push_str("\nglobal:\n");
            write_entry_body(&mut out, 2, &self.global);
        }
        write_section(&mut out, "checks", &self.checks);
        write_section(&mut out, "pools", &self.pools);
        write_section(&mut out, "relays", &self.relays);
        if !self.instances.is_empty() {
            out.push_str("\nvrrp:\n  instances:\n");
            for (name, entry) in &self.instances {
                write_named(&mut out, 4, name, entry);
            }
        }
        if let Some(email) = &self.email {
            out.push_str("\nalerts:\n");
            write_comments(&mut out, 2, &email.comments);
            out.push_str("  email:\n");
            write_entry_body(&mut out, 4, email);
        }
        if !self.notify.is_empty() {
            out.push_str("\nnotify:\n");
            for entry in &self.notify {
                write_comments(&mut out, 2, &entry.comments);
                let mut first = true;
                for field in &entry.fields {
                    write_comments(&mut out, 4, &field.comments);
                    let lead = if first { "  - " } else { "    " };
                    first = false;
                    let _ = writeln!(out, "{lead}{}: {}", key(&field.key), flow(&field.value));
                }
                write_comments(&mut out, 4, &entry.pending);
            }
        }
        out
    }
}

/// The comments of an entry, its fields and their items.
fn entry_comments(entry: &Entry) -> Vec<&Comment> {
    let mut found: Vec<&Comment> = entry.comments.iter().chain(&entry.pending).collect();
    for field in &entry.fields {
        found.extend(&field.comments);
        if let Value::Items(items) = &field.value {
            found.extend(items.iter().flat_map(|item| &item.comments));
        }
    }
    found
}

fn write_section(out: &mut String, name: &str, entries: &[(String, Entry)]) {
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{name}:");
    for (name, entry) in entries {
        write_named(out, 2, name, entry);
    }
}

fn write_named(out: &mut String, indent: usize, name: &str, entry: &Entry) {
    write_comments(out, indent, &entry.comments);
    let _ = writeln!(out, "{:indent$}{}:", "", key(name));
    write_entry_body(out, indent + 2, entry);
}

fn write_entry_body(out: &mut String, indent: usize, entry: &Entry) {
    for field in &entry.fields {
        write_comments(out, indent, &field.comments);
        match &field.value {
            Value::Items(items) => {
                let _ = writeln!(out, "{:indent$}{}:", "", key(&field.key));
                for item in items {
                    write_comments(out, indent + 2, &item.comments);
                    let _ = writeln!(out, "{:indent$}  - {}", "", flow_map(&item.fields));
                }
            }
            value => {
                let _ = writeln!(out, "{:indent$}{}: {}", "", key(&field.key), flow(value));
            }
        }
    }
    write_comments(out, indent, &entry.pending);
}

fn write_comments(out: &mut String, indent: usize, comments: &[Comment]) {
    for comment in comments {
        for line in comment.text().lines() {
            let _ = writeln!(out, "{:indent$}# {line}", "");
        }
    }
}

/// A value in flow style (items as a flow sequence of flow mappings).
fn flow(value: &Value) -> String {
    match value {
        Value::Scalar(scalar) => scalar.clone(),
        Value::List(list) => format!("[{}]", list.join(", ")),
        Value::Map(fields) => flow_map(fields),
        Value::Items(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|item| flow_map(&item.fields))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn flow_map(fields: &[(String, String)]) -> String {
    let inner: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}: {value}", key(name)))
        .collect();
    format!("{{ {} }}", inner.join(", "))
}

/// A mapping key, quoted when it would not read back as the same string.
fn key(name: &str) -> String {
    string(name)
}

/// A string as a YAML scalar: plain when that reads back as the same
/// string, double-quoted otherwise.
pub(crate) fn string(text: &str) -> String {
    let plain_chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./@:+".contains(c));
    let starts_well = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/');
    let reserved = matches!(
        text.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
    );
    let numeric = text.parse::<f64>().is_ok()
        || text.starts_with("0x")
        || text.starts_with("0o")
        || text.chars().all(|c| c.is_ascii_digit() || c == ':');
    if plain_chars && starts_well && !reserved && !numeric && !text.ends_with(':') {
        return text.to_owned();
    }
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\x{:02x}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A list of strings as scalars.
pub(crate) fn strings<S: AsRef<str>>(items: &[S]) -> Vec<String> {
    items.iter().map(|item| string(item.as_ref())).collect()
}

/// A duration as hafront reads it: `1s`, `250ms`, `2m`.
pub(crate) fn duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        "0s".to_owned()
    } else if millis % 3_600_000 == 0 {
        format!("{}h", millis / 3_600_000)
    } else if millis % 60_000 == 0 {
        format!("{}m", millis / 60_000)
    } else if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_would_read_back_differently_are_quoted() {
        assert_eq!(string("db-a"), "db-a");
        assert_eq!(string("192.0.2.1:3306"), "192.0.2.1:3306");
        assert_eq!(string("/usr/bin/x"), "/usr/bin/x");
        assert_eq!(string("yes"), "\"yes\"");
        assert_eq!(string("10"), "\"10\"");
        assert_eq!(string("1.5"), "\"1.5\"");
        assert_eq!(string("::1"), "\"::1\"");
        assert_eq!(string("a b"), "\"a b\"");
        assert_eq!(string("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(string(""), "\"\"");
    }

    #[test]
    fn durations_take_the_largest_whole_unit() {
        assert_eq!(duration(Duration::from_secs(120)), "2m");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::from_secs(3)), "3s");
        assert_eq!(duration(Duration::from_secs(7200)), "2h");
    }
}
