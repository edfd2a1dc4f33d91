//! One client connection in the dialect of each system under test: Gyre and the floor speak
//! the Centrifugo protocol (JSON or Protobuf), NATS its text protocol over WebSocket, Socket.IO
//! Engine.IO v4 packets over WebSocket. Each answers its server's pings by itself.
//!
//! Recovery (S5) in each system's own terms: Gyre and the floor subscribe with `recover` from
//! an offset and epoch; NATS subscribes through a JetStream push consumer and resumes with a
//! new consumer from the next stream sequence; Socket.IO reconnects with its session id and the
//! offset of the last event seen (connection state recovery).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use gyre_protocol::codec::{decode_all, encode, join_units};
use gyre_protocol::{
    Command, ConnectRequest, Protocol, PublishRequest, Reply, SubscribeRequest, SubscribeResult,
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
pub struct Position {
    /// Gyre and the floor: the stream offset; NATS: the last JetStream stream sequence seen.
    pub offset: u64,
    /// Gyre and the floor: the stream epoch; Socket.IO: the session id (`pid`).
    pub epoch: String,
    /// Socket.IO: the offset of the last event seen (its last argument).
    pub last_id: String,
}

/// A subscription to make, optionally recovering from a position.
#[derive(Debug, Clone, Default)]
pub struct Sub {
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
pub struct Recovery {
    /// The system says it resumed the stream and every missed publication arrived.
    pub recovered: bool,
    /// The publications that arrived while recovering.
    pub publications: Vec<Fields>,
}

/// The JetStream stream that holds `channel` (the load generator's own naming).
pub fn nats_stream_name(channel: &str) -> String {
    let name: String = channel
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("GYRE_{name}")
}

/// A subject unique to this process and call (inboxes).
pub fn nats_inbox() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "_INBOX.lg{}x{}x{}",
        std::process::id(),
        crate::stats::unix_us() % 1_000_000_007,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The stream sequence in a JetStream delivery's reply subject
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`, or the longer form
/// with domain and account hash ahead of the stream).
fn js_stream_seq(reply: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(reply).ok()?;
    let tokens: Vec<&str> = s.strip_prefix("$JS.ACK.")?.split('.').collect();
    let at = match tokens.len() {
        7 => 3,
        n if n >= 9 => 5,
        _ => return None,
    };
    tokens.get(at)?.parse().ok()
}

/// The offset Socket.IO appends as the last argument of an event stored for recovery:
/// `42["m",{…},"<offset>"]`.
fn sio_last_id(p: &[u8]) -> Option<&str> {
    let body = p.strip_suffix(b"\"]")?;
    let q = body.iter().rposition(|b| *b == b'"')?;
    if q == 0 || body[q - 1] != b',' {
        return None;
    }
    std::str::from_utf8(&body[q + 1..]).ok()
}

/// The `pid` in a Socket.IO CONNECT reply (`40{"sid":..,"pid":..}`), if any.
fn sio_pid(p: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(p.get(2..)?).ok()?;
    v.get("pid")?.as_str().map(str::to_owned)
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

/// The NATS subscription id of JetStream API responses.
const NATS_API_SID: &str = "api";

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
            position: Position::default(),
            backlog: Vec::new(),
            pongs_seen: 0,
            js_pending: 0,
            resumed: false,
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
                                if results.is_empty() {
                                    self.position.offset = s.offset;
                                    self.position.epoch.clone_from(&s.epoch);
                                }
                                results.push(s);
                            }
                            if r.id == last_id {
                                return Ok(results);
                            }
                        }
                    }
                }
            }
            Target::Nats => self.nats_handshake(subs).await.map(|()| Vec::new()),
            Target::Socketio => self.sio_handshake(subs).await.map(|()| Vec::new()),
        }
    }

    /// NATS: `CONNECT`, one `SUB` per channel (or, with `history`, a `SUB` on a fresh inbox and
    /// a JetStream push consumer delivering to it: only new messages, or from the sequence after
    /// the position when recovering), then a `PING`; done at the `PONG` and the consumers'
    /// create responses.
    async fn nats_handshake(&mut self, subs: &[Sub]) -> Result<()> {
        let mut out =
            String::from("CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false}\r\n");
        let mut requests = 0usize;
        let api_inbox = nats_inbox();
        for (i, sub) in subs.iter().enumerate() {
            if !sub.history {
                out.push_str(&format!("SUB {} {}\r\n", sub.channel, i + 1));
                continue;
            }
            if requests == 0 {
                out.push_str(&format!("SUB {api_inbox} {NATS_API_SID}\r\n"));
            }
            let deliver = nats_inbox();
            out.push_str(&format!("SUB {deliver} {}\r\n", i + 1));
            let mut config = serde_json::json!({
                "deliver_subject": deliver,
                "deliver_policy": "new",
                "ack_policy": "none",
                "replay_policy": "instant",
                "filter_subject": sub.channel,
                "inactive_threshold": 10_000_000_000u64,
                "mem_storage": true,
            });
            if let Some(p) = &sub.recover {
                config["deliver_policy"] = "by_start_sequence".into();
                config["opt_start_seq"] = (p.offset + 1).into();
            }
            let stream = nats_stream_name(&sub.channel);
            let body = serde_json::json!({"stream_name": stream, "config": config}).to_string();
            out.push_str(&format!(
                "PUB $JS.API.CONSUMER.CREATE.{stream} {api_inbox} {}\r\n{body}\r\n",
                body.len()
            ));
            requests += 1;
        }
        out.push_str("PING\r\n");
        self.ws.send(Message::binary(out.into_bytes())).await?;
        let mut events = Vec::new();
        let mut responses = 0usize;
        while self.pongs_seen == 0 || responses < requests {
            let Some(msg) = self.ws.next().await else {
                bail!("closed during handshake");
            };
            let msg = msg?;
            self.parse_nats(msg.as_payload(), &mut events)?;
            for ev in events.drain(..) {
                match ev {
                    Event::Response(text) => {
                        responses += 1;
                        let v: serde_json::Value =
                            serde_json::from_str(&text).context("consumer create response")?;
                        if let Some(e) = v.get("error") {
                            bail!("nats consumer create: {e}");
                        }
                        self.js_pending += v["num_pending"].as_u64().unwrap_or(0);
                    }
                    ev => self.backlog.push(ev),
                }
            }
        }
        self.resumed = requests > 0 && subs.iter().any(|s| s.recover.is_some());
        self.flush_pongs().await
    }

    /// Socket.IO: the Engine.IO open packet, then CONNECT (with the session id and last offset
    /// when recovering), then one `sub` event with an ack per channel unless the server restored
    /// the session (its rooms come back with it). Events that arrive before the CONNECT reply
    /// (Socket.IO sends a restored session's missed events first) are kept for `recv`.
    async fn sio_handshake(&mut self, subs: &[Sub]) -> Result<()> {
        self.expect_prefix(b"0").await?;
        let resume = subs.first().and_then(|s| s.recover.clone());
        let connect = match &resume {
            Some(p) if !p.epoch.is_empty() => {
                serde_json::json!({"pid": p.epoch, "offset": p.last_id}).to_string()
            }
            _ => String::new(),
        };
        if let Some(r) = &resume {
            self.position = r.clone();
        }
        self.ws.send(Message::text(format!("40{connect}"))).await?;
        loop {
            let Some(msg) = self.ws.next().await else {
                bail!("closed during handshake");
            };
            let msg = msg?;
            let p: &[u8] = msg.as_payload();
            if p.starts_with(b"40") {
                let pid = sio_pid(p).unwrap_or_default();
                self.resumed = resume
                    .as_ref()
                    .is_some_and(|r| !pid.is_empty() && r.epoch == pid);
                if !self.resumed {
                    self.position = Position::default();
                }
                self.position.epoch = pid;
                break;
            }
            if p.starts_with(b"44") {
                bail!("socket.io connect error: {}", String::from_utf8_lossy(p));
            }
            if p == b"2" {
                self.pending_pongs += 1;
                continue;
            }
            let mut events = Vec::new();
            self.parse_sio(p, &mut events);
            self.backlog.append(&mut events);
        }
        if self.resumed {
            return self.flush_pongs().await;
        }
        for (i, sub) in subs.iter().enumerate() {
            let text = format!("42{i}[\"sub\",\"{}\"]", sub.channel);
            self.ws.send(Message::text(text)).await?;
            self.expect_prefix(format!("43{i}").as_bytes()).await?;
        }
        self.flush_pongs().await
    }

    /// After a recovering connect: the outcome, waiting up to `timeout` for the missed
    /// publications that come after the handshake. Gyre and the floor: the subscribe result's
    /// `recovered` flag and publications. NATS: the consumers started from the next sequence and
    /// delivered every message they had pending when created. Socket.IO: the same session came
    /// back and `missed` events arrived.
    pub async fn recover(
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
    pub fn target(&self) -> Target {
        self.target
    }

    /// Where the connection stands in its first channel's stream.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Parses NATS protocol bytes: payload-carrying `MSG`s become publications (JetStream
    /// deliveries also move the position) or API responses; `PING`s owe a `PONG`.
    fn parse_nats(&mut self, p: &[u8], out: &mut Vec<Event>) -> Result<()> {
        self.stream_buf.extend_from_slice(p);
        while let Some(pos) = find_crlf(&self.stream_buf) {
            if self.stream_buf.starts_with(b"MSG ") {
                // MSG <subject> <sid> [reply] <len>
                let line = &self.stream_buf[..pos];
                // The hot path of NATS subscribers: tokens on the stack, no allocation.
                let mut tokens: [&[u8]; 5] = [&[]; 5];
                let mut n = 0;
                for t in line.split(|b| *b == b' ').filter(|t| !t.is_empty()) {
                    if n == tokens.len() {
                        bail!("bad MSG line");
                    }
                    tokens[n] = t;
                    n += 1;
                }
                let len: usize = std::str::from_utf8(tokens[n.saturating_sub(1)])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| anyhow!("bad MSG line"))?;
                let is_api = tokens[2] == NATS_API_SID.as_bytes();
                let seq = if n == 5 {
                    js_stream_seq(tokens[3])
                } else {
                    None
                };
                if self.stream_buf.len() < pos + 2 + len + 2 {
                    break;
                }
                let frame = self.stream_buf.split_to(pos + 2 + len + 2);
                let body = &frame[pos + 2..pos + 2 + len];
                if is_api {
                    out.push(Event::Response(String::from_utf8_lossy(body).into_owned()));
                } else if let Some(f) = payload::parse(body) {
                    if let Some(seq) = seq {
                        self.position.offset = self.position.offset.max(seq);
                    }
                    out.push(Event::Publication(f));
                }
            } else {
                let line = self.stream_buf.split_to(pos + 2);
                if line.starts_with(b"PING") {
                    self.pending_pongs += 1;
                } else if line.starts_with(b"PONG") {
                    self.pongs_seen += 1;
                } else if line.starts_with(b"-ERR") {
                    bail!("nats: {}", String::from_utf8_lossy(&line));
                }
            }
        }
        Ok(())
    }

    /// Parses one Socket.IO packet that is neither a ping nor a close: events become
    /// publications (moving the position when they carry a recovery offset), acks `Ack`s.
    fn parse_sio(&mut self, p: &[u8], out: &mut Vec<Event>) {
        if p.starts_with(b"42") {
            if let Some(f) = payload::parse(p) {
                if !self.position.epoch.is_empty()
                    && let Some(id) = sio_last_id(p)
                {
                    id.clone_into(&mut self.position.last_id);
                }
                out.push(Event::Publication(f));
            }
        } else if let Some(rest) = p.strip_prefix(b"43") {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if let Some(id) = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
            {
                out.push(Event::Ack(id));
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

    /// Socket.IO: emits `pub` (channel, data) with an ack per payload, one packet per message;
    /// returns the ack ids.
    pub async fn emit_publishes(&mut self, batch: &[(&str, &str)]) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(batch.len());
        for (channel, data) in batch {
            let id = self.take_id();
            let channel = serde_json::to_string(channel)?;
            self.ws
                .feed(Message::text(format!("42{id}[\"pub\",{channel},{data}]")))
                .await?;
            ids.push(id);
        }
        self.ws.flush().await?;
        Ok(ids)
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
                                self.position.offset = self.position.offset.max(publication.offset);
                                out.push(Event::Publication(f));
                            }
                        }
                        _ => self.on_replies(decode_all::<Reply>(self.protocol, line)?, out),
                    }
                }
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

    /// Handles decoded Centrifugo replies: pings, publications and command replies.
    fn on_replies(&mut self, replies: Vec<Reply>, out: &mut Vec<Event>) {
        for reply in replies {
            if reply == Reply::default() {
                self.pending_pongs += 1;
            } else if let Some(publication) =
                reply.push.as_ref().and_then(|p| p.publication.as_ref())
            {
                if let Some(f) = payload::parse(&publication.data) {
                    self.position.offset = self.position.offset.max(publication.offset);
                    out.push(Event::Publication(f));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jetstream_reply_subjects() {
        assert_eq!(
            js_stream_seq(b"$JS.ACK.GYRE_BENCH.UxJ5jbh8.1.42.7.1795391969999303104.0"),
            Some(42)
        );
        assert_eq!(
            js_stream_seq(b"$JS.ACK.dom.acchash.GYRE_BENCH.c.1.43.7.1795391969999303104.0.tok"),
            Some(43)
        );
        assert_eq!(js_stream_seq(b"_INBOX.x"), None);
    }

    #[test]
    fn socketio_offsets_and_pids() {
        assert_eq!(
            sio_last_id(br#"42["m",{"t":1,"s":2,"k":0,"p":"x"},"OaZ3x.1"]"#),
            Some("OaZ3x.1")
        );
        assert_eq!(sio_last_id(br#"42["m",{"t":1,"s":2,"k":0,"p":"x"}]"#), None);
        assert_eq!(sio_pid(br#"40{"sid":"a","pid":"b"}"#).as_deref(), Some("b"));
        assert_eq!(sio_pid(br#"40{"sid":"a"}"#), None);
        assert_eq!(nats_stream_name("nohist:bench"), "GYRE_NOHIST_BENCH");
    }
}
