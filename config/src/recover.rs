//! Reading past a mistake: a deserializer wrapper that leaves out chosen
//! values, or replaces them with an empty stand-in, so that reading an entry
//! again after an error reaches the mistakes behind it (serde stops at the
//! first error of a struct).

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapDeserializer, SeqDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use crate::error::KeyPath;

/// What to do with the value at a path when reading again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Leave the key out, as if it were not written (its default applies).
    Drop,
    /// Read an empty stand-in instead (an empty list or string), for a
    /// required key whose value is wrong.
    StandIn,
}

/// The repairs to apply, by path of the value.
#[derive(Debug, Default)]
pub(crate) struct Repairs {
    by_path: HashMap<KeyPath, Repair>,
    /// A stand-in was refused by its reader during the last read.
    stand_in_refused: Cell<bool>,
}

impl Repairs {
    /// Whether there is nothing to repair.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// The repair for the value at `path`, if any.
    pub fn get(&self, path: &KeyPath) -> Option<Repair> {
        self.by_path.get(path).copied()
    }

    /// Sets the repair for the value at `path`.
    pub fn insert(&mut self, path: KeyPath, repair: Repair) {
        self.by_path.insert(path, repair);
    }

    /// Whether `path` is a repaired value or lies inside one.
    pub fn covers(&self, path: &KeyPath) -> bool {
        self.by_path
            .keys()
            .any(|repaired| starts_with(path, repaired))
    }

    /// Whether a stand-in was refused since the last call: the read failed
    /// because of a repair, not because of a new mistake.
    pub fn take_stand_in_refused(&self) -> bool {
        self.stand_in_refused.replace(false)
    }

    /// The repaired paths.
    pub fn into_paths(self) -> impl Iterator<Item = KeyPath> {
        self.by_path.into_keys()
    }
}

/// Whether `path` is `prefix` or lies under it.
pub(crate) fn starts_with(path: &KeyPath, prefix: &KeyPath) -> bool {
    path.segments().starts_with(prefix.segments())
}

/// A deserializer for the value at `path` that applies `repairs` inside it.
pub(crate) struct Repairing<'r, D> {
    inner: D,
    path: KeyPath,
    repairs: &'r Repairs,
}

impl<'r, D> Repairing<'r, D> {
    /// Wraps `inner`, which reads the value at `path`.
    pub fn new(inner: D, path: KeyPath, repairs: &'r Repairs) -> Self {
        Repairing {
            inner,
            path,
            repairs,
        }
    }

    fn wrap<V>(&self, visitor: V) -> Wrap<'r, V> {
        Wrap {
            inner: visitor,
            path: self.path.clone(),
            repairs: self.repairs,
        }
    }
}

/// Forwards `deserialize_*` methods that take only a visitor.
macro_rules! forward_visitor_only {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.wrap(visitor);
            self.inner.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Repairing<'_, D> {
    type Error = D::Error;

    forward_visitor_only! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor that hands on maps and sequences with the repairs applied.
struct Wrap<'r, V> {
    inner: V,
    path: KeyPath,
    repairs: &'r Repairs,
}

/// Forwards `visit_*` methods of scalars unchanged.
macro_rules! forward_scalars {
    ($($method:ident: $type:ty),* $(,)?) => {$(
        fn $method<E: de::Error>(self, value: $type) -> Result<V::Value, E> {
            self.inner.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_scalars! {
        visit_bool: bool, visit_i8: i8, visit_i16: i16, visit_i32: i32, visit_i64: i64,
        visit_i128: i128, visit_u8: u8, visit_u16: u16, visit_u32: u32, visit_u64: u64,
        visit_u128: u128, visit_f32: f32, visit_f64: f64, visit_char: char,
        visit_str: &str, visit_borrowed_str: &'de str, visit_string: String,
        visit_bytes: &[u8], visit_borrowed_bytes: &'de [u8], visit_byte_buf: Vec<u8>,
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner
            .visit_some(Repairing::new(deserializer, self.path, self.repairs))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .visit_newtype_struct(Repairing::new(deserializer, self.path, self.repairs))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(RepairingSeq {
            inner: seq,
            path: self.path,
            index: 0,
            repairs: self.repairs,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(RepairingMap {
            inner: map,
            path: self.path,
            current: None,
            repairs: self.repairs,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// A seed that reads its value with the repairs applied.
struct RepairingSeed<'r, S> {
    inner: S,
    path: KeyPath,
    repairs: &'r Repairs,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for RepairingSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner
            .deserialize(Repairing::new(deserializer, self.path, self.repairs))
    }
}

/// A mapping whose repaired keys are left out or read as stand-ins.
struct RepairingMap<'r, A> {
    inner: A,
    path: KeyPath,
    /// The path of the value to read next, and its repair.
    current: Option<(KeyPath, Option<Repair>)>,
    repairs: &'r Repairs,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for RepairingMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.inner.next_key::<String>()? {
            let path = self.path.key(&key);
            let repair = self.repairs.get(&path);
            if repair == Some(Repair::Drop) {
                self.inner.next_value::<IgnoredAny>()?;
                continue;
            }
            self.current = Some((path, repair));
            return seed
                .deserialize(StringDeserializer::<A::Error>::new(key))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let (path, repair) = self
            .current
            .take()
            .ok_or_else(|| de::Error::custom("a mapping value was read before its key"))?;
        if repair == Some(Repair::StandIn) {
            self.inner.next_value::<IgnoredAny>()?;
            return seed.deserialize(StandIn {
                refused: &self.repairs.stand_in_refused,
                error: PhantomData,
            });
        }
        self.inner.next_value_seed(RepairingSeed {
            inner: seed,
            path,
            repairs: self.repairs,
        })
    }
}

/// A sequence whose repaired items are left out.
struct RepairingSeq<'r, A> {
    inner: A,
    path: KeyPath,
    index: usize,
    repairs: &'r Repairs,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for RepairingSeq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        loop {
            let path = self.path.index(self.index);
            self.index += 1;
            if self.repairs.get(&path).is_none() {
                return self.inner.next_element_seed(RepairingSeed {
                    inner: seed,
                    path,
                    repairs: self.repairs,
                });
            }
            if self.inner.next_element::<IgnoredAny>()?.is_none() {
                return Ok(None);
            }
        }
    }
}

/// The stand-in for a wrong required value: an empty list, mapping or
/// string, or false, whatever the reader asks for. A reader that refuses it
/// (an address, a duration) sets `refused`, and that entry is read no
/// further.
struct StandIn<'r, E> {
    refused: &'r Cell<bool>,
    error: PhantomData<E>,
}

impl<E> StandIn<'_, E> {
    fn watch<T>(&self, result: Result<T, E>) -> Result<T, E> {
        if result.is_err() {
            self.refused.set(true);
        }
        result
    }
}

impl<'de, E: de::Error> Deserializer<'de> for StandIn<'_, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        let empty = SeqDeserializer::<_, E>::new(std::iter::empty::<()>());
        self.watch(visitor.visit_seq(empty))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.watch(visitor.visit_str(""))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.watch(visitor.visit_str(""))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.watch(visitor.visit_bool(false))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.watch(visitor.visit_none())
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        let empty = MapDeserializer::<_, E>::new(std::iter::empty::<((), ())>());
        self.watch(visitor.visit_map(empty))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct struct enum identifier ignored_any
    }
}
