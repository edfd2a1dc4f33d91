//! The server side of WebSocket framing (RFC 6455) for client sessions.
//!
//! Written for memory per idle connection: frames are read into one scratch buffer per thread
//! and only the bytes of an incomplete frame are kept per connection, so an idle connection
//! holds no read buffer at all (a general-purpose codec keeps an 8 KiB buffer per connection,
//! which was half of an idle session's memory). Data messages are handed out whole
//! (fragments joined); pings are answered, pongs ignored, and the close handshake, masking,
//! size and UTF-8 rules are enforced with the close codes RFC 6455 gives (1002, 1007, 1009).
//! Frames are written unfragmented, header and payload in one vectored write. With
//! permessage-deflate negotiated ([`deflate`]), messages from `min_size` bytes up go out
//! compressed (RSV1 set) and compressed messages from the client are inflated, up to a limit.

pub(crate) mod deflate;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
pub(crate) use deflate::Deflate;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Size of the per-thread buffer frames are read into.
const SCRATCH_BYTES: usize = 64 * 1024;

/// The largest payload a control frame may carry.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Close code: the peer broke the protocol.
pub(crate) const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: a text message (or close reason) was not UTF-8.
pub(crate) const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code: a message was larger than the limit.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: normal closure.
pub(crate) const CLOSE_NORMAL: u16 = 1000;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

/// A data message received from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    text: bool,
    payload: Bytes,
}

impl Message {
    /// Whether the message was sent as text (opcode 1).
    pub(crate) fn is_text(&self) -> bool {
        self.text
    }

    /// Whether the message was sent as binary (opcode 2).
    #[cfg(test)]
    pub(crate) fn is_binary(&self) -> bool {
        !self.text
    }

    /// The message's bytes (fragments joined, unmasked).
    pub(crate) fn as_payload(&self) -> &[u8] {
        &self.payload
    }

    /// The message's bytes, taken.
    pub(crate) fn into_payload(self) -> Bytes {
        self.payload
    }
}

/// What can go wrong on a WebSocket connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WsError {
    /// The transport failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The client broke the framing rules; a close frame with `code` has been queued.
    #[error("protocol violation ({code}): {reason}")]
    Protocol {
        /// The close code sent to the client.
        code: u16,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A message being assembled from fragments.
#[derive(Debug)]
struct Fragments {
    text: bool,
    /// The first frame had RSV1 set: the whole message is compressed.
    compressed: bool,
    payload: BytesMut,
}

/// A frame's header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    /// RSV1: the message is compressed (first frame of a data message only).
    rsv1: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Bytes taken by the header.
    len: usize,
    /// Bytes of payload after it.
    payload_len: usize,
}

/// Parses the header at the start of `buf`: `Ok(None)` when more bytes are needed. RSV1 is
/// allowed on the first frame of a data message when `rsv1_ok` (permessage-deflate).
fn parse_header(buf: &[u8], max_payload: usize, rsv1_ok: bool) -> Result<Option<Header>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 || (rsv1 && !(rsv1_ok && matches!(b0 & 0x0f, 1 | 2))) {
        return Err(protocol(CLOSE_PROTOCOL_ERROR, "reserved bits set"));
    }
    if b1 & 0x80 == 0 {
        return Err(protocol(CLOSE_PROTOCOL_ERROR, "client frame not masked"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    let (payload_len, at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                let n = u64::from_be_bytes(n);
                if n >> 63 != 0 {
                    return Err(protocol(
                        CLOSE_PROTOCOL_ERROR,
                        "payload length out of range",
                    ));
                }
                (n, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode >= 8 {
        if !fin {
            return Err(protocol(CLOSE_PROTOCOL_ERROR, "fragmented control frame"));
        }
        if payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(protocol(CLOSE_PROTOCOL_ERROR, "control frame too long"));
        }
    }
    let payload_len = usize::try_from(payload_len)
        .ok()
        .filter(|n| *n <= max_payload)
        .ok_or_else(|| protocol(CLOSE_TOO_BIG, "message too big"))?;
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        rsv1,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        len: at + 4,
        payload_len,
    }))
}

fn protocol(code: u16, reason: &'static str) -> WsError {
    WsError::Protocol { code, reason }
}

/// XORs `data` with the masking key, as if it started at byte 0 of the payload.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let mut v = [0u8; 4];
        v.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u32::from_ne_bytes(v) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Encodes an unmasked (server) frame header into `out`; returns its length. `opcode` may
/// carry RSV1 (0x40) for a compressed message.
fn encode_header(out: &mut [u8; 10], opcode: u8, payload_len: usize) -> usize {
    out[0] = 0x80 | opcode;
    if payload_len < 126 {
        out[1] = payload_len as u8;
        2
    } else if let Ok(n) = u16::try_from(payload_len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&n.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    }
}

/// Whether a close code may be sent in a close frame (RFC 6455 §7.4).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// A connection's permessage-deflate: its settings and the message being written.
#[derive(Debug)]
struct DeflateState {
    settings: Deflate,
    /// The compressed copy of the message being written (empty between writes).
    out: Vec<u8>,
}

/// A server-side WebSocket over an upgraded connection.
pub(crate) struct WsStream<S> {
    io: S,
    /// The message size limit; stored in 32 bits (a limit from 4 GiB up acts as 4 GiB) so it
    /// packs with the flags below and the stream stays as small as before the deflate box.
    max_payload: u32,
    /// permessage-deflate, when negotiated (boxed: most connections do without).
    deflate: Option<Box<DeflateState>>,
    /// Bytes of an incomplete frame (empty, and unallocated, between frames).
    partial: Vec<u8>,
    /// A fragmented message being assembled.
    fragments: Option<Box<Fragments>>,
    /// Complete messages read but not yet handed out.
    ready: VecDeque<Message>,
    /// Control frames owed to the client (pongs, the close frame), written before anything else.
    control_out: Vec<u8>,
    /// A close frame has been queued or sent.
    close_sent: bool,
    /// Nothing more will be read: the client closed, the transport ended, or it broke the rules.
    read_done: bool,
}

impl<S> WsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Wraps a connection whose upgrade handshake is done; messages larger than `max_payload`
    /// bytes are refused with close code 1009.
    pub(crate) fn new(io: S, max_payload: usize) -> Self {
        Self {
            io,
            max_payload: u32::try_from(max_payload).unwrap_or(u32::MAX),
            deflate: None,
            partial: Vec::new(),
            fragments: None,
            ready: VecDeque::new(),
            control_out: Vec::new(),
            close_sent: false,
            read_done: false,
        }
    }

    /// Turns permessage-deflate on (negotiated in the handshake) or off.
    pub(crate) fn with_deflate(mut self, deflate: Option<Deflate>) -> Self {
        self.deflate = deflate.map(|settings| {
            Box::new(DeflateState {
                settings,
                out: Vec::new(),
            })
        });
        self
    }

    /// The next data message; `None` once the client has closed (after the close reply has
    /// been written) or the transport has ended. After an error nothing more is read; call
    /// [`WsStream::close`] to send the queued close frame.
    pub(crate) async fn next(&mut self) -> Option<Result<Message, WsError>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, WsError>>> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(message)));
            }
            if self.read_done {
                // Write the close reply before reporting the end.
                return match ready!(self.poll_flush_control(cx)) {
                    Ok(()) => Poll::Ready(None),
                    Err(err) => Poll::Ready(Some(Err(err.into()))),
                };
            }
            if !self.control_out.is_empty() {
                // Pongs go out as soon as the transport takes them; reading goes on meanwhile.
                if let Poll::Ready(Err(err)) = self.poll_flush_control(cx) {
                    self.read_done = true;
                    return Poll::Ready(Some(Err(err.into())));
                }
            }
            let read = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let mut buf = ReadBuf::new(&mut scratch[..]);
                match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(err)) => Poll::Ready(Err(WsError::from(err))),
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(false)),
                    Poll::Ready(Ok(())) => Poll::Ready(self.on_bytes(buf.filled()).map(|()| true)),
                }
            });
            match ready!(read) {
                Ok(true) => {}
                Ok(false) => {
                    self.read_done = true;
                    self.control_out.clear();
                    return Poll::Ready(None);
                }
                Err(err) => {
                    self.read_done = true;
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }

    /// Parses the frames in newly read bytes; keeps an incomplete frame's bytes.
    fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), WsError> {
        if self.partial.is_empty() {
            let used = self.parse_frames(bytes)?;
            if used < bytes.len() {
                self.partial.extend_from_slice(&bytes[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.partial);
            buf.extend_from_slice(bytes);
            let used = self.parse_frames(&buf)?;
            buf.drain(..used);
            if buf.is_empty() {
                buf = Vec::new();
            }
            self.partial = buf;
        }
        Ok(())
    }

    /// Handles every complete frame at the start of `buf`; returns the bytes consumed.
    fn parse_frames(&mut self, buf: &[u8]) -> Result<usize, WsError> {
        let mut at = 0;
        while !self.read_done {
            let rsv1_ok = self.deflate.is_some();
            let result = parse_header(&buf[at..], self.max_payload as usize, rsv1_ok)
                .and_then(|h| h.map(|h| self.check_fragment_size(h)).transpose());
            let header = match result {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(err) => return Err(self.fail(err)),
            };
            let end = at + header.len + header.payload_len;
            if buf.len() < end {
                break;
            }
            let mut payload = BytesMut::from(&buf[at + header.len..end]);
            unmask(&mut payload, header.mask);
            at = end;
            if let Err(err) = self.on_frame(header, payload) {
                return Err(self.fail(err));
            }
        }
        Ok(at)
    }

    /// Refuses a continuation that would take the assembled message over the limit.
    fn check_fragment_size(&self, header: Header) -> Result<Header, WsError> {
        match &self.fragments {
            Some(f)
                if header.opcode == 0
                    && f.payload.len().saturating_add(header.payload_len)
                        > self.max_payload as usize =>
            {
                Err(protocol(CLOSE_TOO_BIG, "message too big"))
            }
            _ => Ok(header),
        }
    }

    /// Queues the close frame for a protocol error and stops reading.
    fn fail(&mut self, err: WsError) -> WsError {
        if let WsError::Protocol { code, reason } = &err {
            self.queue_close(*code, reason);
        }
        self.read_done = true;
        self.fragments = None;
        self.partial = Vec::new();
        err
    }

    fn on_frame(&mut self, header: Header, payload: BytesMut) -> Result<(), WsError> {
        match header.opcode {
            1 | 2 => {
                if self.fragments.is_some() {
                    return Err(protocol(
                        CLOSE_PROTOCOL_ERROR,
                        "new message inside a fragmented one",
                    ));
                }
                let text = header.opcode == 1;
                let compressed = header.rsv1;
                if header.fin {
                    self.deliver(text, compressed, payload)?;
                } else {
                    self.fragments = Some(Box::new(Fragments {
                        text,
                        compressed,
                        payload,
                    }));
                }
            }
            0 => {
                let Some(fragments) = self.fragments.as_mut() else {
                    return Err(protocol(
                        CLOSE_PROTOCOL_ERROR,
                        "continuation without a message",
                    ));
                };
                fragments.payload.extend_from_slice(&payload);
                if header.fin
                    && let Some(f) = self.fragments.take()
                {
                    self.deliver(f.text, f.compressed, f.payload)?;
                }
            }
            8 => self.on_close(&payload)?,
            9 => {
                let mut head = [0u8; 10];
                let n = encode_header(&mut head, 0xA, payload.len());
                if !self.close_sent {
                    self.control_out.extend_from_slice(&head[..n]);
                    self.control_out.extend_from_slice(&payload);
                }
            }
            10 => {}
            _ => return Err(protocol(CLOSE_PROTOCOL_ERROR, "unknown opcode")),
        }
        Ok(())
    }

    fn deliver(&mut self, text: bool, compressed: bool, payload: BytesMut) -> Result<(), WsError> {
        let payload = match (compressed, self.deflate.as_deref()) {
            (true, Some(d)) => match deflate::inflate(&payload, d.settings.max_inflated) {
                Ok(inflated) => BytesMut::from(&inflated[..]),
                Err(deflate::InflateError::TooBig) => {
                    return Err(protocol(CLOSE_TOO_BIG, "message too big"));
                }
                Err(deflate::InflateError::Corrupt) => {
                    return Err(protocol(CLOSE_INVALID_PAYLOAD, "bad compressed data"));
                }
            },
            _ => payload,
        };
        if text && std::str::from_utf8(&payload).is_err() {
            return Err(protocol(CLOSE_INVALID_PAYLOAD, "text message is not UTF-8"));
        }
        self.ready.push_back(Message {
            text,
            payload: payload.freeze(),
        });
        Ok(())
    }

    /// The client's close frame: answer with its code (or a plain close) and stop reading.
    fn on_close(&mut self, payload: &[u8]) -> Result<(), WsError> {
        let code = match payload {
            [] => None,
            [_] => return Err(protocol(CLOSE_PROTOCOL_ERROR, "close frame of one byte")),
            [a, b, reason @ ..] => {
                let code = u16::from_be_bytes([*a, *b]);
                if !close_code_allowed(code) {
                    return Err(protocol(CLOSE_PROTOCOL_ERROR, "invalid close code"));
                }
                if std::str::from_utf8(reason).is_err() {
                    return Err(protocol(CLOSE_INVALID_PAYLOAD, "close reason is not UTF-8"));
                }
                Some(code)
            }
        };
        match code {
            Some(code) => self.queue_close(code, ""),
            None => self.queue_empty_close(),
        }
        self.read_done = true;
        Ok(())
    }

    fn queue_empty_close(&mut self) {
        if !self.close_sent {
            self.close_sent = true;
            self.control_out.extend_from_slice(&[0x88, 0]);
        }
    }

    fn queue_close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        // A control frame's payload is at most 125 bytes: the reason is cut at a char boundary.
        let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut head = [0u8; 10];
        let n = encode_header(&mut head, 0x8, 2 + cut);
        self.control_out.extend_from_slice(&head[..n]);
        self.control_out.extend_from_slice(&code.to_be_bytes());
        self.control_out
            .extend_from_slice(&reason.as_bytes()[..cut]);
    }

    fn poll_flush_control(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.control_out.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.control_out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.control_out.drain(..n);
        }
        self.control_out = Vec::new();
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Sends one data message: text when `text`, binary otherwise.
    pub(crate) async fn send(&mut self, text: bool, payload: &[u8]) -> Result<(), WsError> {
        poll_fn(|cx| self.poll_flush_control(cx)).await?;
        if self.close_sent {
            return Err(WsError::Io(io::ErrorKind::BrokenPipe.into()));
        }
        let mut opcode = if text { 1 } else { 2 };
        // The compressed copy goes in the boxed deflate state (given back after the write), so
        // it is not laid out in every session's future.
        let payload = match self.deflate.as_deref_mut() {
            Some(d) if !payload.is_empty() && payload.len() >= d.settings.min_size => {
                d.out = deflate::compress(d.settings.level, payload);
                opcode |= 0x40;
                &d.out[..]
            }
            _ => payload,
        };
        let mut head = [0u8; 10];
        let n = encode_header(&mut head, opcode, payload.len());
        let (mut head, mut payload) = (&head[..n], payload);
        while !head.is_empty() || !payload.is_empty() {
            let written = if head.is_empty() {
                self.io.write(payload).await?
            } else {
                let parts = [IoSlice::new(head), IoSlice::new(payload)];
                self.io.write_vectored(&parts).await?
            };
            if written == 0 {
                return Err(WsError::Io(io::ErrorKind::WriteZero.into()));
            }
            let from_head = written.min(head.len());
            head = &head[from_head..];
            payload = &payload[written - from_head..];
        }
        if let Some(d) = self.deflate.as_deref_mut() {
            d.out = Vec::new();
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Sends a close frame with `code` (1000 when `code` may not appear in a close frame) and
    /// `reason`; nothing when one was already sent.
    pub(crate) async fn send_close(&mut self, code: u16, reason: &str) -> Result<(), WsError> {
        let code = if close_code_allowed(code) {
            code
        } else {
            CLOSE_NORMAL
        };
        self.queue_close(code, reason);
        poll_fn(|cx| self.poll_flush_control(cx)).await?;
        Ok(())
    }

    /// Ends the connection: writes any owed control frame (a normal close frame when none was
    /// sent) and shuts the transport's write side.
    pub(crate) async fn close(&mut self) -> Result<(), WsError> {
        self.queue_close(CLOSE_NORMAL, "");
        poll_fn(|cx| self.poll_flush_control(cx)).await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
