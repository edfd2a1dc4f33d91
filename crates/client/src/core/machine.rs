//! The transitions of [`Core`]: connection lifecycle, replies, pushes, subscriptions, calls
//! and timers. Every method here is synchronous and only updates state and queues outputs.

use std::collections::BTreeSet;

use bytes::Bytes;
use gyre_protocol::{self as proto, Protocol, codec};

use super::{
    CallId, CallResult, Core, Expect, Inflight, Millis, Output, Pending, Queued, Request, Scope,
    TokenPurpose, TokenRequest, TransportId, apply_patch, backoff, decode_json_string,
};
use crate::Error;
use crate::event::{
    ClientEvent, ConnectedContext, HistoryResult, PresenceResult, PresenceStatsResult, Publication,
    State, StreamPosition, SubscribedContext, SubscriptionEvent, SubscriptionState,
};

fn publication(channel: &str, p: proto::Publication, data: Bytes) -> Publication {
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

fn sorted<V>(map: std::collections::HashMap<String, V>) -> Vec<(String, V)> {
    let mut v: Vec<(String, V)> = map.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

impl Core {
    // ----- outputs -------------------------------------------------------------------------

    pub(super) fn emit(&mut self, ev: ClientEvent) {
        self.out.push_back(Output::Client(ev));
    }

    pub(super) fn emit_sub(&mut self, channel: &str, event: SubscriptionEvent) {
        self.out.push_back(Output::Subscription {
            channel: channel.to_owned(),
            event,
        });
    }

    pub(super) fn resolve(&mut self, call: CallId, result: Result<CallResult, Error>) {
        self.out.push_back(Output::Resolve { call, result });
    }

    fn delay(&mut self, attempt: u32, min: Millis, max: Millis) -> Millis {
        backoff(attempt, min, max, &mut self.rng)
    }

    fn next_cmd_id(&mut self) -> u32 {
        loop {
            self.next_cmd = self.next_cmd.wrapping_add(1);
            if self.next_cmd != 0 && !self.inflight.contains_key(&self.next_cmd) {
                return self.next_cmd;
            }
        }
    }

    fn push_command(&mut self, cmd: &proto::Command) -> Result<(), Error> {
        let unit =
            codec::encode(self.cfg.protocol, cmd).map_err(|e| Error::InvalidData(e.to_string()))?;
        if !self.units.is_empty() && self.units_len + unit.len() + 1 > self.cfg.max_frame_size {
            self.flush();
        }
        self.units_len += unit.len() + 1;
        self.units.push(unit);
        Ok(())
    }

    /// Sends the commands produced so far as one frame.
    pub(super) fn flush(&mut self) {
        if self.units.is_empty() {
            return;
        }
        let units = std::mem::take(&mut self.units);
        self.units_len = 0;
        if let (Some(transport), true) = (self.transport, self.transport_open) {
            let frame = codec::join_units(self.cfg.protocol, &units);
            self.out.push_back(Output::Send { transport, frame });
        }
    }

    // ----- connection lifecycle ------------------------------------------------------------

    pub(super) fn set_connecting(&mut self, code: u32, reason: &str) {
        if self.state != State::Connecting {
            self.state = State::Connecting;
            self.emit(ClientEvent::Connecting {
                code,
                reason: reason.to_owned(),
            });
        }
    }

    pub(super) fn start_connecting(&mut self, now: Millis) {
        self.reconnect_at = None;
        if self.transport.is_some() || self.conn_token.is_some() {
            return;
        }
        if self.cfg.has_get_token && (self.token.is_empty() || self.token_stale) {
            self.request_conn_token(TokenPurpose::Connect);
        } else {
            self.open_transport(now);
        }
    }

    fn request_conn_token(&mut self, purpose: TokenPurpose) {
        self.next_token_req += 1;
        let id = self.next_token_req;
        self.conn_token = Some((id, purpose));
        self.out
            .push_back(Output::Token(TokenRequest { id, channel: None }));
    }

    fn open_transport(&mut self, now: Millis) {
        self.next_transport += 1;
        let t = TransportId(self.next_transport);
        self.transport = Some(t);
        self.transport_open = false;
        self.handshake_deadline = Some(now + self.cfg.timeout);
        self.out.push_back(Output::Open(t));
    }

    pub(super) fn close_transport(&mut self, code: u16, reason: &str) {
        self.units.clear();
        self.units_len = 0;
        self.transport_open = false;
        if let Some(transport) = self.transport.take() {
            self.out.push_back(Output::Close {
                transport,
                code,
                reason: reason.to_owned(),
            });
        }
    }

    /// Closes the transport because of a client-side condition and reconnects or stops.
    fn drop_connection(&mut self, now: Millis, code: u32, reason: &str, reconnect: bool) {
        self.close_transport(if reconnect { 3000 } else { 1000 }, reason);
        self.connection_lost(now, code, reason.to_owned(), reconnect);
    }

    pub(super) fn send_connect(&mut self, now: Millis) {
        let id = self.next_cmd_id();
        let subs = self
            .server_subs
            .iter()
            .filter(|(_, s)| s.recoverable)
            .map(|(ch, s)| {
                (
                    ch.clone(),
                    proto::SubscribeRequest {
                        recover: true,
                        offset: s.offset,
                        epoch: s.epoch.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let cmd = proto::Command {
            id,
            connect: Some(proto::ConnectRequest {
                token: self.token.clone(),
                data: self.cfg.data.clone(),
                subs,
                name: self.cfg.name.clone(),
                version: self.cfg.version.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.push_command(&cmd) {
            Ok(()) => {
                self.inflight.insert(
                    id,
                    Pending {
                        kind: Inflight::Connect,
                        deadline: None,
                    },
                );
            }
            Err(e) => {
                self.emit(ClientEvent::Error(e));
                self.drop_connection(now, 2, "bad connect data", false);
            }
        }
    }

    /// The transport is gone: clean up connection state, then reconnect or disconnect.
    pub(super) fn connection_lost(
        &mut self,
        now: Millis,
        code: u32,
        reason: String,
        reconnect: bool,
    ) {
        self.handshake_deadline = None;
        self.ping_deadline = None;
        self.refresh_at = None;
        self.send_pong = false;
        if matches!(self.conn_token, Some((_, TokenPurpose::Refresh))) {
            self.conn_token = None;
        }
        let inflight = std::mem::take(&mut self.inflight);
        for p in inflight.into_values() {
            if let Inflight::Call(c, _) = p.kind {
                self.resolve(c, Err(Error::ConnectionClosed));
            }
        }
        let channels: Vec<String> = self.subs.keys().cloned().collect();
        for ch in &channels {
            let Some(sub) = self.subs.get_mut(ch) else {
                continue;
            };
            sub.subscribe_cmd = None;
            sub.refresh_cmd = None;
            sub.refresh_at = None;
            sub.resubscribe_at = None;
            if matches!(sub.token_req, Some((_, TokenPurpose::Refresh))) || !reconnect {
                sub.token_req = None;
            }
            if sub.state == SubscriptionState::Subscribed {
                sub.state = SubscriptionState::Subscribing;
                self.emit_sub(
                    ch,
                    SubscriptionEvent::Subscribing {
                        code: 1,
                        reason: "transport closed".into(),
                    },
                );
            }
        }
        let server: Vec<String> = self
            .server_subs
            .iter_mut()
            .filter(|(_, s)| s.subscribed)
            .map(|(ch, s)| {
                s.subscribed = false;
                ch.clone()
            })
            .collect();
        for channel in server {
            self.emit(ClientEvent::Subscribing {
                channel,
                code: 1,
                reason: "transport closed".into(),
            });
        }
        if reconnect {
            self.set_connecting(code, &reason);
            let d = self.delay(
                self.reconnect_attempts,
                self.cfg.min_reconnect_delay,
                self.cfg.max_reconnect_delay,
            );
            self.reconnect_attempts = self.reconnect_attempts.saturating_add(1);
            self.reconnect_at = Some(now + d);
        } else {
            self.reconnect_at = None;
            self.conn_token = None;
            self.state = State::Disconnected;
            self.emit(ClientEvent::Disconnected { code, reason });
            self.fail_queued(|_| true, &Error::Disconnected);
        }
    }

    pub(super) fn fail_queued(&mut self, pred: impl Fn(&Scope) -> bool, err: &Error) {
        let (fail, keep): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut self.queued)
            .into_iter()
            .partition(|q| pred(&q.scope));
        self.queued = keep;
        for q in fail {
            self.resolve(q.id, Err(err.clone()));
        }
    }

    // ----- frames --------------------------------------------------------------------------

    pub(super) fn handle_frame(&mut self, now: Millis, frame: &[u8]) {
        let replies: Vec<proto::Reply> = match codec::decode_all(self.cfg.protocol, frame) {
            Ok(r) => r,
            Err(e) => {
                self.emit(ClientEvent::Error(Error::Protocol(e.to_string())));
                self.drop_connection(now, 2, "bad protocol", false);
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

    fn handle_reply(&mut self, now: Millis, reply: proto::Reply) {
        if reply.id > 0 {
            let Some(pending) = self.inflight.remove(&reply.id) else {
                return; // late reply of a command that timed out or was abandoned
            };
            match pending.kind {
                Inflight::Connect => self.on_connect_reply(now, reply),
                Inflight::Subscribe(ch) => self.on_subscribe_reply(now, reply.id, &ch, reply),
                Inflight::Unsubscribe(_) => {
                    if reply.error.is_some() {
                        self.drop_connection(now, 4, "unsubscribe error", true);
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

    fn on_ping(&mut self, now: Millis) {
        if self.state != State::Connected {
            return;
        }
        if self.ping_interval > 0 {
            self.ping_deadline = Some(now + self.ping_interval + self.cfg.max_server_ping_delay);
        }
        if self.send_pong {
            // An empty command is a pong; encoding it can't fail.
            let _ = self.push_command(&proto::Command::default());
        }
    }

    fn on_connect_reply(&mut self, now: Millis, reply: proto::Reply) {
        self.handshake_deadline = None;
        if let Some(err) = reply.error {
            self.emit(ClientEvent::Error(Error::server(&err)));
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
            self.emit(ClientEvent::Error(Error::Protocol(
                "connect reply without result".into(),
            )));
            self.drop_connection(now, 2, "bad protocol", false);
            return;
        };
        self.state = State::Connected;
        self.reconnect_attempts = 0;
        self.token_stale = false;
        self.client_id = res.client.clone();
        self.emit(ClientEvent::Connected(ConnectedContext {
            client: res.client,
            version: res.version,
            data: res.data,
        }));
        self.ping_interval = u64::from(res.ping) * 1000;
        self.send_pong = res.pong;
        if res.ping > 0 {
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
                code: 0,
                reason: "server-side subscription removed".into(),
            });
        }
        // Client-side subscriptions waiting for the connection.
        let waiting: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, s)| s.state == SubscriptionState::Subscribing)
            .map(|(c, _)| c.clone())
            .collect();
        for ch in waiting {
            if let Some(sub) = self.subs.get_mut(&ch) {
                sub.attempts = 0;
                sub.resubscribe_at = None;
            }
            self.start_subscribe(now, &ch);
        }
        self.send_queued(now, |s| *s == Scope::Client);
    }

    fn on_refresh_reply(&mut self, now: Millis, reply: proto::Reply) {
        if let Some(err) = reply.error {
            self.emit(ClientEvent::Error(Error::server(&err)));
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

    fn schedule_refresh_retry(&mut self, now: Millis) {
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
                self.emit(ClientEvent::Error(Error::Unauthorized));
                self.drop_connection(now, 1, "unauthorized", false);
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
                    let id = self.next_cmd_id();
                    let cmd = proto::Command {
                        id,
                        refresh: Some(proto::RefreshRequest {
                            token: self.token.clone(),
                        }),
                        ..Default::default()
                    };
                    if self.push_command(&cmd).is_ok() {
                        self.inflight.insert(
                            id,
                            Pending {
                                kind: Inflight::Refresh,
                                deadline: Some(now + self.cfg.timeout),
                            },
                        );
                    }
                }
            }
            (TokenPurpose::Connect, Err(e)) => {
                self.emit(ClientEvent::Error(Error::Token(e)));
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
                self.emit(ClientEvent::Error(Error::Token(e)));
                if self.state == State::Connected {
                    self.schedule_refresh_retry(now);
                }
            }
        }
    }

    // ----- pushes --------------------------------------------------------------------------

    fn handle_push(&mut self, now: Millis, push: proto::Push) {
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

    fn server_publication(&mut self, channel: &str, p: proto::Publication) {
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
    fn sub_publication(&mut self, now: Millis, channel: &str, p: proto::Publication) -> bool {
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
                    self.emit_sub(channel, SubscriptionEvent::Error(Error::Protocol(e)));
                    self.resubscribe(now, channel, 2500, "bad delta", true);
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

    // ----- subscriptions -------------------------------------------------------------------

    pub(super) fn start_subscribe(&mut self, now: Millis, channel: &str) {
        if self.state != State::Connected {
            return;
        }
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        if sub.state != SubscriptionState::Subscribing
            || sub.subscribe_cmd.is_some()
            || sub.resubscribe_at.is_some()
        {
            return;
        }
        if sub.cfg.has_get_token && sub.token.is_empty() {
            if sub.token_req.is_none() {
                self.next_token_req += 1;
                let id = self.next_token_req;
                sub.token_req = Some((id, TokenPurpose::Connect));
                self.out.push_back(Output::Token(TokenRequest {
                    id,
                    channel: Some(channel.to_owned()),
                }));
            }
            return;
        }
        let req = proto::SubscribeRequest {
            channel: channel.to_owned(),
            token: sub.token.clone(),
            recover: sub.recover,
            epoch: if sub.recover {
                sub.epoch.clone()
            } else {
                String::new()
            },
            offset: if sub.recover { sub.offset } else { 0 },
            data: sub.cfg.data.clone(),
            positioned: sub.cfg.positioned,
            recoverable: sub.cfg.recoverable,
            join_leave: sub.cfg.join_leave,
            delta: if sub.cfg.delta {
                "fossil".into()
            } else {
                String::new()
            },
            flag: 0,
        };
        let id = self.next_cmd_id();
        let cmd = proto::Command {
            id,
            subscribe: Some(req),
            ..Default::default()
        };
        match self.push_command(&cmd) {
            Ok(()) => {
                if let Some(sub) = self.subs.get_mut(channel) {
                    sub.subscribe_cmd = Some(id);
                }
                self.inflight.insert(
                    id,
                    Pending {
                        kind: Inflight::Subscribe(channel.to_owned()),
                        deadline: Some(now + self.cfg.timeout),
                    },
                );
            }
            Err(e) => {
                self.emit_sub(channel, SubscriptionEvent::Error(e));
                self.set_unsubscribed(now, channel, 12, "bad configuration", false);
            }
        }
    }

    fn schedule_resubscribe(&mut self, now: Millis, channel: &str) {
        self.schedule_sub_retry(now, channel, |s| (&mut s.attempts, &mut s.resubscribe_at));
    }

    /// Schedules a subscription retry with the subscription's backoff: `slot` picks the
    /// attempt counter to advance and the deadline to set.
    fn schedule_sub_retry(
        &mut self,
        now: Millis,
        channel: &str,
        slot: fn(&mut super::Sub) -> (&mut u32, &mut Option<Millis>),
    ) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        let (min, max) = (sub.cfg.min_resubscribe_delay, sub.cfg.max_resubscribe_delay);
        let attempt = *slot(sub).0;
        let d = self.delay(attempt, min, max);
        if let Some(sub) = self.subs.get_mut(channel) {
            let (attempts, at) = slot(sub);
            *attempts = attempts.saturating_add(1);
            *at = Some(now + d);
        }
    }

    /// Moves to `Subscribing` (if subscribed) and subscribes again right away.
    fn resubscribe(
        &mut self,
        now: Millis,
        channel: &str,
        code: u32,
        reason: &str,
        send_unsubscribe: bool,
    ) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        let was_subscribed = sub.state == SubscriptionState::Subscribed;
        sub.state = SubscriptionState::Subscribing;
        sub.subscribe_cmd = None;
        sub.refresh_at = None;
        sub.refresh_cmd = None;
        sub.prev_data = None;
        if was_subscribed {
            self.emit_sub(
                channel,
                SubscriptionEvent::Subscribing {
                    code,
                    reason: reason.to_owned(),
                },
            );
        }
        if send_unsubscribe && self.state == State::Connected {
            self.send_unsubscribe(now, channel);
        }
        self.start_subscribe(now, channel);
    }

    fn send_unsubscribe(&mut self, now: Millis, channel: &str) {
        let id = self.next_cmd_id();
        let cmd = proto::Command {
            id,
            unsubscribe: Some(proto::UnsubscribeRequest {
                channel: channel.to_owned(),
            }),
            ..Default::default()
        };
        if self.push_command(&cmd).is_ok() {
            self.inflight.insert(
                id,
                Pending {
                    kind: Inflight::Unsubscribe(channel.to_owned()),
                    deadline: Some(now + self.cfg.timeout),
                },
            );
        }
    }

    pub(super) fn set_unsubscribed(
        &mut self,
        now: Millis,
        channel: &str,
        code: u32,
        reason: &str,
        send: bool,
    ) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        if sub.state == SubscriptionState::Unsubscribed {
            return;
        }
        sub.state = SubscriptionState::Unsubscribed;
        sub.subscribe_cmd = None;
        sub.resubscribe_at = None;
        sub.refresh_at = None;
        sub.refresh_cmd = None;
        sub.token_req = None;
        sub.attempts = 0;
        sub.prev_data = None;
        self.emit_sub(
            channel,
            SubscriptionEvent::Unsubscribed {
                code,
                reason: reason.to_owned(),
            },
        );
        self.fail_queued(
            |s| matches!(s, Scope::Subscription(c) if c == channel),
            &Error::Unsubscribed,
        );
        if send && self.state == State::Connected {
            self.send_unsubscribe(now, channel);
        }
    }

    fn on_subscribe_reply(&mut self, now: Millis, cmd: u32, channel: &str, reply: proto::Reply) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        if sub.subscribe_cmd != Some(cmd) {
            return; // unsubscribed meanwhile
        }
        sub.subscribe_cmd = None;
        if let Some(err) = reply.error {
            let has_get_token = sub.cfg.has_get_token;
            if err.code == 109 && has_get_token {
                sub.token.clear();
            }
            self.emit_sub(channel, SubscriptionEvent::Error(Error::server(&err)));
            if (err.code == 109 && has_get_token)
                || err.temporary
                || err.code == 100
                || err.code == 111
            {
                self.schedule_resubscribe(now, channel);
            } else {
                self.set_unsubscribed(now, channel, err.code, &err.message, false);
            }
            return;
        }
        let Some(res) = reply.subscribe else {
            self.emit_sub(
                channel,
                SubscriptionEvent::Error(Error::Protocol("subscribe reply without result".into())),
            );
            self.schedule_resubscribe(now, channel);
            return;
        };
        let positioned = res.recoverable || res.positioned;
        sub.state = SubscriptionState::Subscribed;
        sub.attempts = 0;
        sub.delta = res.delta;
        sub.prev_data = None;
        sub.positioned = positioned;
        // With recovered publications the position to continue from is the client's own
        // (upstream echoes it in `offset`; some servers send the stream top instead), so
        // recovered publications are deduplicated against what was already delivered and
        // the position then moves to the larger of the last one and `offset`.
        let recovering = res.recovered && !res.publications.is_empty();
        if positioned && !recovering {
            sub.offset = res.offset;
            sub.epoch = res.epoch.clone();
        }
        let top = res.offset;
        sub.recover = res.recoverable;
        if res.expires && sub.cfg.has_get_token {
            sub.refresh_attempts = 0;
            sub.refresh_at = Some(now + u64::from(res.ttl) * 1000);
        }
        self.emit_sub(
            channel,
            SubscriptionEvent::Subscribed(SubscribedContext {
                channel: channel.to_owned(),
                was_recovering: res.was_recovering,
                recovered: res.recovered,
                recoverable: res.recoverable,
                positioned,
                stream_position: positioned.then(|| StreamPosition {
                    offset: res.offset,
                    epoch: res.epoch.clone(),
                }),
                data: res.data,
            }),
        );
        for p in res.publications {
            if !self.sub_publication(now, channel, p) {
                return;
            }
        }
        if let Some(sub) = self.subs.get_mut(channel)
            && positioned
        {
            sub.offset = sub.offset.max(top);
        }
        let ch = channel.to_owned();
        self.send_queued(now, |s| matches!(s, Scope::Subscription(c) if *c == ch));
    }

    fn on_sub_refresh_reply(&mut self, now: Millis, cmd: u32, channel: &str, reply: proto::Reply) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        if sub.refresh_cmd != Some(cmd) {
            return;
        }
        sub.refresh_cmd = None;
        if let Some(err) = reply.error {
            self.emit_sub(channel, SubscriptionEvent::Error(Error::server(&err)));
            if err.temporary {
                self.schedule_sub_refresh_retry(now, channel);
            } else {
                self.set_unsubscribed(now, channel, err.code, &err.message, true);
            }
            return;
        }
        sub.refresh_attempts = 0;
        if let Some(r) = reply.sub_refresh
            && r.expires
        {
            sub.refresh_at = Some(now + u64::from(r.ttl) * 1000);
        }
    }

    fn schedule_sub_refresh_retry(&mut self, now: Millis, channel: &str) {
        self.schedule_sub_retry(now, channel, |s| {
            (&mut s.refresh_attempts, &mut s.refresh_at)
        });
    }

    pub(super) fn on_subscription_token(
        &mut self,
        now: Millis,
        id: u64,
        channel: &str,
        result: Result<String, String>,
    ) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        let Some((want, purpose)) = sub.token_req else {
            return;
        };
        if want != id {
            return;
        }
        sub.token_req = None;
        match result {
            Ok(t) if t.is_empty() => {
                self.emit_sub(channel, SubscriptionEvent::Error(Error::Unauthorized));
                let send = purpose == TokenPurpose::Refresh;
                self.set_unsubscribed(now, channel, 1, "unauthorized", send);
            }
            Ok(t) => {
                sub.token = t;
                match purpose {
                    TokenPurpose::Connect => self.start_subscribe(now, channel),
                    TokenPurpose::Refresh => {
                        if self.state == State::Connected
                            && sub.state == SubscriptionState::Subscribed
                        {
                            let token = sub.token.clone();
                            let id = self.next_cmd_id();
                            let cmd = proto::Command {
                                id,
                                sub_refresh: Some(proto::SubRefreshRequest {
                                    channel: channel.to_owned(),
                                    token,
                                }),
                                ..Default::default()
                            };
                            if self.push_command(&cmd).is_ok() {
                                if let Some(sub) = self.subs.get_mut(channel) {
                                    sub.refresh_cmd = Some(id);
                                }
                                self.inflight.insert(
                                    id,
                                    Pending {
                                        kind: Inflight::SubRefresh(channel.to_owned()),
                                        deadline: Some(now + self.cfg.timeout),
                                    },
                                );
                            }
                        }
                    }
                }
            }
            Err(e) => {
                let state = sub.state;
                self.emit_sub(channel, SubscriptionEvent::Error(Error::Token(e)));
                match purpose {
                    TokenPurpose::Connect if state == SubscriptionState::Subscribing => {
                        self.schedule_resubscribe(now, channel);
                    }
                    TokenPurpose::Refresh if state == SubscriptionState::Subscribed => {
                        self.schedule_sub_refresh_retry(now, channel);
                    }
                    _ => {}
                }
            }
        }
    }

    // ----- calls ---------------------------------------------------------------------------

    pub(super) fn start_call(&mut self, now: Millis, id: CallId, scope: Scope, request: Request) {
        if self.state == State::Closed {
            self.resolve(id, Err(Error::Closed));
            return;
        }
        if self.cfg.protocol == Protocol::Json
            && let Some(d) = request.data()
            && !gyre_protocol::raw::is_json(d)
        {
            self.resolve(
                id,
                Err(Error::InvalidData(
                    "JSON protocol needs JSON payloads".into(),
                )),
            );
            return;
        }
        let deadline = now + self.cfg.timeout;
        let ready = match &scope {
            Scope::Client => match self.state {
                State::Connected => true,
                State::Connecting => false,
                _ => {
                    self.resolve(id, Err(Error::Disconnected));
                    return;
                }
            },
            Scope::Subscription(ch) => match self.subs.get(ch).map(|s| s.state) {
                None => {
                    self.resolve(id, Err(Error::SubscriptionNotFound(ch.clone())));
                    return;
                }
                Some(SubscriptionState::Unsubscribed) => {
                    self.resolve(id, Err(Error::Unsubscribed));
                    return;
                }
                Some(SubscriptionState::Subscribed) => true,
                Some(SubscriptionState::Subscribing) => {
                    if self.state == State::Disconnected {
                        self.resolve(id, Err(Error::Disconnected));
                        return;
                    }
                    false
                }
            },
        };
        if ready {
            self.send_call(id, request, deadline);
        } else {
            self.queued.push(Queued {
                id,
                scope,
                request,
                deadline,
            });
        }
    }

    fn send_queued(&mut self, _now: Millis, pred: impl Fn(&Scope) -> bool) {
        let (go, keep): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut self.queued)
            .into_iter()
            .partition(|q| pred(&q.scope));
        self.queued = keep;
        for q in go {
            self.send_call(q.id, q.request, q.deadline);
        }
    }

    fn send_call(&mut self, call: CallId, request: Request, deadline: Millis) {
        let mut cmd = proto::Command::default();
        let expect = match request {
            Request::Ready => {
                self.resolve(call, Ok(CallResult::Ready));
                return;
            }
            Request::Send { data } => {
                cmd.send = Some(proto::SendRequest { data });
                let r = self.push_command(&cmd).map(|()| CallResult::Sent);
                self.resolve(call, r);
                return;
            }
            Request::Publish { channel, data } => {
                cmd.publish = Some(proto::PublishRequest { channel, data });
                Expect::Publish
            }
            Request::Rpc { method, data } => {
                cmd.rpc = Some(proto::RpcRequest { data, method });
                Expect::Rpc
            }
            Request::History { channel, options } => {
                cmd.history = Some(proto::HistoryRequest {
                    channel,
                    limit: options.limit,
                    since: options.since.map(|p| proto::StreamPosition {
                        offset: p.offset,
                        epoch: p.epoch,
                    }),
                    reverse: options.reverse,
                });
                Expect::History
            }
            Request::Presence { channel } => {
                cmd.presence = Some(proto::PresenceRequest { channel });
                Expect::Presence
            }
            Request::PresenceStats { channel } => {
                cmd.presence_stats = Some(proto::PresenceStatsRequest { channel });
                Expect::PresenceStats
            }
        };
        cmd.id = self.next_cmd_id();
        match self.push_command(&cmd) {
            Ok(()) => {
                self.inflight.insert(
                    cmd.id,
                    Pending {
                        kind: Inflight::Call(call, expect),
                        deadline: Some(deadline),
                    },
                );
            }
            Err(e) => self.resolve(call, Err(e)),
        }
    }

    fn on_call_reply(&mut self, call: CallId, expect: Expect, reply: proto::Reply) {
        if let Some(err) = reply.error {
            self.resolve(call, Err(Error::server(&err)));
            return;
        }
        let missing = || Err(Error::Protocol("reply without the expected result".into()));
        let result = match expect {
            Expect::Publish => reply
                .publish
                .map_or_else(missing, |_| Ok(CallResult::Published)),
            Expect::Rpc => reply
                .rpc
                .map_or_else(missing, |r| Ok(CallResult::Rpc(r.data))),
            Expect::History => reply.history.map_or_else(missing, |h| {
                Ok(CallResult::History(HistoryResult {
                    publications: h
                        .publications
                        .into_iter()
                        .map(|p| {
                            let d = p.data.clone();
                            publication("", p, d)
                        })
                        .collect(),
                    epoch: h.epoch,
                    offset: h.offset,
                }))
            }),
            Expect::Presence => reply.presence.map_or_else(missing, |p| {
                Ok(CallResult::Presence(PresenceResult {
                    clients: p.presence.into_iter().map(|(k, v)| (k, v.into())).collect(),
                }))
            }),
            Expect::PresenceStats => reply.presence_stats.map_or_else(missing, |s| {
                Ok(CallResult::PresenceStats(PresenceStatsResult {
                    num_clients: s.num_clients,
                    num_users: s.num_users,
                }))
            }),
        };
        self.resolve(call, result);
    }

    // ----- timers --------------------------------------------------------------------------

    pub(super) fn run_timers(&mut self, now: Millis) {
        let due = |t: Option<Millis>| t.is_some_and(|t| t <= now);
        if due(self.handshake_deadline) {
            self.handshake_deadline = None;
            self.emit(ClientEvent::Error(Error::Timeout));
            self.drop_connection(now, 1, "connect timeout", true);
        }
        if due(self.reconnect_at) {
            self.reconnect_at = None;
            if self.state == State::Connecting {
                self.start_connecting(now);
            }
        }
        if due(self.ping_deadline) {
            self.ping_deadline = None;
            self.drop_connection(now, 2, "no ping", true);
        }
        if due(self.refresh_at) {
            self.refresh_at = None;
            if self.state == State::Connected && self.conn_token.is_none() {
                self.request_conn_token(TokenPurpose::Refresh);
            }
        }
        let expired: Vec<u32> = self
            .inflight
            .iter()
            .filter(|(_, p)| due(p.deadline))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(p) = self.inflight.remove(&id) else {
                continue;
            };
            match p.kind {
                Inflight::Call(c, _) => self.resolve(c, Err(Error::Timeout)),
                Inflight::Subscribe(ch) => {
                    if self
                        .subs
                        .get(&ch)
                        .is_some_and(|s| s.subscribe_cmd == Some(id))
                    {
                        self.emit_sub(&ch, SubscriptionEvent::Error(Error::Timeout));
                        self.drop_connection(now, 3, "subscribe timeout", true);
                    }
                }
                Inflight::Unsubscribe(_) => {
                    self.drop_connection(now, 4, "unsubscribe error", true);
                }
                Inflight::Refresh => {
                    self.emit(ClientEvent::Error(Error::Timeout));
                    self.schedule_refresh_retry(now);
                }
                Inflight::SubRefresh(ch) => {
                    if let Some(sub) = self.subs.get_mut(&ch)
                        && sub.refresh_cmd == Some(id)
                    {
                        sub.refresh_cmd = None;
                        self.emit_sub(&ch, SubscriptionEvent::Error(Error::Timeout));
                        self.schedule_sub_refresh_retry(now, &ch);
                    }
                }
                Inflight::Connect => {}
            }
        }
        let (late, keep): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut self.queued)
            .into_iter()
            .partition(|q| q.deadline <= now);
        self.queued = keep;
        for q in late {
            self.resolve(q.id, Err(Error::Timeout));
        }
        let channels: Vec<String> = self.subs.keys().cloned().collect();
        for ch in channels {
            let Some(sub) = self.subs.get_mut(&ch) else {
                continue;
            };
            if due(sub.resubscribe_at) {
                sub.resubscribe_at = None;
                self.start_subscribe(now, &ch);
            }
            let Some(sub) = self.subs.get_mut(&ch) else {
                continue;
            };
            if due(sub.refresh_at) {
                sub.refresh_at = None;
                if self.state == State::Connected
                    && sub.state == SubscriptionState::Subscribed
                    && sub.token_req.is_none()
                {
                    self.next_token_req += 1;
                    let id = self.next_token_req;
                    sub.token_req = Some((id, TokenPurpose::Refresh));
                    self.out.push_back(Output::Token(TokenRequest {
                        id,
                        channel: Some(ch.clone()),
                    }));
                }
            }
        }
    }
}
