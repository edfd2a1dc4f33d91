//! Wire types of the client protocol, shared by the Protobuf and JSON encodings.
//!
//! Field numbers follow the upstream `client.proto` schema. In JSON, names are the proto
//! snake_case names, integers are numbers, `bytes` fields are raw JSON (see [`crate::raw`]) and
//! zero values are omitted, except the few fields upstream always writes.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod requests;
pub use requests::*;

pub(crate) fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
pub(crate) fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
pub(crate) fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}

/// A command sent by a client. Exactly one request field is expected to be set; a command with
/// `id == 0` and nothing set is a pong.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Command {
    /// Request id, echoed in the reply; 0 for `send` and for pongs.
    #[prost(uint32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub id: u32,
    /// Connect request (must be the first command of a connection).
    #[prost(message, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectRequest>,
    /// Subscribe request.
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubscribeRequest>,
    /// Unsubscribe request.
    #[prost(message, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<UnsubscribeRequest>,
    /// Publish request.
    #[prost(message, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishRequest>,
    /// Presence request.
    #[prost(message, optional, tag = "8")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceRequest>,
    /// Presence stats request.
    #[prost(message, optional, tag = "9")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_stats: Option<PresenceStatsRequest>,
    /// History request.
    #[prost(message, optional, tag = "10")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryRequest>,
    /// Legacy ping request; current servers answer it with disconnect 3501.
    #[prost(message, optional, tag = "11")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping: Option<PingRequest>,
    /// Asynchronous message to the server, never answered.
    #[prost(message, optional, tag = "12")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send: Option<SendRequest>,
    /// RPC request.
    #[prost(message, optional, tag = "13")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<RpcRequest>,
    /// Connection token refresh.
    #[prost(message, optional, tag = "14")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshRequest>,
    /// Subscription token refresh.
    #[prost(message, optional, tag = "15")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_refresh: Option<SubRefreshRequest>,
}

/// A message from the server: the reply to a command (`id > 0`), an asynchronous push, or, when
/// nothing is set, a ping.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Reply {
    /// Id of the command this replies to; 0 for pushes and pings.
    #[prost(uint32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub id: u32,
    /// Error outcome of the command.
    #[prost(message, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
    /// Asynchronous push.
    #[prost(message, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    /// Connect result.
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectResult>,
    /// Subscribe result.
    #[prost(message, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubscribeResult>,
    /// Unsubscribe result.
    #[prost(message, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<UnsubscribeResult>,
    /// Publish result.
    #[prost(message, optional, tag = "8")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishResult>,
    /// Presence result.
    #[prost(message, optional, tag = "9")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceResult>,
    /// Presence stats result.
    #[prost(message, optional, tag = "10")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_stats: Option<PresenceStatsResult>,
    /// History result.
    #[prost(message, optional, tag = "11")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryResult>,
    /// Legacy ping result.
    #[prost(message, optional, tag = "12")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping: Option<PingResult>,
    /// RPC result.
    #[prost(message, optional, tag = "13")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<RpcResult>,
    /// Refresh result.
    #[prost(message, optional, tag = "14")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshResult>,
    /// Subscription refresh result.
    #[prost(message, optional, tag = "15")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_refresh: Option<SubRefreshResult>,
}

/// A reply error: a code, a message and whether retrying may succeed.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Error {
    /// Error code (100-1999).
    #[prost(uint32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub code: u32,
    /// Human-readable message.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// True when the client may retry.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_false")]
    pub temporary: bool,
}

/// An asynchronous message from the server about a channel or the connection.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Push {
    /// Numeric channel id (channel compaction); Gyre does not negotiate it.
    #[prost(int64, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub id: i64,
    /// Channel the push is about.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// A publication in the channel.
    #[prost(message, optional, tag = "4")]
    #[serde(rename = "pub", skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
    /// A client joined the channel.
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<Join>,
    /// A client left the channel.
    #[prost(message, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leave: Option<Leave>,
    /// The server unsubscribed the client from the channel.
    #[prost(message, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<Unsubscribe>,
    /// An asynchronous message to the client.
    #[prost(message, optional, tag = "8")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// The server subscribed the client to the channel (server-side subscription).
    #[prost(message, optional, tag = "9")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    /// Connect result, for unidirectional transports.
    #[prost(message, optional, tag = "10")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<Connect>,
    /// Disconnect, for transports without a close frame.
    #[prost(message, optional, tag = "11")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<DisconnectPush>,
    /// Connection refreshed by the server.
    #[prost(message, optional, tag = "12")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
}

/// Who a publication, join or leave came from.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientInfo {
    /// User id ("" for anonymous); always written in JSON.
    #[prost(string, tag = "1")]
    pub user: String,
    /// Client (connection) id; always written in JSON.
    #[prost(string, tag = "2")]
    pub client: String,
    /// Connection info from the token or the connect proxy.
    #[prost(bytes = "bytes", tag = "3")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub conn_info: Bytes,
    /// Channel info from the subscription token or proxy.
    #[prost(bytes = "bytes", tag = "4")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub chan_info: Bytes,
}

/// A message published into a channel.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Publication {
    /// The payload (JSON text on JSON connections).
    #[prost(bytes = "bytes", tag = "4")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
    /// Publisher, when published by a client.
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
    /// Offset in the channel's stream (0 when the channel keeps no history).
    #[prost(uint64, tag = "6")]
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Publication tags.
    #[prost(map = "string, string", tag = "7")]
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub tags: HashMap<String, String>,
    /// True when `data` is a fossil delta against the previous publication.
    #[prost(bool, tag = "8")]
    #[serde(skip_serializing_if = "is_false")]
    pub delta: bool,
    /// Publication time, unix milliseconds.
    #[prost(int64, tag = "9")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub time: i64,
    /// Channel, for wildcard subscriptions.
    #[prost(string, tag = "10")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// Key of a map subscription's entry (or of a shared poll item).
    #[prost(string, tag = "11")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// True when this publication removes the entry `key`.
    #[prost(bool, tag = "12")]
    #[serde(skip_serializing_if = "is_false")]
    pub removed: bool,
    /// Ordering score of a map entry.
    #[prost(sint64, tag = "13")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub score: i64,
    /// Epoch of the stream the publication belongs to, when it differs per publication.
    #[prost(string, tag = "14")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Previous payload of the entry, the delta base in broker fan-out (never sent to clients).
    #[prost(bytes = "bytes", tag = "15")]
    #[serde(skip)]
    pub prev_data: Bytes,
    /// Version of a versioned publication or shared poll item.
    #[prost(uint64, tag = "16")]
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub version: u64,
}

/// A position in a channel stream.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPosition {
    /// Offset of the last publication seen.
    #[prost(uint64, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Epoch of the stream the offset belongs to.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
}

/// Join push body.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Join {
    /// Who joined.
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
}

/// Leave push body.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Leave {
    /// Who left.
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
}

/// Unsubscribe push body: the server ended a subscription.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Unsubscribe {
    /// Unsubscribe code (2000-2999; 2500 and above ask the client to resubscribe).
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub code: u32,
    /// Human-readable reason.
    #[prost(string, tag = "3")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Subscribe push body: the server subscribed the client to a channel.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Subscribe {
    /// Recovery is on for this subscription.
    #[prost(bool, tag = "1")]
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Stream epoch.
    #[prost(string, tag = "4")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Stream top offset.
    #[prost(uint64, tag = "5")]
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Positioning is on for this subscription.
    #[prost(bool, tag = "6")]
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Subscription data.
    #[prost(bytes = "bytes", tag = "7")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
}

/// Message push body: an asynchronous message for this connection.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// The payload.
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
}

/// Connect push body (unidirectional transports).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Connect {
    /// Client id.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// Server version.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Connect data.
    #[prost(bytes = "bytes", tag = "3")]
    #[serde(with = "crate::raw", skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
    /// Server-side subscriptions.
    #[prost(map = "string, message", tag = "4")]
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub subs: HashMap<String, SubscribeResult>,
    /// Connection expires.
    #[prost(bool, tag = "5")]
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry.
    #[prost(uint32, tag = "6")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Ping interval, seconds.
    #[prost(uint32, tag = "7")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ping: u32,
    /// Client must answer pings.
    #[prost(bool, tag = "8")]
    #[serde(skip_serializing_if = "is_false")]
    pub pong: bool,
    /// Session id.
    #[prost(string, tag = "9")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session: String,
    /// Node id.
    #[prost(string, tag = "10")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Server time, unix ms.
    #[prost(int64, tag = "11")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub time: i64,
}

/// Disconnect push body (transports without a close frame).
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct DisconnectPush {
    /// Disconnect code.
    #[prost(uint32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub code: u32,
    /// Reason.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Legacy flag, never set by current servers.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_false")]
    pub reconnect: bool,
}

/// Refresh push body: the server refreshed the connection.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Refresh {
    /// Connection expires.
    #[prost(bool, tag = "1")]
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry.
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}
