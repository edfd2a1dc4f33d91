//! Small serde helpers for lenient Centrifugo-compatible field parsing.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, SeqAccess, Visitor};

/// Deserializes either a single string or a list of strings into a `Vec<String>`.
///
/// A single string is split on commas and whitespace, so `"a:1,b:2"` and `"a:1 b:2"` both give
/// two entries (this is how list values arrive from environment variables).
pub(crate) fn string_or_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(split_list(v))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Splits a list given as one string on commas and whitespace, dropping empty items.
pub(crate) fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Deserializes a TCP port given as a number or a numeric string (`""` means 0).
///
/// Centrifugo declares `http_server.internal_port` as a string, so both forms occur in real
/// configuration files.
pub(crate) fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u16;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a port number between 0 and 65535")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u16, E> {
            u16::try_from(v).map_err(|_| E::custom(format!("port {v} is out of range 0..=65535")))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u16, E> {
            u16::try_from(v).map_err(|_| E::custom(format!("port {v} is out of range 0..=65535")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u16, E> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(0);
            }
            v.parse::<u16>()
                .map_err(|_| E::custom(format!("invalid port {v:?}")))
        }
    }
    d.deserialize_any(V)
}
