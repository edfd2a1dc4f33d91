//! Incoming frames and replies of [`Core`]: pings, the connect and refresh replies and connection tokens.

use gyre_protocol::{self as proto, codec};
use std::collections::BTreeSet;

use super::{Core, Inflight, Millis, Scope, TokenPurpose};
use crate::Error;
use crate::codes;
use crate::event::{
    ClientEvent, ConnectedContext, ErrorKind, State, StreamPosition, SubscribedContext,
    SubscriptionState,
};

fn sorted<V>(map: std::collections::HashMap<String, V>) -> Vec<(String, V)> {
    let mut v: Vec<(String, V)> = map.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

impl Core {
    pub(super) fn handle_frame(&mut self, now: Millis, frame: &[u8]) {
        let replies: Vec<proto::Reply> = match codec::decode_all(self.cfg.protocol, frame) {
            Ok(r) => r,
            Err(e) => {
                self.emit(ClientEvent::Error {
                    kind: ErrorKind::Protocol,
                    error: Error::Protocol(e.to_string()),
                });
                self.drop_connection(
                    now,
                    codes::disconnected::BAD_PROTOCOL,
                    "bad protocol",
                    false,
                );
                return;
            }
        };
        for reply in replies {
            // A reply may end the connection; later replies of the frame are then stale.
            if !self.transport_open {
                return;
            }
            self.handle_reply(now, reply);
        }
    }

    pub(super) fn handle_reply(&mut self, now: Millis, reply: proto::Reply) {
        if reply.id > 0 {
            let Some(pending) = self.inflight.remove(&reply.id) else {
                return; // late reply of a command that timed out or was abandoned
            };
            match pending.kind {
                Inflight::Connect => self.on_connect_reply(now, reply),
                Inflight::Subscribe(ch) => self.on_subscribe_reply(now, reply.id, &ch, reply),
                Inflight::Unsubscribe(_) => {
                    if reply.error.is_some() {
                        self.drop_connection(
                            now,
                            codes::connecting::UNSUBSCRIBE_ERROR,
                            "unsubscribe error",
                            true,
                        );
                    }
                }
                Inflight::Refresh => self.on_refresh_reply(now, reply),
                Inflight::SubRefresh(ch) => self.on_sub_refresh_reply(now, reply.id, &ch, reply),
                Inflight::Call(call, expect) => self.on_call_reply(call, expect, reply),
            }
        } else if let Some(push) = reply.push {
            self.handle_push(now, push);
        } else if reply == proto::Reply::default() {
            self.on_ping(now);
        }
    }

    pub(super) fn on_ping(&mut self, now: Millis) {
        if self.state != State::Connected {
            return;
        }
        if self.ping_interval > 0 && self.cfg.max_server_ping_delay > 0 {
            self.ping_deadline = Some(now + self.ping_interval + self.cfg.max_server_ping_delay);
        }
        if self.send_pong {
            // An empty command is a pong; encoding it can't fail.
            let _ = self.push_command(&proto::Command::default());
        }
    }

    pub(super) fn on_connect_reply(&mut self, now: Millis, reply: proto::Reply) {
        self.handshake_deadline = None;
        if let Some(err) = reply.error {
            self.emit(ClientEvent::Error {
                kind: ErrorKind::Connect,
                error: Error::server(&err),
            });
            if err.code == 109 {
                self.token_stale = true;
                let again = self.cfg.has_get_token;
                self.drop_connection(now, 109, &err.message, again);
            } else {
                self.drop_connection(now, err.code, &err.message, err.temporary);
            }
            return;
        }
        let Some(res) = reply.connect else {
            self.emit(ClientEvent::Error {
                kind: ErrorKind::Connect,
                error: Error::Protocol("connect reply without result".into()),
            });
            self.drop_connection(
                now,
                codes::disconnected::BAD_PROTOCOL,
                "bad protocol",
                false,
            );
            return;
        };
        self.state = State::Connected;
        // The reconnect backoff is reset once this connection has proved stable (see
        // `connection_lost`), not here: connections that keep failing soon after the
        // connect reply keep backing off.
        self.connected_at = Some(now);
        self.token_stale = false;
        self.client_id = res.client.clone();
        self.emit(ClientEvent::Connected(ConnectedContext {
            client: res.client,
            version: res.version,
            data: res.data,
        }));
        self.ping_interval = u64::from(res.ping) * 1000;
        self.send_pong = res.pong;
        if res.ping > 0 && self.cfg.max_server_ping_delay > 0 {
            self.ping_deadline = Some(now + self.ping_interval + self.cfg.max_server_ping_delay);
        }
        if res.expires && self.cfg.has_get_token {
            self.refresh_attempts = 0;
            self.refresh_at = Some(now + u64::from(res.ttl) * 1000);
        }
        // Server-side subscriptions.
        let mut seen = BTreeSet::new();
        for (channel, r) in sorted(res.subs) {
            seen.insert(channel.clone());
            let entry = self.server_subs.entry(channel.clone()).or_default();
            entry.subscribed = true;
            entry.recoverable = r.recoverable;
            let positioned = r.recoverable || r.positioned;
            if positioned {
                entry.offset = r.offset;
                entry.epoch = r.epoch.clone();
            }
            self.emit(ClientEvent::Subscribed(SubscribedContext {
                channel: channel.clone(),
                was_recovering: r.was_recovering,
                recovered: r.recovered,
                recoverable: r.recoverable,
                positioned,
                stream_position: positioned.then(|| StreamPosition {
                    offset: r.offset,
                    epoch: r.epoch.clone(),
                }),
                data: r.data,
            }));
            for p in r.publications {
                self.server_publication(&channel, p);
            }
        }
        let gone: Vec<String> = self
            .server_subs
            .keys()
            .filter(|c| !seen.contains(*c))
            .cloned()
            .collect();
        for channel in gone {
            self.server_subs.remove(&channel);
            self.emit(ClientEvent::Unsubscribed {
                channel,
                code: codes::unsubscribed::SERVER_SUBSCRIPTION_REMOVED,
                reason: "server-side subscription removed".into(),
            });
        }
        // Client-side subscriptions waiting for the connection.
        // Their subscribe commands are batched into as few frames as `max_frame_size` allows.
        // The resubscribe backoff is not reset here: a subscription that keeps failing keeps
        // backing off across reconnects until it is subscribed.
        self.stats.registry_walks += 1;
        let waiting: Vec<String> = self
            .subs
            .iter_mut()
            .filter(|(_, s)| s.state == SubscriptionState::Subscribing)
            .map(|(c, s)| {
                s.resubscribe_at = None;
                c.clone()
            })
            .collect();
        for ch in waiting {
            self.start_subscribe(now, &ch);
        }
        self.send_queued(&Scope::Client);
    }

    pub(super) fn on_refresh_reply(&mut self, now: Millis, reply: proto::Reply) {
        if let Some(err) = reply.error {
            self.emit(ClientEvent::Error {
                kind: ErrorKind::Refresh,
                error: Error::server(&err),
            });
            if err.temporary {
                self.schedule_refresh_retry(now);
            } else {
                self.drop_connection(now, err.code, &err.message, false);
            }
            return;
        }
        self.refresh_attempts = 0;
        if let Some(r) = reply.refresh
            && r.expires
        {
            self.refresh_at = Some(now + u64::from(r.ttl) * 1000);
        }
    }

    pub(super) fn schedule_refresh_retry(&mut self, now: Millis) {
        let d = self.delay(
            self.refresh_attempts,
            self.cfg.min_reconnect_delay,
            self.cfg.max_reconnect_delay,
        );
        self.refresh_attempts = self.refresh_attempts.saturating_add(1);
        self.refresh_at = Some(now + d);
    }

    pub(super) fn on_connection_token(
        &mut self,
        now: Millis,
        id: u64,
        result: Result<String, String>,
    ) {
        let Some((want, purpose)) = self.conn_token else {
            return;
        };
        if want != id {
            return;
        }
        self.conn_token = None;
        match (purpose, result) {
            (_, Ok(t)) if t.is_empty() => {
                self.emit(ClientEvent::Error {
                    kind: ErrorKind::ConnectToken,
                    error: Error::Unauthorized,
                });
                self.drop_connection(
                    now,
                    codes::disconnected::UNAUTHORIZED,
                    "unauthorized",
                    false,
                );
            }
            (TokenPurpose::Connect, Ok(t)) => {
                self.token = t;
                self.token_stale = false;
                if self.state == State::Connecting {
                    self.open_transport(now);
                }
            }
            (TokenPurpose::Refresh, Ok(t)) => {
                self.token = t;
                self.token_stale = false;
                if self.state == State::Connected {
                    let cmd = proto::Command {
                        refresh: Some(proto::RefreshRequest {
                            token: self.token.clone(),
                        }),
                        ..Default::default()
                    };
                    let deadline = Some(now + self.cfg.timeout);
                    // Encoding a refresh (a string) can't fail.
                    let _ = self.send_tracked(cmd, Inflight::Refresh, deadline);
                }
            }
            (TokenPurpose::Connect, Err(e)) => {
                self.emit(ClientEvent::Error {
                    kind: ErrorKind::ConnectToken,
                    error: Error::Token(e),
                });
                if self.state == State::Connecting {
                    let d = self.delay(
                        self.reconnect_attempts,
                        self.cfg.min_reconnect_delay,
                        self.cfg.max_reconnect_delay,
                    );
                    self.reconnect_attempts = self.reconnect_attempts.saturating_add(1);
                    self.reconnect_at = Some(now + d);
                }
            }
            (TokenPurpose::Refresh, Err(e)) => {
                self.emit(ClientEvent::Error {
                    kind: ErrorKind::RefreshToken,
                    error: Error::Token(e),
                });
                if self.state == State::Connected {
                    self.schedule_refresh_retry(now);
                }
            }
        }
    }
}
