//! Client-side subscriptions in [`Core`]: subscribe, resubscribe, unsubscribe, their replies and subscription tokens.

use gyre_protocol::{self as proto};

use super::{Core, Inflight, Millis, Output, Scope, TimerKey, TokenPurpose, TokenRequest};
use crate::Error;
use crate::codes;
use crate::event::{
    ErrorKind, State, StreamPosition, SubscribedContext, SubscriptionEvent, SubscriptionState,
};

impl Core {
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
        if let Some(offset) = sub.rewind_to.take()
            && sub.recover
        {
            sub.offset = sub.offset.min(offset);
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
            tf: sub.cfg.tags_filter.as_deref().cloned(),
            ..Default::default()
        };
        let cmd = proto::Command {
            subscribe: Some(req),
            ..Default::default()
        };
        let timeout = sub.cfg.subscribe_timeout.unwrap_or(self.cfg.timeout);
        let kind = Inflight::Subscribe(channel.to_owned());
        match self.send_tracked(cmd, kind, Some(now + timeout)) {
            Ok(id) => {
                if let Some(sub) = self.subs.get_mut(channel) {
                    sub.subscribe_cmd = Some(id);
                }
            }
            Err(e) => {
                self.emit_sub(
                    channel,
                    SubscriptionEvent::Error {
                        kind: ErrorKind::Configuration,
                        error: e,
                    },
                );
                self.set_unsubscribed(
                    now,
                    channel,
                    codes::unsubscribed::BAD_CONFIGURATION,
                    "bad configuration",
                    false,
                );
            }
        }
    }

    pub(super) fn schedule_resubscribe(&mut self, now: Millis, channel: &str) {
        let key = TimerKey::Resubscribe(channel.to_owned());
        self.schedule_sub_retry(now, key, |s| (&mut s.attempts, &mut s.resubscribe_at));
    }

    /// Schedules a subscription retry with the subscription's backoff: `slot` picks the
    /// attempt counter to advance and the deadline to set.
    /// `key` names the subscription and the timer (resubscribe or refresh).
    pub(super) fn schedule_sub_retry(
        &mut self,
        now: Millis,
        key: TimerKey,
        slot: fn(&mut super::Sub) -> (&mut u32, &mut Option<Millis>),
    ) {
        let (TimerKey::Resubscribe(channel) | TimerKey::SubRefresh(channel)) = &key else {
            return;
        };
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
            self.arm(now + d, key);
        }
    }

    /// Arms a subscription's token refresh `ttl` seconds from now.
    fn arm_sub_refresh(&mut self, now: Millis, channel: &str, ttl: u32) {
        if let Some(sub) = self.subs.get_mut(channel) {
            let at = now + u64::from(ttl) * 1000;
            sub.refresh_at = Some(at);
            self.arm(at, TimerKey::SubRefresh(channel.to_owned()));
        }
    }

    /// Moves to `Subscribing` (if subscribed) and subscribes again right away.
    pub(super) fn resubscribe(
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

    pub(super) fn send_unsubscribe(&mut self, now: Millis, channel: &str) {
        let cmd = proto::Command {
            unsubscribe: Some(proto::UnsubscribeRequest {
                channel: channel.to_owned(),
            }),
            ..Default::default()
        };
        let kind = Inflight::Unsubscribe(channel.to_owned());
        // Encoding an unsubscribe (a channel name) can't fail.
        let _ = self.send_tracked(cmd, kind, Some(now + self.cfg.timeout));
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
            Some(&Scope::Subscription(channel.to_owned())),
            &Error::Unsubscribed,
        );
        if send && self.state == State::Connected {
            self.send_unsubscribe(now, channel);
        }
    }

    pub(super) fn on_subscribe_reply(
        &mut self,
        now: Millis,
        cmd: u32,
        channel: &str,
        reply: proto::Reply,
    ) {
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
            self.emit_sub(
                channel,
                SubscriptionEvent::Error {
                    kind: ErrorKind::Subscribe,
                    error: Error::server(&err),
                },
            );
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
                SubscriptionEvent::Error {
                    kind: ErrorKind::Subscribe,
                    error: Error::Protocol("subscribe reply without result".into()),
                },
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
        let refresh_ttl = (res.expires && sub.cfg.has_get_token).then_some(res.ttl);
        if refresh_ttl.is_some() {
            sub.refresh_attempts = 0;
        }
        if let Some(ttl) = refresh_ttl {
            self.arm_sub_refresh(now, channel, ttl);
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
        self.send_queued(&Scope::Subscription(channel.to_owned()));
    }

    pub(super) fn on_sub_refresh_reply(
        &mut self,
        now: Millis,
        cmd: u32,
        channel: &str,
        reply: proto::Reply,
    ) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        if sub.refresh_cmd != Some(cmd) {
            return;
        }
        sub.refresh_cmd = None;
        if let Some(err) = reply.error {
            self.emit_sub(
                channel,
                SubscriptionEvent::Error {
                    kind: ErrorKind::SubscribeRefresh,
                    error: Error::server(&err),
                },
            );
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
            self.arm_sub_refresh(now, channel, r.ttl);
        }
    }

    pub(super) fn schedule_sub_refresh_retry(&mut self, now: Millis, channel: &str) {
        let key = TimerKey::SubRefresh(channel.to_owned());
        self.schedule_sub_retry(now, key, |s| (&mut s.refresh_attempts, &mut s.refresh_at));
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
                self.emit_sub(
                    channel,
                    SubscriptionEvent::Error {
                        kind: ErrorKind::SubscribeToken,
                        error: Error::Unauthorized,
                    },
                );
                let send = purpose == TokenPurpose::Refresh;
                self.set_unsubscribed(
                    now,
                    channel,
                    codes::unsubscribed::UNAUTHORIZED,
                    "unauthorized",
                    send,
                );
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
                            let cmd = proto::Command {
                                sub_refresh: Some(proto::SubRefreshRequest {
                                    channel: channel.to_owned(),
                                    token,
                                    ..Default::default()
                                }),
                                ..Default::default()
                            };
                            let kind = Inflight::SubRefresh(channel.to_owned());
                            let deadline = Some(now + self.cfg.timeout);
                            if let Ok(id) = self.send_tracked(cmd, kind, deadline)
                                && let Some(sub) = self.subs.get_mut(channel)
                            {
                                sub.refresh_cmd = Some(id);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                let state = sub.state;
                self.emit_sub(
                    channel,
                    SubscriptionEvent::Error {
                        kind: ErrorKind::SubscribeToken,
                        error: Error::Token(e),
                    },
                );
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
}
