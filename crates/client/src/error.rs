//! The error type of every fallible SDK operation.

/// What went wrong with a call, a subscription or the connection.
///
/// Cheap to clone: it is also carried by [`ClientEvent::Error`](crate::ClientEvent::Error) and
/// [`SubscriptionEvent::Error`](crate::SubscriptionEvent::Error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation did not complete within the configured timeout.
    #[error("operation timed out")]
    Timeout,
    /// The client was closed; it can't be used any more.
    #[error("client closed")]
    Closed,
    /// The client is (or became) disconnected: `disconnect()` was called or a terminal
    /// condition was reached.
    #[error("client disconnected")]
    Disconnected,
    /// The connection was lost while the command was in flight; it may or may not have been
    /// applied by the server.
    #[error("connection closed")]
    ConnectionClosed,
    /// The subscription is (or became) unsubscribed.
    #[error("subscription unsubscribed")]
    Unsubscribed,
    /// The server answered with an error.
    #[error("server error {code}: {message}")]
    Server {
        /// Error code (100-1999).
        code: u32,
        /// Message sent by the server.
        message: String,
        /// Whether retrying may succeed.
        temporary: bool,
    },
    /// The token callback returned an empty token: no permission to connect or subscribe.
    #[error("unauthorized")]
    Unauthorized,
    /// The token callback failed.
    #[error("token callback failed: {0}")]
    Token(String),
    /// The WebSocket transport failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// The server sent something this client could not decode or apply.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A payload can't be carried by the chosen protocol (JSON needs valid JSON payloads).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A subscription to this channel is already in the client's registry.
    #[error("subscription to channel {0:?} already exists")]
    DuplicateSubscription(String),
    /// No subscription to this channel is in the client's registry.
    #[error("no subscription to channel {0:?}")]
    SubscriptionNotFound(String),
    /// The client options are not usable (for example a malformed URL).
    #[error("bad configuration: {0}")]
    Configuration(String),
}

impl Error {
    /// The error of a server reply.
    pub fn server(e: &gyre_protocol::Error) -> Self {
        Self::Server {
            code: e.code,
            message: e.message.clone(),
            temporary: e.temporary,
        }
    }

    /// The server error code, when this is a server error.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}
