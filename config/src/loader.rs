//! Reading the YAML into a [`Config`], one section or named entry at a time,
//! so that a mistake in one entry does not hide the mistakes in the others.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::MessageFormatter;

use crate::document::{Document, Shape};
use crate::error::{ConfigError, KeyPath, Position, Segment};
use crate::recover::{Repair, Repairing, Repairs, starts_with};
use crate::schema::{Alerts, Config, Global, Quorum, Vrrp};

/// The top-level sections, in the order they are documented: every field
/// of [`Config`].
const SECTIONS: &[&str] = &[
    "global", "checks", "pools", "relays", "vrrp", "alerts", "notify", "quorum",
];

/// Deserializes `text` (already outlined as `document`) into a [`Config`].
///
/// Sections and named entries are read independently, and an entry with a
/// mistake is read again without the wrong value (see [`crate::recover`]),
/// so that one error does not hide the next. Entries that still fail are
/// left out of the returned config; every error is pushed to `errors`.
/// Also returns the paths of the values left out or stood in for, whose
/// defaults or stand-ins later checks must not report on. The caller must
/// not use the config as complete when errors were pushed.
pub(crate) fn read_config(
    text: &str,
    document: &Document,
    file: &str,
    errors: &mut Vec<ConfigError>,
) -> (Config, Vec<KeyPath>) {
    let mut reader = Reader {
        text,
        document,
        file,
        errors,
        repaired: Vec::new(),
    };
    let root = document.root();
    if !matches!(root.shape, Shape::Mapping(_)) {
        reader.report(
            root.position,
            KeyPath::root(),
            format!("expected a mapping of sections ({})", SECTIONS.join(", ")),
        );
    }
    if matches!(&root.shape, Shape::Mapping(entries) if entries.is_empty()) {
        reader.report(
            root.position,
            KeyPath::root(),
            format!(
                "the file configures nothing; write at least one of the sections {} \
                 (examples/ has a file for each deployment)",
                SECTIONS.join(", ")
            ),
        );
    }
    for (key, position, first) in document.duplicates() {
        reader.report(
            position,
            key,
            format!(
                "given twice in the same mapping; the first, on line {}, is the one read: \
                 remove one",
                first.line
            ),
        );
    }
    for entry in root.entries() {
        if !SECTIONS.contains(&entry.key.as_str()) {
            reader.report(
                entry.key_position,
                KeyPath::root().key(&entry.key),
                format!("unknown key, expected one of {}", SECTIONS.join(", ")),
            );
        }
    }
    // Reports keys other than `instances`; the instances are read one by one.
    reader.read::<VrrpOutline>(&KeyPath::root().key("vrrp"));
    let config = Config {
        global: reader
            .read::<Global>(&KeyPath::root().key("global"))
            .unwrap_or_default(),
        checks: reader.read_named(&KeyPath::root().key("checks")),
        pools: reader.read_named(&KeyPath::root().key("pools")),
        relays: reader.read_named(&KeyPath::root().key("relays")),
        vrrp: Vrrp {
            instances: reader.read_named(&KeyPath::root().key("vrrp").key("instances")),
        },
        alerts: reader
            .read::<Alerts>(&KeyPath::root().key("alerts"))
            .unwrap_or_default(),
        notify: reader.read_listed(&KeyPath::root().key("notify")),
        quorum: reader.read::<Quorum>(&KeyPath::root().key("quorum")),
    };
    (config, reader.repaired)
}

/// Most readings of one entry: each reading gets one mistake further.
const MAX_READINGS: usize = 64;

/// The `vrrp:` section without its instances, which are read one by one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VrrpOutline {
    #[serde(default)]
    #[allow(dead_code, reason = "read only to check that instances is a mapping")]
    instances: BTreeMap<String, IgnoredAny>,
}

struct Reader<'a> {
    text: &'a str,
    document: &'a Document,
    file: &'a str,
    errors: &'a mut Vec<ConfigError>,
    /// Values left out or stood in for after their errors were reported.
    repaired: Vec<KeyPath>,
}

/// What a parse error concerns: where, which key, and what to say.
struct Located {
    position: Position,
    key: KeyPath,
    message: String,
}

impl Reader<'_> {
    fn report(&mut self, position: Position, key: KeyPath, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            position: Some(position),
            key,
            message,
        });
    }

    /// The mapping a "missing field" error at `position` concerns: the
    /// innermost mapping under `within` that starts there (the parser points
    /// at a flow mapping's `{` or a block mapping's first key).
    fn mapping_at(&self, within: &KeyPath, position: Position) -> KeyPath {
        let innermost = self.document.path_at(within, position);
        let mut candidate = Some(innermost.clone());
        while let Some(path) = candidate {
            if let Some(node) = self.document.get(&path)
                && matches!(node.shape, Shape::Mapping(_))
                && node.position == position
            {
                return path;
            }
            candidate = path.parent();
        }
        innermost.parent().unwrap_or(innermost)
    }

    /// Reads the value at `path`; `None` if it is absent or wrong. Each
    /// mistake is reported, and the value read again without the wrong key
    /// (left out, or an empty stand-in for a required one) until it reads
    /// or a mistake cannot be stepped over.
    fn read<T: for<'de> Deserialize<'de>>(&mut self, path: &KeyPath) -> Option<T> {
        self.document.get(path)?;
        let mut repairs = Repairs::default();
        for _ in 0..MAX_READINGS {
            let error = match self.deserialize::<T>(path, &repairs) {
                Ok(value) => {
                    // A list missing an item is not checked as a whole
                    // either (it may now be empty).
                    self.repaired.extend(repairs.into_paths().map(|path| {
                        match path.segments().last() {
                            Some(Segment::Index(_)) => path.parent().unwrap_or(path),
                            _ => path,
                        }
                    }));
                    return value;
                }
                Err(error) => error,
            };
            if repairs.take_stand_in_refused() {
                break;
            }
            let located = self.locate(path, &error, &repairs);
            if repairs.covers(&located.key) {
                // A consequence of a repair, not a new mistake: a required
                // key left out is now missing; stand in for it instead.
                if repairs.get(&located.key) == Some(Repair::Drop) {
                    repairs.insert(located.key, Repair::StandIn);
                    continue;
                }
                break;
            }
            let key = located.key.clone();
            self.report(located.position, located.key, located.message);
            let inside = key != *path && starts_with(&key, path);
            if !inside || self.document.get(&key).is_none() {
                break;
            }
            repairs.insert(key, Repair::Drop);
        }
        None
    }

    /// One reading of the value at `path` with `repairs` applied.
    fn deserialize<T: for<'de> Deserialize<'de>>(
        &self,
        path: &KeyPath,
        repairs: &Repairs,
    ) -> Result<Option<T>, serde_saphyr::Error> {
        let seed = Pick::<T> {
            path: path.segments(),
            at: path,
            repairs,
            target: PhantomData,
        };
        // Duplicate keys are reported from the document; the first counts.
        let mut options = serde_saphyr::Options::default();
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::FirstWins;
        options.strict_booleans = true;
        serde_saphyr::with_deserializer_from_str_with_options(self.text, options, |deserializer| {
            seed.deserialize(deserializer)
        })
    }

    /// Where a parse error within `within` is and which key it concerns.
    fn locate(&self, within: &KeyPath, error: &serde_saphyr::Error, repairs: &Repairs) -> Located {
        let position = error.location().map(|location| Position {
            line: location.line(),
            column: location.column(),
        });
        let message = parse_error_message(error);
        if let Some(position) = position
            && let Some(field) = quoted_field(&message, "missing field `")
        {
            let mapping = self.mapping_at(within, position);
            // `user:` with no value reads as absent: point at the key.
            if let Some(entry) = self.document.get(&mapping).and_then(|m| m.entry(field)) {
                let message =
                    message.replacen(&format!("missing field `{field}`"), "needs a value", 1);
                return Located {
                    position: entry.key_position,
                    key: mapping.key(field),
                    message,
                };
            }
            return Located {
                position,
                key: mapping,
                message,
            };
        }
        let key = match position {
            Some(position) => self.document.path_at(within, position),
            None => within.clone(),
        };
        // The parser may only know where the enclosing mapping starts, or
        // nothing at all; find the unknown key itself.
        if let Some(unknown) = quoted_field(&message, "unknown field `")
            && let Some((key, position)) = self.unknown_key(&key, within, unknown, repairs)
        {
            return Located {
                position,
                key,
                message,
            };
        }
        let position = position.unwrap_or_else(|| self.document.value_position(within));
        Located {
            position,
            key,
            message,
        }
    }

    /// The path and position of the key `name` an "unknown field" error
    /// concerns: at or directly under `near`, else the first such key under
    /// `within` not yet repaired.
    fn unknown_key(
        &self,
        near: &KeyPath,
        within: &KeyPath,
        name: &str,
        repairs: &Repairs,
    ) -> Option<(KeyPath, Position)> {
        let entry_of = |path: &KeyPath| {
            let parent = path.parent()?;
            let entry = self.document.get(&parent)?.entry(name)?;
            (path.segments().last() == Some(&Segment::Key(name.to_owned())))
                .then_some((path.clone(), entry.key_position))
        };
        if let Some(found) = entry_of(near).or_else(|| entry_of(&near.key(name))) {
            return Some(found);
        }
        let mut pending = vec![within.clone()];
        while let Some(path) = pending.pop() {
            let node = self.document.get(&path)?;
            if let Some(entry) = node.entry(name)
                && !repairs.covers(&path.key(name))
            {
                return Some((path.key(name), entry.key_position));
            }
            match &node.shape {
                Shape::Mapping(entries) => {
                    pending.extend(entries.iter().rev().map(|entry| path.key(&entry.key)));
                }
                Shape::Sequence(items) => {
                    pending.extend((0..items.len()).rev().map(|index| path.index(index)));
                }
                Shape::Scalar => {}
            }
        }
        None
    }

    /// Reads the mapping of named entries at `path`, each entry on its own.
    fn read_named<T: for<'de> Deserialize<'de>>(&mut self, path: &KeyPath) -> BTreeMap<String, T> {
        let Some(names) = self.read::<BTreeMap<String, IgnoredAny>>(path) else {
            return BTreeMap::new();
        };
        names
            .into_keys()
            .filter_map(|name| {
                let value = self.read(&path.key(&name))?;
                Some((name, value))
            })
            .collect()
    }

    /// Reads the sequence at `path`, each item on its own.
    fn read_listed<T: for<'de> Deserialize<'de>>(&mut self, path: &KeyPath) -> Vec<T> {
        let Some(items) = self.read::<Vec<IgnoredAny>>(path) else {
            return Vec::new();
        };
        (0..items.len())
            .filter_map(|index| self.read(&path.index(index)))
            .collect()
    }
}

/// The key named by serde's "unknown field `KEY`, expected ..." or
/// "missing field `KEY`" message, given the part before the key.
fn quoted_field<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    let (field, _) = rest.split_once('`')?;
    Some(field)
}

/// The parser's message for `error`, without its location suffix and with
/// control characters escaped.
pub(crate) fn parse_error_message(error: &serde_saphyr::Error) -> String {
    let message = match error.without_snippet() {
        serde_saphyr::Error::MultipleDocuments { .. } => {
            "a second YAML document starts here (a `---` line after the first); \
             a configuration is one document: remove the `---` or split the file"
                .to_owned()
        }
        serde_saphyr::Error::Unexpected { expected, .. } => match *expected {
            "sequence start" => "expected a list, such as [a, b]".to_owned(),
            "mapping start" => {
                "expected a mapping of keys to values, such as {key: value}".to_owned()
            }
            "string scalar" => {
                "expected a single value, such as a name, not a list or mapping".to_owned()
            }
            other => format!("expected {other}"),
        },
        _ => match serde_saphyr::DefaultMessageFormatter.format_message(error) {
            message if message == "invalid boolean" => "expected true or false".to_owned(),
            // YAML 1.1's yes/no/on/off/y/n are not booleans here, so that a relay or pool
            // named `on` or `y` keeps its name.
            message if message.starts_with("invalid boolean (strict mode") => {
                "expected true or false (yes, no, on and off are not booleans in hafront's \
                 YAML)"
                    .to_owned()
            }
            message => plain_invalid_type(&message).unwrap_or_else(|| message.into_owned()),
        },
    };
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// serde's "invalid type: sequence, expected X" as "expected X, not a list".
fn plain_invalid_type(message: &str) -> Option<String> {
    let (found, expected) = message
        .strip_prefix("invalid type: ")?
        .split_once(", expected ")?;
    let found = match found {
        "sequence" => "a list",
        "map" => "a mapping",
        "unit value" => "an empty value",
        other => other,
    };
    Some(format!("expected {expected}, not {found}"))
}

/// Deserializes only the value at `path`, skipping everything else, and
/// applies `repairs` inside it.
struct Pick<'p, T> {
    /// The steps still to take.
    path: &'p [Segment],
    /// The whole path of the value.
    at: &'p KeyPath,
    repairs: &'p Repairs,
    target: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Pick<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        match self.path.split_first() {
            None if self.repairs.is_empty() => T::deserialize(deserializer).map(Some),
            None => T::deserialize(Repairing::new(deserializer, self.at.clone(), self.repairs))
                .map(Some),
            Some((Segment::Key(_), _)) => deserializer.deserialize_map(self),
            Some((Segment::Index(_), _)) => deserializer.deserialize_seq(self),
        }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Pick<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.first() {
            Some(Segment::Index(_)) => f.write_str("a sequence"),
            _ => f.write_str("a mapping"),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        };
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if &key == wanted && found.is_none() {
                found = map.next_value_seed(Pick::<T> { path: rest, ..self })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(None);
            }
        }
        let found = seq
            .next_element_seed(Pick::<T> { path: rest, ..self })?
            .flatten();
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(found)
    }
}
