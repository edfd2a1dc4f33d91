//! The unidirectional WebSocket transport (`uni_websocket`): the connect request comes in the
//! `cf_connect` query parameter or as the first message (JSON), later messages are read and
//! ignored, and bare JSON pushes go out one per message (joined, newline-delimited, with
//! `join_push_messages`), a disconnect push before the close frame unless
//! `disable_disconnect_push`.

use bytes::Bytes;
use gyre_protocol::Disconnect;
use tokio::io::{AsyncRead, AsyncWrite};

use super::WsTransport;
use crate::transport::{Transport, TransportError, TransportInfo};

/// A unidirectional session's WebSocket.
pub(crate) struct UniWsTransport<S> {
    ws: WsTransport<S>,
    /// The connect request from the query, handed out first.
    first: Option<Bytes>,
    /// The connect request was handed out: later messages are ignored.
    connected: bool,
    join: bool,
    disconnect_push: bool,
}

impl<S> UniWsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Wraps a WebSocket; `first` is the connect request when the query carried it.
    pub(crate) fn new(
        ws: WsTransport<S>,
        first: Option<Bytes>,
        join: bool,
        disconnect_push: bool,
    ) -> Self {
        Self {
            ws,
            first,
            connected: false,
            join,
            disconnect_push,
        }
    }
}

impl<S> Transport for UniWsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn info(&self) -> TransportInfo {
        TransportInfo {
            name: "uni_websocket",
            unidirectional: true,
            emulation: false,
            disconnect_push: self.disconnect_push,
        }
    }

    async fn recv(&mut self) -> Option<Result<Bytes, TransportError>> {
        if let Some(first) = self.first.take() {
            self.connected = true;
            return Some(Ok(first));
        }
        loop {
            let frame = self.ws.recv().await?;
            if !self.connected || frame.is_err() {
                self.connected = true;
                return Some(frame);
            }
        }
    }

    async fn send_units(&mut self, units: &[Bytes]) -> Result<(), TransportError> {
        if self.join {
            return self.ws.send_units(units).await;
        }
        for unit in units {
            self.ws.send_units(std::slice::from_ref(unit)).await?;
        }
        Ok(())
    }

    async fn close(&mut self, disconnect: Option<&Disconnect>) {
        self.ws.close(disconnect).await;
    }
}
