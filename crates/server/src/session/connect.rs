//! The connect command: credentials, limits, ping settings and server-side subscriptions.

use std::collections::HashMap;
use std::sync::Arc;

use gyre_config::ProxyKind;
use gyre_protocol::{ConnectRequest, ConnectResult, Disconnect, ErrorCode, ProtocolError, Reply};

use super::Session;
use super::pending::Completion;
use super::subscribe::SubscribeParams;
use crate::node::{VERSION, unix_now};
use crate::policy::{self, ConnectDecision, Grant};

impl Session {
    pub(super) async fn handle_connect(&mut self, id: u32, req: ConnectRequest) {
        let node = self.node.clone();
        if req.token.is_empty()
            && let Some(options) = crate::proxy::options(&node, ProxyKind::Connect, "")
        {
            self.connecting = true;
            let caller = self.caller();
            let req = Box::new(req);
            self.defer(Box::pin(async move {
                let result = crate::proxy::connect(caller, options, &req).await;
                Completion::Connect {
                    id,
                    req,
                    result,
                    proxied: true,
                }
            }));
            return;
        }
        if let Some(source) = node.connect_jwks.clone()
            && let Some(kid) = source.missing_kid(&req.token)
        {
            // The token names a key this node has not fetched yet: fetch, then verify.
            self.connecting = true;
            let client = self.handle.client.clone();
            let req = Box::new(req);
            self.defer(Box::pin(async move {
                source.refresh_for(Some(&kid)).await;
                let result = policy::connect(&node, &client, &req.token, unix_now());
                Completion::Connect {
                    id,
                    req,
                    result,
                    proxied: false,
                }
            }));
            return;
        }
        let result = match policy::connect(&node, &self.handle.client, &req.token, unix_now()) {
            Ok(decision) => self.apply_connect(&req, decision).await,
            Err(err) => Err(err),
        };
        self.answer_connect(id, result);
    }

    /// Answers the connect command.
    pub(super) fn answer_connect(&mut self, id: u32, result: Result<ConnectResult, ProtocolError>) {
        if self.transport.unidirectional {
            self.answer_uni_connect(result);
            return;
        }
        match result {
            Ok(result) => {
                self.push_reply(&Reply {
                    id,
                    connect: Some(result),
                    ..Default::default()
                });
            }
            Err(ProtocolError::Reply(error)) => {
                // Upstream answers the error and stops using the connection; the client retries.
                self.push_reply(&Reply {
                    id,
                    error: Some(error),
                    ..Default::default()
                });
            }
            Err(ProtocolError::Disconnect(d)) => self.close(d),
        }
    }

    /// Applies the policy's connect decision: limits, registration and server-side
    /// subscriptions.
    pub(super) async fn apply_connect(
        &mut self,
        req: &ConnectRequest,
        decision: ConnectDecision,
    ) -> Result<ConnectResult, ProtocolError> {
        let node = self.node.clone();
        let cfg = &node.config.client;
        let now = unix_now();
        let ConnectDecision {
            user,
            expire_at,
            info,
            data,
            subs: mut grants,
            meta,
        } = decision;
        self.meta = meta;
        let (expires, ttl) = super::expiry_ttl(expire_at, now)
            .ok_or(ProtocolError::from(ErrorCode::TokenExpired))?;
        // With a refresh proxy, the server refreshes proxy-authenticated connections itself.
        let (expires, ttl) = if self.server_refresh() {
            (false, 0)
        } else {
            (expires, ttl)
        };
        if cfg.user_connection_limit > 0
            && !user.is_empty()
            && node.hub.user_connection_count(&user) >= cfg.user_connection_limit
        {
            return Err(Disconnect::CONNECTION_LIMIT.into());
        }
        if grants.len() > cfg.channel_limit {
            return Err(Disconnect::CHANNEL_LIMIT.into());
        }
        let personal = &cfg.subscribe_to_user_personal_channel;
        if personal.enabled && !user.is_empty() {
            if personal.single_connection {
                for other in node.hub.user_sessions(&user) {
                    other.disconnect(Disconnect::CONNECTION_LIMIT);
                }
            }
            grants.push(Grant {
                channel: node.config.personal_channel(&user),
                ..Default::default()
            });
        }
        self.user = Arc::from(user.as_str());
        *self.handle.user.write() = self.user.clone();
        self.conn_info = info;
        self.expire_at = expire_at;
        self.connected = true;
        // Client name and version stay out of the labels: they are the client's to choose, so
        // they would let one client grow the metric without bound.
        node.metrics
            .connection_accepted(self.transport.name, "", "");
        node.hub.add_session(&self.handle);
        node.pinger.register(&self.handle);

        let mut subs = HashMap::new();
        for grant in grants {
            let position = req.subs.get(&grant.channel);
            let params = SubscribeParams {
                channel: grant.channel.clone(),
                recover: position.is_some_and(|p| p.recover),
                offset: position.map_or(0, |p| p.offset),
                epoch: position.map(|p| p.epoch.clone()).unwrap_or_default(),
                delta: position.is_some_and(|p| p.delta == gyre_protocol::codes::delta::FOSSIL),
                chan_info: grant.info,
                data: grant.data,
                overrides: grant.overrides,
                server_side: true,
                ..Default::default()
            };
            match self.subscribe_channel(params).await {
                Ok(result) => {
                    subs.insert(grant.channel, result);
                }
                Err(ProtocolError::Reply(e)) if e.code == ErrorCode::UnknownChannel.code() => {
                    return Err(ProtocolError::Reply(e));
                }
                Err(err) => return Err(err),
            }
        }
        let pinger = &node.pinger;
        Ok(ConnectResult {
            client: self.handle.client.to_string(),
            version: VERSION.to_owned(),
            expires,
            ttl,
            subs,
            ping: pinger.interval_secs(),
            pong: self.expects_pong(),
            time: if cfg.connect_include_server_time {
                crate::time::unix_now_millis()
            } else {
                0
            },
            data,
            session: if self.transport.emulation || self.transport.unidirectional {
                self.conn.session.as_deref().unwrap_or_default().to_owned()
            } else {
                String::new()
            },
            node: if self.transport.emulation {
                node.events.id.clone()
            } else {
                String::new()
            },
        })
    }
}
