//! Deserializers for values whose library errors would mean nothing to an
//! operator ("invalid u8", "invalid socket address syntax"): durations,
//! addresses, networks and bounded whole numbers. Each error says in words
//! what was expected, with an accepted example.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

const DURATION: &str = "a duration such as 200ms, 3s or 1m";
const SOCKET_ADDRESS: &str =
    "an IP address and port such as 127.0.0.1:3306 (names are not resolved)";
const VIRTUAL_ADDRESS: &str = "an address with a prefix such as 192.0.2.100/24";
const ALLOWED_NETWORK: &str =
    "an address or network with a prefix such as 10.0.0.0/24 or 192.0.2.7/32";
const PEER_ADDRESS: &str = "an IP address such as 192.0.2.2 (names are not resolved)";

/// A time span written with a unit: `200ms`, `3s`, `1m`.
pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

/// An optional [`duration`]; null means absent.
pub(crate) fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    deserializer.deserialize_option(Optional(DurationVisitor))
}

/// One server address: IP and port.
pub(crate) fn socket_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    deserializer.deserialize_any(Parsed::new(SOCKET_ADDRESS))
}

/// An optional [`socket_address`]; null means absent.
pub(crate) fn optional_socket_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    deserializer.deserialize_option(Optional(Parsed::new(SOCKET_ADDRESS)))
}

/// A list of listen addresses.
pub(crate) fn socket_addresses<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SocketAddr>, D::Error> {
    deserializer.deserialize_any(List(Parsed::new(SOCKET_ADDRESS)))
}

/// A list of virtual addresses, each with its prefix length.
pub(crate) fn virtual_addresses<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<IpNet>, D::Error> {
    deserializer.deserialize_any(List(Parsed::new(VIRTUAL_ADDRESS)))
}

/// Networks a gateway may reach; null means absent.
pub(crate) fn optional_allowed_networks<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<IpNet>>, D::Error> {
    deserializer.deserialize_option(Optional(List(Parsed::new(ALLOWED_NETWORK))))
}

/// A list of networks (an address alone is a network of one).
pub(crate) fn allowed_networks<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<IpNet>, D::Error> {
    deserializer.deserialize_any(List(Parsed::new(ALLOWED_NETWORK)))
}

/// A list of peer IP addresses.
pub(crate) fn peer_addresses<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<IpAddr>, D::Error> {
    deserializer.deserialize_any(List(Parsed::new(PEER_ADDRESS)))
}

/// Defines deserializers of whole numbers of a type, each error saying
/// which numbers are accepted.
macro_rules! whole_numbers {
    ($($(#[$doc:meta])* $name:ident: $type:ty = $expected:literal;)*) => {$(
        $(#[$doc])*
        pub(crate) fn $name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
            deserializer.deserialize_any(Whole::<$type>::new($expected))
        }
    )*};
}

whole_numbers! {
    /// A count such as `rise`, `fall`, `weight` or `max_per_hour`.
    count: u32 = "a whole number such as 3";
    /// A number of connections.
    connections: usize = "a whole number such as 10000";
    /// A VRRP router id.
    vrid: u8 = "a whole number from 1 to 255";
    /// A VRRP protocol version.
    vrrp_version: u8 = "2 or 3";
    /// A VRRP priority.
    priority: u8 = "a whole number from 1 to 254 (255 for the address owner)";
}

/// A VRRP tracking weight, absent for "go FAULT".
pub(crate) fn optional_track_weight<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u8>, D::Error> {
    deserializer.deserialize_option(Optional(Whole::<u8>::new("a whole number from 1 to 254")))
}

/// A TCP port, absent for the default.
pub(crate) fn optional_port<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u16>, D::Error> {
    deserializer.deserialize_option(Optional(Whole::<u16>::new("a port number from 1 to 65535")))
}

struct DurationVisitor;

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DURATION)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        if text.trim().parse::<f64>().is_ok() {
            return Err(E::custom(format!(
                "{} has no unit; expected {DURATION}",
                text.trim()
            )));
        }
        humantime::parse_duration(text)
            .map_err(|_| E::custom(format!("{text:?} is not {DURATION}")))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Duration, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Duration, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Duration, E> {
        self.visit_str(&value.to_string())
    }
}

/// A scalar read with [`FromStr`]; `expected` words the accepted form.
struct Parsed<T> {
    expected: &'static str,
    target: PhantomData<T>,
}

impl<T> Parsed<T> {
    fn new(expected: &'static str) -> Self {
        Parsed {
            expected,
            target: PhantomData,
        }
    }
}

impl<T> Clone for Parsed<T> {
    fn clone(&self) -> Self {
        Parsed::new(self.expected)
    }
}

impl<'de, T: FromStr> Visitor<'de> for Parsed<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse()
            .map_err(|_| E::custom(format!("{text:?} is not {}", self.expected)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }
}

impl<'de, T: FromStr> DeserializeSeed<'de> for Parsed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A sequence of [`Parsed`] items. A single item where the list belongs is
/// refused with the list it should have been.
struct List<T>(Parsed<T>);

impl<'de, T: FromStr> Visitor<'de> for List<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of {}", self.0.expected)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.0.clone())? {
            items.push(item);
        }
        Ok(items)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<T>, E> {
        Err(match text.parse::<T>() {
            Ok(_) => E::custom(format!("expected a list such as [{text}]")),
            Err(_) => E::custom(format!("expected a list of {}", self.0.expected)),
        })
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Vec<T>, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Vec<T>, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Vec<T>, E> {
        self.visit_str(&value.to_string())
    }
}

/// A whole number of type `T`; `expected` words the accepted range.
struct Whole<T> {
    expected: &'static str,
    target: PhantomData<T>,
}

impl<T> Whole<T> {
    fn new(expected: &'static str) -> Self {
        Whole {
            expected,
            target: PhantomData,
        }
    }

    fn refuse<E: de::Error>(&self, value: impl fmt::Display) -> E {
        E::custom(format!("{value} is not {}", self.expected))
    }
}

impl<'de, T: TryFrom<u64>> Visitor<'de> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        T::try_from(value).map_err(|_| self.refuse(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(self.refuse(value)),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        Err(self.refuse(value))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        match text.trim().parse::<u64>() {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(self.refuse(format_args!("{text:?}"))),
        }
    }
}

/// Null for absent, else the value `V` reads.
struct Optional<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Optional<V> {
    type Value = Option<V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self.0).map(Some)
    }
}
