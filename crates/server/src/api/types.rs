//! Request shapes of the server HTTP API (JSON, proto field names, raw JSON `data`/`info`).

use std::collections::HashMap;

use bytes::Bytes;
use gyre_protocol::StreamPosition;

pub(crate) use crate::outbound::ServerSubscribe as SubscribeRequest;
use serde::Deserialize;

/// `publish` (and, with `channels`, `broadcast`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PublishRequest {
    /// Channel (publish).
    pub channel: String,
    /// Channels (broadcast).
    pub channels: Vec<String>,
    /// JSON payload.
    #[serde(with = "gyre_protocol::raw")]
    pub data: Bytes,
    /// Base64 binary payload.
    pub b64data: String,
    /// Do not save in history.
    pub skip_history: bool,
    /// Tags.
    pub tags: HashMap<String, String>,
    /// Idempotency key: a retry within five minutes returns the first result.
    pub idempotency_key: String,
    /// Publish as delta.
    pub delta: bool,
    /// Version of the channel state carried (0: unversioned): a publication whose version is
    /// not newer than the channel's last is dropped.
    pub version: u64,
    /// Epoch of `version` (versions compare within one epoch).
    pub version_epoch: String,
}

/// Requests that name only a channel: presence, presence_stats, history_remove.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChannelRequest {
    /// Channel.
    pub channel: String,
}

/// `history`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct HistoryRequest {
    /// Channel.
    pub channel: String,
    /// Limit (0: only the position, -1: all up to the cap).
    pub limit: i32,
    /// Publications after this position.
    pub since: Option<StreamPosition>,
    /// Newest first.
    pub reverse: bool,
}

/// `channels`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChannelsRequest {
    /// Glob pattern.
    pub pattern: String,
}

/// `batch`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct BatchRequest {
    /// Commands, each an object with one method name as key (bodies kept as raw JSON so
    /// payloads pass through verbatim).
    pub commands: Vec<HashMap<String, Box<serde_json::value::RawValue>>>,
    /// Run in parallel (accepted; commands run in order).
    pub parallel: bool,
}
