//! One client connection in the dialect of each system under test: Gyre and the floor speak
//! the Centrifugo protocol (JSON or Protobuf), NATS its text protocol over WebSocket, Socket.IO
//! Engine.IO v4 packets over WebSocket. Each answers its server's pings by itself.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use gyre_protocol::codec::{decode_all, encode, join_units};
use gyre_protocol::{
    Command, ConnectRequest, Protocol, PublishRequest, Reply, StreamPosition, SubscribeRequest,
    SubscribeResult,
};
use http::{HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, Message, WebSocketStream};

use crate::payload::{self, Fields};

/// A JSON message read only as far as a publication push needs (the data borrowed, every other
/// field skipped): the load generator's hot path, so that a client parsing thousands of pushes a
/// second does not build and move a whole `Reply` for each. Anything else is decoded in full.
#[derive(serde::Deserialize)]
struct LitePush<'a> {
    #[serde(default)]
    id: u32,
    #[serde(borrow, default)]
    push: Option<LitePushBody<'a>>,
}

#[derive(serde::Deserialize)]
struct LitePushBody<'a> {
    #[serde(borrow, rename = "pub", default)]
    publication: Option<LitePublication<'a>>,
}

#[derive(serde::Deserialize)]
struct LitePublication<'a> {
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
    #[serde(default)]
    offset: u64,
}

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Target {
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
    pub fn name(self) -> &'static str {
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
pub enum Event {
    /// A benchmark payload, with the stream offset when the server sends one.
    Publication(Fields, u64),
    /// A reply to a command (Centrifugo protocol only).
    Reply(Box<Reply>),
}

/// A subscription to make, optionally recovering from a position.
#[derive(Debug, Clone, Default)]
pub struct Sub {
    /// Channel name.
    pub channel: String,
    /// Recover from this position.
    pub recover: Option<StreamPosition>,
}

/// An open client connection.
pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    target: Target,
    protocol: Protocol,
    stream_buf: BytesMut,
    next_id: u32,
    /// Pongs owed to the server, sent with the next write or receive.
    pending_pongs: usize,
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
    pub async fn open(target: Target, url: &str, protocol: Protocol) -> Result<Self> {
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
        })
    }

    /// Opens the connection, performs the protocol handshake and subscribes to `subs`.
    /// Returns the subscribe results (Centrifugo protocol) or empty ones.
    pub async fn connect(
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
            Target::Gyre | Target::Floor => {
                let mut commands = vec![Command {
                    id: self.take_id(),
                    connect: Some(ConnectRequest {
                        name: "gyre-loadgen".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }];
                for sub in subs {
                    let (recover, epoch, offset) = match &sub.recover {
                        Some(p) => (true, p.epoch.clone(), p.offset),
                        None => (false, String::new(), 0),
                    };
                    commands.push(Command {
                        id: self.take_id(),
                        subscribe: Some(SubscribeRequest {
                            channel: sub.channel.clone(),
                            recover,
                            epoch,
                            offset,
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
                let last_id = self.next_id - 1;
                self.send_commands(&commands).await?;
                let mut results = Vec::new();
                let mut events = Vec::new();
                loop {
                    events.clear();
                    if !self.recv(&mut events).await? {
                        bail!("closed during handshake");
                    }
                    for ev in events.drain(..) {
                        if let Event::Reply(r) = ev {
                            if let Some(e) = r.error {
                                bail!("error {} {}", e.code, e.message);
                            }
                            if let Some(s) = r.subscribe {
                                results.push(s);
                            }
                            if r.id == last_id {
                                return Ok(results);
                            }
                        }
                    }
                }
            }
            Target::Nats => {
                let mut out = String::from(
                    "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false}\r\n",
                );
                for (i, sub) in subs.iter().enumerate() {
                    out.push_str(&format!("SUB {} {}\r\n", sub.channel, i + 1));
                }
                out.push_str("PING\r\n");
                self.ws.send(Message::binary(out.into_bytes())).await?;
                // Wait for our PONG: every SUB before it has been processed.
                loop {
                    let Some(msg) = self.ws.next().await else {
                        bail!("closed during handshake");
                    };
                    let msg = msg?;
                    self.stream_buf.extend_from_slice(msg.as_payload());
                    let mut got_pong = false;
                    while let Some(pos) = find_crlf(&self.stream_buf) {
                        let line = self.stream_buf.split_to(pos + 2);
                        if line.starts_with(b"PONG") {
                            got_pong = true;
                        } else if line.starts_with(b"PING") {
                            self.pending_pongs += 1;
                        } else if line.starts_with(b"-ERR") {
                            bail!("nats: {}", String::from_utf8_lossy(&line));
                        }
                    }
                    if got_pong {
                        self.flush_pongs().await?;
                        return Ok(Vec::new());
                    }
                }
            }
            Target::Socketio => {
                self.expect_prefix(b"0").await?;
                self.ws.send(Message::text("40")).await?;
                self.expect_prefix(b"40").await?;
                for (i, sub) in subs.iter().enumerate() {
                    let text = format!("42{i}[\"sub\",\"{}\"]", sub.channel);
                    self.ws.send(Message::text(text)).await?;
                    self.expect_prefix(format!("43{i}").as_bytes()).await?;
                }
                Ok(Vec::new())
            }
        }
    }

    async fn expect_prefix(&mut self, prefix: &[u8]) -> Result<()> {
        loop {
            let Some(msg) = self.ws.next().await else {
                bail!("closed during handshake");
            };
            let msg = msg?;
            let p: &[u8] = msg.as_payload();
            if p == b"2" {
                self.ws.send(Message::text("3")).await?;
                continue;
            }
            if p.starts_with(prefix) {
                return Ok(());
            }
            if p.starts_with(b"44") {
                bail!("socket.io connect error: {}", String::from_utf8_lossy(p));
            }
        }
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends Centrifugo commands in one WebSocket message.
    pub async fn send_commands(&mut self, commands: &[Command]) -> Result<()> {
        let units = commands
            .iter()
            .map(|c| encode(self.protocol, c))
            .collect::<Result<Vec<_>, _>>()?;
        let frame = join_units(self.protocol, &units);
        let msg = match self.protocol {
            Protocol::Json => Message::text(String::from_utf8(frame.to_vec())?),
            Protocol::Protobuf => Message::binary(frame),
        };
        self.ws.send(msg).await?;
        Ok(())
    }

    /// Builds publish commands with fresh ids (Centrifugo protocol); returns their ids.
    pub fn publish_commands(&mut self, channel: &str, payloads: &[String]) -> Vec<Command> {
        payloads
            .iter()
            .map(|p| Command {
                id: self.take_id(),
                publish: Some(PublishRequest {
                    channel: channel.to_owned(),
                    data: bytes::Bytes::from(p.clone().into_bytes()),
                }),
                ..Default::default()
            })
            .collect()
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
    pub async fn recv(&mut self, out: &mut Vec<Event>) -> Result<bool> {
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
                for line in p.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    match serde_json::from_slice::<LitePush<'_>>(line) {
                        Ok(LitePush {
                            id: 0,
                            push:
                                Some(LitePushBody {
                                    publication: Some(publication),
                                }),
                        }) => {
                            if let Some(f) = payload::parse(publication.data.get().as_bytes()) {
                                out.push(Event::Publication(f, publication.offset));
                            }
                        }
                        _ => self.on_replies(decode_all::<Reply>(self.protocol, line)?, out),
                    }
                }
            }
            Target::Gyre | Target::Floor => {
                self.on_replies(decode_all::<Reply>(self.protocol, p)?, out);
            }
            Target::Nats => {
                self.stream_buf.extend_from_slice(p);
                while let Some(pos) = find_crlf(&self.stream_buf) {
                    if self.stream_buf.starts_with(b"MSG ") {
                        // MSG <subject> <sid> [reply] <len>
                        let line = &self.stream_buf[..pos];
                        let len: usize = line
                            .rsplit(|b| *b == b' ')
                            .next()
                            .and_then(|n| std::str::from_utf8(n).ok())
                            .and_then(|n| n.parse().ok())
                            .ok_or_else(|| anyhow!("bad MSG line"))?;
                        if self.stream_buf.len() < pos + 2 + len + 2 {
                            break;
                        }
                        let frame = self.stream_buf.split_to(pos + 2 + len + 2);
                        if let Some(f) = payload::parse(&frame[pos + 2..]) {
                            out.push(Event::Publication(f, 0));
                        }
                    } else {
                        let line = self.stream_buf.split_to(pos + 2);
                        if line.starts_with(b"PING") {
                            self.pending_pongs += 1;
                        } else if line.starts_with(b"-ERR") {
                            bail!("nats: {}", String::from_utf8_lossy(&line));
                        }
                    }
                }
            }
            Target::Socketio => {
                if p == b"2" {
                    self.pending_pongs += 1;
                } else if p.starts_with(b"42") {
                    if let Some(f) = payload::parse(p) {
                        out.push(Event::Publication(f, 0));
                    }
                } else if p.starts_with(b"1") || p.starts_with(b"41") {
                    return Ok(false);
                }
            }
        }
        self.flush_pongs().await?;
        Ok(true)
    }

    /// Handles decoded Centrifugo replies: pings, publications and command replies.
    fn on_replies(&mut self, replies: Vec<Reply>, out: &mut Vec<Event>) {
        for reply in replies {
            if reply == Reply::default() {
                self.pending_pongs += 1;
            } else if let Some(publication) =
                reply.push.as_ref().and_then(|p| p.publication.as_ref())
            {
                if let Some(f) = payload::parse(&publication.data) {
                    out.push(Event::Publication(f, publication.offset));
                }
            } else if reply.id != 0 {
                out.push(Event::Reply(Box::new(reply)));
            }
        }
    }

    /// Closes the connection politely (bounded in time).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close()).await;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}
