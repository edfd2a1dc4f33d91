//! User calls through [`Core`]: queueing while not connected, sending, and resolving replies exactly once.

use std::collections::BTreeMap;

use gyre_protocol::{self as proto, Protocol};

use super::pushes::publication;
use super::{CallId, CallResult, Core, Expect, Inflight, Millis, Queued, Request, Scope, TimerKey};
use crate::Error;
use crate::event::{HistoryResult, PresenceResult, PresenceStatsResult, State, SubscriptionState};

impl Core {
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
            self.arm(deadline, TimerKey::Queued(scope.clone(), id));
            self.queued
                .entry(scope)
                .or_default()
                .insert(id, Queued { request, deadline });
        }
    }

    /// Sends the calls waiting for `scope`, in call order.
    pub(super) fn send_queued(&mut self, scope: &Scope) {
        let Some(go) = self.queued.remove(scope) else {
            return;
        };
        for (id, q) in go {
            self.send_call(id, q.request, q.deadline);
        }
    }

    /// Fails the calls waiting for `scope` (all of them for `None`) with `err`.
    pub(super) fn fail_queued(&mut self, scope: Option<&Scope>, err: &Error) {
        let fail: Vec<BTreeMap<CallId, Queued>> = match scope {
            Some(s) => self.queued.remove(s).into_iter().collect(),
            None => std::mem::take(&mut self.queued).into_values().collect(),
        };
        for calls in fail {
            for id in calls.into_keys() {
                self.resolve(id, Err(err.clone()));
            }
        }
    }

    pub(super) fn send_call(&mut self, call: CallId, request: Request, deadline: Millis) {
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
                cmd.publish = Some(proto::PublishRequest {
                    channel,
                    data,
                    ..Default::default()
                });
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
        if let Err(e) = self.send_tracked(cmd, Inflight::Call(call, expect), Some(deadline)) {
            self.resolve(call, Err(e));
        }
    }

    pub(super) fn on_call_reply(&mut self, call: CallId, expect: Expect, reply: proto::Reply) {
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
}
