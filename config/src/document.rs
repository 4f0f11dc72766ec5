//! A located outline of the YAML document: the position of every key and
//! value, so problems found after deserialization can point into the file.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::error::{KeyPath, Position, Segment};

/// The outline of a parsed document.
pub(crate) struct Document {
    root: Node,
}

/// One node: where it starts and what it holds.
pub(crate) struct Node {
    /// Where the value starts.
    pub position: Position,
    /// Its shape.
    pub shape: Shape,
}

/// What a node holds; scalar values are not kept (they may be secrets).
pub(crate) enum Shape {
    /// A mapping with its keys in file order.
    Mapping(Vec<Entry>),
    /// A sequence.
    Sequence(Vec<Node>),
    /// A scalar, including null.
    Scalar,
}

/// One mapping entry.
pub(crate) struct Entry {
    /// The key as text.
    pub key: String,
    /// Where the key starts.
    pub key_position: Position,
    /// The value.
    pub value: Node,
}

impl Document {
    /// Parses `text`; fails on YAML syntax errors. Duplicate keys are kept
    /// (see [`Document::duplicates`]).
    pub fn parse(text: &str) -> Result<Self, serde_saphyr::Error> {
        let mut options = serde_saphyr::Options::default();
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
        options.strict_booleans = true;
        let root: Option<Spanned<Shape>> = serde_saphyr::from_str_with_options(text, options)?;
        let root = match root {
            Some(spanned) => node(spanned),
            // A file without a document, or with an empty one, is an empty config.
            None => Node {
                position: Position { line: 1, column: 1 },
                shape: Shape::Mapping(Vec::new()),
            },
        };
        Ok(Document { root })
    }

    /// The root node.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Every key given again in the same mapping: its path, where it is,
    /// and where the first one is (the one that counts).
    pub fn duplicates(&self) -> Vec<(KeyPath, Position, Position)> {
        let mut found = Vec::new();
        let mut pending = vec![(KeyPath::root(), &self.root)];
        while let Some((path, node)) = pending.pop() {
            match &node.shape {
                Shape::Mapping(entries) => {
                    for (index, entry) in entries.iter().enumerate() {
                        if let Some(first) = entries[..index].iter().find(|e| e.key == entry.key) {
                            found.push((
                                path.key(&entry.key),
                                entry.key_position,
                                first.key_position,
                            ));
                        } else {
                            pending.push((path.key(&entry.key), &entry.value));
                        }
                    }
                }
                Shape::Sequence(items) => {
                    pending.extend(
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, item)| (path.index(i), item)),
                    );
                }
                Shape::Scalar => {}
            }
        }
        found
    }

    /// The node at `path`, if present.
    pub fn get(&self, path: &KeyPath) -> Option<&Node> {
        path.segments()
            .iter()
            .try_fold(&self.root, |node, segment| node.child(segment))
    }

    /// Where the value at `path` starts or, if it is absent (a default),
    /// where its closest present ancestor starts.
    pub fn value_position(&self, path: &KeyPath) -> Position {
        let mut node = &self.root;
        for segment in path.segments() {
            match node.child(segment) {
                Some(child) => node = child,
                None => break,
            }
        }
        node.position
    }

    /// The path of the innermost key or value under `within` that starts at
    /// or before `position`: the key a parser error at `position` concerns.
    pub fn path_at(&self, within: &KeyPath, position: Position) -> KeyPath {
        let Some(start) = self.get(within) else {
            return within.clone();
        };
        let mut best = within.clone();
        let mut node = start;
        let mut path = within.clone();
        loop {
            let next = match &node.shape {
                Shape::Mapping(entries) => entries
                    .iter()
                    .take_while(|entry| entry.key_position <= position)
                    .last()
                    .map(|entry| (path.key(&entry.key), &entry.value)),
                Shape::Sequence(items) => items
                    .iter()
                    .enumerate()
                    .take_while(|(_, item)| item.position <= position)
                    .last()
                    .map(|(index, item)| (path.index(index), item)),
                Shape::Scalar => None,
            };
            match next {
                Some((child_path, child)) => {
                    best = child_path.clone();
                    path = child_path;
                    node = child;
                }
                None => return best,
            }
        }
    }
}

impl Node {
    /// The child at one step down, if present.
    pub fn child(&self, segment: &Segment) -> Option<&Node> {
        match (segment, &self.shape) {
            (Segment::Key(key), Shape::Mapping(_)) => self.entry(key).map(|entry| &entry.value),
            (Segment::Index(index), Shape::Sequence(items)) => items.get(*index),
            _ => None,
        }
    }

    /// The mapping entry named `key`, if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.shape {
            Shape::Mapping(entries) => entries.iter().find(|entry| entry.key == key),
            _ => None,
        }
    }

    /// The mapping entries, or none if this is not a mapping.
    pub fn entries(&self) -> &[Entry] {
        match &self.shape {
            Shape::Mapping(entries) => entries,
            _ => &[],
        }
    }
}

fn position(location: serde_saphyr::Location) -> Position {
    Position {
        line: location.line(),
        column: location.column(),
    }
}

fn node(spanned: Spanned<Shape>) -> Node {
    Node {
        position: position(spanned.referenced),
        shape: spanned.value,
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

macro_rules! scalar_visits {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Shape, E> {
            Ok(Shape::Scalar)
        })*
    };
}

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    scalar_visits!(
        visit_bool: bool, visit_i64: i64, visit_i128: i128, visit_u64: u64, visit_u128: u128,
        visit_f64: f64, visit_str: &str, visit_bytes: &[u8],
    );

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Shape>>()? {
            items.push(node(item));
        }
        Ok(Shape::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Spanned<Shape>>()?;
            entries.push(Entry {
                key: key.value.0,
                key_position: position(key.referenced),
                value: node(value),
            });
        }
        Ok(Shape::Mapping(entries))
    }
}

/// A mapping key as text, whatever its YAML type; complex keys become "".
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyTextVisitor)
    }
}

struct KeyTextVisitor;

impl<'de> Visitor<'de> for KeyTextVisitor {
    type Value = KeyText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<KeyText, E> {
        Ok(KeyText(value.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
        Ok(KeyText(String::new()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(KeyText(String::new()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(KeyText(String::new()))
    }
}
