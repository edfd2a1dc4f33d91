//! Publication data mode: a message whose payload is the publication data itself, with the
//! channels and publication options in other fields (Redis entry fields, NATS headers). It
//! becomes a `publish` (one channel) or `broadcast` (several) request.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Consumer, Temporary};

/// A message's publication parts, as text ("" for a missing field).
pub(crate) struct Fields<'a> {
    /// The publication data (JSON).
    pub data: &'a str,
    /// Comma-separated channels.
    pub channels: &'a str,
    /// Idempotency key.
    pub idempotency_key: &'a str,
    /// Delta flag (`true` / `1`).
    pub delta: &'a str,
    /// Version number.
    pub version: &'a str,
    /// Version epoch.
    pub version_epoch: &'a str,
    /// Tags (prefix already removed).
    pub tags: HashMap<&'a str, &'a str>,
}

/// A `publish` / `broadcast` request (`data` kept verbatim).
#[derive(Serialize)]
struct Request<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    channel: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    channels: Vec<&'a str>,
    data: &'a RawValue,
    idempotency_key: &'a str,
    delta: bool,
    tags: HashMap<&'a str, &'a str>,
    version: u64,
    version_epoch: &'a str,
}

impl Consumer {
    /// Publishes `fields.data` to its channels; a message without channels, with data that
    /// is not JSON or with a bad version is skipped.
    pub(crate) async fn apply_publication(&self, fields: Fields<'_>) -> Result<(), Temporary> {
        let channels: Vec<&str> = fields
            .channels
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if channels.is_empty() {
            return self.skip("message names no channels");
        }
        let version = match fields.version {
            "" => 0,
            v => match v.parse::<u64>() {
                Ok(v) => v,
                Err(_) => return self.skip("message has an invalid version"),
            },
        };
        let Ok(data) = serde_json::from_str::<&RawValue>(fields.data) else {
            return self.skip("message data is not JSON");
        };
        let single = channels.len() == 1;
        let request = Request {
            channel: if single { channels[0] } else { "" },
            channels: if single { Vec::new() } else { channels },
            data,
            idempotency_key: fields.idempotency_key,
            delta: matches!(fields.delta, "true" | "1"),
            tags: fields.tags,
            version,
            version_epoch: fields.version_epoch,
        };
        let Ok(body) = serde_json::to_string(&request) else {
            return self.skip("publication not serializable");
        };
        let method = if single { "publish" } else { "broadcast" };
        self.apply(Some(method), &body).await
    }
}
