//! Asynchronous pushes handled by [`Core`]: publications, join/leave, server-side subscriptions and disconnects.

use bytes::Bytes;
use gyre_protocol::{self as proto, Protocol};

use super::{Core, Millis, apply_patch, decode_json_string};
use crate::Error;
use crate::codes;
use crate::event::{
    ClientEvent, ErrorKind, Publication, StreamPosition, SubscribedContext, SubscriptionEvent,
    SubscriptionState,
};

/// Builds a user-facing publication, defaulting the channel to `channel`.
pub(super) fn publication(channel: &str, p: proto::Publication, data: Bytes) -> Publication {
    Publication {
        channel: if p.channel.is_empty() {
            channel.to_owned()
        } else {
            p.channel
        },
        data,
        offset: p.offset,
        tags: p.tags,
        info: p.info.map(Into::into),
    }
}

impl Core {
    pub(super) fn handle_push(&mut self, now: Millis, push: proto::Push) {
        let channel = push.channel;
        if let Some(p) = push.publication {
            match self.subs.get(&channel).map(|s| s.state) {
                Some(SubscriptionState::Subscribed) => {
                    self.sub_publication(now, &channel, p);
                }
                Some(_) => {} // not subscribed (any more): drop
                None => self.server_publication(&channel, p),
            }
        } else if let Some(j) = push.join {
            let info = j.info.unwrap_or_default().into();
            match self.subs.get(&channel).map(|s| s.state) {
                Some(SubscriptionState::Subscribed) => {
                    self.emit_sub(&channel, SubscriptionEvent::Join(info));
                }
                Some(_) => {}
                None => self.emit(ClientEvent::Join { channel, info }),
            }
        } else if let Some(l) = push.leave {
            let info = l.info.unwrap_or_default().into();
            match self.subs.get(&channel).map(|s| s.state) {
                Some(SubscriptionState::Subscribed) => {
                    self.emit_sub(&channel, SubscriptionEvent::Leave(info));
                }
                Some(_) => {}
                None => self.emit(ClientEvent::Leave { channel, info }),
            }
        } else if let Some(u) = push.unsubscribe {
            match self.subs.get(&channel).map(|s| s.state) {
                Some(SubscriptionState::Unsubscribed) => {}
                Some(_) => {
                    if u.code >= 2500 {
                        self.resubscribe(now, &channel, u.code, &u.reason, false);
                    } else {
                        self.set_unsubscribed(now, &channel, u.code, &u.reason, false);
                    }
                }
                None => {
                    if self.server_subs.remove(&channel).is_some() {
                        self.emit(ClientEvent::Unsubscribed {
                            channel,
                            code: u.code,
                            reason: u.reason,
                        });
                    }
                }
            }
        } else if let Some(s) = push.subscribe {
            if channel.is_empty() {
                return;
            }
            let entry = self.server_subs.entry(channel.clone()).or_default();
            entry.subscribed = true;
            entry.recoverable = s.recoverable;
            let positioned = s.recoverable || s.positioned;
            if positioned {
                entry.offset = s.offset;
                entry.epoch = s.epoch.clone();
            }
            self.emit(ClientEvent::Subscribed(SubscribedContext {
                channel,
                was_recovering: false,
                recovered: false,
                recoverable: s.recoverable,
                positioned,
                stream_position: positioned.then_some(StreamPosition {
                    offset: s.offset,
                    epoch: s.epoch,
                }),
                data: s.data,
            }));
        } else if let Some(m) = push.message {
            self.emit(ClientEvent::Message(m.data));
        } else if let Some(d) = push.disconnect {
            let reconnect = gyre_protocol::Disconnect::reconnect(d.code);
            self.close_transport(1000, "disconnect push");
            self.connection_lost(now, d.code, d.reason, reconnect);
        }
        // `connect` pushes belong to unidirectional transports and `refresh` pushes to
        // server-side refresh; neither needs an action here.
    }

    pub(super) fn server_publication(&mut self, channel: &str, p: proto::Publication) {
        if let Some(s) = self.server_subs.get_mut(channel)
            && p.offset > 0
        {
            if s.recoverable && p.offset <= s.offset {
                return; // duplicate
            }
            s.offset = p.offset;
        }
        let data = p.data.clone();
        self.emit(ClientEvent::Publication(publication(channel, p, data)));
    }

    /// Delivers a publication of a subscribed client-side subscription. Returns false when
    /// it could not be applied and the subscription is resubscribing.
    pub(super) fn sub_publication(
        &mut self,
        now: Millis,
        channel: &str,
        p: proto::Publication,
    ) -> bool {
        let protocol = self.cfg.protocol;
        let Some(sub) = self.subs.get_mut(channel) else {
            return true;
        };
        if sub.positioned && p.offset > 0 && p.offset <= sub.offset {
            return true; // duplicate of something already delivered
        }
        let data = if sub.delta {
            let raw = match protocol {
                Protocol::Json => decode_json_string(&p.data),
                Protocol::Protobuf => Ok(p.data.to_vec()),
            };
            let full = raw.and_then(|raw| {
                if p.delta {
                    match &sub.prev_data {
                        Some(prev) => apply_patch(prev, &raw),
                        None => Err("delta publication without a base".to_owned()),
                    }
                } else {
                    Ok(raw)
                }
            });
            match full {
                Ok(d) => {
                    let b = Bytes::from(d);
                    sub.prev_data = Some(b.clone());
                    b
                }
                Err(e) => {
                    self.emit_sub(
                        channel,
                        SubscriptionEvent::Error {
                            kind: ErrorKind::Protocol,
                            error: Error::Protocol(e),
                        },
                    );
                    self.resubscribe(
                        now,
                        channel,
                        codes::subscribing::BAD_DELTA,
                        "bad delta",
                        true,
                    );
                    return false;
                }
            }
        } else {
            p.data.clone()
        };
        if p.offset > 0 {
            sub.offset = p.offset;
        }
        self.emit_sub(
            channel,
            SubscriptionEvent::Publication(publication(channel, p, data)),
        );
        true
    }
}
