//! Request and result bodies of every command, one pair per command.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::*;

/// Connect request: credentials, client identity and server-side subscription positions.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectRequest {
    /// Connection JWT.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Connect data (for proxies).
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
    /// Positions of server-side subscriptions, for recovery.
    #[prost(map = "string, message", tag = "3")]
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub subs: HashMap<String, SubscribeRequest>,
    /// Client name, e.g. "js".
    #[prost(string, tag = "4")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client version.
    #[prost(string, tag = "5")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Emulated headers.
    #[prost(map = "string, string", tag = "6")]
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub headers: HashMap<String, String>,
    /// Capability bitmask.
    #[prost(int64, tag = "7")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub flag: i64,
}

/// Connect result.
///
/// Its Protobuf encoding is written by hand (in the `connect_result` module) so that every
/// entry of `subs` carries its value even when it is an empty `SubscribeResult`, as upstream
/// writes it; clients fail on entries without a value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectResult {
    /// Client (connection) id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// Server version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// True when the client must refresh its token before `ttl` runs out.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until the connection expires.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Connect data.
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
    /// Server-side subscriptions.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub subs: HashMap<String, SubscribeResult>,
    /// Ping interval in seconds.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ping: u32,
    /// Client must answer pings with pongs.
    #[serde(skip_serializing_if = "is_false")]
    pub pong: bool,
    /// Session id (emulation transports).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session: String,
    /// Node id (emulation transports).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Server time, unix ms.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub time: i64,
}

/// Subscribe request.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// Subscription JWT.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Recover missed publications since `offset`/`epoch`.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_false")]
    pub recover: bool,
    /// Epoch of the known position.
    #[prost(string, tag = "6")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Offset of the known position.
    #[prost(uint64, tag = "7")]
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Subscription data.
    #[prost(bytes = "bytes", tag = "8")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
    /// Ask for positioning.
    #[prost(bool, tag = "9")]
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Ask for recovery.
    #[prost(bool, tag = "10")]
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Ask for join/leave pushes.
    #[prost(bool, tag = "11")]
    #[serde(skip_serializing_if = "is_false")]
    pub join_leave: bool,
    /// Delta type wanted ("fossil").
    #[prost(string, tag = "12")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub delta: String,
    /// Server-side filter over publication tags.
    #[prost(message, optional, tag = "13")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tf: Option<FilterNode>,
    /// Capability bits: 1 channel compaction, 2 reject unrecoverable positions.
    #[prost(int64, tag = "14")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub flag: i64,
    /// Subscription type (0 stream; map and shared poll types, see [`crate::codes`]).
    #[prost(int32, tag = "15")]
    #[serde(rename = "type", skip_serializing_if = "is_zero_i32")]
    pub kind: i32,
    /// Subscribe phase asked for (0 live, 1 stream, 2 state).
    #[prost(int32, tag = "16")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub phase: i32,
    /// Cursor of the state page to read.
    #[prost(string, tag = "17")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cursor: String,
    /// Page size of the state or stream phase.
    #[prost(int32, tag = "18")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub limit: i32,
    /// Ascending order of state entries.
    #[prost(bool, tag = "19")]
    #[serde(skip_serializing_if = "is_false")]
    pub asc: bool,
}

/// A node of a tags filter tree: a leaf comparison (`op` empty) or a logical operation over
/// `nodes` (`and`, `or`, `not`).
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterNode {
    /// Logical operation: "" (leaf), "and", "or", "not".
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// Tag key compared by a leaf.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Comparison of a leaf: eq, neq, in, nin, ex, nex, sw, ew, ct, lt, lte, gt, gte.
    #[prost(string, tag = "3")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cmp: String,
    /// Value compared against.
    #[prost(string, tag = "4")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub val: String,
    /// Values of set comparisons (in, nin).
    #[prost(string, repeated, tag = "5")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vals: Vec<String>,
    /// Children of a logical operation.
    #[prost(message, repeated, tag = "6")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<FilterNode>,
}

/// Subscribe result.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeResult {
    /// Subscription expires and must be refreshed.
    #[prost(bool, tag = "1")]
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until it expires.
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Recovery is on.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Stream epoch.
    #[prost(string, tag = "6")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Recovered publications.
    #[prost(message, repeated, tag = "7")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Publication>,
    /// All missed publications were recovered.
    #[prost(bool, tag = "8")]
    #[serde(skip_serializing_if = "is_false")]
    pub recovered: bool,
    /// Stream offset (the client's own offset when recovered).
    #[prost(uint64, tag = "9")]
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Positioning is on.
    #[prost(bool, tag = "10")]
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Subscription data.
    #[prost(bytes = "bytes", tag = "11")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
    /// The client asked to recover.
    #[prost(bool, tag = "12")]
    #[serde(skip_serializing_if = "is_false")]
    pub was_recovering: bool,
    /// Delta compression negotiated.
    #[prost(bool, tag = "13")]
    #[serde(skip_serializing_if = "is_false")]
    pub delta: bool,
    /// Numeric channel id (compaction).
    #[prost(int64, tag = "14")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub id: i64,
    /// Subscription type, echoed from the request.
    #[prost(int32, tag = "15")]
    #[serde(rename = "type", skip_serializing_if = "is_zero_i32")]
    pub kind: i32,
    /// Phase of this result (0 live, 1 stream, 2 state).
    #[prost(int32, tag = "16")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub phase: i32,
    /// Cursor of the next state page (empty on the last page).
    #[prost(string, tag = "17")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cursor: String,
    /// Entries of the channel state (map subscriptions).
    #[prost(message, repeated, tag = "18")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<Publication>,
    /// Milliseconds the SDK debounces client publications to this channel (0: none).
    #[prost(uint32, tag = "19")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub publish_debounce: u32,
}

/// Unsubscribe request.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct UnsubscribeRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
}

/// Unsubscribe result (empty).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
pub struct UnsubscribeResult {}

/// Publish request.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// Payload.
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
    /// Publish type: 0 regular, 1 map.
    #[prost(int32, tag = "3")]
    #[serde(rename = "type", skip_serializing_if = "is_zero_i32")]
    pub kind: i32,
    /// Map publish: the entry's key.
    #[prost(string, tag = "4")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Map publish: remove the entry instead.
    #[prost(bool, tag = "5")]
    #[serde(skip_serializing_if = "is_false")]
    pub removed: bool,
}

/// Publish result (empty).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
pub struct PublishResult {}

/// Presence request.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
}

/// Presence result: client id to client info.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceResult {
    /// Present clients; always written in JSON.
    #[prost(map = "string, message", tag = "1")]
    pub presence: HashMap<String, ClientInfo>,
}

/// Presence stats request.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceStatsRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
}

/// Presence stats result.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceStatsResult {
    /// Number of connections; always written in JSON.
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
    /// Number of distinct users; always written in JSON.
    #[prost(uint32, tag = "2")]
    pub num_users: u32,
}

/// History request.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// 0: only the stream top; -1: all; n: at most n publications.
    #[prost(int32, tag = "7")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub limit: i32,
    /// Return publications after this position.
    #[prost(message, optional, tag = "8")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<StreamPosition>,
    /// Newest first.
    #[prost(bool, tag = "9")]
    #[serde(skip_serializing_if = "is_false")]
    pub reverse: bool,
}

/// History result.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryResult {
    /// Publications; always written in JSON.
    #[prost(message, repeated, tag = "1")]
    pub publications: Vec<Publication>,
    /// Stream epoch; always written in JSON.
    #[prost(string, tag = "2")]
    pub epoch: String,
    /// Stream top offset; always written in JSON.
    #[prost(uint64, tag = "3")]
    pub offset: u64,
}

/// Legacy ping request.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
pub struct PingRequest {}

/// Legacy ping result.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
pub struct PingResult {}

/// Send request: an asynchronous message to the server.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct SendRequest {
    /// Payload.
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
}

/// RPC request.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcRequest {
    /// Payload.
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
    /// Method name.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
}

/// RPC result.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcResult {
    /// Payload.
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
}

/// Connection token refresh request.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshRequest {
    /// New connection JWT.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
}

/// Connection token refresh result.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshResult {
    /// Client id.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// Server version.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Connection still expires.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry.
    #[prost(uint32, tag = "4")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

/// Subscription token refresh request.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct SubRefreshRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// New subscription JWT.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// 0 token refresh, 1 track keys, 2 untrack keys (shared poll).
    #[prost(int32, tag = "3")]
    #[serde(rename = "type", skip_serializing_if = "is_zero_i32")]
    pub kind: i32,
    /// Signed batches of keys to track (type 1).
    #[prost(message, repeated, tag = "4")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub track: Vec<TrackBatch>,
    /// Keys to stop tracking (type 2).
    #[prost(string, repeated, tag = "5")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untrack: Vec<String>,
}

/// A key with the version the connection has of it (shared poll).
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyedItem {
    /// Key.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Version the connection has (0: none).
    #[prost(uint64, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub version: u64,
}

/// Keys to track, with the signature the backend computed over the whole set.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackBatch {
    /// Signature over the batch.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// The full key set the signature covers, with the connection's current versions.
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyedItem>,
}

/// Subscription token refresh result.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct SubRefreshResult {
    /// Subscription still expires.
    #[prost(bool, tag = "1")]
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry.
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Current items of newly tracked keys (shared poll track).
    #[prost(message, repeated, tag = "3")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Publication>,
}
