//! Named codes of the client and subscription state-change events.
//!
//! The numbers follow centrifuge-js: each state has its own small code space for the reasons
//! the client itself decides on, next to the server's disconnect and error codes, which are
//! passed through as they come (for example 3500 "invalid token" or 109 "token expired").

/// Codes of [`ClientEvent::Connecting`](crate::ClientEvent::Connecting).
pub mod connecting {
    /// `connect()` was called.
    pub const CONNECT_CALLED: u32 = 0;
    /// The transport closed or could not be opened.
    pub const TRANSPORT_CLOSED: u32 = 1;
    /// The connect command got no reply within the timeout (shares the transport code).
    pub const CONNECT_TIMEOUT: u32 = 1;
    /// No ping from the server within the ping interval plus `max_server_ping_delay`.
    pub const NO_PING: u32 = 2;
    /// No longer used: a subscribe timeout now retries that subscription alone (an error
    /// event of kind `Subscribe` and its resubscribe backoff) and keeps the connection.
    #[deprecated(note = "a subscribe timeout no longer reconnects the client")]
    pub const SUBSCRIBE_TIMEOUT: u32 = 3;
    /// An unsubscribe command failed or timed out.
    pub const UNSUBSCRIBE_ERROR: u32 = 4;
}

/// Codes of [`ClientEvent::Disconnected`](crate::ClientEvent::Disconnected).
pub mod disconnected {
    /// `disconnect()` or `close()` was called.
    pub const DISCONNECT_CALLED: u32 = 0;
    /// The token callback returned an empty token.
    pub const UNAUTHORIZED: u32 = 1;
    /// The server's reply could not be understood, or the connect data could not be encoded.
    pub const BAD_PROTOCOL: u32 = 2;
}

/// Codes of [`SubscriptionEvent::Subscribing`](crate::SubscriptionEvent::Subscribing).
pub mod subscribing {
    /// `subscribe()` was called.
    pub const SUBSCRIBE_CALLED: u32 = 0;
    /// The transport closed; the subscription resubscribes on reconnect.
    pub const TRANSPORT_CLOSED: u32 = 1;
    /// A delta publication could not be applied; the subscription resubscribes to recover.
    pub const BAD_DELTA: u32 = 2500;
}

/// Codes of [`SubscriptionEvent::Unsubscribed`](crate::SubscriptionEvent::Unsubscribed).
pub mod unsubscribed {
    /// `unsubscribe()` was called.
    pub const UNSUBSCRIBE_CALLED: u32 = 0;
    /// The subscription token callback returned an empty token.
    pub const UNAUTHORIZED: u32 = 1;
    /// A server-side subscription was missing from the reply to a new connect.
    pub const SERVER_SUBSCRIPTION_REMOVED: u32 = 0;
    /// The client was closed.
    pub const CLIENT_CLOSED: u32 = 2;
    /// The subscription options cannot be sent (for example its data is not valid JSON).
    pub const BAD_CONFIGURATION: u32 = 12;
}
