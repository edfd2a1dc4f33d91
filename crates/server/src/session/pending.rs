//! Decisions that take time (proxy calls) run as futures beside the session loop: the loop
//! polls them with its other sources, so pushes, pings and other commands keep flowing while
//! one command waits, and applies each result when it arrives (replies may come out of order;
//! their ids make that legal).

use bytes::Bytes;
use futures_util::future::BoxFuture;
use gyre_protocol::{ErrorCode, ProtocolError, PublishResult, Reply, RpcResult};

use super::Session;
use super::subscribe::SubscribeParams;
use crate::node::{Node, PublishOptions, unix_now};
use crate::policy::{
    ConnectDecision, PublishDecision, RefreshDecision, RpcDecision, SubscribeDecision,
};

type Outcome<T> = Result<T, ProtocolError>;

/// How many decisions one connection may wait for at once; while that many are in flight the
/// session stops reading commands (its pushes keep flowing).
pub(super) const MAX_PENDING: usize = 16;

/// A finished decision and what the session needs to apply it.
pub(super) enum Completion {
    Connect {
        id: u32,
        req: Box<gyre_protocol::ConnectRequest>,
        result: Outcome<ConnectDecision>,
        /// Decided by the connect proxy (not by a token verified after a JWKS fetch).
        proxied: bool,
    },
    Refresh(Outcome<Option<RefreshDecision>>),
    Subscribe {
        id: u32,
        params: Box<SubscribeParams>,
        result: Outcome<SubscribeDecision>,
    },
    Publish {
        id: u32,
        channel: String,
        data: Bytes,
        result: Outcome<PublishDecision>,
    },
    Rpc {
        id: u32,
        result: Outcome<RpcDecision>,
    },
    SubRefresh {
        channel: String,
        result: Outcome<Option<RefreshDecision>>,
    },
}

/// A decision in flight.
pub(super) type Pending = BoxFuture<'static, Completion>;

/// How long to wait before asking the refresh proxy again after it failed.
const REFRESH_RETRY_SECS: i64 = 10;

impl Session {
    /// Queues a decision in flight.
    pub(super) fn defer(&mut self, pending: Pending) {
        self.pending.get_mut().push(pending);
    }

    /// Applies a finished decision.
    pub(super) async fn on_completion(&mut self, done: Completion) {
        if self.closing.is_some() {
            return;
        }
        match done {
            Completion::Connect {
                id,
                req,
                result,
                proxied,
            } => {
                self.connecting = false;
                let result = match result {
                    Ok(decision) => {
                        self.proxied = proxied;
                        self.apply_connect(&req, decision).await
                    }
                    Err(err) => Err(err),
                };
                self.answer_connect(id, result);
            }
            Completion::Refresh(result) => {
                self.refreshing = false;
                match result {
                    Ok(None) => self.close(gyre_protocol::Disconnect::EXPIRED),
                    Ok(Some(decision)) => {
                        if let Some(info) = decision.info {
                            self.conn_info = info;
                        }
                        self.expire_at = decision.expire_at;
                    }
                    // Already logged by the proxy; ask again a little later.
                    Err(_) => self.expire_at = Some(unix_now() + REFRESH_RETRY_SECS),
                }
            }
            Completion::Subscribe { id, params, result } => {
                let outcome = match result {
                    Ok(_) if self.subs.contains_key(&params.channel) => {
                        Err(ErrorCode::AlreadySubscribed.into())
                    }
                    Ok(decision) => {
                        let mut params = *params;
                        params.chan_info = decision.info;
                        params.data = decision.data;
                        params.expire_at = decision.expire_at;
                        params.overrides = decision.overrides;
                        self.subscribe_channel(params).await
                    }
                    Err(err) => Err(err),
                };
                match outcome {
                    Ok(result) => self.push_reply(&Reply {
                        id,
                        subscribe: Some(result),
                        ..Default::default()
                    }),
                    Err(err) => self.push_error(id, err),
                }
            }
            Completion::Publish {
                id,
                channel,
                data,
                result,
            } => {
                let outcome = match result {
                    Ok(decision) => self.publish_decided(&channel, data, decision).await,
                    Err(err) => Err(err),
                };
                match outcome {
                    Ok(result) => self.push_reply(&Reply {
                        id,
                        publish: Some(result),
                        ..Default::default()
                    }),
                    Err(err) => self.push_error(id, err),
                }
            }
            Completion::SubRefresh { channel, result } => {
                let Some(sub) = self.subs.get_mut(&channel) else {
                    return;
                };
                sub.refreshing = false;
                match result {
                    Ok(Some(decision)) => {
                        sub.expire_at = decision.expire_at;
                        if let Some(info) = decision.info {
                            sub.chan_info = info;
                        }
                    }
                    Ok(None) => {
                        self.unsubscribe_with_push(
                            &channel,
                            gyre_protocol::codes::unsubscribe::EXPIRED,
                            "subscription expired",
                        )
                        .await;
                    }
                    Err(_) => sub.expire_at = Some(unix_now() + REFRESH_RETRY_SECS),
                }
            }
            Completion::Rpc { id, result } => match result {
                Ok(decision) => self.push_reply(&Reply {
                    id,
                    rpc: Some(RpcResult {
                        data: decision.data,
                    }),
                    ..Default::default()
                }),
                Err(err) => self.push_error(id, err),
            },
        }
    }

    /// Asks the sub_refresh proxy whether an expiring subscription goes on.
    pub(super) fn sub_refresh(&mut self, channel: String) {
        let node = self.node.clone();
        let Ok(resolved) = node.channel(&channel) else {
            return;
        };
        let name = &resolved.options.proxy.sub_refresh_proxy_name;
        let Some(options) = crate::proxy::options(&node, gyre_config::ProxyKind::SubRefresh, name)
        else {
            return;
        };
        let Some(sub) = self.subs.get_mut(&channel) else {
            return;
        };
        sub.refreshing = true;
        let caller = self.caller();
        self.defer(Box::pin(async move {
            let result = crate::proxy::sub_refresh(caller, options, &channel).await;
            Completion::SubRefresh { channel, result }
        }));
    }

    /// Publishes a client publication the policy accepted.
    pub(super) async fn publish_decided(
        &mut self,
        channel: &str,
        data: Bytes,
        decision: PublishDecision,
    ) -> Outcome<PublishResult> {
        let node = self.node.clone();
        let resolved = node.channel(channel)?;
        let data = decision.data.unwrap_or(data);
        if !crate::node::channels::data_format_ok(resolved.publication_data_format, &data) {
            return Err(ErrorCode::BadRequest.into());
        }
        let chan_info = self
            .subs
            .get(channel)
            .map(|s| s.chan_info.clone())
            .unwrap_or_default();
        let options = PublishOptions {
            delta: resolved.options.delta_publish,
            skip_history: decision.skip_history,
            info: Some(self.info(chan_info)),
            ..Default::default()
        };
        node.publish(channel, &Node::stream_options(&resolved), data, options)
            .await?;
        Ok(PublishResult {})
    }

    /// The caller fields of proxy requests.
    pub(super) fn caller(&self) -> crate::proxy::Caller {
        crate::proxy::Caller {
            node: self.node.clone(),
            conn: self.conn.clone(),
            client: self.handle.client.clone(),
            user: self.user.clone(),
            protocol: self.protocol,
            meta: self.meta.clone(),
        }
    }
}
