//! Map subscriptions: the subscribe phases (state pages with cursors, stream catch-up, then
//! live), client publications and removals of keys, and the map_clients presence of
//! subscribers.
//!
//! Going live joins the hub in a buffering state before the last read, exactly as stream
//! subscriptions do, so nothing published meanwhile is lost or delivered twice.

use std::collections::HashMap;

use bytes::Bytes;
use gyre_config::{DeltaType, SubscriptionType};
use gyre_protocol::{
    ErrorCode, ProtocolError, Publication, StreamPosition, SubscribeRequest, SubscribeResult,
};

use super::{Session, SubState};
use crate::engine::map::MapStatePage;
use crate::hub::{self, Subscriber};
use crate::node::maps::{self, MapChannel, decode_cursor, encode_cursor};
use crate::node::unix_now;
use crate::policy::{self, Subject};

/// Phase of a map subscribe request or result.
const PHASE_LIVE: i32 = 0;
const PHASE_STREAM: i32 = 1;
const PHASE_STATE: i32 = 2;
/// The subscribe result type of map subscriptions.
const RESULT_TYPE_MAP: i32 = 1;

type Outcome<T> = Result<T, ProtocolError>;

mod publish;

/// What the first request of a map subscribe was granted.
#[derive(Debug, Default)]
struct Grant {
    chan_info: Bytes,
    data: Bytes,
    expire_at: Option<i64>,
}

/// A map subscribe between its first request and going live.
#[derive(Debug, Default)]
struct MapFlow {
    grant: Grant,
    /// Stream position captured by the first state page (or given by a recovering client).
    epoch: String,
    offset: u64,
    /// Stream top when the stream phase started.
    stream_start: Option<u64>,
    /// The subscriber's tags filter: entries and changes whose tags do not match are left out
    /// (removals always go through: the client may hold the key).
    filter: Option<std::sync::Arc<crate::tags_filter::TagsFilter>>,
}

/// The session's unfinished map subscribes, by channel (allocated on the first one: every
/// connection carries this, most never subscribe to a map).
#[derive(Debug, Default)]
// Boxed on purpose: 8 bytes in every session future instead of a 48-byte map.
#[allow(clippy::box_collection)]
pub(super) struct MapFlows(Option<Box<HashMap<String, MapFlow>>>);

impl MapFlows {
    fn get(&self, channel: &str) -> Option<&MapFlow> {
        self.0.as_ref()?.get(channel)
    }

    fn get_mut(&mut self, channel: &str) -> Option<&mut MapFlow> {
        self.0.as_mut()?.get_mut(channel)
    }

    fn contains(&self, channel: &str) -> bool {
        self.0.as_ref().is_some_and(|m| m.contains_key(channel))
    }

    fn insert(&mut self, channel: &str, flow: MapFlow) {
        self.0
            .get_or_insert_with(Box::default)
            .insert(channel.to_owned(), flow);
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    fn remove(&mut self, channel: &str) -> Option<MapFlow> {
        let flows = self.0.as_mut()?;
        let flow = flows.remove(channel);
        if flows.is_empty() {
            self.0 = None;
        }
        flow
    }
}

/// Entries and changes that pass a tags filter (removals always do: the client may hold the
/// key).
fn filtered(
    filter: Option<&crate::tags_filter::TagsFilter>,
    mut publications: Vec<Publication>,
) -> Vec<Publication> {
    if let Some(filter) = filter {
        publications.retain(|p| p.removed || filter.matches(&p.tags));
    }
    publications
}

/// Where going live starts from.
enum LiveFrom {
    /// Streamless: re-read the last state page after joining the hub.
    StatePage { after: String, limit: usize },
    /// Positioned: the state read so far (if any) and the stream after `since`.
    Stream {
        state: Vec<Publication>,
        since: StreamPosition,
        recovery: bool,
    },
}

/// The read made after joining the hub.
enum LastRead {
    /// Going live: state entries, changes after them, the stream top, a recovery.
    Live {
        state: Vec<Publication>,
        publications: Vec<Publication>,
        position: StreamPosition,
        recovery: bool,
    },
    /// A streamless last page is no longer the last (the state grew meanwhile).
    MorePages(MapStatePage),
}

impl Session {
    /// A subscribe request to a map channel (any phase).
    pub(super) async fn handle_map_subscribe(
        &mut self,
        req: SubscribeRequest,
    ) -> Outcome<SubscribeResult> {
        let node = self.node.clone();
        let target = node.map_channel(&req.channel)?;
        let expected = match target.options.subscription_type {
            SubscriptionType::MapClients => 2,
            SubscriptionType::MapUsers => 3,
            _ => 1,
        };
        if req.kind != expected {
            return Err(ErrorCode::BadRequest.into());
        }
        let outcome = match req.phase {
            PHASE_STATE => self.map_state_phase(&req, target).await,
            PHASE_STREAM => self.map_stream_phase(&req, target).await,
            PHASE_LIVE => self.map_live_phase(&req, target).await,
            _ => Err(ErrorCode::BadRequest.into()),
        };
        let duplicate = matches!(&outcome, Err(ProtocolError::Reply(e))
            if e.code == ErrorCode::AlreadySubscribed.code());
        if outcome.is_err() && !duplicate {
            self.map_flows.remove(&req.channel);
        }
        outcome
    }

    /// Authorizes the first request of a map subscribe and records its flow.
    fn map_begin(&mut self, req: &SubscribeRequest, target: &MapChannel<'_>) -> Outcome<()> {
        if self.map_flows.contains(&req.channel) {
            return Err(ErrorCode::AlreadySubscribed.into());
        }
        if self.subs.len() + self.map_flows.len() >= self.node.config.client.channel_limit {
            // Unfinished map subscribes count against the channel limit too.
            return Err(ErrorCode::LimitExceeded.into());
        }
        let filter = crate::tags_filter::from_request(
            self.node.hub.filters(),
            req.tf.as_ref(),
            target.options.allow_tags_filter,
        )?;
        if target.options.proxy.subscribe_proxy_enabled && req.token.is_empty() {
            // The subscribe proxy does not authorize map subscribes yet (warned at start-up):
            // refuse rather than let them in unchecked.
            return Err(ErrorCode::NotAvailable.into());
        }
        let node = self.node.clone();
        let resolved = node.channel(&req.channel)?;
        let who = Subject {
            user: &self.user,
            client: &self.handle.client,
        };
        let decision =
            policy::subscribe(&node, who, &req.channel, &resolved, &req.token, unix_now())?;
        let flow = MapFlow {
            grant: Grant {
                chan_info: decision.info,
                data: decision.data,
                expire_at: decision.expire_at,
            },
            epoch: req.epoch.clone(),
            offset: req.offset,
            stream_start: None,
            filter,
        };
        self.map_flows.insert(&req.channel, flow);
        Ok(())
    }

    async fn map_state_phase(
        &mut self,
        req: &SubscribeRequest,
        target: MapChannel<'_>,
    ) -> Outcome<SubscribeResult> {
        let channel = req.channel.as_str();
        let first = req.cursor.is_empty();
        if first {
            self.map_begin(req, &target)?;
        } else if !self.map_flows.contains(channel) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let after = if first {
            String::new()
        } else {
            decode_cursor(&req.cursor).ok_or(ProtocolError::from(ErrorCode::BadRequest))?
        };
        let has_stream = target.broker.has_stream();
        let limit = target.options.map.page_size(req.limit);
        let page = self
            .read_state_page(channel, &target, &after, limit)
            .await?;
        if has_stream && !req.epoch.is_empty() && req.epoch != page.position.epoch {
            return Err(ErrorCode::UnrecoverablePosition.into());
        }
        let flow = self
            .map_flows
            .get_mut(channel)
            .ok_or(ProtocolError::from(ErrorCode::Internal))?;
        if first {
            flow.epoch = page.position.epoch.clone();
            flow.offset = page.position.offset;
        }
        let frozen = StreamPosition {
            offset: flow.offset,
            epoch: flow.epoch.clone(),
        };
        let mut entries = page.entries;
        if has_stream {
            // Entries changed after the first page come with the stream catch-up.
            entries.retain(|e| e.offset <= frozen.offset);
        }
        if page.next_after.is_empty() {
            if !has_stream {
                return self
                    .map_go_live(req, target, LiveFrom::StatePage { after, limit })
                    .await;
            }
            if frozen.offset + limit as u64 >= page.position.offset {
                let from = LiveFrom::Stream {
                    state: entries,
                    since: frozen,
                    recovery: false,
                };
                return self.map_go_live(req, target, from).await;
            }
        }
        Ok(SubscribeResult {
            kind: RESULT_TYPE_MAP,
            phase: PHASE_STATE,
            cursor: encode_cursor(&page.next_after),
            epoch: page.position.epoch,
            offset: frozen.offset,
            state: self.map_payloads(req, &target, entries),
            ..Default::default()
        })
    }

    async fn map_stream_phase(
        &mut self,
        req: &SubscribeRequest,
        target: MapChannel<'_>,
    ) -> Outcome<SubscribeResult> {
        let channel = req.channel.as_str();
        if !target.broker.has_stream() {
            return Err(ErrorCode::BadRequest.into());
        }
        if !self.map_flows.contains(channel) {
            if !req.recover {
                return Err(ErrorCode::PermissionDenied.into());
            }
            self.map_begin(req, &target)?;
        }
        let node = self.node.clone();
        let flow = self
            .map_flows
            .get_mut(channel)
            .ok_or(ProtocolError::from(ErrorCode::Internal))?;
        if !req.epoch.is_empty() && !flow.epoch.is_empty() && req.epoch != flow.epoch {
            return Err(ErrorCode::UnrecoverablePosition.into());
        }
        let limit = target.options.map.page_size(req.limit);
        let stream_start = match flow.stream_start {
            Some(start) => start,
            None => {
                let top = node
                    .map
                    .read_stream(channel, target.broker, None, 0)
                    .await
                    .map_err(|e| maps::read_error(channel, e))?
                    .position
                    .offset;
                if let Some(flow) = self.map_flows.get_mut(channel) {
                    flow.stream_start = Some(top);
                }
                top
            }
        };
        let since = StreamPosition {
            offset: req.offset,
            epoch: req.epoch.clone(),
        };
        if req.offset + limit as u64 >= stream_start {
            let from = LiveFrom::Stream {
                state: Vec::new(),
                since,
                recovery: true,
            };
            return self.map_go_live(req, target, from).await;
        }
        let page = node
            .map
            .read_stream(channel, target.broker, Some(&since), limit)
            .await
            .map_err(|e| maps::read_error(channel, e))?;
        Ok(SubscribeResult {
            kind: RESULT_TYPE_MAP,
            phase: PHASE_STREAM,
            epoch: page.position.epoch,
            offset: page.publications.last().map_or(req.offset, |p| p.offset),
            publications: self.map_payloads(req, &target, page.publications),
            ..Default::default()
        })
    }

    async fn map_live_phase(
        &mut self,
        req: &SubscribeRequest,
        target: MapChannel<'_>,
    ) -> Outcome<SubscribeResult> {
        match self.map_flows.get_mut(&req.channel) {
            Some(flow) => {
                if !req.epoch.is_empty() && !flow.epoch.is_empty() && req.epoch != flow.epoch {
                    return Err(ErrorCode::UnrecoverablePosition.into());
                }
            }
            None => self.map_begin(req, &target)?,
        }
        let from = LiveFrom::Stream {
            state: Vec::new(),
            since: StreamPosition {
                offset: req.offset,
                epoch: req.epoch.clone(),
            },
            recovery: true,
        };
        self.map_go_live(req, target, from).await
    }

    async fn read_state_page(
        &self,
        channel: &str,
        target: &MapChannel<'_>,
        after: &str,
        limit: usize,
    ) -> Outcome<MapStatePage> {
        self.node
            .map
            .read_state(channel, target.broker, after, limit)
            .await
            .map_err(|err| {
                tracing::debug!("map state read of {channel} failed: {err}");
                ProtocolError::from(ErrorCode::Internal)
            })
    }

    /// Whether fossil delta is negotiated for this request.
    fn map_delta(req: &SubscribeRequest, target: &MapChannel<'_>) -> bool {
        req.delta == gyre_protocol::codes::delta::FOSSIL
            && target.options.delta_allowed(&DeltaType::Fossil)
    }

    /// Entries or changes as sent in a subscribe result: in full, JSON-escaped when delta
    /// is negotiated, so the client keeps the exact bytes patches apply to.
    fn map_payloads(
        &self,
        req: &SubscribeRequest,
        target: &MapChannel<'_>,
        mut publications: Vec<Publication>,
    ) -> Vec<Publication> {
        if let Some(flow) = self.map_flows.get(&req.channel) {
            publications = filtered(flow.filter.as_deref(), publications);
        }
        if Self::map_delta(req, target) {
            publications
                .iter()
                .map(|p| hub::full_for_delta(p, self.protocol))
                .collect()
        } else {
            publications
        }
    }

    /// Joins the hub (buffering), makes the last read, answers the live result and lets the
    /// buffered changes through after it.
    async fn map_go_live(
        &mut self,
        req: &SubscribeRequest,
        target: MapChannel<'_>,
        from: LiveFrom,
    ) -> Outcome<SubscribeResult> {
        let channel = req.channel.as_str();
        let node = self.node.clone();
        let delta = Self::map_delta(req, &target);
        let has_stream = target.broker.has_stream();
        let mut subscriber = Subscriber::buffering(self.handle.clone(), delta, false);
        subscriber.filter = self.map_flows.get(channel).and_then(|f| f.filter.clone());
        node.hub.subscribe(channel, subscriber);
        // Changes from other nodes reach this one from now on (buffered until live).
        if let Err(err) = node.map.subscribe(channel).await {
            tracing::debug!("map broker subscribe to {channel} failed: {err}");
            node.hub_unsubscribe(channel, &self.handle.client).await;
            return Err(ProtocolError::from(ErrorCode::from(err)));
        }
        let read = self.map_last_read(channel, &target, from).await;
        let (state, publications, position, recovery) = match read {
            Ok(LastRead::Live {
                state,
                publications,
                position,
                recovery,
            }) => (state, publications, position, recovery),
            Ok(LastRead::MorePages(page)) => {
                // The state grew past the page while joining: keep paginating.
                node.hub_unsubscribe(channel, &self.handle.client).await;
                return Ok(SubscribeResult {
                    kind: RESULT_TYPE_MAP,
                    phase: PHASE_STATE,
                    cursor: encode_cursor(&page.next_after),
                    state: self.map_payloads(req, &target, page.entries),
                    ..Default::default()
                });
            }
            Err(err) => {
                node.hub_unsubscribe(channel, &self.handle.client).await;
                return Err(err);
            }
        };
        let flow = self.map_flows.remove(channel).unwrap_or_default();
        let latest = publications
            .last()
            .map_or(position.offset, |p| p.offset.max(position.offset));
        let continuous = node.hub.go_live(
            channel,
            &self.handle.client,
            has_stream.then_some((latest, position.epoch.as_str())),
            delta,
        );
        if !continuous {
            self.handle
                .send(crate::outbound::Outbound::Control(Box::new(
                    crate::outbound::Control::InsufficientState(channel.to_owned()),
                )));
        }
        let mut result = SubscribeResult {
            kind: RESULT_TYPE_MAP,
            phase: PHASE_LIVE,
            epoch: position.epoch.clone(),
            offset: latest,
            delta,
            recoverable: has_stream,
            positioned: has_stream,
            was_recovering: recovery && req.recover,
            recovered: recovery && req.recover,
            data: flow.grant.data.clone(),
            publish_debounce: target
                .options
                .client_publish_debounce_interval
                .get()
                .as_millis() as u32,
            ..Default::default()
        };
        // The flow is over: its filter applies here.
        let state = filtered(flow.filter.as_deref(), state);
        let publications = filtered(flow.filter.as_deref(), publications);
        result.state = self.map_payloads(req, &target, state);
        result.publications = self.map_payloads(req, &target, publications);
        if let Some(at) = flow.grant.expire_at {
            result.expires = true;
            result.ttl = at.saturating_sub(unix_now()).max(0) as u32;
        }
        self.subs.insert(
            channel.to_owned(),
            SubState {
                presence: false,
                join_leave: false,
                chan_info: flow.grant.chan_info.clone(),
                expire_at: flow.grant.expire_at,
                server_side: false,
                server_refresh: false,
                refreshing: false,
                shared_poll: false,
            },
        );
        self.map_presence(channel, target, &flow.grant.chan_info, true)
            .await;
        Ok(result)
    }

    /// The read made after joining the hub.
    async fn map_last_read(
        &self,
        channel: &str,
        target: &MapChannel<'_>,
        from: LiveFrom,
    ) -> Outcome<LastRead> {
        match from {
            LiveFrom::StatePage { after, limit } => {
                let page = self.read_state_page(channel, target, &after, limit).await?;
                if !page.next_after.is_empty() {
                    return Ok(LastRead::MorePages(page));
                }
                Ok(LastRead::Live {
                    state: page.entries,
                    publications: Vec::new(),
                    position: page.position,
                    recovery: false,
                })
            }
            LiveFrom::Stream {
                state,
                since,
                recovery,
            } => {
                if !target.broker.has_stream() {
                    return Ok(LastRead::Live {
                        state,
                        publications: Vec::new(),
                        position: StreamPosition::default(),
                        recovery,
                    });
                }
                let limit = target.options.map.live_transition_limit();
                let page = self
                    .node
                    .map
                    .read_stream(channel, target.broker, Some(&since), limit + 1)
                    .await
                    .map_err(|e| maps::read_error(channel, e))?;
                if ((recovery || !since.epoch.is_empty()) && since.epoch != page.position.epoch)
                    || page.publications.len() > limit
                {
                    return Err(ErrorCode::UnrecoverablePosition.into());
                }
                Ok(LastRead::Live {
                    state,
                    publications: page.publications,
                    position: page.position,
                    recovery,
                })
            }
        }
    }
}
