//! `websocket.compression`: permessage-deflate (RFC 7692) negotiated per connection.
//!
//! - The `ws` package's own client (Node, `perMessageDeflate`) negotiates it, sends
//!   compressed commands and gets compressed publications, a large one too; without the
//!   server option it is not negotiated and the same script runs uncompressed.
//! - centrifuge-js (whose Node WebSocket, `ws`, offers the extension by default) runs
//!   `api_publish.mjs`, with its 300 KB publication, over a compressing server.
//! - A raw client over TCP sees the answer header, RSV1 set on messages from
//!   `compression_min_size` bytes up and clear below, and inflates them itself; a client that
//!   does not offer the extension gets plain frames; a compression bomb (a small frame
//!   inflating past `decompressed_message_size_limit`) is closed with 1009 while another
//!   client goes on.

mod support;

use std::io::Write as _;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};
use support::Gyre;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a raw read waits for a frame.
const WAIT: Duration = Duration::from_secs(10);

fn config(extra: Value) -> Value {
    let mut ws = json!({ "compression": true, "compression_min_size": 200 });
    if let (Value::Object(w), Value::Object(e)) = (&mut ws, extra) {
        w.extend(e);
    }
    support::config(json!({
        "websocket": ws,
        "channel": { "without_namespace": {
            "allow_subscribe_for_client": true,
            "allow_publish_for_subscriber": true,
            "history_size": 10,
            "history_ttl": "300s",
            "force_recovery": true,
        }, "namespaces": [{ "name": "plain", "allow_subscribe_for_client": true }] },
    }))
}

fn token(user: &str) -> String {
    support::token(json!({ "sub": user, "exp": support::now() + 3600 }))
}

fn ws_deflate_script(gyre: &mut Gyre, expect_deflate: bool) {
    let env = [
        ("GYRE_TOKEN", token("u1")),
        (
            "GYRE_EXPECT_DEFLATE",
            if expect_deflate { "1" } else { "0" }.to_owned(),
        ),
    ];
    support::js::run_script(gyre, "ws_deflate.mjs", "json", &env, |action, gyre| {
        assert_eq!(action, "publish");
        gyre.api(
            "publish",
            json!({ "channel": "news", "data": { "small": 1 } }),
        );
        gyre.api(
            "publish",
            json!({ "channel": "news", "data": { "big": "x".repeat(200_000) } }),
        );
    });
}

#[test]
fn ws_client_negotiates_and_exchanges_compressed_messages() {
    let mut gyre = Gyre::start(&config(json!({ "compression_level": 9 })));
    ws_deflate_script(&mut gyre, true);
}

#[test]
fn ws_client_without_server_compression_runs_uncompressed() {
    let mut gyre = Gyre::start(&config(json!({ "compression": false })));
    ws_deflate_script(&mut gyre, false);
}

#[test]
fn centrifuge_js_api_publish_over_a_compressing_server() {
    let mut gyre = Gyre::start(&config(json!({ "compression_min_size": 0 })));
    let env = [("GYRE_TOKEN", token("u1"))];
    support::js::run_script(&mut gyre, "api_publish.mjs", "json", &env, |action, _| {
        panic!("unexpected action {action}")
    });
}

/// A frame from the server: (RSV1, opcode, payload).
type Frame = (bool, u8, Vec<u8>);

/// A minimal WebSocket client over TCP that frames, masks and (de)compresses by itself.
struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// The handshake answer's `Sec-WebSocket-Extensions` (lower case), if any.
    extensions: Option<String>,
}

impl Raw {
    async fn connect(addr: &str, offer: Option<&str>) -> Self {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let mut req = format!(
            "GET /connection/websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: centrifuge-json\r\n"
        );
        if let Some(offer) = offer {
            req.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
                .await
                .expect("handshake stalled")
                .expect("read");
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        let extensions = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-extensions:"))
            .map(|v| v.trim().to_owned());
        buf.drain(..head_end);
        Self {
            tcp,
            buf,
            extensions,
        }
    }

    /// Sends a text message, compressed (RSV1) when `compressed`.
    async fn send(&mut self, text: &[u8], compressed: bool) {
        let payload = if compressed {
            deflate(text)
        } else {
            text.to_vec()
        };
        let mut frame = vec![if compressed { 0xC1 } else { 0x81 }];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [1u8, 2, 3, 4];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.expect("send");
    }

    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 65_536];
            let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
                .await
                .expect("no frame in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next data message as JSON lines (inflated when RSV1 is set), with its RSV1; server
    /// pings are answered.
    async fn message(&mut self) -> (bool, Vec<Value>) {
        loop {
            let (rsv1, opcode, payload) = self.frame().await.expect("connection closed");
            assert_eq!(opcode, 1, "text frame expected");
            let text = if rsv1 { inflate(&payload) } else { payload };
            let values: Vec<Value> = text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).expect("JSON"))
                .collect();
            if values == [json!({})] {
                self.send(b"{}", false).await;
                continue;
            }
            return (rsv1, values);
        }
    }

    /// Reads until the close frame; its code.
    async fn close_code(&mut self) -> u16 {
        while let Some((_, opcode, payload)) = self.frame().await {
            if opcode == 8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
        panic!("closed without a close frame");
    }
}

fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    let (len, at) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(buf.get(2..10)?);
            (u64::from_be_bytes(n) as usize, 10)
        }
        n => (n as usize, 2),
    };
    assert!(b0 & 0x80 != 0, "server frames are not fragmented");
    let payload = buf.get(at..at + len)?.to_vec();
    Some(((b0 & 0x40 != 0, b0 & 0x0f, payload), at + len))
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync)
        .expect("compress");
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("inflate");
    out
}

async fn connected(addr: &str, offer: Option<&str>, compressed_commands: bool) -> Raw {
    let mut raw = Raw::connect(addr, offer).await;
    let connect = json!({ "id": 1, "connect": { "token": token("u1") } }).to_string();
    raw.send(connect.as_bytes(), compressed_commands).await;
    let (_, reply) = raw.message().await;
    assert!(reply[0].get("connect").is_some(), "{reply:?}");
    let subscribe = json!({ "id": 2, "subscribe": { "channel": "plain:news" } }).to_string();
    raw.send(subscribe.as_bytes(), compressed_commands).await;
    let (_, reply) = raw.message().await;
    assert!(reply[0].get("subscribe").is_some(), "{reply:?}");
    raw
}

/// Publishes `data` on `plain:news` and returns the publication's message as `raw` got it.
async fn publication(gyre: &Gyre, raw: &mut Raw, data: Value) -> (bool, Value) {
    gyre.api("publish", json!({ "channel": "plain:news", "data": data }));
    let (rsv1, values) = raw.message().await;
    assert_eq!(values[0]["push"]["pub"]["data"], data, "{values:?}");
    (rsv1, values[0].clone())
}

#[tokio::test]
async fn raw_client_sees_rsv1_from_min_size_and_the_answer_header() {
    let gyre = Gyre::start(&config(json!({})));
    let mut raw = connected(
        &gyre.addr,
        Some("permessage-deflate; client_max_window_bits"),
        true,
    )
    .await;
    assert_eq!(
        raw.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    let (rsv1, _) = publication(&gyre, &mut raw, json!({ "n": 1 })).await;
    assert!(!rsv1, "a message under compression_min_size goes out plain");
    let (rsv1, _) = publication(&gyre, &mut raw, json!({ "text": "z".repeat(5000) })).await;
    assert!(rsv1, "a large message goes out compressed");
    // Uncompressed commands are still taken on a compressing connection.
    raw.send(
        br#"{"id":3,"presence_stats":{"channel":"plain:news"}}"#,
        false,
    )
    .await;
    let (_, reply) = raw.message().await;
    assert_eq!(reply[0]["id"], 3, "{reply:?}");
}

#[tokio::test]
async fn clients_without_the_extension_get_plain_frames() {
    let gyre = Gyre::start(&config(json!({})));
    let mut raw = connected(&gyre.addr, None, false).await;
    assert_eq!(raw.extensions, None);
    let (rsv1, _) = publication(&gyre, &mut raw, json!({ "text": "z".repeat(5000) })).await;
    assert!(!rsv1);
    // An offer Gyre declines (a smaller server window) is not answered either.
    let mut raw = connected(
        &gyre.addr,
        Some("permessage-deflate; server_max_window_bits=10"),
        false,
    )
    .await;
    assert_eq!(raw.extensions, None);
    let (rsv1, _) = publication(&gyre, &mut raw, json!({ "text": "q".repeat(5000) })).await;
    assert!(!rsv1);
    // RSV1 without the extension negotiated is a protocol error.
    raw.send(br#"{"id":9,"ping":{}}"#, true).await;
    assert_eq!(raw.close_code().await, 1002);
}

#[tokio::test]
async fn a_compression_bomb_is_closed_with_1009_and_others_go_on() {
    let gyre = Gyre::start(&config(
        json!({ "decompressed_message_size_limit": 1_000_000 }),
    ));
    let mut other = connected(&gyre.addr, Some("permessage-deflate"), true).await;
    let mut bomb = connected(&gyre.addr, Some("permessage-deflate"), true).await;
    // 5 MB of JSON whitespace inflates from a few KB, far under message_size_limit (64 KiB).
    let mut command = Vec::new();
    write!(
        command,
        r#"{{"id":5,"publish":{{"channel":"plain:news","data":"#
    )
    .expect("w");
    command.extend(std::iter::repeat_n(b' ', 5_000_000));
    command.extend_from_slice(b"1}}");
    assert!(deflate(&command).len() < 65_536);
    bomb.send(&command, true).await;
    assert_eq!(bomb.close_code().await, 1009);
    let (_, push) = publication(&gyre, &mut other, json!({ "still": "here" })).await;
    assert_eq!(push["push"]["channel"], "plain:news");
    // Under the limit, a large compressed command is taken.
    let mut fine = Vec::new();
    write!(
        fine,
        r#"{{"id":6,"presence_stats":{{"channel":"plain:news"}}"#
    )
    .expect("w");
    fine.extend(std::iter::repeat_n(b' ', 500_000));
    fine.push(b'}');
    other.send(&fine, true).await;
    let (_, reply) = other.message().await;
    assert_eq!(reply[0]["id"], 6, "{reply:?}");
}
