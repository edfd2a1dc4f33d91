//! The Centrifugo protocol (Gyre and the floor): the connect and subscribe commands, publish
//! commands, and replies and pushes, JSON read lazily on the hot path.

use anyhow::{Result, bail};
use futures_util::SinkExt;
use gyre_protocol::codec::{decode_all, encode, join_units};
use gyre_protocol::{
    Command, ConnectRequest, Protocol, PublishRequest, Reply, SubscribeRequest, SubscribeResult,
};
use tokio_websockets::Message;

use super::{Conn, Event};
use crate::payload;

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

impl Conn {
    /// `connect`, then one `subscribe` per channel (with `recover` from the position when
    /// recovering), in one message; done at the last reply. The first subscribe result sets
    /// the position.
    pub(super) async fn centrifugo_handshake(
        &mut self,
        subs: &[super::Sub],
    ) -> Result<Vec<SubscribeResult>> {
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

    /// Parses the lines of a JSON message: publication pushes read lazily, anything else
    /// decoded in full.
    pub(super) fn parse_json_lines(&mut self, p: &[u8], out: &mut Vec<Event>) -> Result<()> {
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
        Ok(())
    }

    /// Sends Centrifugo commands in one WebSocket message.
    pub(crate) async fn send_commands(&mut self, commands: &[Command]) -> Result<()> {
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
    pub(crate) fn publish_commands(&mut self, channel: &str, payloads: &[String]) -> Vec<Command> {
        payloads
            .iter()
            .map(|p| Command {
                id: self.take_id(),
                publish: Some(PublishRequest {
                    channel: channel.to_owned(),
                    data: bytes::Bytes::from(p.clone().into_bytes()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect()
    }

    /// Handles decoded Centrifugo replies: pings, publications and command replies.
    pub(super) fn on_replies(&mut self, replies: Vec<Reply>, out: &mut Vec<Event>) {
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
}
