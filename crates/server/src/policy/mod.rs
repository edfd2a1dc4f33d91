//! The policy seam: one place decides whether a connection may connect, subscribe, publish,
//! use presence or history, call an RPC method or refresh its credentials.
//!
//! Every decision is a plain value the session applies ([`ConnectDecision`],
//! [`SubscribeDecision`], ...), or a [`ProtocolError`] the session answers with. The session
//! keeps what only it can do (limits, the hub, the subscribe algorithm); this module holds the
//! rules. Today's rules (connection and subscription JWTs, namespace permissions, the built-in
//! ping RPC) are the default implementation in [`rules`], with token verification and its
//! error mapping written once in [`token`].

mod rules;
mod token;

use bytes::Bytes;
use gyre_auth::ChannelOverride;

pub(crate) use rules::{access_allowed, connect, publish, refresh, rpc, sub_refresh, subscribe};

/// Which permission family a check is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Publishing from the client.
    Publish,
    /// Presence and presence stats.
    Presence,
    /// History.
    History,
}

/// Who is asking: the connection's user and client id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subject<'a> {
    /// User id, `""` for anonymous connections.
    pub user: &'a str,
    /// Client (connection) id.
    pub client: &'a str,
}

/// A server-side subscription granted at connect time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grant {
    /// The channel.
    pub channel: String,
    /// Channel-scoped connection info.
    pub info: Bytes,
    /// Data for the subscribe result.
    pub data: Bytes,
    /// Channel option overrides.
    pub overrides: ChannelOverride,
}

/// The credentials and subscriptions of an accepted connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectDecision {
    /// User id, `""` for anonymous connections.
    pub user: String,
    /// When the connection expires (unix seconds); `None` means never.
    pub expire_at: Option<i64>,
    /// Connection info.
    pub info: Bytes,
    /// Data for the connect result.
    pub data: Bytes,
    /// Server-side subscriptions.
    pub subs: Vec<Grant>,
    /// Server-side connection metadata (JSON), never sent to clients; proxies may get it.
    pub meta: Option<std::sync::Arc<serde_json::value::RawValue>>,
}

/// What an accepted subscription carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubscribeDecision {
    /// Channel-scoped connection info.
    pub info: Bytes,
    /// Data for the subscribe result.
    pub data: Bytes,
    /// When the subscription expires (unix seconds); `None` means never.
    pub expire_at: Option<i64>,
    /// Channel option overrides.
    pub overrides: ChannelOverride,
}

/// How an accepted publication is published.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublishDecision {
    /// Data replacing the client's, when set.
    pub data: Option<Bytes>,
    /// Do not save the publication in history.
    pub skip_history: bool,
}

/// The answer to an RPC call.
#[derive(Debug, Clone, Default)]
pub(crate) struct RpcDecision {
    /// Result data.
    pub data: Bytes,
}

/// New credentials of a refreshed connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct RefreshDecision {
    /// New expiry (unix seconds); `None` means never.
    pub expire_at: Option<i64>,
    /// New connection info, when given.
    pub info: Option<Bytes>,
}

/// New expiry of a refreshed subscription.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubRefreshDecision {
    /// New expiry (unix seconds); `None` means never.
    pub expire_at: Option<i64>,
}
