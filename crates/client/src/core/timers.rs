//! Timers of [`Core`]: handshake, reconnect, ping, refresh, call, subscribe and resubscribe deadlines.

use super::{Core, Inflight, Millis, Output, Queued, TokenPurpose, TokenRequest};
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
                        self.emit_sub(
                            &ch,
                            SubscriptionEvent::Error {
                                kind: ErrorKind::Subscribe,
                                error: Error::Timeout,
                            },
                        );
                        self.drop_connection(
                            now,
                            codes::connecting::SUBSCRIBE_TIMEOUT,
                            "subscribe timeout",
                            true,
                        );
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
