//! Proxy requests and replies as Centrifugo v6 sends and reads them over HTTP (JSON), field
//! for field: the common request fields, each event's extra fields and result objects, and
//! the `{"result"|"error"|"disconnect"}` envelope.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Fields every request carries.
#[derive(Debug, Serialize)]
pub(crate) struct Common<'a> {
    pub client: &'a str,
    pub transport: &'static str,
    pub protocol: &'static str,
    pub encoding: &'static str,
}

/// A payload as `data` (raw JSON) or `b64data`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub b64data: String,
}

impl Payload {
    /// `data` when the encoding is JSON and the bytes are JSON, `b64data` otherwise.
    pub(crate) fn new(bytes: &[u8], binary: bool) -> Self {
        if bytes.is_empty() {
            return Payload::default();
        }
        if !binary
            && let Ok(text) = std::str::from_utf8(bytes)
            && let Ok(raw) = RawValue::from_string(text.to_owned())
        {
            return Payload {
                data: Some(raw),
                b64data: String::new(),
            };
        }
        Payload {
            data: None,
            b64data: STANDARD.encode(bytes),
        }
    }
}

/// The connect request.
#[derive(Debug, Serialize)]
pub(crate) struct ConnectRequest<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub version: &'a str,
    #[serde(flatten)]
    pub payload: Payload,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<&'a str>,
}

/// Requests of a connected client: refresh, subscribe, publish, sub_refresh and rpc.
#[derive(Debug, Serialize)]
pub(crate) struct ClientRequest<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    pub user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    #[serde(flatten)]
    pub payload: Payload,
}

/// The reply envelope.
#[derive(Debug, Deserialize)]
pub(crate) struct Reply<T> {
    pub result: Option<T>,
    pub error: Option<ErrorReply>,
    pub disconnect: Option<DisconnectReply>,
}

/// `error`: answered to the client as is.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorReply {
    pub code: u32,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub temporary: bool,
}

/// `disconnect`: the connection is closed with this code and reason.
#[derive(Debug, Deserialize)]
pub(crate) struct DisconnectReply {
    pub code: u16,
    #[serde(default)]
    pub reason: String,
}

/// `{"value": bool}` of an override.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BoolValue {
    pub value: bool,
}

/// Channel option overrides of a subscribe result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Override {
    pub presence: Option<BoolValue>,
    pub join_leave: Option<BoolValue>,
    pub force_push_join_leave: Option<BoolValue>,
    pub force_recovery: Option<BoolValue>,
    pub force_positioning: Option<BoolValue>,
}

impl Override {
    pub(crate) fn to_override(&self) -> gyre_auth::ChannelOverride {
        let v = |o: &Option<BoolValue>| o.as_ref().map(|b| b.value);
        gyre_auth::ChannelOverride {
            presence: v(&self.presence),
            join_leave: v(&self.join_leave),
            force_push_join_leave: v(&self.force_push_join_leave),
            force_recovery: v(&self.force_recovery),
            force_positioning: v(&self.force_positioning),
        }
    }
}

/// Options of a server-side subscription in a connect result (`subs`), and the subscribe
/// result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SubscribeResult {
    pub info: Option<Box<RawValue>>,
    pub b64info: String,
    pub data: Option<Box<RawValue>>,
    pub b64data: String,
    #[serde(rename = "override")]
    pub override_: Override,
    pub expire_at: i64,
}

/// The connect result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ConnectResult {
    pub user: String,
    pub expire_at: i64,
    pub info: Option<Box<RawValue>>,
    pub b64info: String,
    pub data: Option<Box<RawValue>>,
    pub b64data: String,
    pub channels: Vec<String>,
    pub subs: BTreeMap<String, SubscribeResult>,
    pub meta: Option<Box<RawValue>>,
}

/// The refresh result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RefreshResult {
    pub expired: bool,
    pub expire_at: i64,
    pub info: Option<Box<RawValue>>,
    pub b64info: String,
}

/// The publish result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PublishResult {
    pub data: Option<Box<RawValue>>,
    pub b64data: String,
    pub skip_history: bool,
}

/// The rpc result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RpcResult {
    pub data: Option<Box<RawValue>>,
    pub b64data: String,
}

/// A result payload: `b64…` decoded when set, the raw JSON otherwise; `None` when neither.
pub(crate) fn payload(raw: Option<&RawValue>, b64: &str) -> Result<Option<Bytes>, String> {
    if !b64.is_empty() {
        return STANDARD
            .decode(b64)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|err| format!("invalid base64: {err}"));
    }
    Ok(raw.map(|r| Bytes::copy_from_slice(r.get().as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_encodings() {
        let json = serde_json::to_string(&Payload::new(br#"{"a":1}"#, false)).unwrap_or_default();
        assert_eq!(json, r#"{"data":{"a":1}}"#);
        let b64 = serde_json::to_string(&Payload::new(b"\x00", false)).unwrap_or_default();
        assert_eq!(b64, r#"{"b64data":"AA=="}"#);
        assert!(payload(None, "!!").is_err());
        let raw = RawValue::from_string("[1]".to_owned()).ok();
        assert_eq!(
            payload(raw.as_deref(), "").ok().flatten().as_deref(),
            Some(&b"[1]"[..])
        );
    }
}
