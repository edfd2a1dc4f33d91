//! Transports: how a session's encoded messages reach a client and its commands come back.
//!
//! A session ([`crate::session::run`]) is generic over [`Transport`], so each transport is a
//! thin adapter and the hub, the outbound queue and the protocol logic stay shared:
//! - [`ws`]: bidirectional WebSocket (`/connection/websocket`), Gyre's own framing;
//! - [`stream`]: the bidirectional emulation transports, HTTP-streaming
//!   (`/connection/http_stream`) and SSE (`/connection/sse`), whose client-to-server commands
//!   arrive through `/emulation` ([`crate::emulation`]);
//! - [`cors`]: the CORS headers of the HTTP-based endpoints.
//!
//! A transport writes batches of encoded messages (framing units) in its own framing, closes
//! with a disconnect, and says what the session must do differently for it ([`TransportInfo`]).

pub(crate) mod cors;
pub(crate) mod stream;
pub(crate) mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use gyre_protocol::Disconnect;

use crate::node::Node;

/// What a transport tells the session about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransportInfo {
    /// Transport name, as reported to proxies (`websocket`, `http_stream`, `sse`, ...).
    pub name: &'static str,
    /// Server-to-client only: pushes go out bare (not wrapped in a reply), the connect
    /// request comes with the HTTP request and no pong is expected.
    pub unidirectional: bool,
    /// Bidirectional emulation: the client sends its commands through `/emulation`, by the
    /// session id and node id of the connect result.
    pub emulation: bool,
    /// The client is told why it is disconnected by a disconnect push written before the end
    /// of the stream (a WebSocket says it in its close frame instead).
    pub disconnect_push: bool,
}

impl TransportInfo {
    /// Whether the client must answer pings, given the node's ping/pong settings.
    pub(crate) fn expects_pong(&self, node_expects_pong: bool) -> bool {
        node_expects_pong && !self.unidirectional
    }
}

/// A transport failed: the connection is over.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    /// Reading or writing failed, or a write did not finish in time.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The client broke the transport's framing rules (the transport has queued its answer).
    #[error("{0}")]
    Protocol(String),
}

/// One client connection as the session sees it.
pub(crate) trait Transport: Send {
    /// What the session must know about this transport.
    fn info(&self) -> TransportInfo;

    /// The next frame of client commands; `None` once the client is gone. After an error
    /// nothing more is read and the session ends with [`Transport::close`] (`None`).
    fn recv(&mut self) -> impl Future<Output = Option<Result<Bytes, TransportError>>> + Send;

    /// Writes encoded messages (at least one), in order, as one write of the transport's
    /// framing where it has one.
    fn send_units(
        &mut self,
        units: &[Bytes],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Ends the connection, telling the client `disconnect` where the transport can (a close
    /// frame); `None` after a read error (whatever the transport owes the client is flushed).
    fn close(&mut self, disconnect: Option<&Disconnect>) -> impl Future<Output = ()> + Send;
}

/// Counts an open connection for `client.connection_limit` until dropped.
pub(crate) struct OpenConnection(Arc<Node>);

impl OpenConnection {
    /// Whether `client.connection_limit` leaves room for one more connection.
    pub(crate) fn available(node: &Node) -> bool {
        let limit = node.config.client.connection_limit;
        limit == 0 || node.open_connections.load(Ordering::Relaxed) < limit
    }

    /// Counts a connection until the value is dropped.
    pub(crate) fn count(node: &Arc<Node>) -> Self {
        node.open_connections.fetch_add(1, Ordering::Relaxed);
        Self(node.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The client's address, from a request's extensions (set by the server).
pub(crate) fn remote_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}
