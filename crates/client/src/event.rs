//! States, events and result types shared by the sans-IO core and the async handles.

use std::collections::HashMap;

use bytes::Bytes;

use crate::Error;

/// State of the client connection.
///
/// Transitions (and nothing else): `Disconnected → Connecting` (connect called),
/// `Connecting → Connected`, `Connected → Connecting` (connection lost, reconnecting),
/// `Connecting → Disconnected` and `Connected → Disconnected` (disconnect called or terminal
/// condition), and any state `→ Closed` (close called; final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not connected and not trying to (initial state).
    Disconnected,
    /// Trying to connect, with exponential backoff between attempts.
    Connecting,
    /// Connected to the server.
    Connected,
    /// Closed for good; the client can't be used any more.
    Closed,
}

/// State of a client-side subscription.
///
/// Transitions: `Unsubscribed → Subscribing` (subscribe called), `Subscribing → Subscribed`,
/// `Subscribed → Subscribing` (connection lost or the server asked to resubscribe),
/// `Subscribing → Unsubscribed` and `Subscribed → Unsubscribed` (unsubscribe called or a
/// terminal error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionState {
    /// Not subscribed and not trying to (initial state).
    Unsubscribed,
    /// Waiting for the connection or the subscribe reply, or backing off after an error.
    Subscribing,
    /// Subscribed; publications flow.
    Subscribed,
}

/// Who published a message or joined/left a channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientInfo {
    /// User id ("" for anonymous).
    pub user: String,
    /// Client (connection) id.
    pub client: String,
    /// Connection info attached by the server.
    pub conn_info: Bytes,
    /// Channel info attached by the server.
    pub chan_info: Bytes,
}

impl From<gyre_protocol::ClientInfo> for ClientInfo {
    fn from(i: gyre_protocol::ClientInfo) -> Self {
        Self {
            user: i.user,
            client: i.client,
            conn_info: i.conn_info,
            chan_info: i.chan_info,
        }
    }
}

/// A position in a channel's stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct StreamPosition {
    /// Offset of the last publication seen.
    pub offset: u64,
    /// Epoch of the stream the offset belongs to.
    pub epoch: String,
}

/// A message published into a channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publication {
    /// Channel the publication belongs to.
    pub channel: String,
    /// Payload (JSON text on JSON connections; delta patches are already applied).
    pub data: Bytes,
    /// Offset in the channel stream (0 when the channel keeps no history).
    pub offset: u64,
    /// Tags set by the publisher.
    pub tags: HashMap<String, String>,
    /// The publishing client, for publications made by clients.
    pub info: Option<ClientInfo>,
}

/// Context of a `subscribed` event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribedContext {
    /// Channel.
    pub channel: String,
    /// Whether this subscribe asked the server to recover missed publications.
    pub was_recovering: bool,
    /// Whether all missed publications were recovered (always false when not recovering).
    pub recovered: bool,
    /// Whether the server keeps a recoverable stream for this subscription.
    pub recoverable: bool,
    /// Whether the server tracks the stream position for this subscription.
    pub positioned: bool,
    /// Stream position after the subscribe (before recovered publications are delivered).
    pub stream_position: Option<StreamPosition>,
    /// Subscription data sent by the server.
    pub data: Bytes,
}

/// Context of a `connected` event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectedContext {
    /// Client (connection) id assigned by the server.
    pub client: String,
    /// Server version.
    pub version: String,
    /// Connect data sent by the server.
    pub data: Bytes,
}

/// An event about the client connection or a server-side subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The client moved to `Connecting`.
    Connecting {
        /// Why (0 connect called, 1 transport closed, 2 no ping, 4 unsubscribe error, or a
        /// server disconnect code).
        code: u32,
        /// Human-readable reason.
        reason: String,
    },
    /// The client moved to `Connected`.
    Connected(ConnectedContext),
    /// The client moved to `Disconnected`.
    Disconnected {
        /// Why (0 disconnect called, 1 unauthorized, 2 bad protocol, or a server code).
        code: u32,
        /// Human-readable reason.
        reason: String,
    },
    /// The client moved to `Closed`.
    Closed,
    /// An internal error worth knowing about (the client handles it on its own).
    Error {
        /// What failed.
        kind: ErrorKind,
        /// The error.
        error: Error,
    },
    /// An asynchronous message from the server.
    Message(Bytes),
    /// A server-side subscription is subscribing again (connection lost).
    Subscribing {
        /// Channel.
        channel: String,
        /// Why.
        code: u32,
        /// Human-readable reason.
        reason: String,
    },
    /// Subscribed to a server-side subscription.
    Subscribed(SubscribedContext),
    /// A server-side subscription ended.
    Unsubscribed {
        /// Channel.
        channel: String,
        /// Why.
        code: u32,
        /// Human-readable reason.
        reason: String,
    },
    /// A publication in a server-side subscription (or a channel not in the registry).
    Publication(Publication),
    /// A client joined a server-side subscription channel.
    Join {
        /// Channel.
        channel: String,
        /// Who joined.
        info: ClientInfo,
    },
    /// A client left a server-side subscription channel.
    Leave {
        /// Channel.
        channel: String,
        /// Who left.
        info: ClientInfo,
    },
    /// This event stream fell behind and `missed` events were dropped (bounded memory).
    Lagged {
        /// Number of dropped events.
        missed: u64,
    },
}

/// An event about one client-side subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionEvent {
    /// The subscription moved to `Subscribing`.
    Subscribing {
        /// Why (0 subscribe called, 1 transport closed, or a server unsubscribe code ≥ 2500).
        code: u32,
        /// Human-readable reason.
        reason: String,
    },
    /// The subscription moved to `Subscribed`.
    Subscribed(SubscribedContext),
    /// The subscription moved to `Unsubscribed`.
    Unsubscribed {
        /// Why (0 unsubscribe called, 1 unauthorized, 2 client closed, or a server code).
        code: u32,
        /// Human-readable reason.
        reason: String,
    },
    /// A publication in the channel.
    Publication(Publication),
    /// A client joined the channel.
    Join(ClientInfo),
    /// A client left the channel.
    Leave(ClientInfo),
    /// An internal error worth knowing about (the subscription handles it on its own).
    Error {
        /// What failed.
        kind: ErrorKind,
        /// The error.
        error: Error,
    },
    /// Lossy mode only ([`ClientOptions::backpressure`](crate::ClientOptions::backpressure)`(false)`):
    /// this event stream fell behind and events were dropped. Delivered as soon as the
    /// stream has room again, before any later event.
    Lagged {
        /// Number of dropped events.
        missed: u64,
        /// How many of them were publications.
        publications: u64,
        /// For a positioned stream: the position just before the first dropped publication.
        /// `history` with `since` set to it returns what was lost; the client also rewinds its
        /// recovery position there, so the next resubscribe with recovery delivers them again
        /// (with the publications after them: at least once).
        recover_from: Option<StreamPosition>,
    },
}

/// Options of a history call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryOptions {
    /// 0: only the stream top position; -1: everything (server-capped); n: at most n.
    pub limit: i32,
    /// Only publications after this position.
    pub since: Option<StreamPosition>,
    /// Newest first.
    pub reverse: bool,
}

/// Result of a history call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryResult {
    /// Publications.
    pub publications: Vec<Publication>,
    /// Current stream epoch.
    pub epoch: String,
    /// Current stream top offset.
    pub offset: u64,
}

/// Result of a presence call: client id to client info.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresenceResult {
    /// Present clients by client id.
    pub clients: HashMap<String, ClientInfo>,
}

/// Result of a presence stats call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PresenceStatsResult {
    /// Number of connections subscribed.
    pub num_clients: u32,
    /// Number of distinct users subscribed.
    pub num_users: u32,
}

/// What an error event is about, like centrifuge-js's error `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Opening or keeping the WebSocket: DNS, TCP, TLS, the HTTP upgrade, a lost socket.
    Transport,
    /// The connect command: a server error, a bad or missing reply, the handshake timeout.
    Connect,
    /// The connection token callback failed or refused (empty token).
    ConnectToken,
    /// Refreshing the connection token with the server.
    Refresh,
    /// The token callback failed while refreshing the connection token.
    RefreshToken,
    /// The subscribe command: a server error, a bad reply, the subscribe timeout.
    Subscribe,
    /// The subscription token callback failed or refused (empty token).
    SubscribeToken,
    /// Refreshing a subscription token with the server (`sub_refresh`).
    SubscribeRefresh,
    /// A frame or publication from the server could not be decoded or applied.
    Protocol,
    /// Options that can't be sent (for example subscription data that is not JSON).
    Configuration,
}
