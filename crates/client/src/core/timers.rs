//! Timers of [`Core`]: handshake, reconnect, ping, refresh, call, subscribe and resubscribe deadlines.

use super::{Core, Inflight, Millis, Output, TimerKey, TokenPurpose, TokenRequest};
use crate::Error;
use crate::codes;
use crate::event::{ClientEvent, ErrorKind, State, SubscriptionEvent, SubscriptionState};

impl Core {
    pub(super) fn run_timers(&mut self, now: Millis) {
        let due = |t: Option<Millis>| t.is_some_and(|t| t <= now);
        if due(self.handshake_deadline) {
            self.handshake_deadline = None;
            self.emit(ClientEvent::Error {
                kind: ErrorKind::Connect,
                error: Error::Timeout,
            });
            self.drop_connection(
                now,
                codes::connecting::CONNECT_TIMEOUT,
                "connect timeout",
                true,
            );
        }
        if due(self.reconnect_at) {
            self.reconnect_at = None;
            if self.state == State::Connecting {
                self.start_connecting(now);
            }
        }
        if due(self.ping_deadline) {
            self.ping_deadline = None;
            self.drop_connection(now, codes::connecting::NO_PING, "no ping", true);
        }
        if due(self.refresh_at) {
            self.refresh_at = None;
            if self.state == State::Connected && self.conn_token.is_none() {
                self.request_conn_token(TokenPurpose::Refresh);
            }
        }
        for (at, key) in self.take_due(now) {
            // An earlier deadline of this round may have cleared this one.
            if !self.still_due(at, &key) {
                continue;
            }
            match key {
                TimerKey::Inflight(id) => self.command_timed_out(now, id),
                TimerKey::Queued(scope, id) => {
                    if let Some(calls) = self.queued.get_mut(&scope) {
                        calls.remove(&id);
                        if calls.is_empty() {
                            self.queued.remove(&scope);
                        }
                    }
                    self.resolve(id, Err(Error::Timeout));
                }
                TimerKey::Resubscribe(ch) => {
                    if let Some(sub) = self.subs.get_mut(&ch) {
                        sub.resubscribe_at = None;
                    }
                    self.start_subscribe(now, &ch);
                }
                TimerKey::SubRefresh(ch) => self.sub_refresh_due(&ch),
            }
        }
    }

    fn sub_refresh_due(&mut self, ch: &str) {
        let Some(sub) = self.subs.get_mut(ch) else {
            return;
        };
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
                channel: Some(ch.to_owned()),
            }));
        }
    }

    fn command_timed_out(&mut self, now: Millis, id: u32) {
        let Some(p) = self.inflight.remove(&id) else {
            return;
        };
        match p.kind {
            Inflight::Call(c, _) => self.resolve(c, Err(Error::Timeout)),
            Inflight::Subscribe(ch) => {
                if self
                    .subs
                    .get(&ch)
                    .is_some_and(|s| s.subscribe_cmd == Some(id))
                {
                    self.subscribe_timed_out(now, &ch);
                }
            }
            Inflight::Unsubscribe(_) => {
                self.drop_connection(
                    now,
                    codes::connecting::UNSUBSCRIBE_ERROR,
                    "unsubscribe error",
                    true,
                );
            }
            Inflight::Refresh => {
                self.emit(ClientEvent::Error {
                    kind: ErrorKind::Refresh,
                    error: Error::Timeout,
                });
                self.schedule_refresh_retry(now);
            }
            Inflight::SubRefresh(ch) => {
                if let Some(sub) = self.subs.get_mut(&ch)
                    && sub.refresh_cmd == Some(id)
                {
                    sub.refresh_cmd = None;
                    self.emit_sub(
                        &ch,
                        SubscriptionEvent::Error {
                            kind: ErrorKind::SubscribeRefresh,
                            error: Error::Timeout,
                        },
                    );
                    self.schedule_sub_refresh_retry(now, &ch);
                }
            }
            Inflight::Connect => {}
        }
    }

    /// A subscribe command got no reply in time. Only this subscription pays: it stays
    /// `Subscribing`, an unsubscribe clears whatever the server may still do with the late
    /// command (commands of a connection are handled in order), and it retries after its
    /// growing, jittered resubscribe backoff. The connection is left alone.
    fn subscribe_timed_out(&mut self, now: Millis, ch: &str) {
        if let Some(sub) = self.subs.get_mut(ch) {
            sub.subscribe_cmd = None;
        }
        self.emit_sub(
            ch,
            SubscriptionEvent::Error {
                kind: ErrorKind::Subscribe,
                error: Error::Timeout,
            },
        );
        if self.state == State::Connected {
            self.send_unsubscribe(now, ch);
        }
        self.schedule_resubscribe(now, ch);
    }
}
