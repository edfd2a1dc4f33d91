//! Socket.IO (Engine.IO v4 packets over WebSocket): connect with session recovery, `sub` and
//! `pub` events with acks.

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_websockets::Message;

use super::{Conn, Event, Position, Sub};
use crate::payload;

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

impl Conn {
    /// Socket.IO: the Engine.IO open packet, then CONNECT (with the session id and last offset
    /// when recovering), then one `sub` event with an ack per channel unless the server restored
    /// the session (its rooms come back with it). Events that arrive before the CONNECT reply
    /// (Socket.IO sends a restored session's missed events first) are kept for `recv`.
    pub(super) async fn sio_handshake(&mut self, subs: &[Sub]) -> Result<()> {
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

    /// Parses one Socket.IO packet that is neither a ping nor a close: events become
    /// publications (moving the position when they carry a recovery offset), acks `Ack`s.
    pub(super) fn parse_sio(&mut self, p: &[u8], out: &mut Vec<Event>) {
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

    /// Socket.IO: emits `pub` (channel, data) with an ack per payload, one packet per message;
    /// returns the ack ids.
    pub(crate) async fn emit_publishes(&mut self, batch: &[(&str, &str)]) -> Result<Vec<u32>> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_offsets_and_pids() {
        assert_eq!(
            sio_last_id(br#"42["m",{"t":1,"s":2,"k":0,"p":"x"},"OaZ3x.1"]"#),
            Some("OaZ3x.1")
        );
        assert_eq!(sio_last_id(br#"42["m",{"t":1,"s":2,"k":0,"p":"x"}]"#), None);
        assert_eq!(sio_pid(br#"40{"sid":"a","pid":"b"}"#).as_deref(), Some("b"));
        assert_eq!(sio_pid(br#"40{"sid":"a"}"#), None);
    }
}
