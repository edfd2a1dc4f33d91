//! Serde for the protobuf `bytes` fields that carry JSON payloads: written into the executor's
//! request as the JSON value they hold, read back from its result as that value's exact text.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::value::RawValue;

/// Writes the bytes as an embedded JSON value; fails when they are not JSON.
pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| S::Error::custom("payload is not UTF-8"))?;
    let raw = RawValue::from_string(text.to_owned())
        .map_err(|_| S::Error::custom("payload is not JSON"))?;
    serde::Serialize::serialize(&*raw, serializer)
}

/// Reads any JSON value as the bytes of its text.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)
        .map_err(|e| D::Error::custom(format!("invalid raw value: {e}")))?;
    Ok(raw.get().as_bytes().to_vec())
}
