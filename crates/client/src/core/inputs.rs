//! The inputs of [`Core`]: user calls, transport events, timeouts and token results.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{CallId, Core, Inflight, Millis, Request, Scope, Sub, SubConfig, TransportId};
use crate::Error;
use crate::codes;
use crate::event::{ClientEvent, ErrorKind, State, SubscriptionEvent, SubscriptionState};

impl Core {
    /// User: start connecting (no-op unless `Disconnected`).
    pub fn connect(&mut self, now: Millis) {
        if self.state != State::Disconnected {
            return;
        }
        self.set_connecting(codes::connecting::CONNECT_CALLED, "connect called");
        self.reconnect_attempts = 0;
        self.start_connecting(now);
        self.finish();
    }

    /// User: disconnect (no reconnect until `connect` is called again).
    pub fn disconnect(&mut self, now: Millis) {
        if matches!(self.state, State::Disconnected | State::Closed) {
            return;
        }
        self.close_transport(1000, "disconnect called");
        self.connection_lost(
            now,
            codes::disconnected::DISCONNECT_CALLED,
            "disconnect called".into(),
            false,
        );
        self.finish();
    }

    /// User: close for good. All subscriptions end `Unsubscribed`, every call fails `Closed`.
    pub fn close(&mut self, now: Millis) {
        if self.state == State::Closed {
            return;
        }
        if self.state != State::Disconnected {
            self.close_transport(1000, "client closed");
            self.connection_lost(
                now,
                codes::disconnected::DISCONNECT_CALLED,
                "disconnect called".into(),
                false,
            );
        }
        self.stats.registry_walks += 1;
        let channels: Vec<String> = self.subs.keys().cloned().collect();
        for ch in channels {
            self.set_unsubscribed(
                now,
                &ch,
                codes::unsubscribed::CLIENT_CLOSED,
                "client closed",
                false,
            );
        }
        self.subs.clear();
        self.server_subs.clear();
        self.fail_queued(None, &Error::Closed);
        let calls: Vec<CallId> = std::mem::take(&mut self.inflight)
            .into_values()
            .filter_map(|p| match p.kind {
                Inflight::Call(c, _) => Some(c),
                _ => None,
            })
            .collect();
        for c in calls {
            self.resolve(c, Err(Error::Closed));
        }
        self.state = State::Closed;
        self.emit(ClientEvent::Closed);
        self.finish();
    }

    /// User: the connection token for the next connect (and for a reconnect after the
    /// server said the token expired, unless a token callback gives a newer one).
    pub fn set_token(&mut self, token: String) {
        self.token = token;
        self.token_stale = false;
    }

    /// User: the connect data of the next connect command.
    pub fn set_data(&mut self, data: Bytes) {
        self.cfg.data = data;
    }

    /// User: the headers of the next connect command (header emulation).
    pub fn set_connect_headers(&mut self, headers: BTreeMap<String, String>) {
        self.cfg.headers = headers;
    }

    /// Driver: publications of `channel` after `offset` were not delivered (a full lossy
    /// event stream). The next subscribe that recovers starts from `offset`, so they come
    /// again (with those delivered after them).
    pub fn publications_lost(&mut self, channel: &str, offset: u64) {
        if let Some(sub) = self.subs.get_mut(channel) {
            sub.rewind_to = Some(sub.rewind_to.map_or(offset, |o| o.min(offset)));
        }
    }

    /// User: add a subscription to the registry (`Unsubscribed`).
    pub fn new_subscription(&mut self, channel: &str, cfg: SubConfig) -> Result<(), Error> {
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        if self.subs.contains_key(channel) {
            return Err(Error::DuplicateSubscription(channel.to_owned()));
        }
        let (recover, offset, epoch) = match &cfg.since {
            Some(p) => (true, p.offset, p.epoch.clone()),
            None => (false, 0, String::new()),
        };
        self.subs.insert(
            channel.to_owned(),
            Sub {
                token: cfg.token.clone(),
                cfg,
                state: SubscriptionState::Unsubscribed,
                recover,
                offset,
                epoch,
                positioned: false,
                delta: false,
                prev_data: None,
                subscribe_cmd: None,
                resubscribe_at: None,
                attempts: 0,
                refresh_at: None,
                refresh_cmd: None,
                refresh_attempts: 0,
                token_req: None,
                rewind_to: None,
            },
        );
        Ok(())
    }

    /// User: unsubscribe and drop a subscription from the registry.
    pub fn remove_subscription(&mut self, now: Millis, channel: &str) -> Result<(), Error> {
        if !self.subs.contains_key(channel) {
            return Err(Error::SubscriptionNotFound(channel.to_owned()));
        }
        self.unsubscribe(now, channel)?;
        self.subs.remove(channel);
        self.prune_timers();
        Ok(())
    }

    /// User: subscribe (no-op unless `Unsubscribed`).
    pub fn subscribe(&mut self, now: Millis, channel: &str) -> Result<(), Error> {
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        let sub = self
            .subs
            .get_mut(channel)
            .ok_or_else(|| Error::SubscriptionNotFound(channel.to_owned()))?;
        if sub.state != SubscriptionState::Unsubscribed {
            return Ok(());
        }
        sub.state = SubscriptionState::Subscribing;
        sub.attempts = 0;
        self.emit_sub(
            channel,
            SubscriptionEvent::Subscribing {
                code: codes::subscribing::SUBSCRIBE_CALLED,
                reason: "subscribe called".into(),
            },
        );
        if self.state == State::Connected {
            self.start_subscribe(now, channel);
        }
        self.finish();
        Ok(())
    }

    /// User: unsubscribe (no-op when already `Unsubscribed`).
    pub fn unsubscribe(&mut self, now: Millis, channel: &str) -> Result<(), Error> {
        let sub = self
            .subs
            .get(channel)
            .ok_or_else(|| Error::SubscriptionNotFound(channel.to_owned()))?;
        if sub.state == SubscriptionState::Unsubscribed {
            return Ok(());
        }
        let send = self.state == State::Connected
            && (sub.state == SubscriptionState::Subscribed || sub.subscribe_cmd.is_some());
        self.set_unsubscribed(
            now,
            channel,
            codes::unsubscribed::UNSUBSCRIBE_CALLED,
            "unsubscribe called",
            send,
        );
        self.finish();
        Ok(())
    }

    /// User: make a call. The outcome comes later as [`Output::Resolve`](super::Output::Resolve) (possibly already
    /// queued when this returns).
    pub fn call(&mut self, now: Millis, scope: Scope, request: Request) -> CallId {
        self.next_call += 1;
        let id = CallId(self.next_call);
        self.start_call(now, id, scope, request);
        self.finish();
        id
    }

    /// Transport: the transport opened (the WebSocket handshake succeeded).
    pub fn transport_opened(&mut self, now: Millis, transport: TransportId) {
        if self.transport != Some(transport) || self.transport_open {
            return;
        }
        self.transport_open = true;
        self.send_connect(now);
        self.finish();
    }

    /// Transport: one WebSocket message arrived.
    pub fn transport_frame(&mut self, now: Millis, transport: TransportId, frame: &[u8]) {
        if self.transport != Some(transport) || !self.transport_open {
            return;
        }
        self.handle_frame(now, frame);
        self.finish();
    }

    /// Transport: the transport closed or could not be opened. `code` is the close frame's
    /// code when there was one.
    pub fn transport_closed(
        &mut self,
        now: Millis,
        transport: TransportId,
        code: Option<u16>,
        reason: &str,
    ) {
        if self.transport != Some(transport) {
            return;
        }
        self.transport = None;
        self.transport_open = false;
        self.units.clear();
        self.units_len = 0;
        match code {
            Some(code) if code >= 3000 => {
                let code = u32::from(code);
                if code == 3005 {
                    self.token_stale = true;
                }
                let reconnect = gyre_protocol::Disconnect::reconnect(code);
                self.connection_lost(now, code, reason.to_owned(), reconnect);
            }
            _ => {
                // Every transport failure (DNS, TCP, TLS, upgrade status, a lost socket)
                // reaches the user with its cause, as an error and as the connecting reason.
                let reason = if reason.is_empty() {
                    "transport closed".to_owned()
                } else {
                    format!("transport closed: {reason}")
                };
                self.emit(ClientEvent::Error {
                    kind: ErrorKind::Transport,
                    error: Error::Transport(reason.clone()),
                });
                self.connection_lost(now, codes::connecting::TRANSPORT_CLOSED, reason, true);
            }
        }
        self.finish();
    }

    /// Timer: call when `now >= next_deadline()` (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Millis) {
        self.run_timers(now);
        self.finish();
    }

    /// Token callback: the result of a connection token request. `Ok("")` means unauthorized.
    pub fn connection_token(&mut self, now: Millis, id: u64, result: Result<String, String>) {
        self.on_connection_token(now, id, result);
        self.finish();
    }

    /// Token callback: the result of a subscription token request. `Ok("")` means
    /// unauthorized.
    pub fn subscription_token(
        &mut self,
        now: Millis,
        id: u64,
        channel: &str,
        result: Result<String, String>,
    ) {
        self.on_subscription_token(now, id, channel, result);
        self.finish();
    }
}
