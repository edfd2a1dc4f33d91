//! One client connection in the dialect of each system under test: Gyre and the floor speak
//! the Centrifugo protocol (JSON or Protobuf), NATS its text protocol over WebSocket, Socket.IO
//! Engine.IO v4 packets over WebSocket. Each answers its server's pings by itself.
//!
//! Recovery (S5) in each system's own terms: Gyre and the floor subscribe with `recover` from
//! an offset and epoch; NATS subscribes through a JetStream push consumer and resumes with a
//! new consumer from the next stream sequence; Socket.IO reconnects with its session id and the
//! offset of the last event seen (connection state recovery).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use gyre_protocol::codec::decode_all;
use gyre_protocol::{Protocol, Reply, SubscribeResult};
use http::{HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, Message, WebSocketStream};

use crate::payload::{self, Fields};

mod centrifugo;
mod nats;
mod sio;

pub(crate) use nats::{nats_inbox, nats_stream_name};

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub(crate) enum Target {
    /// Gyre (Centrifugo protocol).
    Gyre,
    /// The floor server (Centrifugo protocol subset, pre-encoded frames).
    Floor,
    /// NATS server with WebSocket.
    Nats,
    /// Socket.IO (Node).
    Socketio,
}

impl Target {
    /// Name used in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Gyre => "gyre",
            Self::Floor => "floor",
            Self::Nats => "nats",
            Self::Socketio => "socketio",
        }
    }
}

/// Something received on a connection.
#[derive(Debug)]
pub(crate) enum Event {
    /// A benchmark payload.
    Publication(Fields),
    /// A reply to a command (Centrifugo protocol only).
    Reply(Box<Reply>),
    /// A Socket.IO acknowledgement, by packet id.
    Ack(u32),
    /// A response to a NATS request made on the connection (JetStream API): its payload.
    Response(String),
}

/// Where a client stands in a channel's stream, in its system's terms (S5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// Gyre and the floor: the stream offset; NATS: the last JetStream stream sequence seen.
    pub offset: u64,
    /// Gyre and the floor: the stream epoch; Socket.IO: the session id (`pid`).
    pub epoch: String,
    /// Socket.IO: the offset of the last event seen (its last argument).
    pub last_id: String,
}

/// A subscription to make, optionally recovering from a position.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sub {
    /// Channel name.
    pub channel: String,
    /// Recover from this position.
    pub recover: Option<Position>,
    /// Subscribe through the system's history (NATS: a JetStream push consumer on the stream
    /// that holds the channel; the other systems subscribe as usual).
    pub history: bool,
}

/// What a reconnect recovered (S5), the same for every system.
#[derive(Debug, Default)]
pub(crate) struct Recovery {
    /// The system says it resumed the stream and every missed publication arrived.
    pub recovered: bool,
    /// The publications that arrived while recovering.
    pub publications: Vec<Fields>,
}

/// An open client connection.
pub(crate) struct Conn {
    ws: WebSocketStream<TcpStream>,
    target: Target,
    protocol: Protocol,
    stream_buf: BytesMut,
    next_id: u32,
    /// Pongs owed to the server, sent with the next write or receive.
    pending_pongs: usize,
    /// Where the connection stands in its (first) channel's stream.
    position: Position,
    /// Events that arrived during the handshake, handed out by the first `recv`.
    backlog: Vec<Event>,
    /// NATS: PONGs received (the handshake waits for its own).
    pongs_seen: u32,
    /// NATS: messages the JetStream consumers had pending when created.
    js_pending: u64,
    /// A recovering handshake resumed the stream (Socket.IO: the same session came back;
    /// NATS: consumers created from the next sequence).
    resumed: bool,
}

fn ws_url(target: Target, base: &str, protocol: Protocol) -> String {
    match (target, protocol) {
        (Target::Floor, Protocol::Protobuf) => format!("{base}?format=protobuf"),
        (Target::Socketio, _) => format!("{base}?EIO=4&transport=websocket"),
        _ => base.to_owned(),
    }
}

impl Conn {
    /// Opens the WebSocket (no protocol handshake yet).
    pub(crate) async fn open(target: Target, url: &str, protocol: Protocol) -> Result<Self> {
        let url = ws_url(target, url, protocol);
        let uri: http::Uri = url.parse().context("bad url")?;
        let host = uri.host().ok_or_else(|| anyhow!("url has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        let mut builder = ClientBuilder::new().uri(&url)?;
        if target == Target::Gyre && protocol == Protocol::Protobuf {
            builder = builder.add_header(
                HeaderName::from_static("sec-websocket-protocol"),
                HeaderValue::from_static("centrifuge-protobuf"),
            )?;
        }
        let (ws, _) = builder.connect_on(tcp).await?;
        Ok(Self {
            ws,
            target,
            protocol,
            stream_buf: BytesMut::new(),
            next_id: 1,
            pending_pongs: 0,
            position: Position::default(),
            backlog: Vec::new(),
            pongs_seen: 0,
            js_pending: 0,
            resumed: false,
        })
    }

    /// Opens the connection, performs the protocol handshake and subscribes to `subs`.
    /// Returns the subscribe results (Centrifugo protocol) or empty ones.
    pub(crate) async fn connect(
        target: Target,
        url: &str,
        protocol: Protocol,
        subs: &[Sub],
    ) -> Result<(Self, Vec<SubscribeResult>)> {
        let mut conn = Self::open(target, url, protocol).await?;
        let results = tokio::time::timeout(Duration::from_secs(30), conn.handshake(subs))
            .await
            .context("handshake timed out")??;
        Ok((conn, results))
    }

    async fn handshake(&mut self, subs: &[Sub]) -> Result<Vec<SubscribeResult>> {
        match self.target {
            Target::Gyre | Target::Floor => self.centrifugo_handshake(subs).await,
            Target::Nats => self.nats_handshake(subs).await.map(|()| Vec::new()),
            Target::Socketio => self.sio_handshake(subs).await.map(|()| Vec::new()),
        }
    }

    /// After a recovering connect: the outcome, waiting up to `timeout` for the missed
    /// publications that come after the handshake. Gyre and the floor: the subscribe result's
    /// `recovered` flag and publications. NATS: the consumers started from the next sequence and
    /// delivered every message they had pending when created. Socket.IO: the same session came
    /// back and `missed` events arrived.
    pub(crate) async fn recover(
        &mut self,
        results: &[SubscribeResult],
        missed: u64,
        timeout: Duration,
    ) -> Result<Recovery> {
        let mut rec = Recovery::default();
        let need = match self.target {
            Target::Gyre | Target::Floor => {
                let Some(r) = results.first() else {
                    return Ok(rec);
                };
                rec.recovered = r.recovered;
                for p in &r.publications {
                    if let Some(f) = payload::parse(&p.data) {
                        rec.publications.push(f);
                    }
                    self.position.offset = self.position.offset.max(p.offset);
                }
                return Ok(rec);
            }
            Target::Nats => self.js_pending,
            Target::Socketio => missed,
        };
        if !self.resumed {
            return Ok(rec);
        }
        let end = Instant::now() + timeout;
        let mut events = Vec::new();
        while (rec.publications.len() as u64) < need {
            match tokio::time::timeout_at(end.into(), self.recv(&mut events)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) | Err(_) => break,
                Ok(Err(e)) => return Err(e),
            }
            for ev in events.drain(..) {
                if let Event::Publication(f) = ev {
                    rec.publications.push(f);
                }
            }
        }
        rec.recovered = rec.publications.len() as u64 >= need;
        Ok(rec)
    }

    /// The system this connection talks to.
    pub(crate) fn target(&self) -> Target {
        self.target
    }

    /// Where the connection stands in its first channel's stream.
    pub(crate) fn position(&self) -> &Position {
        &self.position
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn flush_pongs(&mut self) -> Result<()> {
        while self.pending_pongs > 0 {
            self.pending_pongs -= 1;
            let msg = match self.target {
                Target::Gyre | Target::Floor => match self.protocol {
                    Protocol::Json => Message::text("{}"),
                    Protocol::Protobuf => Message::binary(&[0u8][..]),
                },
                Target::Nats => Message::binary(&b"PONG\r\n"[..]),
                Target::Socketio => Message::text("3"),
            };
            self.ws.send(msg).await?;
        }
        Ok(())
    }

    /// Receives one WebSocket message and appends what it carried to `out`; answers pings.
    /// Returns false when the connection is closed.
    pub(crate) async fn recv(&mut self, out: &mut Vec<Event>) -> Result<bool> {
        if !self.backlog.is_empty() {
            out.append(&mut self.backlog);
            return Ok(true);
        }
        let Some(msg) = self.ws.next().await else {
            return Ok(false);
        };
        let msg = msg?;
        if msg.is_close() {
            return Ok(false);
        }
        if !(msg.is_text() || msg.is_binary()) {
            return Ok(true);
        }
        let p: &[u8] = msg.as_payload();
        match self.target {
            Target::Gyre | Target::Floor if self.protocol == Protocol::Json => {
                self.parse_json_lines(p, out)?;
            }
            Target::Gyre | Target::Floor => {
                self.on_replies(decode_all::<Reply>(self.protocol, p)?, out);
            }
            Target::Nats => self.parse_nats(p, out)?,
            Target::Socketio => {
                if p == b"2" {
                    self.pending_pongs += 1;
                } else if p.starts_with(b"1") || p.starts_with(b"41") {
                    return Ok(false);
                } else {
                    self.parse_sio(p, out);
                }
            }
        }
        self.flush_pongs().await?;
        Ok(true)
    }

    /// Closes the connection politely (bounded in time).
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close()).await;
    }
}
