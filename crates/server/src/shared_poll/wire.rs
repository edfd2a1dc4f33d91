//! The `shared_poll_refresh` proxy's JSON: the keys of one batch with the versions the node
//! has, and the backend's items (changed data, versions, removals) with an optional epoch.

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One refresh request: a channel and a batch of its keys.
#[derive(Debug, Serialize)]
pub(super) struct Request<'a> {
    pub channel: &'a str,
    pub items: Vec<Item<'a>>,
}

/// A key and the version the node has of it (omitted when none, or in versionless mode).
#[derive(Debug, Serialize)]
pub(super) struct Item<'a> {
    pub key: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    pub version: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The backend's reply.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Response {
    pub result: Option<ResultBody>,
    pub error: Option<ErrorBody>,
}

/// An error the backend reports.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ErrorBody {
    pub code: u32,
    pub message: String,
}

/// The items of a successful reply.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ResultBody {
    pub items: Vec<ResultItem>,
    pub epoch: String,
}

/// One key's state as the backend has it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ResultItem {
    pub key: String,
    pub data: Option<Box<RawValue>>,
    pub b64data: String,
    pub version: u64,
    pub removed: bool,
}

impl ResultItem {
    /// The item's payload: JSON `data` as written, or decoded `b64data`.
    pub(super) fn payload(&self) -> Result<Bytes, String> {
        if !self.b64data.is_empty() {
            return base64::engine::general_purpose::STANDARD
                .decode(&self.b64data)
                .map(Bytes::from)
                .map_err(|e| format!("invalid b64data of key {:?}: {e}", self.key));
        }
        Ok(match &self.data {
            Some(raw) if raw.get() != "null" => Bytes::copy_from_slice(raw.get().as_bytes()),
            _ => Bytes::new(),
        })
    }
}
