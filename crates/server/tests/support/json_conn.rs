//! A raw JSON-protocol client for tests that need to see every message on the wire (pushes,
//! replies, close codes), used where a real SDK would hide them.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};

use super::raw::{Incoming, RawWs};
use super::{Gyre, token};

/// A raw client that keeps every JSON message of a frame, in order.
pub struct Conn {
    ws: RawWs,
    pending: VecDeque<Value>,
}

impl Conn {
    /// Opens a WebSocket to `url` (no connect command sent yet).
    pub async fn open(url: &str) -> Self {
        Self {
            ws: RawWs::connect(url, None).await,
            pending: VecDeque::new(),
        }
    }

    /// Opens a WebSocket to `url` with extra upgrade request headers.
    pub async fn open_with(url: &str, headers: &[(&'static str, &str)]) -> Self {
        Self {
            ws: RawWs::connect_with(url, None, headers).await,
            pending: VecDeque::new(),
        }
    }

    /// The next JSON message (answering server pings on the way), or the close code and
    /// reason.
    pub async fn next(&mut self) -> Result<Value, (u16, String)> {
        loop {
            if let Some(v) = self.pending.pop_front() {
                if v == json!({}) {
                    self.send(&json!({})).await;
                    continue;
                }
                return Ok(v);
            }
            match self.ws.next(Duration::from_secs(10)).await {
                Incoming::Text(text) => {
                    for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
                        self.pending
                            .push_back(serde_json::from_str(line).expect("json"));
                    }
                }
                Incoming::Closed(code, reason) => return Err((code, reason)),
                Incoming::Binary(_) => panic!("binary frame on a JSON connection"),
            }
        }
    }

    /// Sends one command.
    pub async fn send(&mut self, command: &Value) {
        self.ws.send_text(&command.to_string()).await;
    }

    /// The reply to command `id` (other messages before it are dropped).
    pub async fn reply(&mut self, id: u64) -> Value {
        wait_for(self, |v| (v["id"].as_u64() == Some(id)).then(|| v.clone())).await
    }
}

/// Reads JSON messages until `pick` returns something; panics if the connection closes.
pub async fn wait_for<T>(conn: &mut Conn, mut pick: impl FnMut(&Value) -> Option<T>) -> T {
    loop {
        match conn.next().await {
            Ok(v) => {
                if let Some(found) = pick(&v) {
                    return found;
                }
            }
            Err(closed) => panic!("connection closed: {closed:?}"),
        }
    }
}

/// The next publication pushed in `channel`.
pub async fn next_pub(conn: &mut Conn, channel: &str) -> Value {
    wait_for(conn, |v| {
        (v["push"]["channel"] == channel && v["push"]["pub"].is_object())
            .then(|| v["push"]["pub"].clone())
    })
    .await
}

/// A connection to `node`, connected as `user` with a connection token.
pub async fn client(node: &Gyre, user: &str) -> Conn {
    let mut conn = Conn::open(&node.ws_url()).await;
    conn.send(&json!({"id": 1, "connect": {"token": token(json!({ "sub": user }))}}))
        .await;
    let reply = conn.reply(1).await;
    assert!(reply["connect"].is_object(), "{reply}");
    conn
}

/// Subscribes with command `id` and the subscribe request `sub`; the subscribe result.
pub async fn subscribe(conn: &mut Conn, id: u64, sub: Value) -> Value {
    conn.send(&json!({ "id": id, "subscribe": sub })).await;
    let reply = conn.reply(id).await;
    assert!(reply["subscribe"].is_object(), "{reply}");
    reply["subscribe"].clone()
}
