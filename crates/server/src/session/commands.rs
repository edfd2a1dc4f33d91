//! Command dispatch and the channel commands that need no subscription machinery: publish,
//! presence, presence stats, history, RPC, send, refresh and sub_refresh.

use gyre_config::ProxyKind;
use gyre_protocol::{
    Command, Disconnect, ErrorCode, HistoryResult, PresenceResult, PresenceStatsResult,
    ProtocolError, PublishResult, RefreshResult, Reply, RpcResult, SubRefreshResult,
    UnsubscribeResult,
};

use super::Session;
use super::pending::Completion;
use crate::node::{Node, VERSION, unix_now};
use crate::policy::{self, Access};

type Outcome<T> = Result<T, ProtocolError>;

impl Session {
    pub(super) async fn dispatch(&mut self, cmd: Command) {
        let id = cmd.id;
        if !self.connected {
            match cmd.connect {
                Some(req) if id > 0 => self.handle_connect(id, req).await,
                _ => {
                    tracing::debug!(client = %self.handle.client, "first command is not connect");
                    self.close(Disconnect::BAD_REQUEST);
                }
            }
            return;
        }
        if id == 0 {
            if let Some(send) = cmd.send {
                self.handle_send(send.data);
            } else if self.awaiting_pong {
                self.awaiting_pong = false;
            } else {
                tracing::debug!(client = %self.handle.client, "unexpected pong");
                self.close(Disconnect::BAD_REQUEST);
            }
            return;
        }
        let method = method_name(&cmd);
        let started = std::time::Instant::now();
        let mut reply = Reply {
            id,
            ..Default::default()
        };
        // Set when the answer comes later, from a decision in flight.
        let mut deferred = false;
        let outcome: Outcome<()> = if cmd.connect.is_some() {
            Err(Disconnect::BAD_REQUEST.into())
        } else if let Some(req) = cmd.subscribe {
            self.handle_subscribe(id, req).await.map(|r| match r {
                Some(r) => reply.subscribe = Some(r),
                None => deferred = true,
            })
        } else if let Some(req) = cmd.unsubscribe {
            self.handle_unsubscribe(&req.channel)
                .await
                .map(|r| reply.unsubscribe = Some(r))
        } else if cmd.publish.as_ref().is_some_and(|req| req.kind != 0) {
            let req = cmd.publish.unwrap_or_default();
            Box::pin(self.handle_map_publish(req))
                .await
                .map(|r| reply.publish = Some(r))
        } else if let Some(req) = cmd.publish {
            self.handle_publish(id, req.channel, req.data)
                .await
                .map(|r| match r {
                    Some(r) => reply.publish = Some(r),
                    None => deferred = true,
                })
        } else if let Some(req) = cmd.presence {
            self.handle_presence(&req.channel)
                .await
                .map(|r| reply.presence = Some(r))
        } else if let Some(req) = cmd.presence_stats {
            self.handle_presence_stats(&req.channel)
                .await
                .map(|r| reply.presence_stats = Some(r))
        } else if let Some(req) = cmd.history {
            self.handle_history(req)
                .await
                .map(|r| reply.history = Some(r))
        } else if let Some(req) = cmd.rpc {
            self.handle_rpc(id, req.method, req.data).map(|r| match r {
                Some(r) => reply.rpc = Some(r),
                None => deferred = true,
            })
        } else if let Some(send) = cmd.send {
            self.handle_send(send.data);
            return;
        } else if let Some(req) = cmd.refresh {
            self.handle_refresh(&req.token)
                .map(|r| reply.refresh = Some(r))
        } else if let Some(req) = cmd.sub_refresh {
            if req.kind == 0 {
                self.handle_sub_refresh(&req.channel, &req.token)
            } else {
                self.handle_shared_poll_refresh(req)
            }
            .map(|r| reply.sub_refresh = Some(r))
        } else {
            // The legacy ping command and commands without a known request.
            Err(Disconnect::BAD_REQUEST.into())
        };
        let metrics = &self.node.metrics;
        metrics.command(method, started.elapsed());
        if let Err(ProtocolError::Reply(error)) = &outcome {
            metrics.reply_error(method, error.code);
        }
        match outcome {
            Ok(()) if deferred => {}
            Ok(()) => self.push_reply(&reply),
            Err(err) => self.push_error(id, err),
        }
    }

    /// Whether the session may use `access` on a channel with these options.
    pub(super) fn allowed(
        &self,
        access: Access,
        channel: &str,
        o: &gyre_config::ChannelOptions,
    ) -> bool {
        let subscribed = self.subs.contains_key(channel);
        policy::access_allowed(&self.node, self.subject(), access, subscribed, o)
    }

    fn check_channel_name(&self, channel: &str) -> Outcome<()> {
        if channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        if channel.len() > self.node.config.channel.max_length {
            return Err(ErrorCode::BadRequest.into());
        }
        Ok(())
    }

    async fn handle_unsubscribe(&mut self, channel: &str) -> Outcome<UnsubscribeResult> {
        if channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        self.remove_subscription(channel).await;
        Ok(UnsubscribeResult {})
    }

    /// A client publication; `None` when the publish proxy answers later.
    async fn handle_publish(
        &mut self,
        id: u32,
        channel: String,
        data: bytes::Bytes,
    ) -> Outcome<Option<PublishResult>> {
        self.check_channel_name(&channel)?;
        let node = self.node.clone();
        let resolved = node.channel(&channel)?;
        let proxy = &resolved.options.proxy;
        if proxy.publish_proxy_enabled {
            let options =
                crate::proxy::options(&node, ProxyKind::Publish, &proxy.publish_proxy_name)
                    .ok_or(ProtocolError::from(ErrorCode::Internal))?;
            let caller = self.caller();
            self.defer(Box::pin(async move {
                let result =
                    crate::proxy::publish(caller, options, channel.clone(), data.clone()).await;
                Completion::Publish {
                    id,
                    channel,
                    data,
                    result,
                }
            }));
            return Ok(None);
        }
        let subscribed = self.subs.contains_key(&channel);
        let decision = policy::publish(&node, self.subject(), subscribed, &resolved)?;
        self.publish_decided(&channel, data, decision)
            .await
            .map(Some)
    }

    fn presence_channel(&self, channel: &str) -> Outcome<()> {
        self.check_channel_name(channel)?;
        let resolved = self.node.channel(channel)?;
        if !resolved.options.presence {
            return Err(ErrorCode::NotAvailable.into());
        }
        if !self.allowed(Access::Presence, channel, resolved.options) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        Ok(())
    }

    async fn handle_presence(&mut self, channel: &str) -> Outcome<PresenceResult> {
        self.presence_channel(channel)?;
        Ok(PresenceResult {
            presence: self
                .node
                .presence
                .presence(channel)
                .await
                .map_err(ErrorCode::from)?,
        })
    }

    async fn handle_presence_stats(&mut self, channel: &str) -> Outcome<PresenceStatsResult> {
        self.presence_channel(channel)?;
        let (num_clients, num_users) = self
            .node
            .presence
            .stats(channel)
            .await
            .map_err(ErrorCode::from)?;
        Ok(PresenceStatsResult {
            num_clients,
            num_users,
        })
    }

    async fn handle_history(
        &mut self,
        req: gyre_protocol::HistoryRequest,
    ) -> Outcome<HistoryResult> {
        self.check_channel_name(&req.channel)?;
        let node = self.node.clone();
        let resolved = node.channel(&req.channel)?;
        let stream = Node::stream_options(&resolved);
        if !stream.enabled() {
            return Err(ErrorCode::NotAvailable.into());
        }
        if !self.allowed(Access::History, &req.channel, resolved.options) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let max = node.config.client.history_max_publication_limit;
        let result = crate::node::channels::read_history(
            &node,
            &req.channel,
            &stream,
            req.limit,
            req.since.as_ref(),
            req.reverse,
            max,
        )
        .await?;
        Ok(result)
    }

    /// An RPC call; `None` when the RPC proxy answers later. The built-in ping method keeps
    /// working beside the proxy.
    fn handle_rpc(
        &mut self,
        id: u32,
        method: String,
        data: bytes::Bytes,
    ) -> Outcome<Option<RpcResult>> {
        let node = self.node.clone();
        let ping = &node.config.rpc.ping;
        let is_ping = ping.enabled && method == ping.method;
        // Without any RPC proxy there is no RPC handler at all (108, as upstream); with one,
        // a method in an unknown RPC namespace is not found.
        let cfg = &node.config.rpc;
        let any_proxy = cfg.without_namespace.proxy_enabled
            || cfg.namespaces.iter().any(|n| n.options.proxy_enabled);
        let rpc = match node.config.rpc_options(&method) {
            Some(rpc) => rpc,
            None if any_proxy && !is_ping => return Err(ErrorCode::MethodNotFound.into()),
            None => &cfg.without_namespace,
        };
        if !is_ping && rpc.proxy_enabled {
            let options = crate::proxy::options(&node, ProxyKind::Rpc, &rpc.proxy_name)
                .ok_or(ProtocolError::from(ErrorCode::Internal))?;
            let caller = self.caller();
            self.defer(Box::pin(async move {
                let result = crate::proxy::rpc(caller, options, method, data).await;
                Completion::Rpc { id, result }
            }));
            return Ok(None);
        }
        let decision = policy::rpc(&node, &method)?;
        Ok(Some(RpcResult {
            data: decision.data,
        }))
    }

    fn handle_send(&mut self, _data: bytes::Bytes) {
        // No message handler exists without an RPC/send proxy: upstream disconnects.
        self.close(Disconnect::NOT_AVAILABLE);
    }

    fn handle_refresh(&mut self, token: &str) -> Outcome<RefreshResult> {
        let now = unix_now();
        let decision = policy::refresh(&self.node, self.subject(), token, now)?;
        if let Some(info) = decision.info {
            self.conn_info = info;
        }
        self.expire_at = decision.expire_at;
        let (expires, ttl) = super::expiry_ttl(decision.expire_at, now)
            .ok_or(ProtocolError::from(Disconnect::EXPIRED))?;
        Ok(RefreshResult {
            client: self.handle.client.to_string(),
            version: VERSION.to_owned(),
            expires,
            ttl,
        })
    }

    fn handle_sub_refresh(&mut self, channel: &str, token: &str) -> Outcome<SubRefreshResult> {
        if channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        if !self.subs.contains_key(channel) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        if self.subs.get(channel).is_some_and(|s| s.server_side) {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        let now = unix_now();
        let decision = policy::sub_refresh(&self.node, self.subject(), channel, token, now)?;
        let (expires, ttl) = super::expiry_ttl(decision.expire_at, now)
            .ok_or(ProtocolError::from(ErrorCode::Expired))?;
        if let Some(sub) = self.subs.get_mut(channel) {
            sub.expire_at = decision.expire_at;
        }
        Ok(SubRefreshResult {
            expires,
            ttl,
            ..Default::default()
        })
    }
}

/// The method label of a command, for metrics.
fn method_name(cmd: &Command) -> &'static str {
    if cmd.subscribe.is_some() {
        "subscribe"
    } else if cmd.unsubscribe.is_some() {
        "unsubscribe"
    } else if cmd.publish.is_some() {
        "publish"
    } else if cmd.presence.is_some() {
        "presence"
    } else if cmd.presence_stats.is_some() {
        "presence_stats"
    } else if cmd.history.is_some() {
        "history"
    } else if cmd.rpc.is_some() {
        "rpc"
    } else if cmd.refresh.is_some() {
        "refresh"
    } else if cmd.sub_refresh.is_some() {
        "sub_refresh"
    } else if cmd.connect.is_some() {
        "connect"
    } else {
        "unknown"
    }
}
