//! The floor: the least a server must do to deliver the same fan-out. It answers `connect` and
//! `subscribe`, keeps channel → queues, and on an HTTP publish encodes the push once per
//! protocol and hands the same bytes to every subscriber's queue; each connection's writer
//! drains everything queued (up to 64 KiB) into one WebSocket message, like Gyre's sessions.
//! No auth, history, presence, pings, limits or config: what is left is the machine's cost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use gyre_protocol::codec::{append_unit, decode_all, encode};
use gyre_protocol::{Command, ConnectResult, Protocol, Publication, Push, Reply, SubscribeResult};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{Message, ServerBuilder};

const MAX_FRAME_BYTES: usize = 64 * 1024;

type Queue = mpsc::UnboundedSender<Bytes>;

/// Subscribers of one channel: connection id, its encoding and its queue.
type Subscribers = Vec<(u64, Protocol, Queue)>;

#[derive(Default)]
struct Floor {
    channels: Mutex<HashMap<String, Subscribers>>,
    next_id: AtomicU64,
}

/// Runs the floor server: WebSocket on `ws_port`, HTTP publish on `http_port`.
pub async fn run(ws_port: u16, http_port: u16) -> Result<()> {
    let floor = Arc::new(Floor::default());
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
                        floor.channels.lock().map_err(|_| anyhow::anyhow!("poisoned"))?
                            .entry(s.channel.clone()).or_default().push((id, protocol, tx.clone()));
                        subscribed.push(s.channel);
                        reply.subscribe = Some(SubscribeResult::default());
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
                v.retain(|(i, _, _)| *i != id);
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

fn publish(floor: &Floor, body: &[u8]) -> Result<()> {
    let body: PublishBody<'_> = serde_json::from_slice(body)?;
    let reply = Reply {
        push: Some(Push {
            channel: body.channel.clone(),
            publication: Some(Publication {
                data: Bytes::copy_from_slice(body.data.get().as_bytes()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut encoded: [Option<Bytes>; 2] = [None, None];
    let channels = floor
        .channels
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    if let Some(subs) = channels.get(&body.channel) {
        for (_, protocol, q) in subs {
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
        let ok = publish(&floor, &body).is_ok();
        let resp: &[u8] = if ok {
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        } else {
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        };
        w.write_all(resp).await?;
    }
}
