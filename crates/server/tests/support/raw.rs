//! A raw protocol client for tests: sends exact frames and reads replies and close codes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

/// What the server sent next.
#[derive(Debug)]
pub enum Incoming {
    /// A text message (JSON frames).
    Text(String),
    /// A binary message (Protobuf frames).
    Binary(Vec<u8>),
    /// The connection closed with this code and reason (1005 when no code).
    Closed(u16, String),
}

/// A raw WebSocket client.
pub struct RawWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl RawWs {
    /// Connects to `url`, optionally offering a subprotocol.
    pub async fn connect(url: &str, subprotocol: Option<&str>) -> Self {
        Self::connect_with(url, subprotocol, &[]).await
    }

    /// Connects to `url` with extra upgrade request headers.
    pub async fn connect_with(
        url: &str,
        subprotocol: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> Self {
        let mut builder = ClientBuilder::new().uri(url).expect("uri");
        for (name, value) in headers {
            builder = builder
                .add_header(
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_str(value).expect("header"),
                )
                .expect("add header");
        }
        if let Some(p) = subprotocol {
            builder = builder
                .add_header(
                    http::header::SEC_WEBSOCKET_PROTOCOL,
                    http::HeaderValue::from_str(p).expect("header"),
                )
                .expect("add header");
        }
        let (ws, _) = builder.connect().await.expect("websocket connect");
        Self { ws }
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send text");
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .expect("send binary");
    }

    /// Sends a text message, tolerating a connection the server already closed.
    pub async fn try_send_text(&mut self, text: &str) {
        let _ = self.ws.send(Message::text(text.to_owned())).await;
    }

    /// The next message (or close) within `timeout`; panics on timeout.
    pub async fn next(&mut self, timeout: Duration) -> Incoming {
        loop {
            let item = tokio::time::timeout(timeout, self.ws.next())
                .await
                .expect("timed out waiting for the server");
            match item {
                Some(Ok(m)) if m.is_text() => {
                    return Incoming::Text(m.as_text().unwrap_or("").to_owned());
                }
                Some(Ok(m)) if m.is_binary() => return Incoming::Binary(m.as_payload().to_vec()),
                Some(Ok(m)) if m.is_close() => {
                    let (code, reason) = m
                        .as_close()
                        .map(|(c, r)| (u16::from(c), r.to_owned()))
                        .unwrap_or((1005, String::new()));
                    return Incoming::Closed(code, reason);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Incoming::Closed(0, e.to_string()),
                None => return Incoming::Closed(1006, String::new()),
            }
        }
    }

    /// Reads JSON messages until one has `id`, returning it (pushes and pings are skipped).
    pub async fn reply(&mut self, id: u64) -> Value {
        loop {
            match self.next(Duration::from_secs(5)).await {
                Incoming::Text(text) => {
                    for line in text.split('\n') {
                        let v: Value = serde_json::from_str(line).expect("server sent valid JSON");
                        if v["id"].as_u64() == Some(id) {
                            return v;
                        }
                    }
                }
                other => panic!("expected reply {id}, got {other:?}"),
            }
        }
    }

    /// Reads until the connection closes and returns the close code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            if let Incoming::Closed(code, _) = self.next(Duration::from_secs(10)).await {
                return code;
            }
        }
    }

    /// Sends a JSON connect (insecure or with a token) and returns the reply.
    pub async fn connect_json(&mut self, token: &str) -> Value {
        let cmd = serde_json::json!({"id": 1, "connect": {"token": token}});
        self.send_text(&cmd.to_string()).await;
        self.reply(1).await
    }
}
