//! JSON "raw" payloads.
//!
//! In the JSON encoding of the protocol, `bytes` fields (`data`, `info`, `conn_info`, ...) are
//! embedded verbatim as a JSON value, not base64. On input the exact JSON text of the value is
//! kept; on output the bytes must be valid JSON and any raw newline byte is dropped, so the
//! newline that separates messages in one frame stays unambiguous.

use bytes::Bytes;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::value::RawValue;

/// Serializes bytes as an embedded JSON value. Fails when the bytes are not valid JSON.
pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| S::Error::custom("payload is not UTF-8"))?;
    let text = if text.contains('\n') {
        text.replace('\n', "")
    } else {
        text.to_owned()
    };
    let raw = RawValue::from_string(text).map_err(|_| S::Error::custom("payload is not JSON"))?;
    serde::Serialize::serialize(&*raw, serializer)
}

/// Deserializes any JSON value into the bytes of its exact text.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)
        .map_err(|e| D::Error::custom(format!("invalid raw value: {e}")))?;
    Ok(Bytes::from(raw.get().as_bytes().to_vec()))
}

/// Returns true when `bytes` is valid JSON text (what a JSON connection can carry).
pub fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}
