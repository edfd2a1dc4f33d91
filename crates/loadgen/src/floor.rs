//! The floor: the least a server must do to deliver the same fan-out. It answers `connect` and
//! `subscribe`, keeps channel → queues, and on an HTTP publish encodes the push once per
//! protocol and hands the same bytes to every subscriber's queue; each connection's writer
//! drains everything queued (up to 64 KiB) into one WebSocket message, like Gyre's sessions.
//! It also takes the client `publish` command (broadcast, then an empty result). With
//! `--history N` every channel outside a namespace (no `:` in its name, like Gyre's bench
//! config) keeps a ring of its last N publications: pushes carry their offset, and `subscribe`
//! with `recover` from an offset still in the ring answers `recovered` with the missed
//! publications, like Gyre. No auth, presence, pings, TTLs, limits or config: what is left is
//! the machine's cost.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use gyre_protocol::codec::{append_unit, decode_all, encode};
use gyre_protocol::{
    Command, ConnectResult, Protocol, Publication, PublishResult, Push, Reply, SubscribeRequest,
    SubscribeResult,
};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{Message, ServerBuilder};

const MAX_FRAME_BYTES: usize = 64 * 1024;

type Queue = mpsc::UnboundedSender<Bytes>;

/// Subscribers of one channel: connection id, its encoding and its queue.
type Subscribers = Vec<(u64, Protocol, Queue)>;

/// One channel: its subscribers and, when it keeps history, its last publications.
#[derive(Default)]
struct Channel {
    subs: Subscribers,
    /// The last publications, oldest first, with their offsets.
    history: VecDeque<Publication>,
    /// Offset of the newest publication (0: none yet).
    top: u64,
}

struct Floor {
    channels: Mutex<HashMap<String, Channel>>,
    next_id: AtomicU64,
    /// Ring size per channel (0: no history).
    history: usize,
    /// The history's epoch, fixed at start-up.
    epoch: String,
}

impl Floor {
    fn keeps_history(&self, channel: &str) -> bool {
        self.history > 0 && !channel.contains(':')
    }

    /// Adds a subscriber and answers the subscribe (with recovery when asked and possible),
    /// under the channel lock, so that no publication falls between the two.
    fn subscribe(
        &self,
        id: u64,
        protocol: Protocol,
        tx: &Queue,
        s: &SubscribeRequest,
    ) -> Result<SubscribeResult> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let ch = channels.entry(s.channel.clone()).or_default();
        ch.subs.push((id, protocol, tx.clone()));
        let mut result = SubscribeResult::default();
        if !self.keeps_history(&s.channel) {
            return Ok(result);
        }
        result.recoverable = true;
        result.epoch = self.epoch.clone();
        result.offset = ch.top;
        if s.recover {
            result.was_recovering = true;
            let oldest = ch.history.front().map_or(ch.top + 1, |p| p.offset);
            if s.epoch == self.epoch && s.offset <= ch.top && s.offset + 1 >= oldest {
                result.recovered = true;
                result.publications = ch
                    .history
                    .iter()
                    .filter(|p| p.offset > s.offset)
                    .cloned()
                    .collect();
            }
        }
        Ok(result)
    }
}

/// Runs the floor server: WebSocket on `ws_port`, HTTP publish on `http_port`; `history` is
/// the ring size per channel outside namespaces (0: no history).
pub(crate) async fn run(ws_port: u16, http_port: u16, history: usize) -> Result<()> {
    let floor = Arc::new(Floor {
        channels: Mutex::default(),
        next_id: AtomicU64::new(0),
        history,
        epoch: format!("{:x}", crate::stats::unix_us()),
    });
    let ws = TcpListener::bind(("127.0.0.1", ws_port)).await?;
    let http = TcpListener::bind(("127.0.0.1", http_port)).await?;
    let f = floor.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = http.accept().await {
            let f = f.clone();
            tokio::spawn(async move {
                let _ = serve_http(f, tcp).await;
            });
        }
    });
    loop {
        let (tcp, _) = ws.accept().await?;
        let f = floor.clone();
        tokio::spawn(async move {
            let _ = serve_ws(f, tcp).await;
        });
    }
}

async fn serve_ws(floor: Arc<Floor>, tcp: TcpStream) -> Result<()> {
    tcp.set_nodelay(true)?;
    let (req, mut ws) = ServerBuilder::new().accept(tcp).await?;
    let protocol = if req
        .uri()
        .query()
        .is_some_and(|q| q.contains("format=protobuf"))
    {
        Protocol::Protobuf
    } else {
        Protocol::Json
    };
    let id = floor.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let mut subscribed: Vec<String> = Vec::new();
    let mut out = BytesMut::new();
    loop {
        tokio::select! {
            unit = rx.recv() => {
                let Some(unit) = unit else { break };
                append_unit(protocol, &mut out, &unit);
                while out.len() < MAX_FRAME_BYTES {
                    match rx.try_recv() {
                        Ok(unit) => append_unit(protocol, &mut out, &unit),
                        Err(_) => break,
                    }
                }
            }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { break };
                if !(msg.is_text() || msg.is_binary()) { continue; }
                let Ok(commands) = decode_all::<Command>(protocol, msg.as_payload()) else { break };
                for c in commands {
                    let mut reply = Reply { id: c.id, ..Default::default() };
                    if c.connect.is_some() {
                        reply.connect = Some(ConnectResult {
                            client: format!("floor-{id}"),
                            version: "floor".into(),
                            ..Default::default()
                        });
                    } else if let Some(s) = c.subscribe {
                        reply.subscribe = Some(floor.subscribe(id, protocol, &tx, &s)?);
                        subscribed.push(s.channel);
                    } else if let Some(p) = c.publish {
                        publish(&floor, &p.channel, p.data)?;
                        reply.publish = Some(PublishResult::default());
                    } else if c.id == 0 {
                        continue; // pong
                    }
                    append_unit(protocol, &mut out, &encode(protocol, &reply)?);
                }
            }
        }
        if !out.is_empty() {
            let frame = out.split().freeze();
            let msg = match protocol {
                Protocol::Json => Message::text(String::from_utf8(frame.to_vec())?),
                Protocol::Protobuf => Message::binary(frame),
            };
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    }
    if let Ok(mut channels) = floor.channels.lock() {
        for ch in subscribed {
            if let Some(v) = channels.get_mut(&ch) {
                v.subs.retain(|(i, _, _)| *i != id);
            }
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct PublishBody<'a> {
    channel: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// An HTTP publish body.
fn publish_body(floor: &Floor, body: &[u8]) -> Result<()> {
    let body: PublishBody<'_> = serde_json::from_slice(body)?;
    publish(
        floor,
        &body.channel,
        Bytes::copy_from_slice(body.data.get().as_bytes()),
    )
}

/// Appends to the channel's history (when it keeps one) and queues the push, encoded once per
/// protocol, to every subscriber.
fn publish(floor: &Floor, channel: &str, data: Bytes) -> Result<()> {
    let mut channels = floor
        .channels
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut publication = Publication {
        data,
        ..Default::default()
    };
    if floor.keeps_history(channel) {
        let ch = channels.entry(channel.to_owned()).or_default();
        ch.top += 1;
        publication.offset = ch.top;
        if ch.history.len() == floor.history {
            ch.history.pop_front();
        }
        ch.history.push_back(publication.clone());
    }
    let reply = Reply {
        push: Some(Push {
            channel: channel.to_owned(),
            publication: Some(publication),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut encoded: [Option<Bytes>; 2] = [None, None];
    if let Some(ch) = channels.get(channel) {
        for (_, protocol, q) in &ch.subs {
            let slot = &mut encoded[protocol.index()];
            if slot.is_none() {
                *slot = Some(encode(*protocol, &reply)?);
            }
            if let Some(unit) = slot {
                let _ = q.send(unit.clone());
            }
        }
    }
    Ok(())
}

async fn serve_http(floor: Arc<Floor>, tcp: TcpStream) -> Result<()> {
    tcp.set_nodelay(true)?;
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut len = 0usize;
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        let ok = publish_body(&floor, &body).is_ok();
        let resp: &[u8] = if ok {
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        } else {
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        };
        w.write_all(resp).await?;
    }
}
