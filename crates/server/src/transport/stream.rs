//! The bidirectional emulation transports: the server-to-client half is one long HTTP
//! response, the client-to-server half arrives through `/emulation` by session id
//! ([`crate::emulation`]).
//! - HTTP-streaming: JSON messages each followed by a newline, or Protobuf messages each
//!   prefixed by its varint length (as on a WebSocket, without the WebSocket framing);
//! - SSE: one `data: <JSON message>` event per message (JSON only).
//!
//! The unidirectional `uni_http_stream` and `uni_sse` write bare pushes the same ways (JSON)
//! and take no commands.
//!
//! The response body is fed through a channel of one chunk: a client that stops reading
//! leaves the chunk unsent, the next write times out after a second (as upstream's write
//! deadline) and the session's byte-bounded queue disconnects it as slow meanwhile, so
//! memory stays bounded. A client that goes away drops the body, which ends the session.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use bytes::{BufMut, Bytes, BytesMut};
use gyre_protocol::{Disconnect, Protocol};
use tokio::sync::mpsc;

use super::{Transport, TransportError, TransportInfo};
use crate::emulation::Registration;

/// How long one chunk may wait for the client to take the previous one (upstream's
/// streaming write deadline).
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The framing of a streaming response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// HTTP-streaming in the given encoding.
    HttpStream(Protocol),
    /// Server-sent events (JSON).
    Sse,
    /// Unidirectional HTTP-streaming (`uni_http_stream`): bare JSON pushes, one per line.
    UniHttpStream,
    /// Unidirectional server-sent events (`uni_sse`): bare JSON pushes.
    UniSse,
}

impl Framing {
    fn info(self) -> TransportInfo {
        TransportInfo {
            name: match self {
                Self::HttpStream(_) => "http_stream",
                Self::Sse => "sse",
                Self::UniHttpStream => "uni_http_stream",
                Self::UniSse => "uni_sse",
            },
            unidirectional: self.unidirectional(),
            emulation: !self.unidirectional(),
            disconnect_push: true,
        }
    }

    /// Whether this is a unidirectional transport.
    pub(crate) fn unidirectional(self) -> bool {
        matches!(self, Self::UniHttpStream | Self::UniSse)
    }

    /// Whether the response is an event stream.
    pub(crate) fn is_sse(self) -> bool {
        matches!(self, Self::Sse | Self::UniSse)
    }

    /// One chunk of the response for a batch of encoded messages.
    fn chunk(self, units: &[Bytes]) -> Bytes {
        let extra = match self {
            Self::HttpStream(Protocol::Json) | Self::UniHttpStream => 1,
            Self::HttpStream(Protocol::Protobuf) => 0,
            Self::Sse | Self::UniSse => 8,
        };
        let mut chunk = BytesMut::with_capacity(units.iter().map(|u| u.len() + extra).sum());
        for unit in units {
            match self {
                Self::HttpStream(Protocol::Json) | Self::UniHttpStream => {
                    chunk.put_slice(unit);
                    chunk.put_u8(b'\n');
                }
                // Protobuf units are already length-delimited.
                Self::HttpStream(Protocol::Protobuf) => chunk.put_slice(unit),
                Self::Sse | Self::UniSse => {
                    chunk.put_slice(b"data: ");
                    chunk.put_slice(unit);
                    chunk.put_slice(b"\n\n");
                }
            }
        }
        chunk.freeze()
    }
}

/// A session's streaming response and its emulated commands.
pub(crate) struct StreamTransport {
    framing: Framing,
    /// The commands of the connection request itself (the connect command).
    first: Option<Bytes>,
    /// Emulated commands (none for a unidirectional transport).
    commands: Option<mpsc::Receiver<Bytes>>,
    /// The response body; `None` once closed.
    body: Option<mpsc::Sender<Bytes>>,
    _registration: Option<Registration>,
}

impl StreamTransport {
    /// A transport whose first frame is `first` and whose later frames come from
    /// `emulation` (an emulated session's registration and commands; `None` for a
    /// unidirectional transport), and the response body it writes to.
    pub(crate) fn new(
        framing: Framing,
        first: Bytes,
        emulation: Option<(Registration, mpsc::Receiver<Bytes>)>,
    ) -> (Self, Body) {
        let (registration, commands) = emulation.unzip();
        let (tx, rx) = mpsc::channel::<Bytes>(1);
        if framing.is_sse() {
            // Upstream opens the event stream with an empty line, so headers go out at once.
            let _ = tx.try_send(Bytes::from_static(b"\r\n"));
        }
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
        });
        let transport = Self {
            framing,
            first: Some(first),
            commands,
            body: Some(tx),
            _registration: registration,
        };
        (transport, Body::from_stream(stream))
    }
}

impl Transport for StreamTransport {
    fn info(&self) -> TransportInfo {
        self.framing.info()
    }

    async fn recv(&mut self) -> Option<Result<Bytes, TransportError>> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        let body = self.body.as_ref()?;
        let Some(commands) = self.commands.as_mut() else {
            body.closed().await;
            return None;
        };
        tokio::select! {
            frame = commands.recv() => frame.map(Ok),
            // The client went away (the server dropped the response body).
            () = body.closed() => None,
        }
    }

    async fn send_units(&mut self, units: &[Bytes]) -> Result<(), TransportError> {
        let Some(body) = self.body.as_ref() else {
            return Err(TransportError::Io(std::io::ErrorKind::BrokenPipe.into()));
        };
        let chunk = self.framing.chunk(units);
        match tokio::time::timeout(WRITE_TIMEOUT, body.send(chunk)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(TransportError::Io(std::io::ErrorKind::BrokenPipe.into())),
            Err(_) => Err(TransportError::Io(std::io::ErrorKind::TimedOut.into())),
        }
    }

    async fn close(&mut self, _disconnect: Option<&Disconnect>) {
        // The disconnect push, if any, was the last chunk: ending the body ends the response.
        self.body = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_per_framing() {
        let units = [Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"{}")];
        assert_eq!(
            &Framing::HttpStream(Protocol::Json).chunk(&units)[..],
            b"{\"a\":1}\n{}\n"
        );
        assert_eq!(
            &Framing::Sse.chunk(&units)[..],
            b"data: {\"a\":1}\n\ndata: {}\n\n"
        );
        let varint = [Bytes::from_static(&[2, 8, 1]), Bytes::from_static(&[0])];
        assert_eq!(
            &Framing::HttpStream(Protocol::Protobuf).chunk(&varint)[..],
            &[2, 8, 1, 0]
        );
    }
}
