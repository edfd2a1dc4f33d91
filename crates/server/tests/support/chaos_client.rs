//! A recovering subscriber for chaos tests: a raw JSON-protocol WebSocket client that keeps
//! one positioned, recoverable subscription alive whatever happens to the servers. On an
//! unsubscribe push it resubscribes with `recover: true` from its last offset and epoch; when
//! its connection is lost it reconnects (to the next node of its list) and does the same. It
//! counts publications and records duplicates (an offset at or below the last one of the same
//! epoch) and silent gaps (an offset skipped without a `recovered: false`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

use super::token;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one chaos client saw.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Publications received (live and recovered).
    pub received: u64,
    /// Offsets received twice (or out of order) within one epoch.
    pub duplicated: u64,
    /// Offsets skipped within one epoch without being told (`recovered: false`).
    pub lost: u64,
    /// Resubscribes answered `recovered: true`.
    pub recovered: u64,
    /// Resubscribes answered `recovered: false` (the count restarts from the new position).
    pub not_recovered: u64,
    /// Connections opened after the first.
    pub reconnects: u64,
    /// Unsubscribe pushes received.
    pub unsubscribes: u64,
    /// Unsubscribe pushes with a code below 2500 (final: the server did not ask for a
    /// resubscribe), resubscribed anyway.
    pub final_unsubscribes: u64,
    /// The first duplicate: its offset, the last offset before it and how many publications
    /// came between the last subscribe reply and it.
    pub first_duplicate: Option<(u64, u64, u64)>,
    /// Publications since the last subscribe reply.
    pub since_subscribe: u64,
    /// The current stream epoch (empty before the first subscribe).
    pub epoch: String,
    /// The last offset seen in `epoch`.
    pub offset: u64,
    /// Whether the client is subscribed right now.
    pub subscribed: bool,
    /// The node index the client is connected to now.
    pub node: usize,
}

/// A running chaos client; stopped (its task aborted) on drop.
pub struct ChaosClient {
    stats: Arc<Mutex<Stats>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ChaosClient {
    /// Starts a client as `user` subscribed to `channel`, first on `urls[first]`, moving to the
    /// next URL of `urls` whenever its connection is lost.
    pub fn start(urls: Vec<String>, first: usize, user: &str, channel: &str) -> Self {
        let stats = Arc::new(Mutex::new(Stats {
            node: first,
            ..Stats::default()
        }));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            urls,
            first,
            user.to_owned(),
            channel.to_owned(),
            stats.clone(),
            stopped,
        ));
        Self { stats, stop, task }
    }

    /// A copy of the current counters.
    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap().clone()
    }

    /// Stops the client and returns its final counters.
    pub async fn finish(self) -> Stats {
        let _ = self.stop.send(true);
        for _ in 0..250 {
            if self.task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stats.lock().unwrap().clone()
    }
}

impl Drop for ChaosClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a session ended.
enum End {
    /// The connection is gone (closed, reset, silent): reconnect elsewhere.
    Lost,
    /// Asked to stop.
    Stop,
}

async fn run(
    urls: Vec<String>,
    first: usize,
    user: String,
    channel: String,
    stats: Arc<Mutex<Stats>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut node = first;
    let mut sessions = 0u64;
    loop {
        if *stopped.borrow() {
            return;
        }
        stats.lock().unwrap().node = node;
        if let Some(ws) = open(&urls[node]).await {
            if sessions > 0 {
                stats.lock().unwrap().reconnects += 1;
            }
            sessions += 1;
            let end = session(ws, &user, &channel, &stats, &mut stopped).await;
            stats.lock().unwrap().subscribed = false;
            if let End::Stop = end {
                return;
            }
        }
        node = (node + 1) % urls.len();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn open(url: &str) -> Option<Ws> {
    let builder = ClientBuilder::new().uri(url).ok()?;
    let connect = tokio::time::timeout(Duration::from_secs(3), builder.connect());
    connect.await.ok()?.ok().map(|(ws, _)| ws)
}

/// One connection: connect, subscribe, then read until the connection is lost.
async fn session(
    mut ws: Ws,
    user: &str,
    channel: &str,
    stats: &Mutex<Stats>,
    stopped: &mut watch::Receiver<bool>,
) -> End {
    let connect = json!({"id": 1, "connect": {"token": token(json!({ "sub": user }))}});
    if send(&mut ws, &connect).await.is_err() {
        return End::Lost;
    }
    let mut next_id = 2u64;
    let mut pending_subscribe = None;
    let mut connected = false;
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(Duration::from_secs(30), ws.next()) => f,
            _ = stopped.changed() => return End::Stop,
        };
        let text = match frame {
            Ok(Some(Ok(m))) if m.is_text() => m.as_text().unwrap_or("").to_owned(),
            Ok(Some(Ok(m))) if m.is_close() => return End::Lost,
            Ok(Some(Ok(_))) => continue,
            _ => return End::Lost,
        };
        for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                return End::Lost;
            };
            if v == json!({}) {
                if send(&mut ws, &json!({})).await.is_err() {
                    return End::Lost;
                }
                continue;
            }
            if v["id"].as_u64() == Some(1) {
                if !v["connect"].is_object() {
                    return End::Lost;
                }
                connected = true;
            } else if v["id"].is_u64() && v["id"].as_u64() == pending_subscribe {
                pending_subscribe = None;
                if v["subscribe"].is_object() {
                    on_subscribed(&v["subscribe"], stats);
                    continue;
                }
                // Refused (the engine is away, say): try again shortly.
                tokio::time::sleep(Duration::from_millis(200)).await;
            } else if v["push"]["channel"] == channel {
                let push = &v["push"];
                if push["pub"].is_object() {
                    on_publication(&push["pub"], stats);
                    continue;
                }
                if push["unsubscribe"].is_object() {
                    let mut s = stats.lock().unwrap();
                    s.unsubscribes += 1;
                    if push["unsubscribe"]["code"].as_u64().unwrap_or(0) < 2500 {
                        s.final_unsubscribes += 1;
                    }
                    s.subscribed = false;
                } else {
                    continue;
                }
            } else if v["push"]["disconnect"].is_object() {
                return End::Lost;
            } else {
                continue;
            }
            // (Re)subscribe from the last position.
            if connected && pending_subscribe.is_none() {
                let id = next_id;
                next_id += 1;
                let cmd = subscribe_command(id, channel, stats);
                if send(&mut ws, &cmd).await.is_err() {
                    return End::Lost;
                }
                pending_subscribe = Some(id);
            }
        }
    }
}

fn subscribe_command(id: u64, channel: &str, stats: &Mutex<Stats>) -> Value {
    let s = stats.lock().unwrap();
    if s.epoch.is_empty() {
        json!({"id": id, "subscribe": {"channel": channel, "recoverable": true}})
    } else {
        json!({"id": id, "subscribe": {
            "channel": channel, "recoverable": true, "recover": true,
            "offset": s.offset, "epoch": s.epoch,
        }})
    }
}

fn on_subscribed(result: &Value, stats: &Mutex<Stats>) {
    let epoch = result["epoch"].as_str().unwrap_or("").to_owned();
    let top = result["offset"].as_u64().unwrap_or(0);
    let recovering = result["was_recovering"] == true;
    let recovered = result["recovered"] == true;
    {
        let mut s = stats.lock().unwrap();
        s.subscribed = true;
        s.since_subscribe = 0;
        if recovering && recovered {
            s.recovered += 1;
        } else {
            if recovering {
                s.not_recovered += 1;
            }
            // A new position: counting restarts there.
            s.epoch = epoch;
            s.offset = top;
            return;
        }
    }
    if let Some(publications) = result["publications"].as_array() {
        for p in publications {
            on_publication(p, stats);
        }
    }
}

fn on_publication(publication: &Value, stats: &Mutex<Stats>) {
    let Some(offset) = publication["offset"].as_u64() else {
        return;
    };
    let mut s = stats.lock().unwrap();
    s.received += 1;
    s.since_subscribe += 1;
    if offset <= s.offset {
        s.duplicated += 1;
        if s.first_duplicate.is_none() {
            s.first_duplicate = Some((offset, s.offset, s.since_subscribe));
        }
        return;
    }
    s.lost += offset - s.offset - 1;
    s.offset = offset;
}

async fn send(ws: &mut Ws, v: &Value) -> Result<(), tokio_websockets::Error> {
    ws.send(Message::text(v.to_string())).await
}
