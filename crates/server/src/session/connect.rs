//! The connect command: credentials, limits, ping settings and server-side subscriptions.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use gyre_auth::{ChannelOverride, TokenError};
use gyre_protocol::{ConnectRequest, ConnectResult, Disconnect, ErrorCode, ProtocolError, Reply};

use super::Session;
use super::subscribe::SubscribeParams;
use crate::node::{VERSION, unix_now};

/// A server-side subscription granted at connect time.
struct Grant {
    channel: String,
    info: Bytes,
    data: Bytes,
    overrides: ChannelOverride,
}

impl Session {
    pub(super) async fn handle_connect(&mut self, id: u32, req: ConnectRequest) {
        match self.connect(req).await {
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

    async fn connect(&mut self, req: ConnectRequest) -> Result<ConnectResult, ProtocolError> {
        let node = self.node.clone();
        let cfg = &node.config.client;
        let now = unix_now();
        let mut grants: Vec<Grant> = Vec::new();
        let (user, expire_at, info) = if !req.token.is_empty() {
            let Some(verifier) = node.connect_verifier.as_ref() else {
                tracing::debug!(client = %self.handle.client, "connection token given but no key is configured");
                return Err(Disconnect::INVALID_TOKEN.into());
            };
            let claims = match verifier.verify_connect(&req.token, now) {
                Ok(claims) => claims,
                Err(TokenError::Expired) => return Err(ErrorCode::TokenExpired.into()),
                Err(err) => {
                    tracing::debug!(client = %self.handle.client, "invalid connection token: {err}");
                    return Err(Disconnect::INVALID_TOKEN.into());
                }
            };
            if claims.user.is_empty() && cfg.disallow_anonymous_connection_tokens {
                return Err(Disconnect::PERMISSION_DENIED.into());
            }
            if claims.subs.is_empty() {
                grants.extend(claims.channels.iter().map(|c| Grant {
                    channel: c.clone(),
                    info: Bytes::new(),
                    data: Bytes::new(),
                    overrides: ChannelOverride::default(),
                }));
            } else {
                grants.extend(claims.subs.iter().map(|(c, o)| Grant {
                    channel: c.clone(),
                    info: o.info.clone().map(Bytes::from).unwrap_or_default(),
                    data: o.data.clone().map(Bytes::from).unwrap_or_default(),
                    overrides: o.override_,
                }));
            }
            (
                claims.user,
                claims.expire_at,
                claims.info.map(Bytes::from).unwrap_or_default(),
            )
        } else if cfg.insecure || cfg.allow_anonymous_connect_without_token {
            (String::new(), None, Bytes::new())
        } else {
            tracing::debug!(client = %self.handle.client, "connect without credentials");
            return Err(Disconnect::BAD_REQUEST.into());
        };
        let expire_at = if cfg.insecure { None } else { expire_at };
        let (expires, ttl) = super::expiry_ttl(expire_at, now)
            .ok_or(ProtocolError::from(ErrorCode::TokenExpired))?;
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
                info: Bytes::new(),
                data: Bytes::new(),
                overrides: ChannelOverride::default(),
            });
        }
        self.user = Arc::from(user.as_str());
        *self.handle.user.write() = self.user.clone();
        self.conn_info = info;
        self.expire_at = expire_at;
        self.connected = true;
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
            pong: pinger.expects_pong(),
            time: if cfg.connect_include_server_time {
                crate::time::unix_now_millis()
            } else {
                0
            },
            ..Default::default()
        })
    }
}
