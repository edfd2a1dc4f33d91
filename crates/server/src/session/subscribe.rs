//! Subscriptions: permission checks, the subscribe algorithm with positioning and recovery,
//! fossil delta negotiation, join/leave and presence, and unsubscribing.

use bytes::Bytes;
use gyre_auth::ChannelOverride;
use gyre_config::ProxyKind;
use gyre_protocol::{
    Disconnect, ErrorCode, ProtocolError, Publication, Push, Subscribe, SubscribeRequest,
    SubscribeResult, Unsubscribe,
};

use super::pending::Completion;
use super::{Session, SubState};
use crate::engine::HistoryFilter;
use crate::hub::{self, Subscriber};
use crate::node::{Node, unix_now};
use crate::policy::{self, Access, Subject};
use crate::tags_filter::TagsFilter;

/// Everything the subscribe algorithm needs, whoever asked for the subscription.
#[derive(Debug, Default)]
pub(super) struct SubscribeParams {
    pub channel: String,
    pub recover: bool,
    pub offset: u64,
    pub epoch: String,
    pub positioned: bool,
    pub recoverable: bool,
    pub join_leave: bool,
    pub delta: bool,
    pub reject_unrecoverable: bool,
    pub chan_info: Bytes,
    pub data: Bytes,
    pub expire_at: Option<i64>,
    pub overrides: ChannelOverride,
    pub server_side: bool,
    pub history_access: bool,
    pub tags_filter: Option<std::sync::Arc<TagsFilter>>,
}

type Outcome<T> = Result<T, ProtocolError>;

impl Session {
    /// The client's subscribe command.
    /// `None` when the subscribe proxy answers later.
    pub(super) async fn handle_subscribe(
        &mut self,
        id: u32,
        req: SubscribeRequest,
    ) -> Outcome<Option<SubscribeResult>> {
        let channel = req.channel.clone();
        if channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        if channel.len() > self.node.config.channel.max_length {
            return Err(ErrorCode::BadRequest.into());
        }
        if self.subs.contains_key(&channel) {
            return Err(ErrorCode::AlreadySubscribed.into());
        }
        if self.subs.len() >= self.node.config.client.channel_limit {
            return Err(ErrorCode::LimitExceeded.into());
        }
        match req.delta.as_str() {
            "" | gyre_protocol::codes::delta::FOSSIL => {}
            _ => return Err(Disconnect::BAD_REQUEST.into()),
        }
        let node = self.node.clone();
        let resolved = node.channel(&channel)?;
        match resolved.options.subscription_type {
            gyre_config::SubscriptionType::Stream if req.kind == 0 => {}
            gyre_config::SubscriptionType::Map | gyre_config::SubscriptionType::MapClients => {
                return Box::pin(self.handle_map_subscribe(req)).await.map(Some);
            }
            gyre_config::SubscriptionType::SharedPoll => {
                return self.subscribe_shared_poll(&req, &resolved);
            }
            // Map users subscriptions are not served yet (warned at start-up).
            _ => return Err(ErrorCode::NotAvailable.into()),
        }
        let tags_filter = crate::tags_filter::from_request(
            node.hub.filters(),
            req.tf.as_ref(),
            resolved.options.allow_tags_filter,
        )?;
        let mut params = SubscribeParams {
            channel: channel.clone(),
            recover: req.recover,
            offset: req.offset,
            epoch: req.epoch.clone(),
            positioned: req.positioned,
            recoverable: req.recoverable,
            join_leave: req.join_leave,
            delta: req.delta == gyre_protocol::codes::delta::FOSSIL,
            reject_unrecoverable: req.flag
                & gyre_protocol::codes::subscribe_flag::REJECT_UNRECOVERED
                != 0,
            history_access: self.allowed(Access::History, &channel, resolved.options),
            tags_filter,
            ..Default::default()
        };
        let proxy = &resolved.options.proxy;
        let user_limited = resolved.options.allow_user_limited_channels
            && node.config.user_allowed_in_channel(&channel, &self.user);
        if req.token.is_empty() && !user_limited && proxy.subscribe_proxy_enabled {
            let options =
                crate::proxy::options(&node, ProxyKind::Subscribe, &proxy.subscribe_proxy_name)
                    .ok_or(ProtocolError::from(ErrorCode::Internal))?;
            let caller = self.caller();
            let params = Box::new(params);
            self.defer(Box::pin(async move {
                let result = crate::proxy::subscribe(
                    caller,
                    options,
                    params.channel.clone(),
                    req.token,
                    req.data,
                )
                .await;
                Completion::Subscribe { id, params, result }
            }));
            return Ok(None);
        }
        if let Some(source) = node.subscribe_jwks.clone()
            && let Some(kid) = source.missing_kid(&req.token)
        {
            // The token names a key this node has not fetched yet: fetch, then verify.
            let (user, client) = (self.user.clone(), self.handle.client.clone());
            let params = Box::new(params);
            self.defer(Box::pin(async move {
                source.refresh_for(Some(&kid)).await;
                let who = Subject {
                    user: &user,
                    client: &client,
                };
                let result = node
                    .channel(&params.channel)
                    .map_err(ProtocolError::from)
                    .and_then(|resolved| {
                        policy::subscribe(
                            &node,
                            who,
                            &params.channel,
                            &resolved,
                            &req.token,
                            unix_now(),
                        )
                    });
                Completion::Subscribe { id, params, result }
            }));
            return Ok(None);
        }
        let who = Subject {
            user: &self.user,
            client: &self.handle.client,
        };
        let decision = policy::subscribe(&node, who, &channel, &resolved, &req.token, unix_now())?;
        params.chan_info = decision.info;
        params.data = decision.data;
        params.expire_at = decision.expire_at;
        params.overrides = decision.overrides;
        self.subscribe_channel(params).await.map(Some)
    }

    /// The subscribe algorithm shared by client-side and server-side subscriptions.
    ///
    /// The subscriber joins the hub first in a buffering state, then the node subscribes to
    /// the channel in the broker, then history is read; buffered live publications are merged
    /// after the recovered ones (by offset, a gap means insufficient state) when the
    /// subscriber goes live. Nothing is lost, duplicated or reordered, with any engine.
    pub(super) async fn subscribe_channel(
        &mut self,
        p: SubscribeParams,
    ) -> Outcome<SubscribeResult> {
        let node = self.node.clone();
        let resolved = node.channel(&p.channel)?;
        let o = resolved.options;
        let stream = Node::stream_options(&resolved);
        let presence = p.overrides.presence.unwrap_or(o.presence);
        let emit_join_leave = p.overrides.join_leave.unwrap_or(o.join_leave);
        let push_join_leave = p
            .overrides
            .force_push_join_leave
            .unwrap_or(o.force_push_join_leave)
            || (p.join_leave && emit_join_leave);
        let history = stream.enabled();
        let recoverable = history
            && (p.overrides.force_recovery.unwrap_or(o.force_recovery)
                || (p.recoverable && (o.allow_recovery || p.history_access)));
        let positioned = history
            && (recoverable
                || p.overrides.force_positioning.unwrap_or(o.force_positioning)
                || (p.positioned && (o.allow_positioning || p.history_access)));
        let delta = p.delta && o.delta_allowed(&gyre_config::DeltaType::Fossil);
        let cache_mode = o.cache_recovery();

        let mut result = SubscribeResult {
            recoverable,
            positioned,
            delta,
            data: p.data.clone(),
            ..Default::default()
        };
        // With a sub_refresh proxy the server refreshes the subscription; the client is not told.
        let server_refresh = !p.server_side && o.proxy.sub_refresh_proxy_enabled;
        if let Some(at) = p.expire_at.filter(|_| !server_refresh) {
            result.expires = true;
            result.ttl = at.saturating_sub(unix_now()).max(0) as u32;
        }
        let mut subscriber = Subscriber::buffering(self.handle.clone(), delta, push_join_leave);
        subscriber.filter = p.tags_filter.clone();
        node.hub.subscribe(&p.channel, subscriber);
        let read = self
            .read_position(
                &p,
                &stream,
                positioned,
                recoverable,
                cache_mode,
                &mut result,
            )
            .await;
        let (recovered_pubs, top) = match read {
            Ok(read) => read,
            Err(err) => {
                node.hub_unsubscribe(&p.channel, &self.handle.client).await;
                return Err(err);
            }
        };
        // The hub patches against the stream's top: the client holds it only when it is the
        // last recovered publication (a tags filter may have left it out).
        let has_top = recovered_pubs.last().is_some_and(|last| last.offset == top);
        let continuous = node.hub.go_live(
            &p.channel,
            &self.handle.client,
            positioned.then_some((top, result.epoch.as_str())),
            delta && has_top,
        );
        if !continuous {
            // Queued behind the reply: the client resubscribes and recovers.
            self.handle
                .send(crate::outbound::Outbound::Control(Box::new(
                    crate::outbound::Control::InsufficientState(p.channel.clone()),
                )));
        }
        if result.was_recovering {
            node.metrics
                .recovery(result.recovered, !recovered_pubs.is_empty());
        }
        result.publications = if delta {
            delta_encode(&recovered_pubs, self.protocol)
        } else {
            recovered_pubs
        };
        let info = self.info(p.chan_info.clone());
        self.subs.insert(
            p.channel.clone(),
            SubState {
                presence,
                join_leave: emit_join_leave,
                chan_info: p.chan_info,
                expire_at: p.expire_at,
                server_side: p.server_side,
                server_refresh,
                refreshing: false,
                shared_poll: false,
            },
        );
        node.join(&p.channel, &info, presence, emit_join_leave)
            .await;
        Ok(result)
    }

    /// Subscribes the node to the channel in the broker and reads the stream position (and
    /// the publications to recover). Returns them with the top offset the client will have.
    async fn read_position(
        &self,
        p: &SubscribeParams,
        stream: &crate::engine::StreamOptions,
        positioned: bool,
        recoverable: bool,
        cache_mode: bool,
        result: &mut SubscribeResult,
    ) -> Outcome<(Vec<Publication>, u64)> {
        let node = &self.node;
        node.broker.subscribe(&p.channel).await.map_err(|err| {
            tracing::debug!("broker subscribe to {} failed: {err}", p.channel);
            ProtocolError::from(ErrorCode::from(err))
        })?;
        let mut recovered_pubs: Vec<Publication> = Vec::new();
        if !positioned {
            return Ok((recovered_pubs, 0));
        }
        // auto_cache_recover: in cache mode every subscribe recovers, asked or not.
        let auto = cache_mode && node.channel(&p.channel)?.options.auto_cache_recover;
        let was_recovering = recoverable && (p.recover || auto);
        if !was_recovering {
            let h = node
                .history(
                    &p.channel,
                    stream,
                    &HistoryFilter {
                        limit: Some(0),
                        ..Default::default()
                    },
                )
                .await?;
            result.epoch = h.epoch;
            result.offset = h.offset;
            return Ok((recovered_pubs, h.offset));
        }
        let max = node.config.client.recovery_max_publication_limit;
        let filter = if cache_mode {
            // With a tags filter the newest matching publication is looked for further back.
            HistoryFilter {
                since: None,
                limit: if p.tags_filter.is_some() {
                    (max > 0).then_some(max)
                } else {
                    Some(1)
                },
                reverse: true,
            }
        } else {
            HistoryFilter {
                since: Some(p.offset),
                limit: (max > 0).then_some(max),
                reverse: false,
            }
        };
        let mut h = node.history(&p.channel, stream, &filter).await?;
        if cache_mode && let Some(f) = &p.tags_filter {
            let newest = h.publications.drain(..).find(|p| f.matches(&p.tags));
            h.publications.extend(newest);
        }
        let same_epoch = p.epoch.is_empty() || p.epoch == h.epoch;
        let recovered = if cache_mode {
            same_epoch || !h.publications.is_empty()
        } else {
            same_epoch
                && match (h.publications.first(), h.publications.last()) {
                    (None, _) | (_, None) => h.offset == p.offset,
                    (Some(first), Some(last)) => {
                        first.offset == p.offset + 1 && last.offset == h.offset
                    }
                }
        };
        if !recovered && p.reject_unrecoverable {
            return Err(ErrorCode::UnrecoverablePosition.into());
        }
        result.epoch = h.epoch;
        result.was_recovering = true;
        result.recovered = recovered;
        if recovered {
            let cached_top = cache_mode && p.offset == h.offset && same_epoch;
            if !cached_top {
                recovered_pubs = h.publications;
            }
            if let Some(f) = &p.tags_filter {
                // Filtered publications are left out; the client's offset still advances
                // past them with the ones it gets.
                recovered_pubs.retain(|p| f.matches(&p.tags));
            }
            // Upstream answers the client's own offset: the client advances its
            // position by processing the recovered publications.
            result.offset = p.offset;
        } else {
            result.offset = h.offset;
        }
        Ok((recovered_pubs, h.offset))
    }

    /// Removes a subscription: leaves the hub, presence and announces the leave.
    pub(super) async fn remove_subscription(&mut self, channel: &str) -> bool {
        self.map_left(channel).await;
        let Some(state) = self.subs.remove(channel) else {
            return false;
        };
        if state.shared_poll {
            let client = &self.handle.client;
            self.node.shared_poll.untrack(channel, client, None);
            return true;
        }
        self.node
            .hub_unsubscribe(channel, &self.handle.client)
            .await;
        let info = self.info(state.chan_info);
        self.node
            .leave(channel, &info, state.presence, state.join_leave)
            .await;
        true
    }

    /// Ends a subscription on the server's initiative and tells the client why.
    pub(super) async fn unsubscribe_with_push(&mut self, channel: &str, code: u32, reason: &str) {
        if self.remove_subscription(channel).await {
            let push = Push {
                channel: channel.to_owned(),
                unsubscribe: Some(Unsubscribe {
                    code,
                    reason: reason.to_owned(),
                }),
                ..Default::default()
            };
            self.push_push(push);
        }
    }

    /// A server API subscribe: subscribes the connection and sends a subscribe push.
    pub(super) async fn server_subscribe(&mut self, req: crate::outbound::ServerSubscribe) {
        if self.subs.contains_key(&req.channel) {
            return;
        }
        if self.subs.len() >= self.node.config.client.channel_limit {
            self.close(Disconnect::CHANNEL_LIMIT);
            return;
        }
        let since = req.recover_since.clone();
        let params = SubscribeParams {
            channel: req.channel.clone(),
            recover: since.is_some(),
            offset: since.as_ref().map_or(0, |s| s.offset),
            epoch: since.map(|s| s.epoch).unwrap_or_default(),
            chan_info: req.info.clone(),
            data: req.data.clone(),
            expire_at: (req.expire_at > 0).then_some(req.expire_at),
            overrides: req.overrides(),
            server_side: true,
            ..Default::default()
        };
        match self.subscribe_channel(params).await {
            Ok(result) => {
                let push = Push {
                    channel: req.channel,
                    subscribe: Some(Subscribe {
                        recoverable: result.recoverable,
                        epoch: result.epoch,
                        offset: result.offset,
                        positioned: result.positioned,
                        data: result.data,
                    }),
                    ..Default::default()
                };
                self.push_push(push);
            }
            Err(err) => {
                tracing::debug!(client = %self.handle.client, "server subscribe failed: {err:?}");
            }
        }
    }
}

/// Recovered publications for a delta subscriber: the first in full, the rest as patches.
fn delta_encode(
    publications: &[Publication],
    protocol: gyre_protocol::Protocol,
) -> Vec<Publication> {
    let mut out = Vec::with_capacity(publications.len());
    let mut previous: Option<&Bytes> = None;
    for publication in publications {
        let encoded = match previous.and_then(|prev| crate::delta::patch(prev, &publication.data)) {
            Some(patch) => hub::delta_publication(publication, &patch, protocol),
            None => hub::full_for_delta(publication, protocol),
        };
        out.push(encoded);
        previous = Some(&publication.data);
    }
    out
}
