//! Connection lifecycle of [`Core`]: connecting, opening and closing the transport, the connect command and losing the connection.

use gyre_protocol::{self as proto};

use super::{Core, Inflight, Millis, Output, TokenPurpose, TokenRequest, TransportId};
use crate::Error;
use crate::codes;
use crate::event::{ClientEvent, ErrorKind, State, SubscriptionEvent, SubscriptionState};

impl Core {
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

    pub(super) fn request_conn_token(&mut self, purpose: TokenPurpose) {
        self.next_token_req += 1;
        let id = self.next_token_req;
        self.conn_token = Some((id, purpose));
        self.out
            .push_back(Output::Token(TokenRequest { id, channel: None }));
    }

    pub(super) fn open_transport(&mut self, now: Millis) {
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
    pub(super) fn drop_connection(
        &mut self,
        now: Millis,
        code: u32,
        reason: &str,
        reconnect: bool,
    ) {
        self.close_transport(if reconnect { 3000 } else { 1000 }, reason);
        self.connection_lost(now, code, reason.to_owned(), reconnect);
    }

    pub(super) fn send_connect(&mut self, now: Millis) {
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
            connect: Some(proto::ConnectRequest {
                token: self.token.clone(),
                data: self.cfg.data.clone(),
                subs,
                name: self.cfg.name.clone(),
                version: self.cfg.version.clone(),
                headers: self
                    .cfg
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.send_tracked(cmd, Inflight::Connect, None) {
            Ok(_) => {}
            Err(e) => {
                self.emit(ClientEvent::Error {
                    kind: ErrorKind::Configuration,
                    error: e,
                });
                self.drop_connection(
                    now,
                    codes::disconnected::BAD_PROTOCOL,
                    "bad connect data",
                    false,
                );
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
        self.stats.registry_walks += 1;
        let mut now_subscribing = Vec::new();
        for (ch, sub) in &mut self.subs {
            sub.subscribe_cmd = None;
            sub.refresh_cmd = None;
            sub.refresh_at = None;
            sub.resubscribe_at = None;
            if matches!(sub.token_req, Some((_, TokenPurpose::Refresh))) || !reconnect {
                sub.token_req = None;
            }
            if sub.state == SubscriptionState::Subscribed {
                sub.state = SubscriptionState::Subscribing;
                now_subscribing.push(ch.clone());
            }
        }
        for ch in now_subscribing {
            self.emit_sub(
                &ch,
                SubscriptionEvent::Subscribing {
                    code: codes::subscribing::TRANSPORT_CLOSED,
                    reason: "transport closed".into(),
                },
            );
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
                code: codes::subscribing::TRANSPORT_CLOSED,
                reason: "transport closed".into(),
            });
        }
        // A connection that lasted at least the maximum reconnect delay was a success: the
        // backoff starts again from the minimum. One that failed sooner keeps it growing.
        if self
            .connected_at
            .take()
            .is_some_and(|t| now.saturating_sub(t) >= self.cfg.max_reconnect_delay)
        {
            self.reconnect_attempts = 0;
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
            self.fail_queued(None, &Error::Disconnected);
        }
    }
}
