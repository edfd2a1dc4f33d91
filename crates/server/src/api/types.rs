//! Request shapes of the server HTTP API (JSON, proto field names, raw JSON `data`/`info`).

use std::collections::HashMap;

use bytes::Bytes;
use gyre_protocol::StreamPosition;
use serde::Deserialize;

/// `{"value": bool}` wrapper used by overrides.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BoolValue {
    /// The value.
    pub value: bool,
}

/// Channel option overrides of an API subscribe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Override {
    /// Presence.
    pub presence: Option<BoolValue>,
    /// Join/leave.
    pub join_leave: Option<BoolValue>,
    /// Force recovery.
    pub force_recovery: Option<BoolValue>,
    /// Force positioning.
    pub force_positioning: Option<BoolValue>,
    /// Force push join/leave.
    pub force_push_join_leave: Option<BoolValue>,
}

/// `publish` (and, with `channels`, `broadcast`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PublishRequest {
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
}

/// `subscribe`: subscribe a user's connections to a channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    /// Channel.
    pub channel: String,
    /// User whose connections subscribe.
    pub user: String,
    /// Subscription expiry (unix seconds).
    pub expire_at: i64,
    /// Channel info (JSON).
    #[serde(with = "gyre_protocol::raw")]
    pub info: Bytes,
    /// Only this client.
    pub client: String,
    /// Subscription data (JSON).
    #[serde(with = "gyre_protocol::raw")]
    pub data: Bytes,
    /// Recover from this position.
    pub recover_since: Option<StreamPosition>,
    /// Option overrides.
    #[serde(rename = "override")]
    pub override_: Override,
    /// Session (unused: no emulation transports).
    pub session: String,
}

impl SubscribeRequest {
    /// The overrides as token-style options.
    pub fn overrides(&self) -> gyre_auth::ChannelOverride {
        let o = &self.override_;
        gyre_auth::ChannelOverride {
            presence: o.presence.map(|v| v.value),
            join_leave: o.join_leave.map(|v| v.value),
            force_push_join_leave: o.force_push_join_leave.map(|v| v.value),
            force_recovery: o.force_recovery.map(|v| v.value),
            force_positioning: o.force_positioning.map(|v| v.value),
        }
    }
}

/// `unsubscribe`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UnsubscribeRequest {
    /// Channel.
    pub channel: String,
    /// User.
    pub user: String,
    /// Only this client.
    pub client: String,
    /// Session (unused).
    pub session: String,
}

/// Disconnect code and reason of an API disconnect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DisconnectSpec {
    /// Close code.
    pub code: u32,
    /// Reason.
    pub reason: String,
}

/// `disconnect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DisconnectRequest {
    /// User.
    pub user: String,
    /// Only this client.
    pub client: String,
    /// Session (unused).
    pub session: String,
    /// Clients to keep.
    pub whitelist: Vec<String>,
    /// Code and reason (default 3503).
    pub disconnect: Option<DisconnectSpec>,
}

/// `refresh`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RefreshRequest {
    /// User.
    pub user: String,
    /// Only this client.
    pub client: String,
    /// Session (unused).
    pub session: String,
    /// Disconnect as expired.
    pub expired: bool,
    /// New expiry (unix seconds).
    pub expire_at: i64,
}

/// Requests that name only a channel: presence, presence_stats, history_remove.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ChannelRequest {
    /// Channel.
    pub channel: String,
}

/// `history`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HistoryRequest {
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
pub struct ChannelsRequest {
    /// Glob pattern.
    pub pattern: String,
}

/// `batch`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BatchRequest {
    /// Commands, each an object with one method name as key (bodies kept as raw JSON so
    /// payloads pass through verbatim).
    pub commands: Vec<HashMap<String, Box<serde_json::value::RawValue>>>,
    /// Run in parallel (accepted; commands run in order).
    pub parallel: bool,
}
