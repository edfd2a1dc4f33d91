//! The WebSocket transports: the codec ([`codec`]), the upgrade handshake ([`handshake`]),
//! the bidirectional adapter the session runs over ([`WsTransport`]) and the unidirectional
//! one ([`uni`]).

pub(crate) mod codec;
pub(crate) mod handshake;
pub(crate) mod uni;

use std::time::Duration;

use bytes::Bytes;
use gyre_protocol::codec::join_units;
use gyre_protocol::{Disconnect, Protocol};
use tokio::io::{AsyncRead, AsyncWrite};

use self::codec::{WsError, WsStream};
use super::{Transport, TransportError, TransportInfo};

/// How long a closing connection may take at least to accept its close frame (the configured
/// write timeout applies when it is longer).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

const INFO: TransportInfo = TransportInfo {
    name: "websocket",
    unidirectional: false,
    emulation: false,
    disconnect_push: false,
};

/// A session's WebSocket: one WebSocket message per batch of units (text for JSON, binary for
/// Protobuf), the disconnect in the close frame.
pub(crate) struct WsTransport<S> {
    ws: WsStream<S>,
    protocol: Protocol,
    /// Zero: no limit.
    write_timeout: Duration,
}

impl<S> WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Wraps an upgraded connection.
    pub(crate) fn new(ws: WsStream<S>, protocol: Protocol, write_timeout: Duration) -> Self {
        Self {
            ws,
            protocol,
            write_timeout,
        }
    }
}

impl From<WsError> for TransportError {
    fn from(err: WsError) -> Self {
        match err {
            WsError::Io(err) => Self::Io(err),
            err @ WsError::Protocol { .. } => Self::Protocol(err.to_string()),
        }
    }
}

impl<S> Transport for WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn info(&self) -> TransportInfo {
        INFO
    }

    async fn recv(&mut self) -> Option<Result<Bytes, TransportError>> {
        Some(match self.ws.next().await? {
            Ok(message) => Ok(message.into_payload()),
            Err(err) => Err(err.into()),
        })
    }

    async fn send_units(&mut self, units: &[Bytes]) -> Result<(), TransportError> {
        // A single message (the common case of one publication) is written as the shared
        // bytes themselves; several are joined into one frame.
        let joined;
        let frame: &[u8] = match units {
            [one] => one,
            _ => {
                joined = join_units(self.protocol, units);
                &joined
            }
        };
        let text = self.protocol == Protocol::Json;
        if self.write_timeout.is_zero() {
            return Ok(self.ws.send(text, frame).await?);
        }
        match tokio::time::timeout(self.write_timeout, self.ws.send(text, frame)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(TransportError::Io(std::io::ErrorKind::TimedOut.into())),
        }
    }

    async fn close(&mut self, disconnect: Option<&Disconnect>) {
        let timeout = CLOSE_TIMEOUT.max(self.write_timeout);
        let _ = tokio::time::timeout(timeout, async {
            if let Some(disconnect) = disconnect {
                let _ = self
                    .ws
                    .send_close(disconnect.code, &disconnect.reason)
                    .await;
            }
            // Flushes a close frame the codec queued (1009 for an oversized message), or a
            // normal one.
            let _ = self.ws.close().await;
        })
        .await;
    }
}
