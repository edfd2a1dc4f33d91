//! NATS over WebSocket: its text protocol, core subscriptions and JetStream push consumers.

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_websockets::Message;

use super::{Conn, Event, Sub};
use crate::payload;

/// The NATS subscription id of JetStream API responses.
const NATS_API_SID: &str = "api";

/// The JetStream stream that holds `channel` (the load generator's own naming).
pub(crate) fn nats_stream_name(channel: &str) -> String {
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
pub(crate) fn nats_inbox() -> String {
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

impl Conn {
    /// NATS: `CONNECT`, one `SUB` per channel (or, with `history`, a `SUB` on a fresh inbox and
    /// a JetStream push consumer delivering to it: only new messages, or from the sequence after
    /// the position when recovering), then a `PING`; done at the `PONG` and the consumers'
    /// create responses.
    pub(super) async fn nats_handshake(&mut self, subs: &[Sub]) -> Result<()> {
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

    /// Parses NATS protocol bytes: payload-carrying `MSG`s become publications (JetStream
    /// deliveries also move the position) or API responses; `PING`s owe a `PONG`.
    pub(super) fn parse_nats(&mut self, p: &[u8], out: &mut Vec<Event>) -> Result<()> {
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
        assert_eq!(nats_stream_name("nohist:bench"), "GYRE_NOHIST_BENCH");
    }
}
